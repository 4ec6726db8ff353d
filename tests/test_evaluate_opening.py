"""The evaluate stage's opening read through the person model (stages/evaluate/measure.py
ExpressionOpening): the lower face's expression recovered from landmarks under any pose,
mapped to an opening fitted on one half and validated on the other, blind to the upper
face (the background frame's in an edit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.evaluate.measure import ExpressionOpening, at_positions, validate_opening
from stages.fit import Pose, rebuild_landmarks
from stages.render.data import load_model
from tests.test_render import CLIP, fitted  # noqa: F401  (fixture: the fitted clip)


def synthetic_frames(model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(n, N, 3) image landmarks of random expressions under random poses, and the
    expressions."""
    rng = np.random.default_rng(seed)
    expression = rng.normal(size=(n, len(model.basis))) * model.stddev
    pose = Pose(rng.normal(scale=0.08, size=(n, 3)), rng.normal(scale=20, size=(n, 3)) + 200,
                rng.uniform(0.8, 1.2, n) * 2.0)
    return rebuild_landmarks(model, pose, expression), expression


def test_the_model_opening_recovers_the_expression_and_validates(fitted: Path) -> None:  # noqa: F811
    model, _ = load_model(CLIP, fitted)
    points, expression = synthetic_frames(model, 400, 0)
    measure = ExpressionOpening.of(model)
    recovered = measure.coefficients(points)
    # The lower face alone pins every coefficient down, whatever the head's pose.
    assert np.abs(recovered - expression).max() < 1e-3 * model.stddev.max()
    # An opening that is a linear function of the expression: fitted on the first half,
    # it is read on the second at r ~ 1, where the inner-lip gap reads it less well.
    weights = np.zeros(len(model.basis))  # on the leading components, as a jaw would be
    weights[:6] = np.random.default_rng(1).normal(size=6) / model.stddev[:6]
    jaw = expression @ weights
    fitted_measure, check = validate_opening(model, points, jaw, 25.0)
    assert check["expression_r"] > 0.999 and check["fit_frames"] == 200
    assert check["expression_r"] > check["lips_r"]
    # Frames with no face stay NaN.
    points[3] = np.nan
    assert np.isnan(fitted_measure(points)[3]) and np.isfinite(fitted_measure(points)[4])


def test_the_model_opening_ignores_the_upper_face(fitted: Path) -> None:  # noqa: F811
    """Eyes and brows (non-rigid points above the nose tip) moved: the same opening."""
    model, _ = load_model(CLIP, fitted)
    points, expression = synthetic_frames(model, 50, 2)
    measure = ExpressionOpening.of(model).fitted(expression, expression[:, 0])
    upper = ~measure.lower
    upper[list(model.topo.rigid)] = False
    assert upper.sum() > 20
    moved = points.copy()
    moved[:, upper, :2] += np.random.default_rng(3).normal(scale=3.0, size=(50, upper.sum(), 2))
    np.testing.assert_allclose(measure(moved), measure(points), atol=1e-9)
    # ...whereas moving the lower face's points moves it.
    lowered = points.copy()
    lowered[:, measure.lower, 1] += np.linspace(0, 4, int(measure.lower.sum()))
    assert np.abs(measure(lowered) - measure(points)).max() > 1e-3


def test_the_reference_is_read_between_frames_at_the_paired_times() -> None:
    """An edit's output frames map to times between real frames: reading the real track
    linearly there follows a smooth opening far closer than the nearest frame does."""
    assert np.allclose(at_positions(np.array([0.0, 1.0, 4.0]), np.array([0.5, 1.25, 2.0, 9.0])),
                       [0.5, 1.75, 4.0, 4.0])
    with_gap = at_positions(np.array([1.0, np.nan, 3.0]), np.array([0.0, 0.5, 2.0]))
    assert with_gap[0] == 1.0 and np.isnan(with_gap[1]) and with_gap[2] == 3.0
    fps = 25.0
    frames = np.arange(200)
    opening = lambda t: 0.35 + 0.3 * np.sin(2 * np.pi * 4.0 * t)  # noqa: E731 (~syllable rate)
    # Output frames at a speaking rate 7 % off the real one: times fall between frames.
    times = np.arange(120) / fps * 0.93 + 0.4
    real = opening(frames / fps)
    truth = opening(times)
    nearest = real[np.round(times * fps).astype(int)]
    between = at_positions(real, times * fps)
    assert np.corrcoef(truth, between)[0, 1] > 0.99
    assert np.corrcoef(truth, nearest)[0, 1] < 0.97
