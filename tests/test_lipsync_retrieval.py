"""Lip-sync retrieval (``lipsync.retrieval``): real footage expressions along the prediction."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stages.lipsync import LipModelParams, LipsyncParams
from stages.lipsync.job import footage_frames, retrieved
from talkedit.errors import TalkeditError
from tests.test_lipsync import FAST, _write_job, lip_root  # noqa: F401 (a fixture)

LEAD = 8  # components the model predicts


def _footage(n: int = 600, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth expression trajectories, each component's spread falling as a PCA basis's does."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n, width))
    walk = np.cumsum(steps, axis=0)
    kernel = np.ones(9) / 9  # smooth the walk's steps, then take it back towards 0
    smooth = np.stack([np.convolve(c - np.convolve(c, np.ones(61) / 61, "same"), kernel, "same")
                       for c in walk.T], axis=1)
    return smooth * (0.8 ** np.arange(width))


def test_retrieval_recovers_the_footage_the_prediction_follows() -> None:
    """A prediction that is a stretch of footage's leading components, shrunk towards the
    mean and noisy: retrieval plays that stretch back (runs of consecutive frames) with every
    component, so its error over all 64 is far below the prediction's own."""
    fitted = _footage()
    truth_rows = np.arange(300, 360)
    rng = np.random.default_rng(1)
    predicted = np.zeros((len(truth_rows), fitted.shape[1]))
    predicted[:, :LEAD] = 0.7 * fitted[truth_rows, :LEAD] + rng.normal(
        scale=0.05 * fitted[:, :LEAD].std(0), size=(len(truth_rows), LEAD))
    footage = np.arange(len(fitted))
    opts = dataclasses.replace(LipsyncParams(), retrieval=True, retrieval_share=1.0)
    shown, chosen = retrieved(predicted, fitted, footage, opts, LEAD)
    assert shown.shape == predicted.shape and (shown == fitted[chosen]).all()
    err_pred = np.linalg.norm(predicted - fitted[truth_rows], axis=1).mean()
    err_shown = np.linalg.norm(shown - fitted[truth_rows], axis=1).mean()
    assert err_shown < 0.5 * err_pred
    # The path plays that stretch: most steps hold or move on by one frame, near the truth's.
    assert np.isin(np.diff(chosen), (0, 1)).mean() > 0.8
    assert np.median(np.abs(chosen - truth_rows)) <= 3

    # share: the way from the prediction to the real expression; 0 leaves the prediction.
    half, chosen_half = retrieved(predicted, fitted, footage,
                                  dataclasses.replace(opts, retrieval_share=0.5), LEAD)
    assert (chosen_half == chosen).all()
    np.testing.assert_allclose(half, 0.5 * fitted[chosen] + 0.5 * predicted)
    none, _ = retrieved(predicted, fitted, footage, dataclasses.replace(opts, retrieval_share=0.0),
                        LEAD)
    np.testing.assert_allclose(none, predicted)


def test_a_jump_costs_more_the_higher_the_switch_cost() -> None:
    """Free switching takes each row's nearest frame; a high switch cost keeps longer runs."""
    fitted = _footage(seed=3)
    rng = np.random.default_rng(4)
    predicted = np.zeros((80, fitted.shape[1]))
    predicted[:, :LEAD] = fitted[200:280, :LEAD] + rng.normal(
        scale=0.3 * fitted[:, :LEAD].std(0), size=(80, LEAD))
    footage = np.arange(len(fitted))

    def runs(cost: float) -> int:
        opts = dataclasses.replace(LipsyncParams(), retrieval_switch_cost=cost)
        return int(1 + (np.diff(retrieved(predicted, fitted, footage, opts, LEAD)[1]) != 1).sum())

    free, costly = runs(0.0), runs(5.0)
    assert costly < 0.6 * free
    nearest = np.argmin(((predicted[:, None, :LEAD] - fitted[None, :, :LEAD]) ** 2).sum(-1), 1)
    opts0 = dataclasses.replace(LipsyncParams(), retrieval_switch_cost=0.0)
    assert (retrieved(predicted, fitted, footage, opts0, LEAD)[1] == nearest).all()


def test_footage_is_the_clip_less_the_span() -> None:
    """759 frames: every frame but the span the new speech replaces, wherever it lies."""
    frames = footage_frames(759, 100, 200)
    assert frames.min() == 0 and frames.max() == 758 and len(frames) == 759 - 100
    assert not ((frames >= 100) & (frames < 200)).any()
    assert len(footage_frames(759, 0, 759)) == 0


def test_a_job_with_retrieval_shows_real_frames_and_keeps_the_opening(lip_root: Path  # noqa: F811
                                                                      ) -> None:
    """The clip's held-out tail driven by the clip's audio, retrieval on: every new frame shows
    a real frame's expression from the frames the model trained on (never the span nor the
    tail), moved ``share`` of the way from the prediction, and the opening still follows
    the generator's true jaw. The same job gives the same bytes."""
    import hashlib

    from stages.lipsync.job import run_lipplan
    from stages.lipsync.train import run_lipmodel
    from talkedit.artifacts import (
        LIP_TRACK,
        PLAN,
        TRUTH_FRAMES,
        ClipPaths,
        LipModelPaths,
        LipsyncPaths,
        column_array,
        read_parquet,
    )

    if not LipModelPaths.of("demo", lip_root).model.is_file():
        run_lipmodel("demo", lip_root, dataclasses.replace(LipModelParams(), **FAST))
    opts = dataclasses.replace(LipsyncParams(), retrieval=True)
    paths = LipsyncPaths.of("ret", lip_root)
    face = read_parquet(ClipPaths.of("demo", lip_root).face, columns=["expression"])
    fitted = column_array(face, "expression").astype(np.float64)
    _write_job(lip_root, "ret", {"clip": "demo", "audio": {"clip": "demo"}, "span": [19.72, 30.36]})
    report = run_lipplan("ret", lip_root, opts)
    track = read_parquet(paths.expression, LIP_TRACK)
    plan = read_parquet(paths.outputs.plan, PLAN)
    chosen = track["retrieved_frame"].to_numpy()
    first = int(track["frame"].iloc[0])
    assert first == 493 and (chosen >= 0).all() and (chosen < first).all()
    assert report["retrieval"]["frames"] == len(track) and report["retrieval"]["runs"] < len(track)
    expression = column_array(plan, "expression").astype(np.float64)[plan["edited"].to_numpy()]
    shown = column_array(track, "expression").astype(np.float64)
    np.testing.assert_allclose(expression, shown, atol=1e-5)
    share = opts.retrieval_share
    # shown = share x real + (1 - share) x predicted: beyond the predicted components, share x real
    np.testing.assert_allclose(shown[:, 8:], share * fitted[chosen, 8:], atol=1e-5)
    # New frame k is the clip's audio at k/25 s (the whole clip's audio drives the tail, its
    # background looping): its held-out tail, frames 493.., no model trained on.
    truth = read_parquet(ClipPaths.of("demo", lip_root).truth_frames, TRUTH_FRAMES)
    held = np.arange(493, len(truth))
    jaw = truth["jaw_open"].to_numpy()[held]
    r_shown = np.corrcoef(track["opening"].to_numpy()[held], jaw)[0, 1]
    r_predicted = np.corrcoef(track["predicted_opening"].to_numpy()[held], jaw)[0, 1]
    assert r_shown > 0.7 and r_shown > r_predicted - 0.05
    digest = hashlib.sha256(paths.outputs.plan.read_bytes()).hexdigest()
    run_lipplan("ret", lip_root, opts)
    assert hashlib.sha256(paths.outputs.plan.read_bytes()).hexdigest() == digest


def test_a_span_leaving_too_little_footage_is_refused(lip_root: Path) -> None:  # noqa: F811
    from stages.lipsync.job import run_lipplan
    from stages.lipsync.train import run_lipmodel
    from talkedit.artifacts import LipModelPaths, LipsyncPaths

    if not LipModelPaths.of("demo", lip_root).model.is_file():
        run_lipmodel("demo", lip_root, dataclasses.replace(LipModelParams(), **FAST))
    _write_job(lip_root, "whole", {"clip": "demo", "audio": {"clip": "demo"}})
    with pytest.raises(TalkeditError, match="footage frames to retrieve"):
        run_lipplan("whole", lip_root, dataclasses.replace(LipsyncParams(), retrieval=True))
    assert not LipsyncPaths.of("whole", lip_root).outputs.plan_dir.exists()
