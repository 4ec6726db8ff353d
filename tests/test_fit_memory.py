"""Fit's per-frame parameter filtering in bounded extra memory (issue 15: long inputs)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from stages.fit import fill_gaps_in_place
from stages.fit.smoothing import smooth
from stages.fit.tracking import fill_gaps


@pytest.mark.parametrize("method", ["savgol", "one_euro"])
def test_column_by_column_filtering_gives_the_whole_array_result(method: str) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2000, 64))
    known = rng.random(2000) > 0.05
    values[~known] = np.nan
    whole = smooth(fill_gaps(values, known), method, 25.0, 200.0, 2)
    in_place = values.copy()
    out = fill_gaps_in_place(in_place, known, lambda c: smooth(c, method, 25.0, 200.0, 2))
    assert out is in_place
    assert np.array_equal(whole, in_place)  # bit for bit: the artifacts do not change


def test_filtering_a_long_clip_needs_no_copy_of_its_parameters() -> None:
    n, width = 30_000, 64  # 20 min at 25 fps; 15 MB of float64 expression weights
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, width))
    known = rng.random(n) > 0.01
    values[~known] = np.nan
    whole_mb = values.nbytes / 1e6
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        smooth(fill_gaps(values.copy(), known), "savgol", 25.0, 200.0, 2)
        whole_peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.reset_peak()
        fill_gaps_in_place(values, known, lambda c: smooth(c, "savgol", 25.0, 200.0, 2))
        in_place_peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert whole_peak > 2 * whole_mb  # what the whole-array version costs on top
    assert in_place_peak < 0.2 * whole_mb  # a few columns' worth (1.9 MB of 15)
    assert np.isfinite(values).all()


def test_a_non_contiguous_array_is_refused() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        fill_gaps_in_place(np.zeros((10, 4, 3))[:, ::2], np.ones(10, bool))


def test_occlusion_scores_hold_one_copy_of_the_lip_colours() -> None:
    from stages.fit.occlusion import LIP_REGION, LOWER_LIP, occlusion_scores

    n, n_points = 20_000, 478
    rng = np.random.default_rng(2)
    colours = np.clip(rng.normal(105, 2, (n, n_points, 3)), 0, 255)
    colours[500:540, list(LOWER_LIP)] = 200  # something over the lower lip...
    colours[500:540, list(LIP_REGION[:8])] = 200  # ...and the upper one
    colours = colours.reshape(n, -1).astype(np.uint8)
    detected = rng.random(n) > 0.05
    lip_mb = n * len(LIP_REGION) * 3 * 4 / 1e6  # the float32 relative colours: 8.4 MB
    tracemalloc.start()
    try:
        scores = occlusion_scores(detected, lambda a, b: colours[a:b], n_points, 256, 6.0)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * lip_mb  # whole-clip temporaries made it about 5x
    covered = np.arange(500, 540)[detected[500:540]]
    assert (scores[covered] > 0.2).all() and np.nanmax(np.delete(scores, covered)) < 0.2
