"""render stage: the edit's plan through the clip's trained generator, to generated crops.

For every plan row to render (by default the rows the plan marks ``edited``;
the others are the original footage), the conditioning image is built from
the row's planned pose, expression and illumination over the crop of its
background frame (``source_frame``), whose own lower face is masked out too.
Rows are rendered in runs, each warmed up on ``warmup_frames`` rows before it
(output dropped), so the recurrent generator never starts cold inside an
edit. On a GPU, ``batch`` runs (long ones split) go side by side; on the CPU
one stream renders them in order, streaming the plan and the backgrounds.
Output layout: ``store.py``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from stages.fit import PersonModel, Pose, frame_pose, load_fit
from stages.render.checkpoint import load_generator
from stages.render.conditioning import FaceRenderer
from stages.render.config import RenderParams, pick_device, set_threads
from stages.render.data import (
    POSE_COLUMNS,
    BackgroundCrops,
    FrameCrops,
    ReferencePool,
    RowsAsFloat64,
    face_geometry,
    file_sha256,
    load_model,
)
from stages.render.infer import (
    ConditioningSource,
    Frames,
    Job,
    Rendered,
    group_jobs,
    make_jobs,
    run_jobs,
)
from stages.render.interior import (
    ExemplarSources,
    MouthExemplars,
    MouthParams,
    crop_points,
    paint_rows,
    runs_of,
)
from stages.render.jaw import JawWarp
from stages.render.store import RenderWriter, staged_dir
from talkedit.artifacts import (
    PLAN,
    ClipPaths,
    EditPaths,
    ModelPaths,
    RenderPaths,
    RowGroupRows,
    column_array,
    read_parquet,
    release_arrow_pages,
)
from talkedit.atomic import write_json
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from talkedit.progress import bar
from talkedit.scale import ChunkMap, ScaleParams, serial_map

log = logging.getLogger(__name__)
STEP_CHUNK = 32  # frames per stream whose conditioning is built at once
DEFAULT_MOUTH = MouthParams()  # params.yaml's mouth: section as shipped (for direct callers)


# What rendering reads of a plan (not its timing and blending columns): these whole, and
PLAN_COLUMNS = ["frame", "edited", "source_frame", "rotation", "translation", "scale"]
PLAN_ROWS = ["expression", "illumination"]  # these a row group at a time, as rows render


def plan_frames(plan: Any, n_clip: int, path: Path, rows: RowGroupRows | None = None
                ) -> Frames:
    """The plan's rows as ``Frames``; background frames must exist in the clip. With
    ``rows``, expression and illumination are read from the file by row group as rendered
    (``plan`` then need not hold them)."""
    background = plan.column("source_frame").to_numpy().astype(np.int64)
    if len(background) and (background.min() < 0 or background.max() >= n_clip):
        raise TalkeditError(path, f"uses background frames {background.min()}.."
                            f"{background.max()}, the clip has {n_clip}",
                            "re-run the plan stage against the current fit of the clip")
    pose = Pose(column_array(plan, "rotation").astype(np.float64),
                column_array(plan, "translation").astype(np.float64),
                plan.column("scale").to_numpy().astype(np.float64))
    # Read as float64 row by row when rendered (``RowsAsFloat64``), not converted whole.
    expression, illumination = ((rows.column(c) for c in PLAN_ROWS) if rows is not None
                                else (column_array(plan, c) for c in PLAN_ROWS))
    return Frames(background, pose, RowsAsFloat64(expression), RowsAsFloat64(illumination))


def reenactment_plan(clip: str, root: Path | None, background: np.ndarray,
                     expression_from: np.ndarray, edited: np.ndarray, fps: float = 25.0,
                     expression: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """PLAN columns for re-rendering clip frames ``background`` with the expressions of
    frames ``expression_from`` (pose and light of the background), or with ``expression``
    (n, 64) when given (another person's, transferred: stages/reenact): a plan without the
    plan stage. Write it with ``write_parquet(..., PLAN, ...)``."""
    _, table = load_fit(clip, root)
    n = len(background)
    bg, src = np.asarray(background), np.asarray(expression_from)
    return {
        "frame": np.arange(n), "time_s": np.arange(n) / fps, "segment": np.zeros(n),
        "edited": np.asarray(edited, bool), "source_frame": bg,
        "piece": np.where(edited, 0, -1), "expression_source_frame": src,
        "blend_weight": np.zeros(n), "rotation": column_array(table, "rotation")[bg],
        "translation": column_array(table, "translation")[bg],
        "scale": table.column("scale").to_numpy()[bg],
        "expression": column_array(table, "expression")[src] if expression is None
        else np.asarray(expression),
        "illumination": column_array(table, "illumination")[bg],
        "source_time_s": bg / fps,
    }


def run_render(edit: str, root: Path, render: RenderParams, mouth: MouthParams,
               scale: ScaleParams, expected_config: str | None = None,
               map_chunks: ChunkMap = serial_map) -> dict[str, Any]:
    """Render an edit's plan; write data/renders/<edit>/ (chunks, index, render.json).

    ``expected_config``, when given, is the train config hash the generator must have
    been trained with: a generator from another config is refused. ``scale`` and
    ``map_chunks``: frame chunks as tasks (``render_plan``).
    """
    return render_plan(load_spec(edit, root).clip, EditPaths.of(edit, root), render,
                       expected_config, mouth=mouth, scale=scale, map_chunks=map_chunks)


def mouth_painter(clip: str, root: Path, model: PersonModel, pool: ReferencePool | None,
                  mouth: MouthParams, size: int) -> MouthExemplars | None:
    """The exemplar-mouth painter over the generator's own pool, painting crops of side
    ``size`` (None: switched off, or a generator trained without exemplars)."""
    if not mouth.exemplar or pool is None or not len(pool.frames):
        return None
    table, _, transforms, _ = face_geometry(clip, root, size, POSE_COLUMNS)
    pose = frame_pose(table)
    if size == pool.crops.shape[1]:
        def crops_of(frames: np.ndarray) -> np.ndarray:
            return pool.crops[np.searchsorted(pool.frames, frames)]
    else:  # cut afresh from the clip's frames (cubic) as the exemplars are needed
        crops_of = FrameCrops(clip, root, transforms, size).get
    return MouthExemplars(model, crops_of, pool.frames, pose[pool.frames],
                          pool.expression.astype(np.float64), transforms[pool.frames], mouth)


def jaw_warp(clip: str, root: Path, model: PersonModel, mouth: MouthParams, size: int,
             transforms: np.ndarray) -> JawWarp | None:
    """The chin's outline from the frame behind each row, warped to the plan (``jaw.py``),
    for crops of side ``size`` cut by ``transforms`` (None: switched off)."""
    if not mouth.jaw_warp:
        return None
    table = face_geometry(clip, root, size, POSE_COLUMNS)[0]
    # Every clip frame's expression read from face.parquet by row group as rows need it
    # (the fit's float32, as float64 per row): the whole column is 12 MB at 31 minutes.
    expression = RowGroupRows(ClipPaths.of(clip, root).face, ["expression"],
                              stage_hint=f"fit@{clip}").column("expression")
    return JawWarp(model, FrameCrops(clip, root, transforms, size).rows, frame_pose(table),
                   RowsAsFloat64(expression), transforms, mouth.jaw_colour)


def upscale(crops: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rendered crops and their alpha resampled to side ``size``."""
    if crops.shape[1] == size:
        return crops, alpha
    return (np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in crops]),
            np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR) for a in alpha]))


@dataclass
class Renderer:
    """What rendering a plan needs: its rows, the clip's generator and conditioning.

    Built the same way in the stage's own process and in every frame-chunk task, so a
    chunk renders the same pixels wherever it runs."""

    clip: str
    device: torch.device
    frames: Frames
    edited: np.ndarray  # (n,) bool per plan row
    out_frames: np.ndarray  # (n,) the plan's output frame numbers
    transforms: np.ndarray  # (n_clip, 6) image -> render crop
    crop_size: int  # the fit's crop side
    model: PersonModel
    pool: ReferencePool | None
    generator: Any
    stamp: Any
    source: ConditioningSource
    streams: int

    @classmethod
    def load(cls, clip: str, edit_paths: EditPaths, render: RenderParams,
             expected_config: str | None, plan_stage: str) -> Renderer:
        set_threads(render.threads)
        device = pick_device(render.device)
        root = edit_paths.data.parent
        hint = f"{plan_stage}@{edit_paths.edit}"
        plan = read_parquet(edit_paths.plan, PLAN, arrow=True, columns=PLAN_COLUMNS,
                            stage_hint=hint)
        plan_rows = RowGroupRows(edit_paths.plan, PLAN_ROWS, stage_hint=hint)
        release_arrow_pages()
        model, model_sha = load_model(clip, root)
        model_paths = ModelPaths.of(clip, root)
        generator, stamp = load_generator(model_paths.generator, clip, expected_config,
                                          model_sha, device)
        cfg = stamp.config
        pool = (ReferencePool.load(model_paths.references, clip, cfg.config_hash, model_sha)
                if cfg.reference else None)
        # Outlines computed for the frames rendered only.
        table, crop_size, transforms, outlines = face_geometry(
            clip, root, cfg.size, [*POSE_COLUMNS, "mask_polygon"], lazy_outlines=True)
        streams = render.batch if device.type == "cuda" else 1
        backgrounds = BackgroundCrops(clip, root, cfg.size, cached_blocks=4 + 2 * streams)
        source = ConditioningSource(
            FaceRenderer(model, cfg.size, cfg.mask_dilate, cfg.mask_feather, device),
            backgrounds.get, transforms, outlines, pool)
        return cls(clip, device, plan_frames(plan, len(table), edit_paths.plan, plan_rows),
                   plan.column("edited").to_numpy(zero_copy_only=False).astype(bool),
                   plan.column("frame").to_numpy().astype(np.int64), transforms, crop_size,
                   model, pool, generator, stamp, source, streams)

    def run(self, jobs: list[Job]) -> Iterator[Rendered]:
        # A generator trained in bfloat16 (the gpu profile's amp) renders in it too.
        bf16 = bool(self.stamp.config.amp and self.device.type == "cuda"
                    and torch.cuda.is_bf16_supported())
        return run_jobs(self.generator, self.stamp.box, self.source, self.frames, jobs,
                        self.streams, STEP_CHUNK, bf16)


@dataclass(frozen=True)
class RenderChunk:
    """Jobs of one frame chunk, rendered by a task of its own (picklable)."""

    clip: str
    edit_paths: EditPaths
    render: RenderParams
    expected_config: str | None
    plan_stage: str
    jobs: list[Job]


def render_chunk(chunk: RenderChunk) -> list[Rendered]:
    renderer = Renderer.load(chunk.clip, chunk.edit_paths, chunk.render, chunk.expected_config,
                             chunk.plan_stage)
    return list(renderer.run(chunk.jobs))


def render_plan(clip: str, edit_paths: EditPaths, render: RenderParams,
                expected_config: str | None = None, plan_stage: str = "plan",
                mouth: MouthParams = DEFAULT_MOUTH, scale: ScaleParams | None = None,
                map_chunks: ChunkMap = serial_map) -> dict[str, Any]:
    """Render the plan at ``edit_paths.plan`` with ``clip``'s generator into
    ``edit_paths.render_dir``: any plan on the PLAN contract (an edit's, a lip-sync job's).
    ``mouth``: exemplar mouths over the generated ones (painted in this process).

    With ``scale.chunk_frames`` set, the rows are rendered in runs of at most that many
    (each warmed up anew), grouped into chunks that ``map_chunks`` renders, in order."""
    t0 = time.perf_counter()
    opts = render
    chunk_rows = scale.chunk_frames if scale is not None else 0
    edit = edit_paths.edit
    out_paths = RenderPaths(edit, edit_paths.data)
    renderer = Renderer.load(clip, edit_paths, render, expected_config, plan_stage)
    cfg, frames, edited = renderer.stamp.config, renderer.frames, renderer.edited
    streams = renderer.streams
    root = edit_paths.data.parent
    wanted_rows = edited if opts.only_edited else np.ones(len(frames), bool)
    jobs = make_jobs(wanted_rows, opts.warmup_frames, streams, chunk_rows)
    # With exemplar mouths at full resolution, crops are stored at the fit's crop size: the
    # generator's crop is upsampled and the mouth painted from crops cut afresh from the
    # clip's frames at that size (FrameCrops: cubic, sharper than the fit's stored crops).
    out_size = renderer.crop_size if mouth.exemplar and mouth.full_resolution else cfg.size
    painter = mouth_painter(clip, root, renderer.model, renderer.pool, mouth, out_size)
    if painter is None:
        out_size = cfg.size
    out_transforms = (renderer.transforms if out_size == cfg.size
                      else face_geometry(clip, root, out_size, POSE_COLUMNS)[2])
    jaw = jaw_warp(clip, root, renderer.model, mouth, out_size, out_transforms)
    if painter is not None:
        # Exemplars per consecutive run of rendered rows, chosen before rendering (the
        # plan holds every row's expression); the planned mouth points in the rows' crops.
        choice: dict[int, int] = {}
        for run in runs_of(np.flatnonzero(wanted_rows)):
            choice.update(zip(run.tolist(), painter.choose(frames.expression[run]).tolist(),
                              strict=True))
        # Only the rows painted: every row's 478 model points would be 0.5 GB at 31 minutes.
        painted = np.flatnonzero(wanted_rows)
        targets = dict(zip(painted.tolist(), crop_points(
            renderer.model, Pose(*(v[painted] for v in (frames.pose.rotation,
                                                        frames.pose.translation,
                                                        frames.pose.scale))),
            frames.expression[painted], out_transforms[frames.background[painted]],
            painter.region.anchors), strict=True))
        sources = ExemplarSources(painter, choice)
    if chunk_rows:
        chunks = [RenderChunk(clip, edit_paths, render, expected_config, plan_stage, group)
                  for group in group_jobs(jobs, chunk_rows)]
        rendered: Iterable[Rendered] = itertools.chain.from_iterable(
            map_chunks(render_chunk, chunks))
    else:
        rendered = renderer.run(jobs)
    t_gen = time.perf_counter()
    with staged_dir(out_paths.dir) as folder:
        writer = RenderWriter(folder, opts.chunk_frames)
        wanted = int(edited.sum()) if opts.only_edited else len(frames)
        with bar(wanted, f"render {edit}") as shown:
            for out in rendered:
                bg = frames.background[out.rows]
                crops, alpha = upscale(out.crops, out.alpha, out_size)
                if painter is not None:
                    crops = paint_rows(painter, crops, alpha, out.rows, choice, targets, sources)
                if jaw is not None:
                    # The frame behind the row keeps its own pose: only the expression moves.
                    planned = jaw.points(bg, jaw.fitted_pose[bg], frames.expression[out.rows])
                    fitted = jaw.points(bg, jaw.fitted_pose[bg], jaw.fitted_expression[bg])
                    crops, alpha = jaw.build_rows(crops, alpha, bg, planned, fitted)
                writer.add(renderer.out_frames[out.rows], crops, alpha, bg, out_transforms[bg],
                           edited[out.rows])
                shown.update(len(out.rows))
        n = writer.close(folder / out_paths.index.name)
        seconds = time.perf_counter() - t_gen
        box = renderer.stamp.box
        summary = {
            "edit": edit, "clip": clip, "size": cfg.size,
            "box": [box.top, box.left, box.height, box.width],
            "plan_frames": len(frames), "frames": n, "chunks": writer.chunks,
            "chunk_frames": opts.chunk_frames, "only_edited": opts.only_edited,
            "warmup_frames": opts.warmup_frames, "streams": streams,
            "device": str(renderer.device),
            "generator": {"sha256": file_sha256(ModelPaths.of(clip, edit_paths.data.parent
                                                              ).generator),
                          "config_hash": cfg.config_hash, "step": renderer.stamp.step},
            "plan_sha256": file_sha256(edit_paths.plan),
            "mouth_exemplars": painter is not None, "crop_size": out_size,
            "jaw_warp": jaw is not None,
        }
        if chunk_rows:  # kept out of the summary otherwise: the demo's bytes stay as they were
            summary["task_chunk_rows"] = chunk_rows
        # Without run times: render.json is part of the renders folder composite depends on.
        write_json(folder / out_paths.summary.name, summary)
        summary.update({"seconds": round(seconds, 2),
                        "frames_per_s": round(n / seconds, 2) if seconds > 0 and n else None})
    summary["total_seconds"] = round(time.perf_counter() - t0, 2)
    log.info("render %s: %s", edit, summary)
    return summary
