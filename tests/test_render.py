"""Neural face renderer: rasterizer, conditioning, train (save, resume), render, bad input.

The end-to-end tests use the first 8 s of the demo clip at 256 px, fitted once per
module, and a generator with tiny sizes trained for a handful of steps: they
check the machinery (files, resumption, refusals, the render layout), not the
picture quality (benchmarks/render_quality.py measures that).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from stages.extract import ExtractParams, extract_clip
from stages.fit import FitParams, lower_face_mask, run_fit
from stages.render.checkpoint import (
    Stamp,
    build_generator,
    load_checkpoint,
    load_generator,
    save_generator,
)
from stages.render.conditioning import Box, FaceRenderer, conditioning_channels
from stages.render.config import RenderParams, TrainParams
from stages.render.data import ReferencePool, load_clip
from stages.render.infer import ConditioningSource, Frames, Job, make_jobs, run_jobs
from stages.render.interior import MouthParams
from stages.render.raster import rasterize
from stages.render.render import reenactment_plan, run_render
from stages.render.store import RenderStore
from stages.render.train import Trainer, run_train
from talkedit.artifacts import (
    PLAN,
    ClipPaths,
    EditPaths,
    ModelPaths,
    RenderPaths,
    write_parquet,
)
from talkedit.errors import TalkeditError
from talkedit.params import load_section, raw_section
from talkedit.scale import ScaleParams
from tests.conftest import write_edit

REPO = Path(__file__).resolve().parents[1]
CLIP = "short"
N_FRAMES = 200

# Tiny networks and a handful of steps: seconds, not minutes.
TINY = {
    "profile": "cpu", "seed": 3, "holdout_share": 0.1, "min_train_frames": 100,
    "checkpoint_every": 2, "log_every": 1, "threads": 2, "eval_warmup": 2,
    "cpu": {"size": 64, "steps": 4, "batch": 2, "seq_len": 3, "window": 2, "gen_channels": 8,
            "gen_max_channels": 16, "gen_depth": 3, "gen_res_blocks": 1, "disc_channels": 8,
            "disc_layers": 2, "temporal_frames": 2, "reference_pool": 60, "reference_gap": 10},
}


def tiny(**cpu: object) -> dict:
    return {**TINY, "cpu": {**TINY["cpu"], **cpu}}


# --- the rasterizer (no video) ------------------------------------------------------------


def test_rasterizer_covers_what_fillpoly_covers_and_keeps_the_nearest_surface() -> None:
    far, near = [[2, 2], [40, 4], [6, 44]], [[12, 12], [50, 14], [14, 56]]
    polys = []
    for tri in (far, near):
        poly = np.zeros((64, 64), np.uint8)
        cv2.fillPoly(poly, [np.array(tri, np.int32)], 1)
        polys.append(poly.astype(bool))
        one = torch.tensor([[[x, y, 0.0] for x, y in tri]])
        _, covered = rasterize(one, torch.tensor([[0, 1, 2]]), torch.ones(1, 3, 1), 64, 64)
        mine = covered[0, 0].numpy()
        # Centre sampling and fillPoly differ only on boundary pixels.
        assert (mine & polys[-1]).sum() / (mine | polys[-1]).sum() > 0.9
    # Both at once, the second nearer (smaller z): it wins where they overlap.
    verts = torch.tensor([[[x, y, 5.0] for x, y in far] + [[x, y, 1.0] for x, y in near]])
    ids = torch.tensor([[[1.0]] * 3 + [[2.0]] * 3])
    image, covered = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), ids, 64, 64)
    label = image[0, 0].round().numpy()
    kernel = np.ones((3, 3), np.uint8)
    near_core = cv2.erode(polys[1].astype(np.uint8), kernel).astype(bool)
    near_grown = cv2.dilate(polys[1].astype(np.uint8), kernel).astype(bool)
    far_core = cv2.erode(polys[0].astype(np.uint8), kernel).astype(bool) & ~near_grown
    assert (label[near_core] == 2).all() and (label[far_core] == 1).all()
    assert (polys[0] & polys[1]).sum() > 200  # the overlap the z-test decided is large
    assert covered[0, 0].numpy()[label > 0].all() and not covered[0, 0, 60:, 60:].any()


def test_rasterizer_interpolates_linear_attributes_exactly() -> None:
    verts = torch.tensor([[[3.0, 2, 0], [60, 5, 0], [10, 61, 0]]] * 2)
    verts[1, :, :2] += 1.5  # a second frame, shifted: batched frames are independent
    attrs = verts[..., :2].clone()  # each vertex's own x, y
    image, covered = rasterize(verts, torch.tensor([[0, 1, 2]]), attrs, 64, 64)
    yy, xx = np.mgrid[0:64, 0:64]
    for b in range(2):
        cov = covered[b, 0].numpy()
        assert cov.sum() > 1200
        assert np.abs(image[b, 0].numpy()[cov] - xx[cov]).max() < 1e-3
        assert np.abs(image[b, 1].numpy()[cov] - yy[cov]).max() < 1e-3


def test_box_holds_every_outline_and_fits_the_stride() -> None:
    outlines = np.array([[[40.0, 70], [90, 72], [64, 110]], [[38, 68], [92, 75], [66, 112]]])
    box = Box.around(outlines, 128, 4.0, 16)
    assert box.height % 16 == 0 and box.width % 16 == 0
    assert box.left <= 38 - 4 and box.left + box.width >= 92 + 4
    assert box.top <= 68 - 4 and box.top + box.height >= 112 + 4
    assert box.top >= 0 and box.top + box.height <= 128


def test_jobs_merge_close_runs_warm_up_and_split_for_streams() -> None:
    wanted = np.zeros(100, bool)
    wanted[10:20] = wanted[22:30] = wanted[60:90] = True
    assert make_jobs(wanted, 4) == [Job(6, 10, 30), Job(56, 60, 90)]
    split = make_jobs(wanted, 4, streams=4)
    covered = np.zeros(100, bool)
    for j in split:
        assert not covered[j.start:j.stop].any()  # no row twice
        covered[j.start:j.stop] = True
    # Every wanted row, plus the 2-row gap the first run is rendered straight through.
    assert covered[wanted].all() and covered.sum() == wanted.sum() + 2
    assert max(j.stop - j.start for j in split) == 12  # ceil(48 / 4)
    assert all(j.warm == max(0, j.start - 4) for j in split)
    assert make_jobs(np.zeros(5, bool), 4) == []


def test_config_hash_ignores_run_length_knobs_but_not_sizes() -> None:
    base = load_section(TrainParams, REPO)
    assert base.profile in ("cpu", "gpu")
    longer = TrainParams.from_dict(tiny(steps=400) | {"checkpoint_every": 50})
    assert longer.config_hash == TrainParams.from_dict(tiny()).config_hash
    assert TrainParams.from_dict(tiny(size=128)).config_hash != longer.config_hash
    gpu = TrainParams.from_dict(raw_section("train", REPO) | {"profile": "gpu"})
    assert gpu.size >= 256 and gpu.amp  # the profile's block overrides the shared defaults
    with pytest.raises(TalkeditError, match=r"train\.cpu\.sise: is not one of the train"):
        TrainParams.from_dict({"cpu": {"sise": 64}})
    with pytest.raises(TalkeditError, match="multiple of"):
        TrainParams.from_dict(tiny(size=60))  # gen_depth 3: multiples of 8


# --- a fitted clip ---------------------------------------------------------------------------


def write_short_clip(root: Path, source: Path) -> None:
    """data/raw/short.mp4: the first N_FRAMES of ``source`` at 256 px, silent; extracted."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as src, av.open(str(raw / f"{CLIP}.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(25))
        vs.width = vs.height = 256
        vs.pix_fmt, vs.options = "yuv420p", {"crf": "14", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
        for k, frame in enumerate(src.decode(video=0)):
            if k == N_FRAMES:
                break
            small = cv2.resize(frame.to_ndarray(format="rgb24"), (256, 256),
                               interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(small, format="rgb24")
            f.pts = k
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        pcm = np.zeros(N_FRAMES * 640, np.float32)
        for a in range(0, len(pcm), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm[None, a:a + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, a
            out.mux(aus.encode(chunk))
        out.mux(aus.encode(None))
    (raw / f"{CLIP}.txt").write_text("a short test clip\n")
    extract_clip(CLIP, root, ExtractParams())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    source = REPO / "data" / "raw" / "demo.mp4"
    if not source.is_file():
        source = request.getfixturevalue("demo_root") / "data" / "raw" / "demo.mp4"
    root = tmp_path_factory.mktemp("render_root")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    write_short_clip(root, source)
    run_fit(CLIP, root, dataclasses.replace(load_section(FitParams, REPO), crop_size=128),
            ScaleParams())
    return root


def copy_clip(src: Path, dst: Path) -> Path:
    """Another project root with the same fitted clip (and no models)."""
    shutil.copytree(src / "data" / "raw", dst / "data" / "raw")
    shutil.copytree(src / "data" / "interim", dst / "data" / "interim")
    shutil.copy(src / "params.yaml", dst / "params.yaml")
    return dst


@pytest.fixture(scope="module")
def trained(fitted: Path) -> tuple[Path, dict]:
    return fitted, run_train(CLIP, fitted, TrainParams.from_dict(tiny()))


def test_conditioning_mask_matches_the_fit_and_the_face_covers_it(fitted: Path) -> None:
    model, data = load_clip(CLIP, fitted, 64)
    face = FaceRenderer(model, 64, 0.03, 0.015)
    rows = np.arange(0, N_FRAMES, 25)
    verts = face.vertices(data.pose_of(rows), data.expression[rows], data.transforms[rows])
    mine = face.masks([face.polygons(verts)])[:, 0].numpy() > 0
    theirs = np.stack([lower_face_mask(p, 64) for p in data.outlines[rows]]).astype(bool)
    iou = (mine & theirs).sum() / (mine | theirs).sum()
    assert iou > 0.9
    cond = face.build(data.crops[rows], data.pose_of(rows), data.expression[rows],
                      data.illumination[rows], data.transforms[rows], [data.outlines[rows]])
    covered = cond.channels[:, 10].numpy() > 0
    assert covered[theirs].mean() > 0.8  # the mesh covers the lower face but the open mouth
    hard = cond.hard[:, 0].numpy() > 0.5
    assert (hard | ~theirs).all()  # the dilated mask holds the fit's lower face...
    assert (cond.alpha[:, 0].numpy()[~hard] == 0).all()  # ...and the blend stays inside it
    masked = cond.channels[:, :3].numpy().transpose(0, 2, 3, 1)
    assert np.abs(masked[hard]).max() == 0  # the generator never sees the real lower face


def test_train_writes_generator_losses_metrics_and_preview(trained: tuple[Path, dict]) -> None:
    root, summary = trained
    paths = ModelPaths.of(CLIP, root)
    assert summary["steps"] == 4 and summary["resumed_from"] is None
    for f in (paths.generator, paths.references, paths.metrics, paths.losses, paths.preview,
              paths.checkpoint(summary["config_hash"])):
        assert f.is_file(), f
    lines = paths.losses.read_text().splitlines()
    assert lines[0].split("\t")[:2] == ["step", "l1"]
    assert [int(x.split("\t")[0]) for x in lines[1:]] == [1, 2, 3, 4]
    metrics = json.loads(paths.metrics.read_text())
    assert metrics["heldout_frames"] == 20 and metrics["train_frames"] == 180
    assert set(metrics["psnr_db"]) == {"network", "conditioning", "nearest_frame"}
    assert 10 < metrics["psnr_db"]["nearest_frame"] < 60
    assert metrics["temporal_change"]["real"] > 0
    stamp, meta = Stamp.read(paths.generator)
    preview = cv2.imread(str(paths.preview))  # 4 held-out frames x 4 pictures of the box
    assert preview.shape == (4 * stamp.box.height, 4 * stamp.box.width, 3)
    assert stamp.clip == CLIP and stamp.step == 4 and meta["config_hash"] == summary[
        "config_hash"]


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(
        trained: tuple[Path, dict], tmp_path: Path) -> None:
    root, summary = trained
    other = copy_clip(root, tmp_path / "resumed")
    first = run_train(CLIP, other, TrainParams.from_dict(tiny(steps=2)))
    assert first["steps"] == 2 and first["resumed_from"] is None
    second = run_train(CLIP, other, TrainParams.from_dict(tiny(steps=4)))  # steps is not in the config hash
    assert second["resumed_from"] == 2 and second["steps"] == 4
    straight = load_file(str(ModelPaths.of(CLIP, root).generator))
    resumed = load_file(str(ModelPaths.of(CLIP, other).generator))
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-5, atol=1e-6)
    rows = ModelPaths.of(CLIP, other).losses.read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == [1, 2, 3, 4]


def test_a_checkpoint_from_an_earlier_fit_restarts_training(
        trained: tuple[Path, dict], tmp_path: Path) -> None:
    """After fit is re-run, `dvc repro` must retrain, not fail on its own old checkpoint."""
    root, _ = trained
    other = copy_clip(root, tmp_path / "refit")
    run_train(CLIP, other, TrainParams.from_dict(tiny(steps=2)))
    ckpt = ModelPaths.of(CLIP, other).checkpoint(TrainParams.from_dict(tiny()).config_hash)
    with safe_open(str(ckpt), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(ckpt)), str(ckpt), metadata={**meta, "face_model_sha256": "0" * 64})
    again = run_train(CLIP, other, TrainParams.from_dict(tiny(steps=3)))
    assert again["resumed_from"] is None and again["steps"] == 3
    assert Stamp.read(ckpt)[0].face_model_sha != "0" * 64  # overwritten by the new run


def test_checkpoints_and_generators_refuse_another_clip_or_config(
        trained: tuple[Path, dict]) -> None:
    root, summary = trained
    paths = ModelPaths.of(CLIP, root)
    with pytest.raises(TalkeditError, match="trained on clip 'short', not 'other'"):
        load_generator(paths.generator, "other")
    with pytest.raises(TalkeditError, match="another train config"):
        load_generator(paths.generator, CLIP, TrainParams.from_dict(tiny(size=128)).config_hash)
    stamp, _ = Stamp.read(paths.generator)
    ckpt = paths.checkpoint(summary["config_hash"])
    wrong = Stamp(CLIP, TrainParams.from_dict(tiny(gen_channels=16)), stamp.box, 0,
                  stamp.face_model_sha)
    with pytest.raises(TalkeditError, match="another train config"):
        load_checkpoint(ckpt, wrong, {}, {}, np.random.default_rng(0))
    refit = Stamp(CLIP, stamp.config, stamp.box, 0, "0" * 64)
    with pytest.raises(TalkeditError, match="another fit"):
        load_checkpoint(ckpt, refit, {}, {}, np.random.default_rng(0))


def test_a_clip_too_short_to_train_fails_naming_the_minimum(fitted: Path) -> None:
    with pytest.raises(TalkeditError, match=r"180 usable frames .* fewer than the 5000"):
        run_train(CLIP, fitted, TrainParams.from_dict(tiny() | {"min_train_frames": 5000}))


# --- render -------------------------------------------------------------------------------


def write_plan(root: Path, edit: str) -> np.ndarray:
    """An edit of 40 output frames over background frames 155..194; rows 10..29 are edited,
    with the expressions of frames 55..74 (another stretch of the clip). Frames 180.. are
    held out: the generator never saw them, which is fine."""
    write_edit(root, edit, f"clip: {CLIP}\ntext: a short test clip\n")
    bg = np.arange(155, 195)
    edited = (bg >= 165) & (bg < 185)
    plan = reenactment_plan(CLIP, root, bg, np.where(edited, bg - 110, bg), edited)
    write_parquet(plan, PLAN, EditPaths.of(edit, root).plan)
    return edited


def test_render_writes_crops_for_the_edited_frames(trained: tuple[Path, dict]) -> None:
    root, _ = trained
    edited = write_plan(root, "swap")
    # The generator's own crops (exemplar mouths: tests/test_render_interior.py; the chin
    # warp, which paints past the generator's box by design: tests/test_render_jaw.py).
    summary = run_render("swap", root, RenderParams(warmup_frames=3, chunk_frames=8),
                         MouthParams(exemplar=False, jaw_warp=False), ScaleParams(),
                         expected_config=TrainParams.from_dict(tiny()).config_hash)
    assert summary["frames"] == int(edited.sum()) == 20 and summary["chunks"] == 3
    store = RenderStore("swap", root)
    assert list(store.frames) == list(range(10, 30)) and 9 not in store and 10 in store
    crops = ClipPaths.of(CLIP, root)
    assert crops.face.is_file()
    _, data = load_clip(CLIP, root, 64)
    box = Stamp.read(ModelPaths.of(CLIP, root).generator)[0].box
    for frame, out in store:
        assert out.crop.shape == (64, 64, 3) and out.alpha.shape == (64, 64)
        assert out.source_frame == 155 + frame
        background = data.crops[out.source_frame]
        outside = out.alpha == 0
        assert outside.mean() > 0.5 and (out.alpha == 255).any()
        np.testing.assert_array_equal(out.crop[outside], background[outside])
        inside_box = np.zeros((64, 64), bool)
        inside_box[box.top:box.top + box.height, box.left:box.left + box.width] = True
        assert not out.alpha[~inside_box].any()
        np.testing.assert_allclose(out.transform.reshape(-1), data.transforms[out.source_frame],
                                   rtol=1e-5, atol=1e-4)
    index = pq.read_table(store.paths.index)
    assert index.column("edited").to_pylist() == [True] * 20


def test_render_refuses_a_generator_trained_with_another_config(
        trained: tuple[Path, dict]) -> None:
    root, _ = trained
    write_plan(root, "swap2")
    with pytest.raises(TalkeditError, match="another train config"):
        run_render("swap2", root, RenderParams(), MouthParams(), ScaleParams(),
                   expected_config=TrainParams.from_dict(tiny(gen_channels=16)).config_hash)
    assert not RenderPaths.of("swap2", root).dir.exists()


def test_streams_rendered_side_by_side_match_streams_rendered_alone(
        trained: tuple[Path, dict]) -> None:
    # What the render stage does on a GPU (batch > 1), checked on the CPU: lockstep
    # streams of different lengths give each stream the frames it gives alone.
    root, _ = trained
    generator, stamp = load_generator(ModelPaths.of(CLIP, root).generator, CLIP)
    model, data = load_clip(CLIP, root, stamp.config.size)
    pool = ReferencePool.load(ModelPaths.of(CLIP, root).references, CLIP,
                              stamp.config.config_hash, data.face_model_sha)
    source = ConditioningSource(FaceRenderer(model, stamp.config.size, stamp.config.mask_dilate,
                                             stamp.config.mask_feather),
                                lambda f: data.crops[f], data.transforms, data.outlines, pool)
    frames = Frames(np.arange(len(data)), data.pose, data.expression[::-1].copy(),
                    data.illumination)
    jobs = [Job(40, 43, 60), Job(100, 104, 111), Job(0, 0, 9)]

    def render(batch: int) -> dict[int, np.ndarray]:
        return {int(r): c for out in run_jobs(generator, stamp.box, source, frames, jobs,
                                              batch=batch, chunk=5)
                for r, c in zip(out.rows, out.crops, strict=True)}

    alone, together = render(1), render(3)
    assert sorted(alone) == sorted(together) == [*range(9), *range(43, 60), *range(104, 111)]
    diff = np.stack([np.abs(alone[r].astype(int) - together[r]) for r in alone])
    assert diff.max() <= 1 and diff.mean() < 0.01  # batched convolutions round differently


def test_an_interrupted_training_is_checkpointed_and_resumes(
        trained: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, summary = trained
    other = copy_clip(root, tmp_path / "interrupted")
    real_step = Trainer.step
    calls = {"n": 0}

    def step_then_ctrl_c(self: Trainer) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as if Ctrl-C arrived during the 4th step
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_train(CLIP, other, TrainParams.from_dict(tiny()))
    paths = ModelPaths.of(CLIP, other)
    assert Stamp.read(paths.checkpoint(summary["config_hash"]))[0].step == 3
    assert not paths.generator.exists()  # no half-finished model is published
    monkeypatch.setattr(Trainer, "step", real_step)
    again = run_train(CLIP, other, TrainParams.from_dict(tiny()))
    assert again["resumed_from"] == 3 and again["steps"] == 4


def test_a_channels_last_generator_computes_and_saves_as_a_contiguous_one(tmp_path: Path) -> None:
    """The GPU path keeps networks channels-last (stages.render.config.place): the same
    outputs, and its checkpoint loads back into an ordinary generator unchanged."""
    cfg = TrainParams.from_dict(tiny())
    torch.manual_seed(0)
    plain = build_generator(cfg).eval()
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    stacked = torch.rand(2, conditioning_channels(cfg.reference) * cfg.window, 32, 32)
    previous = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        gap = (plain(stacked, previous) - fast(stacked, previous)).abs().max().item()
    assert gap < 1e-5
    stamp = Stamp(CLIP, cfg, Box(0, 0, 32, 32), 1, "0" * 64)
    save_generator(tmp_path / "g.safetensors", stamp, fast)
    back, _ = load_generator(tmp_path / "g.safetensors", CLIP)
    for (name, a), b in zip(plain.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
