"""reenact@<job>: transfer the source's expressions onto the target and write the plan.

The output timeline is the target's (``keep_rest``) or just the reenacted span: frames
``t0 .. t0 + n - 1`` of the target, where ``t0`` is ``target_start_s`` and ``n`` the
source span's frames, show the target's own background, head pose and illumination with
the source's expression carried over (transfer.py); the soundtrack there is the
source's. In portrait mode (portrait.py) the head pose, gaze and blinks are the source's
too. Written on the edit contracts (PLAN, audio.wav under data/plans/<job>/), so
reenactrender/reenactcomposite run the edit path's renderer and compositor unchanged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from stages.audio.dsp import to_int16, write_wav
from stages.fit import head_angles_deg, load_fit
from stages.fit.model import mouth_opening
from stages.lipsync.features import RATE, read_clip_wav
from stages.reenact import ReenactParams
from stages.reenact.portrait import portrait_transfer
from stages.reenact.repose import repose_columns, still_repose
from stages.reenact.spec import ReenactSpec, load_reenact
from stages.reenact.transfer import Transfer
from stages.render.render import reenactment_plan
from talkedit.artifacts import (
    PLAN,
    REENACT_MESH_POINTS,
    REENACT_TRACK,
    ClipPaths,
    ReenactPaths,
    VideoMeta,
    column_array,
    write_parquet,
)
from talkedit.atomic import write_json
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)
MIN_SOURCE_FACE_SHARE = 0.5  # a source span with fewer frames showing a face has no face to follow


def _usable(table: Any) -> np.ndarray:
    return table.column("detected").to_numpy(zero_copy_only=False).astype(bool)


def _frames(spec: ReenactSpec, n_source: int, n_target: int, n_target_usable: int, fps: float,
            opts: ReenactParams) -> tuple[int, int, int]:
    """(first source frame, frames, first target frame), checked against both clips."""
    if n_target_usable < opts.min_target_frames:
        raise TalkeditError(spec.path, f"target {spec.target!r} shows a face in "
                            f"{n_target_usable} frames, fewer than reenact.min_target_frames "
                            f"({opts.min_target_frames}): too short to have trained its renderer on",
                            "give a longer target clip (minutes of the person are best)")
    s0, s1 = 0, n_source
    if spec.source_span is not None:
        s0 = int(round(spec.source_span[0] * fps))
        s1 = min(n_source, int(round(spec.source_span[1] * fps)))
    if s1 - s0 < 2:
        raise TalkeditError(spec.path, f"source_span {list(spec.source_span or [])} holds fewer than "
                            f"2 of the source's {n_source} frames ({n_source / fps:.2f} s)",
                            "give a span inside the source clip")
    t0 = int(round(spec.target_start_s * fps))
    if t0 + (s1 - s0) > n_target:
        raise TalkeditError(spec.path, f"the source span lasts {(s1 - s0) / fps:.2f} s but the "
                            f"target has only {max(0, n_target - t0) / fps:.2f} s from "
                            f"target_start_s ({spec.target_start_s:g} s)",
                            "shorten source_span or start earlier on the target")
    return s0, s1 - s0, t0


def _clip_audio(clip: ClipPaths, n_frames: int, fps: float) -> np.ndarray:
    """The clip's 16 kHz soundtrack, exactly ``n_frames`` long (silence if it has none)."""
    n = int(round(n_frames / fps * RATE))
    audio = read_clip_wav(clip.audio) if clip.audio.is_file() else np.zeros(0)
    return np.concatenate([audio[:n], np.zeros(max(0, n - len(audio)))])


def run_reenact(job: str, root: Path, reenact: ReenactParams) -> dict[str, Any]:
    """Plan a reenactment job: data/plans/<job>/ plan.parquet, audio.wav, reenact.parquet/json."""
    opts = reenact
    spec = load_reenact(job, root)
    paths = ReenactPaths.of(job, root)
    target_clip, source_clip = ClipPaths.of(spec.target, root), ClipPaths.of(spec.source, root)
    target_meta, source_meta = VideoMeta.read(target_clip), VideoMeta.read(source_clip)
    if abs(target_meta.fps - source_meta.fps) > 1e-6:
        raise TalkeditError(spec.path, f"the source runs at {source_meta.fps_rational} fps and the "
                            f"target at {target_meta.fps_rational} fps",
                            "re-extract one at the other's rate (params.yaml extract.fps)")
    fps = target_meta.fps
    source, source_table = load_fit(spec.source, root)
    target, target_table = load_fit(spec.target, root)
    if source.topology != target.topology:
        raise TalkeditError(spec.path, f"the source was fitted with {source.topology} landmarks "
                            f"and the target with {target.topology}", "fit both with one landmarker")
    source_usable, target_usable = _usable(source_table), _usable(target_table)
    s0, n, t0 = _frames(spec, len(source_table), len(target_table), int(target_usable.sum()),
                        fps, opts)
    face_share = float(source_usable[s0:s0 + n].mean())
    if face_share < MIN_SOURCE_FACE_SHARE:
        raise TalkeditError(source_clip.video, f"shows a face in {face_share:.0%} of the source "
                            f"span's frames", "give a source clip (or source_span) where the "
                            "face is in view")
    source_expr = column_array(source_table, "expression").astype(np.float64)
    target_expr = column_array(target_table, "expression").astype(np.float64)
    transfer = Transfer.between(source, source_expr, source_usable, target, target_expr,
                                target_usable, opts.neutral_share, opts.scale_to_target,
                                opts.max_extrapolation)
    driving = source_expr[s0:s0 + n]
    moved = transfer(driving, target_expr[t0:t0 + n] if opts.region == "lower" else None)
    limit = opts.max_extrapolation * target.stddev
    clipped = (np.abs(moved) >= limit - 1e-9) & (limit > 0)

    n_target = len(target_table)
    first, stop = (0, n_target) if spec.keep_rest else (t0, t0 + n)
    background = np.arange(first, stop)
    edited = (background >= t0) & (background < t0 + n)
    expression = target_expr[background].copy()
    expression[edited] = moved
    plan = reenactment_plan(spec.target, root, background, background, edited, fps, expression)
    plan["piece"] = np.where(edited, 0, -1)
    target_rows, source_rows = np.arange(t0, t0 + n), np.arange(s0, s0 + n)
    if spec.mode == "portrait":
        if len(target.mean) != REENACT_MESH_POINTS or len(source.mean) != REENACT_MESH_POINTS:
            raise TalkeditError(spec.path, f"portrait mode reads gaze from the irises of the "
                                f"refined FaceMesh ({REENACT_MESH_POINTS} points); the clips "
                                f"were fitted with {target.topology}",
                                "fit both clips with the default landmarker (fit: in params.yaml)")
        portrait = portrait_transfer(source, source_table, source_usable, target, target_table,
                                     target_usable, source_rows, target_rows,
                                     opts.max_pose_offset_deg)
        # The plan keeps the target frames' own pose: the renderer draws the new
        # expression where it was trained, and the compositor turns the pasted frame.
        head_deg, gaze_deg, repose = portrait.head_deg, portrait.gaze_deg, portrait.repose
        pose_flagged, eyes_flagged = portrait.pose_flagged, portrait.eyes_flagged
    else:  # the target frames' own head and eyes, the picture left as it is
        own = head_angles_deg(column_array(target_table, "rotation").astype(np.float64))
        head_deg = own[target_rows] - np.median(own[target_usable], axis=0)
        gaze_deg, repose = np.zeros((n, 2)), still_repose(n)
        pose_flagged = eyes_flagged = np.zeros(n, bool)

    per = RATE / fps
    audio = _clip_audio(target_clip, n_target, fps)[int(round(first * per)):int(round(stop * per))]
    src_audio = _clip_audio(source_clip, len(source_table), fps)
    at, span = int(round((t0 - first) * per)), src_audio[int(round(s0 * per)):int(round((s0 + n) * per))]
    audio[at:at + len(span)] = span[:len(audio) - at]

    source_opening = mouth_opening(source.shape(driving), source.topo)
    opening = mouth_opening(target.shape(moved), target.topo)
    frames = np.flatnonzero(edited)
    track = {"frame": frames, "time_s": frames / fps, "target_frame": background[edited],
             "source_frame": source_rows, "source_opening": source_opening,
             "opening": opening, "clipped": clipped.sum(axis=1).astype(np.int8),
             "expression": moved, "head_deg": head_deg, "gaze_deg": gaze_deg,
             "pose_flagged": pose_flagged, "eyes_flagged": eyes_flagged,
             **repose_columns(repose)}
    out = paths.outputs
    out.plan_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(track, REENACT_TRACK, paths.track)
    write_parquet(plan, PLAN, out.plan)
    write_wav(out.audio, to_int16(audio), RATE)
    r = np.corrcoef(source_opening, opening)[0, 1] if np.std(source_opening) > 0 else float("nan")
    report = {
        "job": job, "mode": spec.mode, "target": spec.target, "source": spec.source,
        "source_frames": [s0, s0 + n], "target_frames": [t0, t0 + n],
        "output_frames": len(background), "fps": fps,
        "source_face_share": round(face_share, 4),
        "neutral_frames": {"source": transfer.source_neutral.frames,
                           "target": transfer.target_neutral.frames},
        "displacement_scale_xyz": [round(float(v), 4) for v in transfer.axis_scale],
        "opening_r_source_vs_transferred": round(float(r), 4),
        # Coefficients held at max_extrapolation target SDs: mostly high-order ones, whose
        # target spread is tiny and which the source's landmark noise reaches.
        "clipped_coefficients_per_frame": round(float(clipped.sum(axis=1).mean()), 2),
    }
    if spec.mode == "portrait":
        report["portrait"] = portrait.facts
    write_json(paths.report, report)
    log.info("reenact %s: %s", job, json.dumps(report))
    return report
