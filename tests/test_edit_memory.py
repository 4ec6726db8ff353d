"""The edit's stages on long inputs in bounded memory (issue 15, item 5): train's crops on
disk, its held-out scoring capped and streamed, plan's co-articulation design in blocks,
only the columns of face.parquet a stage needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.ndimage import gaussian_filter1d

from stages.fit import frame_parameters
from stages.plan.articulation import RATE_HZ, correct, phone_design, shut
from stages.plan.retime import (
    PLAN_ROWS,
    FaceParams,
    SpanPlan,
    _frame_rows,
    _join_changes,
    build_timeline,
    frame_plan,
    join_steps,
)
from stages.plan.search import PHONE_CODES
from stages.render.data import (
    CropFile,
    FrameOutlines,
    RowsAsFloat64,
    face_geometry,
    load_clip,
)
from stages.render.evaluate import evaluate_holdout, nearest_expression, scored_spans
from stages.render.train import split_frames
from talkedit.artifacts import (
    FACE,
    PLAN,
    RowGroupColumn,
    RowGroupRows,
    column_array,
    read_parquet,
    write_parquet,
    write_parquet_blocks,
)
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize
from tests.test_render import CLIP, REPO, fitted, tiny, trained  # noqa: F401 (fixtures)

PHONES = sorted(PHONE_CODES)


def whole_grid_design(phones: list[str], starts: np.ndarray, ends: np.ndarray,
                      times: np.ndarray, sigma_s: float) -> np.ndarray:
    """phone_design as it was: the whole clip's grid smoothed at once (the reference)."""
    horizon = max(float(np.max(ends, initial=0.0)), float(np.max(times, initial=0.0))) + 0.5
    grid = np.arange(0.0, horizon, 1.0 / RATE_HZ)
    held = np.zeros((len(grid), len(PHONE_CODES)))
    for phone, a, b in zip(phones, starts, ends, strict=True):
        held[(grid >= a) & (grid < b), PHONE_CODES[phone]] = 1.0
    smooth = gaussian_filter1d(held, sigma_s * RATE_HZ, axis=0, mode="nearest")
    cols = [np.interp(times, grid, smooth[:, k]) for k in range(smooth.shape[1])]
    return np.column_stack([*cols, np.ones(len(times))])


def phone_track(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    durations = rng.uniform(0.03, 0.2, n)
    ends = np.cumsum(durations)
    return [PHONES[k] for k in rng.integers(0, len(PHONES), n)], ends - durations, ends


@pytest.mark.parametrize("sigma_s", [0.02, 0.06])
def test_blockwise_phone_design_is_the_whole_grid_one_bit_for_bit(sigma_s: float) -> None:
    phones, starts, ends = phone_track(1500, 0)  # 173 s: the grid spans 9 blocks
    rng = np.random.default_rng(1)
    for times in (np.arange(int(ends[-1] * 25)) / 25,  # every frame (the fit)
                  np.sort(rng.uniform(0, ends[-1] + 0.4, 40)),  # a few (the prediction)
                  np.array([ends[-1] + 0.3]), np.array([0.0])):  # beyond the end, the start
        assert np.array_equal(phone_design(phones, starts, ends, times, sigma_s),
                              whole_grid_design(phones, starts, ends, times, sigma_s))


def test_phone_design_of_a_long_clip_holds_no_whole_clip_grid() -> None:
    phones, starts, ends = phone_track(19_780, 2)  # 31 minutes of phones, as looplong3x11
    grid_mb = ends[-1] * RATE_HZ * len(PHONE_CODES) * 8 / 1e6  # one whole-grid copy
    few = np.linspace(900.0, 902.0, 50)  # the new words' frames
    every = np.arange(int(ends[-1] * 25)) / 25
    tracemalloc.start()
    try:
        phone_design(phones, starts, ends, few, 0.04)
        few_peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.reset_peak()
        design = phone_design(phones, starts, ends, every, 0.04)
        every_peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert grid_mb > 100  # 121 MB; the whole-grid version held 2-3 of them
    assert few_peak < 12  # the grid's times (3 MB), a block (1.4 MB a copy), the phones
    assert every_peak < design.nbytes / 1e6 + 12  # the design itself (19 MB), grid, a block


def test_crop_file_reads_what_an_array_holds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    on_disk = CropFile(tmp_path / "crops.u8", 50, 8)
    for a in range(0, 50, 16):
        on_disk[a:a + 16] = crops[a:a + 16]
    assert len(on_disk) == 50 and on_disk.shape == crops.shape
    for frames in (7, np.array([3, 3, 49, 0]), np.array([[1, 2], [40, 41]]),
                   np.zeros(0, np.int64)):
        assert np.array_equal(on_disk[frames], crops[frames])
    with pytest.raises(IndexError):
        on_disk[np.array([50])]
    with pytest.raises(ValueError):
        on_disk[0:4] = crops[:3]


# Measured in a fresh interpreter: in a long test session the heap's earlier history (what
# glibc keeps after other tests) moves the resident size by tens of MB.
RSS_GROWTH = """
import sys
from pathlib import Path
from stages.render.data import load_clip

def rss_mb():
    line = [ln for ln in Path("/proc/self/status").read_text().splitlines()
            if ln.startswith("VmRSS")][0]
    return int(line.split()[1]) / 1024

before = rss_mb()
_, data = load_clip(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
print(rss_mb() - before)
"""


def rss_growth_mb(root: Path, size: int, scratch: Path) -> float:
    """The resident growth of one load_clip at this crop size, in a fresh interpreter."""
    scratch.mkdir()
    run = subprocess.run([sys.executable, "-c", RSS_GROWTH, CLIP, str(root), str(size),
                          str(scratch)], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return float(run.stdout.split()[-1])


def test_train_keeps_the_clips_crops_out_of_its_memory(fitted: Path, tmp_path: Path  # noqa: F811
                                                       ) -> None:
    size = 512  # 200 frames: 150 MiB of crops, which a memory map kept resident
    crops_mb = 200 * size * size * 3 / 2 ** 20
    # Against the same load at 64 px (1.2 MiB of crops): decoding, the model and the
    # libraries' buffers cost the same at both sizes (about 38 MB, which varies by machine),
    # so the difference is what the crops themselves keep resident.
    grown = rss_growth_mb(fitted, size, tmp_path / "large") - rss_growth_mb(
        fitted, 64, tmp_path / "small")
    assert grown < 0.1 * crops_mb, (grown, crops_mb)
    _, data = load_clip(CLIP, fitted, size, tmp_path)
    _, in_memory = load_clip(CLIP, fitted, 64)
    _, small = load_clip(CLIP, fitted, 64, tmp_path)
    rows = np.array([0, 5, 199, 5, 120])
    assert np.array_equal(small.crops[rows], in_memory.crops[rows])
    assert np.array_equal(data.usable, in_memory.usable) and len(data) == len(in_memory)


def test_scored_spans_cap_the_held_out_sample_evenly() -> None:
    assert scored_spans(100, 600, 1500) == [(100, 600)]  # under the cap: all of it
    assert scored_spans(100, 600, None) == [(100, 600)]
    spans = scored_spans(30_623, 47_113, 1500)  # 35 % of the 31-minute clip
    assert len(spans) == 6 and all(b - a == 250 for a, b in spans)
    assert spans[0][0] == 30_623 and spans[-1][1] == 47_113  # from its start to its end
    gaps = np.diff([a for a, _ in spans])
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert sum(b - a for a, b in scored_spans(0, 10_000, 1000)) <= 1000


def test_nearest_training_frame_in_blocks_is_the_whole_matrix_one() -> None:
    rng = np.random.default_rng(4)
    train = rng.normal(size=(30_623, 64))  # the 31-minute clip's training frames
    train[20_000:20_100] = train[:100]  # exact repeats (a looped clip): ties
    query = rng.normal(size=(64, 64))
    query[:5] = train[[0, 7, 20_003, 30_622, 4_095]]
    whole = np.argmin((query ** 2).sum(1)[:, None] + (train ** 2).sum(1)[None]
                      - 2 * query @ train.T, axis=1)
    d2_mb = len(query) * len(train) * 8 / 1e6  # 15.7 MB a copy; the whole version made 3
    tracemalloc.start()
    try:
        got = nearest_expression(train, query)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert np.array_equal(got, whole) and list(got[:5]) == [0, 7, 3, 30_622, 4_095]
    assert peak < 0.5 * d2_mb, peak  # a block's distances (2.1 MB a copy, 3 at once)


def test_capped_scoring_scores_the_sample_and_says_out_of_how_many(
        trained: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import torch

    from stages.render import evaluate
    from stages.render.checkpoint import load_generator
    from stages.render.conditioning import FaceRenderer
    from stages.render.config import TrainParams
    from stages.render.data import ReferencePool
    from stages.render.infer import ConditioningSource
    from talkedit.artifacts import ModelPaths

    root, _ = trained
    cfg = TrainParams.from_dict(tiny())
    model, data = load_clip(CLIP, root, cfg.size)
    split = split_frames(data, cfg)
    paths = ModelPaths.of(CLIP, root)
    cpu = torch.device("cpu")
    generator, stamp = load_generator(paths.generator, CLIP, None, data.face_model_sha, cpu)
    pool = ReferencePool.load(paths.references, CLIP, stamp.config.config_hash,
                              data.face_model_sha)
    source = ConditioningSource(FaceRenderer(model, cfg.size, cfg.mask_dilate,
                                             cfg.mask_feather, cpu),
                                lambda f: data.crops[f], data.transforms, data.outlines, pool)

    def score(cap: int | None) -> tuple[dict, np.ndarray]:
        return evaluate_holdout(generator, stamp.box, source, data, split.train, split.heldout,
                                cfg.eval_warmup, max_frames=cap)

    whole, _ = score(None)
    assert score(len(split.heldout))[0] == whole and "heldout_usable_frames" not in whole
    monkeypatch.setattr(evaluate, "EVAL_RUN", 4)  # runs of 4 frames on this short clip
    capped, preview = score(12)
    spans = scored_spans(int(split.heldout[0]), int(split.heldout[-1]) + 1, 12)
    assert len(split.heldout) == 20 and [b - a for a, b in spans] == [4, 4, 4]
    assert spans[0][0] == split.heldout[0] and spans[-1][1] == split.heldout[-1] + 1
    assert capped["heldout_usable_frames"] == whole["heldout_frames"] > 12
    usable = int(sum(data.usable[a:b].sum() for a, b in spans))
    assert capped["heldout_frames"] == usable
    assert np.isfinite(capped["psnr_db"]["network"]) and capped != whole
    assert preview.shape[0] == 4 * stamp.box.height


def test_only_the_asked_columns_of_face_parquet_are_read(tmp_path: Path) -> None:
    n = 3
    table = pa.table({f.name: pa.array([[0.0] * f.type.list_size] * n, f.type)
                      if pa.types.is_fixed_size_list(f.type) else pa.array([0] * n).cast(f.type)
                      for f in FACE})
    pq.write_table(table, tmp_path / "face.parquet")
    got = read_parquet(tmp_path / "face.parquet", FACE, arrow=True,
                       columns=["frame", "expression"])
    assert got.column_names == ["frame", "expression"] and len(got) == n
    pq.write_table(table.drop(["expression"]), tmp_path / "face.parquet")
    with pytest.raises(TalkeditError, match="expression"):
        read_parquet(tmp_path / "face.parquet", FACE, arrow=True, columns=["expression"])


# --- plan's co-articulation and join checks, render's per-row reads (session 6, 15d) ---------

LONG_FRAMES = 47_113  # the 31-minute benchmark clip at 25 fps


def long_expression(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A long plan's (n, 64) expression, a unit direction, targets, and weights that move
    only the new words' 60 frames (the rest of the clip is kept footage)."""
    rng = np.random.default_rng(seed)
    expression = rng.normal(size=(LONG_FRAMES, 64))
    direction = rng.normal(size=64)
    direction /= np.linalg.norm(direction)
    weight = np.zeros(LONG_FRAMES)
    weight[40_000:40_060] = rng.uniform(0.1, 1.0, 60)
    return expression, direction, rng.normal(size=LONG_FRAMES), weight


def traced_peak_mb(call) -> tuple[float, object]:
    tracemalloc.start()
    try:
        out = call()
        return tracemalloc.get_traced_memory()[1] / 1e6, out
    finally:
        tracemalloc.stop()


def test_correcting_a_long_plans_new_words_copies_its_expression_at_most_once() -> None:
    expression, direction, target, weight = long_expression(4)
    reference = expression + (weight * (target - expression @ direction))[:, None] \
        * direction[None, :]  # the whole-array formula: 3 more (n, 64) arrays at its peak
    size_mb = expression.nbytes / 1e6  # 24 MB
    peak, moved = traced_peak_mb(lambda: correct(expression, direction, target, weight))
    assert np.array_equal(moved, reference)
    assert peak < size_mb + 3  # the copy it returns, and the 60 rows
    in_place = expression.copy()
    peak, out = traced_peak_mb(lambda: correct(in_place, direction, target, weight,
                                               out=in_place))
    assert out is in_place and np.array_equal(in_place, reference)
    assert peak < 3
    closure = np.zeros(LONG_FRAMES)
    closure[[40_010, 40_030, 40_050]] = 1.0  # the new words' p/b/m
    whole = shut(expression, direction, closure, -0.5, 0.05, weight)
    peak, shut_in_place = traced_peak_mb(lambda: shut(
        in_place := expression.copy(), direction, closure, -0.5, 0.05, weight, out=in_place))
    assert np.array_equal(shut_in_place, whole)
    assert not np.array_equal(whole[40_000:40_060], expression[40_000:40_060])
    assert np.array_equal(whole[:40_000], expression[:40_000])
    assert peak < size_mb + 3  # the copy made here; the old shut held frames x closures too


def test_join_changes_of_a_long_plan_read_only_the_frames_at_its_joins() -> None:
    expression = long_expression(5)[0]
    joins, half, fps = np.array([1600.04, 1600.9, 1602.3]), np.array([0.03, 0.06, 0.15]), 25.0
    step = np.linalg.norm(np.diff(expression, axis=0), axis=1)  # the whole output's steps
    reference = [step[a:b].max(initial=0.0) for a, b in join_steps(joins, half, fps,
                                                                    LONG_FRAMES)]
    peak, changes = traced_peak_mb(lambda: _join_changes(expression, joins, half, fps))
    assert np.array_equal(changes, reference)
    assert peak < 1  # the whole-output steps were 24 MB of differences and 0.4 MB of norms


def test_render_reads_outlines_and_plan_rows_as_the_whole_arrays_hold_them(
        fitted: Path) -> None:  # noqa: F811
    _, _, _, outlines = face_geometry(CLIP, fitted, 64)
    _, _, _, lazy = face_geometry(CLIP, fitted, 64, lazy_outlines=True)
    rows = np.array([0, 3, 3, len(outlines) - 1])
    assert len(lazy) == len(outlines) and lazy.polygons[rows].dtype == np.float32
    assert np.array_equal(lazy[rows], outlines[rows]) and np.array_equal(lazy[5], outlines[5])
    # read from face.parquet a row group at a time: no whole polygon column held (session 7)
    assert isinstance(lazy.polygons, RowGroupColumn)
    values = np.random.default_rng(6).normal(size=(50, 27)).astype(np.float32)
    as64 = RowsAsFloat64(values)
    assert as64[rows[:3]].dtype == np.float64
    assert np.array_equal(as64[rows[:3]], values.astype(np.float64)[rows[:3]])


# --- plan in windows, files read by row group (session 7, 15m) -------------------------------


def long_face(n: int, seed: int) -> FaceParams:
    rng = np.random.default_rng(seed)
    return FaceParams(rng.normal(size=(n, 3)).astype(np.float32),
                      rng.normal(size=(n, 3)).astype(np.float32),
                      rng.uniform(0.9, 1.1, n).astype(np.float32),
                      rng.normal(size=(n, 64)).astype(np.float32),
                      rng.normal(size=(n, 27)).astype(np.float32), np.ones(n, bool))


def test_a_long_plan_is_computed_in_windows_that_are_its_whole_rows() -> None:
    fps, n = 25.0, LONG_FRAMES
    face = long_face(n, 7)
    # A deletion in the middle of the 31-minute clip: a retimed region and a cross-fade.
    timeline = build_timeline([SpanPlan(1000.0, 1001.3, [], [])], n / fps, 0.5, None,
                              np.ones(n, bool), fps, 0.3)
    tracemalloc.start()
    try:
        plan = frame_plan(timeline, face, fps, 0.067, 0.3, 0.5)
        sums, expression = [], np.zeros((0, 64))
        for a, rows in plan.windows():
            sums.append(rows.expression.sum() + rows.illumination.sum() + rows.rotation.sum())
            if a <= 25_000 < a + len(rows):  # the window holding the cut
                expression = rows.expression
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    whole = _frame_rows(timeline, face, fps, plan.blend_half, plan.time_s)  # the old way
    assert len(plan) == 47_080 and len(sums) == -(-len(plan) // PLAN_ROWS)  # 1.3 s cut
    at = 25_000 // PLAN_ROWS * PLAN_ROWS
    assert np.array_equal(expression, whole.expression[at:at + PLAN_ROWS])
    assert np.array_equal(plan.edited, whole.edited) and whole.edited.sum() >= 25
    assert np.array_equal(plan.rows(24_990, 25_010).illumination,
                          whole.illumination[24_990:25_010])
    assert whole.expression.nbytes / 1e6 > 24  # the whole plan's expression alone
    assert peak < 6  # a window's rows (1024 frames) and the plan's per-frame flags


def test_expression_set_on_a_windowed_plan_is_read_back_by_every_window() -> None:
    face = long_face(3000, 8)
    timeline = build_timeline([SpanPlan(60.0, 61.0, [], [])], 120.0, 0.5, None,
                              np.ones(3000, bool), 25.0, 0.3)
    plan = frame_plan(timeline, face, 25.0, 0.067, 0.3, 0.5)
    before = plan.rows(0, len(plan)).expression
    rows = np.array([3, 1023, 1024, 2900])
    plan.set_expression(rows, np.full((4, 64), 7.0))
    plan.set_expression(rows[:1], np.full((1, 64), 9.0))  # set again: the last one holds
    after = np.concatenate([r.expression for _, r in plan.windows()])
    expected = before.copy()
    expected[rows], expected[3] = 7.0, 9.0
    assert np.array_equal(after, expected)


def plan_block(a: int, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"frame": np.arange(a, a + n), "time_s": np.arange(a, a + n) / 25,
            "segment": np.zeros(n), "edited": rng.random(n) < 0.1,
            "source_frame": np.arange(a, a + n), "piece": np.full(n, -1),
            "expression_source_frame": np.arange(a, a + n), "blend_weight": np.zeros(n),
            "rotation": rng.normal(size=(n, 3)), "translation": rng.normal(size=(n, 3)),
            "scale": np.ones(n), "expression": rng.normal(size=(n, 64)),
            "illumination": rng.normal(size=(n, 27)), "source_time_s": np.arange(a, a + n) / 25}


def test_blocks_write_one_row_group_each_and_one_block_the_same_bytes(tmp_path: Path) -> None:
    one = plan_block(0, 700, 9)
    write_parquet(one, PLAN, tmp_path / "whole.parquet")
    write_parquet_blocks(iter([one]), PLAN, tmp_path / "one.parquet")
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    blocks = [plan_block(a, min(300, 700 - a), 10 + a) for a in range(0, 700, 300)]
    write_parquet_blocks(iter(blocks), PLAN, tmp_path / "blocks.parquet")
    merged = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    write_parquet(merged, PLAN, tmp_path / "merged.parquet")
    assert pq.ParquetFile(tmp_path / "blocks.parquet").metadata.num_row_groups == 3
    assert pq.read_table(tmp_path / "blocks.parquet").equals(
        pq.read_table(tmp_path / "merged.parquet"))


def test_row_group_rows_index_like_the_whole_column_and_read_only_groups_asked(
        tmp_path: Path) -> None:
    n, group = 20_000, 500
    blocks = [plan_block(a, group, a) for a in range(0, n, group)]
    write_parquet_blocks(iter(blocks), PLAN, tmp_path / "plan.parquet")
    whole = np.concatenate([b["expression"] for b in blocks]).astype(np.float32)
    before = pa.total_allocated_bytes()
    rows = RowGroupRows(tmp_path / "plan.parquet", ["expression", "illumination"], keep=4)
    expression = rows.column("expression")
    assert len(expression) == n and expression.shape == (n, 64)
    for key in (7, -1, slice(490, 510), slice(None, None, 997), np.array([3, 3, 19_999, 0]),
                np.array([[1, 2], [12_000, 501]]), np.zeros(0, np.int64)):
        assert np.array_equal(expression[key], whole[key])
    held_mb = (pa.total_allocated_bytes() - before) / 1e6
    assert held_mb < 4 * group * (64 + 27) * 4 / 1e6 + 1  # 4 groups kept, not 7 MB of column
    with pytest.raises(IndexError):
        expression[np.array([n])]
    with pytest.raises(TalkeditError, match="lacks columns"):
        RowGroupRows(tmp_path / "plan.parquet", ["landmarks_2d"])


def test_espeak_timings_without_audio_are_the_timings_with_it() -> None:
    text = "a family of ducks walked across the old stone bridge at noon"
    full, timed = synthesize(text), synthesize(text, timings_only=True)
    assert len(timed.samples) == 0 and len(full.samples) > 20_000
    assert timed.duration_s == full.duration_s
    assert [(p.phone, p.start_s, p.end_s) for p in timed.phones] == [
        (p.phone, p.start_s, p.end_s) for p in full.phones]
    assert [(w.text, w.start_s, w.end_s) for w in timed.words] == [
        (w.text, w.start_s, w.end_s) for w in full.words]


def test_train_reads_expression_lighting_and_outlines_as_the_whole_arrays_hold_them(
        fitted: Path) -> None:  # noqa: F811
    _, data = load_clip(CLIP, fitted, 64)
    table, _, _, outlines = face_geometry(CLIP, fitted, 64)  # the whole arrays, as before
    _, expression = frame_parameters(table)
    illumination = column_array(table, "illumination").astype(np.float64)
    rows = np.array([0, 5, 5, len(outlines) - 1])
    assert isinstance(data.outlines, FrameOutlines) and isinstance(data.expression,
                                                                   RowsAsFloat64)
    assert np.array_equal(data.outlines[rows], outlines[rows])
    for lazy, whole in ((data.expression, expression), (data.illumination, illumination)):
        assert np.array_equal(lazy[rows], whole[rows]) and np.array_equal(lazy[3], whole[3])
        assert np.array_equal(lazy[::-1], whole[::-1]) and lazy[rows].dtype == np.float64
        assert lazy.values.nbytes * 2 == whole.nbytes  # the fit's float32: half the bytes
