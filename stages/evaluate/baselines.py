"""The two baselines every talkedit score is divided by.

* ``naive_cut``: the held-out span filled with the same length of other footage
  of the clip, starting at the sentence whose duration is nearest (video and audio
  both, as a cut-and-paste editor would).
* ``conditioning``: the talkedit edit itself (same plan, same audio) with the
  render stage's conditioning image, the synthetic face over the masked
  background, composited in place of the network's output. Written as a render
  folder of its own (``stages.render.store`` layout), so the composite stage
  runs on it unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.evaluate.holdout import HeldOut
from stages.render.checkpoint import Stamp
from stages.render.conditioning import FaceRenderer, to_uint8
from stages.render.config import RenderParams
from stages.render.data import BackgroundCrops, face_geometry, load_model
from stages.render.infer import ConditioningSource
from stages.render.render import plan_frames
from stages.render.store import RenderWriter, staged_dir
from talkedit.artifacts import PLAN, EditPaths, ModelPaths, RenderPaths, read_parquet
from talkedit.atomic import write_json
from talkedit.edits import load_spec

CHUNK = 32  # plan rows whose conditioning is built at once


def copy_edit(edit: str, to: str, root: Path) -> None:
    """A second edit with ``edit``'s spec, plan and audio (a baseline renders it anew)."""
    src, dst = EditPaths.of(edit, root), EditPaths.of(to, root)
    shutil.rmtree(dst.inputs, ignore_errors=True)
    shutil.copytree(src.inputs, dst.inputs)
    shutil.rmtree(dst.plan_dir, ignore_errors=True)
    shutil.copytree(src.plan_dir, dst.plan_dir)


def render_conditioning(edit: str, opts: RenderParams, root: Path) -> dict[str, Any]:
    """Baseline (b): the plan's edited rows as conditioning images, in the render layout."""
    edit_paths, out_paths = EditPaths.of(edit, root), RenderPaths.of(edit, root)
    clip = load_spec(edit, root).clip
    plan = read_parquet(edit_paths.plan, PLAN, arrow=True, stage_hint=f"plan@{edit}")
    model, _ = load_model(clip, root)
    stamp, _ = Stamp.read(ModelPaths.of(clip, root).generator)
    cfg = stamp.config  # the conditioning the generator was trained with
    table, _, transforms, outlines = face_geometry(clip, root, cfg.size)
    frames = plan_frames(plan, len(table), edit_paths.plan)
    edited = plan.column("edited").to_numpy(zero_copy_only=False).astype(bool)
    out_frames = plan.column("frame").to_numpy().astype(np.int64)
    source = ConditioningSource(FaceRenderer(model, cfg.size, cfg.mask_dilate, cfg.mask_feather),
                                BackgroundCrops(clip, root, cfg.size).get, transforms, outlines)
    rows = np.flatnonzero(edited)
    with staged_dir(out_paths.dir) as folder:
        writer = RenderWriter(folder, opts.chunk_frames)
        for a in range(0, len(rows), CHUNK):
            part = rows[a:a + CHUNK]
            cond = source.build(frames, part)
            crops = to_uint8(cond.composite(cond.channels[:, 3:6]))
            alpha = (cond.alpha[:, 0] * 255).round().to(torch.uint8).cpu().numpy()
            bg = frames.background[part]
            writer.add(out_frames[part], crops, alpha, bg, transforms[bg], edited[part])
        n = writer.close(folder / out_paths.index.name)
        summary = {"edit": edit, "clip": clip, "size": cfg.size, "frames": n,
                   "baseline": "conditioning image, no network",
                   "generator": {"config_hash": cfg.config_hash, "step": stamp.step}}
        write_json(folder / out_paths.summary.name, summary)
    return summary


def naive_cut_start(held: HeldOut, sentences: list[HeldOut], clip_s: float) -> float:
    """Clip time where the naive cut's footage starts: the start of the other sentence
    whose duration is nearest the held-out one's, moved back if the span would run
    off the clip's end."""
    length = held.end_s - held.start_s
    others = [s for s in sentences if s.sentence != held.sentence]
    donor = min(others, key=lambda s: (abs((s.end_s - s.start_s) - length), s.sentence))
    return float(max(0.0, min(donor.start_s, clip_s - length)))
