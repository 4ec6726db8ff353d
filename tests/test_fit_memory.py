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


def test_column_spill_gives_the_in_memory_parameters_bit_for_bit(tmp_path) -> None:
    from stages.fit.spill import ColumnSpill

    n, width, chunk = 3000, 64, 256
    rng = np.random.default_rng(3)
    known = rng.random(n) > 0.05
    fitted = rng.normal(size=(n, width))
    in_memory = np.full((n, width), np.nan)
    spill = ColumnSpill(tmp_path / "expr.f64", n, width)
    for a in range(0, n, chunk):  # written the way fit_parameters writes: detected rows
        rows = np.flatnonzero(known[a:a + chunk]) + a
        in_memory[rows] = fitted[rows]
        spill.write_rows(rows, fitted[rows])
    then = lambda c: smooth(c, "savgol", 25.0, 200.0, 2)  # noqa: E731
    fill_gaps_in_place(in_memory, known, then)
    spill.map_columns(lambda c: then(fill_gaps(c, known)))
    assert np.array_equal(spill.read_rows(0, n), in_memory)
    assert np.array_equal(spill.read_rows(1000, 1256), in_memory[1000:1256])
    sample = np.array([0, 7, 1500, 2999])
    assert np.array_equal(spill.take(sample), in_memory[sample])
    assert np.array_equal(spill.column(5), in_memory[:, 5])
    spill.close()


def test_column_spill_filters_a_long_clip_one_column_at_a_time(tmp_path) -> None:
    from stages.fit.spill import ColumnSpill

    n, width = 47_000, 64  # 31 min at 25 fps: 24 MB of float64 expression weights
    whole_mb = n * width * 8 / 1e6
    known = np.ones(n, bool)
    known[::50] = False
    spill = ColumnSpill(tmp_path / "expr.f64", n, width, fill=1.0)
    tracemalloc.start()
    try:
        spill.map_columns(lambda c: smooth(fill_gaps(c, known), "savgol", 25.0, 200.0, 2))
        rows = spill.read_rows(20_000, 20_256)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    spill.close()
    assert peak < 0.2 * whole_mb  # a few column-sized temporaries (0.4 MB each), never the table
    assert np.allclose(rows, 1.0)


def test_crop_writer_transforms_grow_past_their_first_block(tmp_path) -> None:
    from fractions import Fraction

    from stages.fit.crops import CropWriter

    n = 1100  # past the writer's first 1024-row block of transforms
    writer = CropWriter(tmp_path / "crops.mp4", 32, Fraction(25), (64, 48), lookahead=2)
    image = np.zeros((48, 64, 3), np.uint8)
    for k in range(n):
        # a face drifting right, missing every 7th frame
        writer.push(k, image, None if k % 7 == 3 else np.array([20 + k * 0.01, 24, 3.0, 0.0]))
    transforms = writer.close()
    assert transforms.shape == (n, 6)
    assert len(writer.frames) <= 2 * 2 + 1  # only the smoothing window is kept
    # framing follows the face: the x offset falls as the face moves right
    assert transforms[-1, 2] < transforms[0, 2] - 5
