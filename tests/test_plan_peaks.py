"""Peak-keeping in the plan: pronunciations as espeak-ng says them in context, and each
stretched phone's extreme frame kept (stages/plan/timing.py, stages/plan/retime.py)."""

from __future__ import annotations

import numpy as np

from stages.plan.retime import FaceParams, Track, _expression_at, phone_extremes
from stages.plan.timing import closest_pronunciation

FPS = 25.0


def test_the_pronunciation_espeak_says_in_context_is_chosen() -> None:
    past, present = [("R", -1), ("EH", 1), ("D", -1)], [("R", -1), ("IY", 1), ("D", -1)]
    assert closest_pronunciation([past, past, present], ["R", "IY", "D"]) == present
    assert closest_pronunciation([past, present], ["R", "EH", "D"]) == past
    assert closest_pronunciation([past, present], ["W", "AH", "T"]) == past  # tie: preferred


def test_a_stretched_piece_shows_its_phones_extreme_frames() -> None:
    """A clip whose mouth opens to 1.0 at frame 12 (a vowel) and shuts at frame 15 (a
    p/b/m shorter than a frame): sampled between frames, the stretched piece loses both;
    with the extremes pinned, the output shows them, within half a frame of their place."""
    n = 40
    openness = np.full(n, 0.3)
    openness[[11, 12, 13]] = [0.6, 1.0, 0.6]
    openness[15] = 0.0
    expression = np.zeros((n, 64))
    expression[:, 0] = openness
    face = FaceParams(np.zeros((n, 3)), np.zeros((n, 3)), np.ones(n), expression,
                      np.zeros((n, 27)), np.ones(n, bool))
    # Clip phones AA [0.40, 0.58) and B [0.58, 0.62), played half a frame out of step
    # with the clip's frames: every output frame falls between two of them.
    src_knots = np.array([0.40, 0.58, 0.62])
    out_knots = 2.02 + (src_knots - 0.40)
    extremes = phone_extremes(["AA", "B"], out_knots, src_knots, openness, FPS)
    assert np.allclose(extremes[:, 1] * FPS, [12, 15])
    t = np.arange(int(out_knots[0] * FPS), int(np.ceil(out_knots[-1] * FPS)) + 1) / FPS
    plain = Track(out_knots, src_knots, 0, 0.0, n / FPS)
    pinned = Track(out_knots, src_knots, 0, 0.0, n / FPS, extremes)
    before = _expression_at(face, plain, t, FPS)[0][:, 0]
    after = _expression_at(face, pinned, t, FPS)[0][:, 0]
    assert before.max() < 0.9 and before.min() > 0.1
    assert after.max() == 1.0 and after.min() == 0.0
    for (out_s, _), k in zip(extremes, [np.argmax(after), np.argmin(after)], strict=True):
        assert abs(t[k] - out_s) <= 0.5 / FPS + 1e-9
