"""A text edit's new words' mouth motion from the clip's audio model (spec ``mouth_motion: audio``).

The plan stage calls ``audio_mouth`` on its finished plan when the edit spec asks for
it. The new words' sound is made here exactly as the audio stage will make it (the
same builder, inputs and ``audio:`` params, so the same samples), the clip's
audio-to-expression model (lipmodel@<clip>) hears it with ``CONTEXT_S`` of the output
audio either side, and its prediction replaces the searched expression inside each
new segment, cross-faded into the plan's over ``blend_s`` centred on each border. The
background, pose, lighting and the pieces' texture frames stay the plan's: only where
the mouth moves changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stages.align import normalize_text
from stages.audio.build import EditInputs, build_audio
from stages.audio.config import SPEAKER, AudioParams
from stages.audio.dsp import read_clip_audio, resample
from stages.lipsync.features import MIN_AUDIO_S, RATE, choose_warp, frame_features
from stages.lipsync.model import LipModel
from stages.plan.report import new_phone_rows, segment_columns
from stages.recording import RecordingTimer
from talkedit.artifacts import NEW_PHONES, ClipPaths, LipModelPaths
from talkedit.errors import TalkeditError

if TYPE_CHECKING:
    from stages.plan import PlanResult
    from stages.plan.retime import FramePlan

CONTEXT_S = 1.0  # output audio either side of a new segment that the model hears


def edit_samples(result: PlanResult, root: Path | None, audio: AudioParams) -> np.ndarray:
    """The edited video's whole soundtrack at RATE, as the audio stage builds it from this plan."""
    spec = result.spec
    clip = read_clip_audio(ClipPaths.of(spec.clip, root).audio)
    edited = normalize_text(spec.edited_text, str(spec.path))
    recording = None
    if result.recording is not None:
        spans = [(s.new_first, s.new_end) for s in result.spans if s.n_new]
        recording = RecordingTimer(result.recording, edited, spans)
    rows = new_phone_rows(result)
    inputs = EditInputs(
        clip, pd.DataFrame(segment_columns(result)),
        pd.DataFrame({name: [r[name] for r in rows] for name in NEW_PHONES.names}),
        int(round(len(result.frames) / result.fps * clip.sample_rate)), edited,
        spec.audio.source, result.index if spec.audio.source == SPEAKER else None,
        spec.exclude_s, recording)
    built = build_audio(inputs, audio)
    return resample(built.samples.array() / 32768.0, built.sample_rate, RATE)


def border_weights(t: np.ndarray, start_s: float, end_s: float, blend_s: float) -> np.ndarray:
    """1 inside [start_s, end_s], 0 beyond, linear over ``blend_s`` centred on each border."""
    inside = np.minimum(t - start_s, end_s - t)  # signed distance into the segment
    if blend_s <= 0:
        return (inside >= 0).astype(np.float64)
    return np.clip(0.5 + inside / blend_s, 0.0, 1.0)


def audio_mouth(result: PlanResult, root: Path | None, audio: AudioParams, blend_s: float,
                share: float = 1.0) -> tuple[FramePlan, dict[str, Any]]:
    """The plan's frames (changed in place) with each new segment's expression predicted
    from its sound (moved ``share`` of the way there from the plan's: 1 = replaced), and a
    summary (segments, frames changed, the voice warp per segment)."""
    spec, frames, fps = result.spec, result.frames, result.fps
    model_path = LipModelPaths.of(spec.clip, root).model
    model = LipModel.load(model_path, f"lipmodel@{spec.clip}")
    if abs(float(model.meta.get("fps", fps)) - fps) > 1e-6:
        raise TalkeditError(model_path, "was trained at another frame rate than the clip's",
                            f"re-run lipmodel@{spec.clip}")
    samples = edit_samples(result, root, audio)
    n = len(frames)
    per = RATE / fps
    warps, changed = [], np.zeros(n, bool)
    for seg in result.timeline.segments:
        if seg.kind != "new" or seg.out_end_s <= seg.out_start_s:
            continue
        lo = max(0, int(np.floor((seg.out_start_s - CONTEXT_S) * fps)))
        hi = min(n, int(np.ceil((seg.out_end_s + CONTEXT_S) * fps)) + 1)
        window = samples[int(round(lo * per)):int(round(hi * per))]
        # The voice is warped to the person's when the new words are another voice (VTLN).
        said = samples[int(round(seg.out_start_s * RATE)):int(round(seg.out_end_s * RATE))]
        warp = (choose_warp(said, model.features, model.voice)
                if len(said) >= MIN_AUDIO_S * RATE else 1.0)
        predicted = model.expression(frame_features(window, hi - lo, fps, model.features, warp))
        w = share * border_weights(np.arange(lo, hi) / fps, seg.out_start_s, seg.out_end_s,
                                   blend_s)[:, None]
        # The plan's rows of this window only (a long plan is never whole in memory).
        frames.set_expression(np.arange(lo, hi),
                              w * predicted + (1 - w) * frames.rows(lo, hi).expression)
        changed[lo:hi] |= w[:, 0] > 0
        warps.append(warp)
    frames.edited |= changed
    return frames, {"mouth_motion": "audio" if share >= 1 else f"search + audio x {share:g}",
                    "model": model.net_cfg.kind, "segments": len(warps),
                    "frames": int(changed.sum()), "voice_warps": warps}
