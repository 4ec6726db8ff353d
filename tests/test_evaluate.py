"""evaluate stage: self-reenactment of a held-out demo sentence, scored against baselines.

On the short demo clip (4 sentences, 14.4 s at 256 px: conftest.SHORT_SCRIPT), a tiny
generator (64 px, 40 steps, seconds) stands in for the trained renderer: the test checks
the machinery and that the scores tell a working renderer from a broken
one, not the picture quality (run the stage on the cpu profile for that).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.composite.compose import CompositeParams
from stages.composite.watermark import WatermarkParams
from stages.evaluate import EvaluateParams, run_evaluate
from stages.evaluate.measure import sync_offset_ms
from stages.fit import FitParams
from stages.plan import PlanParams
from stages.render.checkpoint import load_generator, save_generator
from stages.render.config import RenderParams, TrainParams
from stages.render.interior import MouthParams
from stages.render.train import run_train
from talkedit.artifacts import (
    EVALUATE_SCORES,
    ClipPaths,
    ModelPaths,
    evaluate_metrics_path,
    evaluate_scores_path,
    evaluate_summary_path,
)
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from tests.conftest import REPO, repo_section, write_edit

TINY = {
    "profile": "cpu", "seed": 3, "holdout_share": 0.3, "min_train_frames": 100,
    "checkpoint_every": 100, "log_every": 10, "threads": 2, "eval_warmup": 2,
    "cpu": {"size": 64, "steps": 40, "batch": 2, "seq_len": 3, "window": 2, "gen_channels": 8,
            "gen_max_channels": 16, "gen_depth": 3, "gen_res_blocks": 1, "disc_channels": 8,
            "disc_layers": 2, "temporal_frames": 2, "reference_pool": 60, "reference_gap": 10},
}
METHODS = ("talkedit", "naive_cut", "conditioning")


def evaluate(root: Path, **params: object) -> dict:
    """run_evaluate with the project's sections (one sentence)."""
    return run_evaluate(
        "demo", root, repo_section(EvaluateParams, sentences=1, seed=0, **params),
        repo_section(FitParams), repo_section(AlignParams), repo_section(PlanParams),
        repo_section(AudioParams), repo_section(RenderParams, threads=2),
        repo_section(CompositeParams), repo_section(WatermarkParams), repo_section(MouthParams))


@pytest.fixture(scope="module")
def trained(evaluate_demo_root: Path) -> tuple[Path, dict]:
    run_train("demo", evaluate_demo_root, TrainParams.from_dict(TINY))
    return evaluate_demo_root, evaluate(evaluate_demo_root)


def test_scores_are_finite_baselines_computed_and_outputs_written(trained: tuple[Path, dict]
                                                                  ) -> None:
    root, result = trained
    means = result["means"]
    # Honest: the scored sentence lies in the footage the renderer was never trained on.
    assert result["renderer_trained_share"] == 0.0
    assert result["sentences"] == [3]  # the short demo's last sentence: the only one in its tail
    for method in METHODS:
        for score in EVALUATE_SCORES:  # the demo has generator truth: jaw_error too
            assert means[method][score] is not None and math.isfinite(means[method][score]), \
                (method, score)
        assert means[method]["detected_share"] >= 0.9
    for baseline in ("vs_naive_cut", "vs_conditioning"):
        assert all(v is not None and math.isfinite(v) for v in result["ratios"][baseline].values())
    # The frame pairing is right if the re-created sentence moves its mouth like the real
    # one, far more than the same length of another sentence does.
    assert means["talkedit"]["opening_r"] > 0.6 > means["naive_cut"]["opening_r"]
    assert means["talkedit"]["lmd"] < 0.8 * means["naive_cut"]["lmd"]
    # Speech from the speaker's own units, against another sentence's audio.
    assert means["talkedit"]["mcd_db"] < 0.5 * means["naive_cut"]["mcd_db"]
    # The baseline renders the same plan and audio: the sound is identical.
    assert means["conditioning"]["mcd_db"] == means["talkedit"]["mcd_db"]

    paths = ClipPaths.of("demo", root)
    written = json.loads(evaluate_metrics_path(paths).read_text())
    assert written["means"] == json.loads(json.dumps(means))
    table = pd.read_csv(evaluate_scores_path(paths), sep="\t")
    assert len(table) == 1 and table["sentence"].tolist() == result["sentences"]
    assert table["talkedit_lmd"].iloc[0] == pytest.approx(means["talkedit"]["lmd"], abs=1e-3)
    assert "| lmd" in evaluate_summary_path(paths).read_text()
    # Nothing of the evaluation's edits is left in the project.
    assert not (root / "data" / "edits").exists() and not (root / "data" / "outputs").exists()


def other_model(root: Path, other: Path) -> tuple[ModelPaths, ModelPaths, torch.nn.Module, object]:
    """A project sharing ``root``'s clip, for a changed copy of its generator."""
    (other / "data" / "models" / "demo").mkdir(parents=True)
    (other / "params.yaml").write_text((REPO / "params.yaml").read_text())
    for part in ("raw", "interim"):
        os.symlink(root / "data" / part, other / "data" / part)
    src, dst = ModelPaths.of("demo", root), ModelPaths.of("demo", other)
    generator, stamp = load_generator(src.generator, "demo")
    return src, dst, generator, stamp


def test_a_broken_renderer_scores_worse(trained: tuple[Path, dict], tmp_path: Path) -> None:
    root, good = trained
    broken = tmp_path / "broken"
    src, dst, generator, stamp = other_model(root, broken)
    torch.manual_seed(0)
    with torch.no_grad():  # scrambled weights: it paints noise over the exemplar
        for weights in generator.parameters():
            weights.add_(torch.randn_like(weights) * 0.2)
    save_generator(dst.generator, stamp, generator)
    dst.references.write_bytes(src.references.read_bytes())

    bad = evaluate(broken)["means"]
    ok = good["means"]
    assert bad["talkedit"]["mouth_psnr_db"] < ok["talkedit"]["mouth_psnr_db"] - 3
    assert bad["talkedit"]["mouth_ssim"] < ok["talkedit"]["mouth_ssim"]
    assert bad["talkedit"]["lmd"] > ok["talkedit"]["lmd"]
    # The baselines do not use the network: the same figures as with the working one (the
    # conditioning video's watermark, keyed by the model file's hash, differs slightly).
    assert bad["naive_cut"] == ok["naive_cut"]
    assert bad["conditioning"]["mouth_psnr_db"] == pytest.approx(
        ok["conditioning"]["mouth_psnr_db"], abs=0.1)


def test_sync_offset_finds_a_known_lag() -> None:
    t = torch.arange(200, dtype=torch.float64) / 25
    envelope = (torch.sin(2 * math.pi * 1.3 * t) + torch.sin(2 * math.pi * 0.45 * t)).numpy()
    lagged = envelope.copy()
    lagged[3:] = envelope[:-3]  # the mouth follows the sound by 3 frames
    assert sync_offset_ms(lagged, envelope, 25.0, 300) == pytest.approx(120, abs=10)
    assert sync_offset_ms(envelope, lagged, 25.0, 300) == pytest.approx(-120, abs=10)


def test_too_small_a_holdout_cannot_be_scored_honestly(trained: tuple[Path, dict],
                                                        tmp_path: Path) -> None:
    """A renderer whose held-out tail holds no whole sentence: evaluate refuses, naming the
    fix, instead of scoring frames the network was trained on."""
    root, _ = trained
    short = tmp_path / "short"
    _, dst, generator, stamp = other_model(root, short)
    stamp = dataclasses.replace(stamp, config=dataclasses.replace(stamp.config,
                                                                   holdout_share=0.05))
    save_generator(dst.generator, stamp, generator)
    with pytest.raises(TalkeditError, match="raise train.holdout_share"):
        evaluate(short)


def test_resynthesize_targets_must_be_a_list(evaluate_demo_root: Path) -> None:
    root = evaluate_demo_root / "resay_project"
    spec = write_edit(root, "resay", "clip: demo\ntext: hello\nresynthesize: 3\n")
    (root / "data" / "raw").symlink_to(evaluate_demo_root / "data" / "raw")
    with pytest.raises(TalkeditError, match="resynthesize: must be a list"):
        load_spec("resay", root)
    spec.write_text("clip: demo\ntext: hello\nresynthesize: [[2, 4], research team]\n")
    assert load_spec("resay", root).resynthesize == ((2, 4), (5, 6))
