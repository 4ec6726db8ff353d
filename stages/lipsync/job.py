"""Lip-sync jobs: drive a clip's face with new speech, through the edit path's contracts.

A job is the folder data/lipsync/<job>/ holding ``job.yaml``::

    clip: demo                 # the clip whose person speaks (its lipmodel and renderer)
    audio: take.wav            # a WAV in this folder (any rate/channels: read at 16 kHz)
    # audio: {clip: other}     # ...or another clip's soundtrack
    # audio: {text: "Hello.", voice: en-us, rate_wpm: 150}   # ...or words espeak-ng says
    transcript: Hello there.   # optional: the words the WAV or clip audio says
    span: [4.0, 12.5]          # the clip's seconds the new speech replaces (default: all of it)
    description: a dub         # optional, shown in the provenance

``lipplan@<job>`` predicts the expression sequence from the new audio with the
clip's lip model, re-times the span's background frames to the audio's length,
and writes the result on the edit contracts (PLAN plan.parquet and audio.wav
under data/plans/<job>/), plus LIP_TRACK lipsync.parquet and lipsync.json.

Re-timing is a dynamic programme (after Suwajanakorn et al. 2017): each output
frame takes a background frame, advancing 0, 1 or 2 frames a step (a repeat or
a skip costs ``repeat_cost``/``skip_cost``), so that the clip's speaking stretches
(when its head moves with speech) fall on the new audio's speech and its pauses
on pauses. New audio longer than the span plays the span forward, then backward,
and so on (a documented loop, never a jump), up to ``max_loops`` times its
length; longer audio is refused. Audio shorter than half the span shows the
span's start at its own pace.

Where the new words are known (text audio: espeak-ng's own phones; a WAV or clip audio
with ``transcript:``: the phones the aligner finds), each new frame's expression moves
``lipsync.phone_share`` of the way from the lip model's prediction to the clip's own
co-articulation model's for those phones, and then ``lipsync.search_share`` of the way
to the edit path's plan of them: the viseme search's pieces of real footage timed by the
phones (stages/lipsync/transcript.py); both read the clip's footage less the span.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from stages.align import AlignParams
from stages.audio.dsp import to_int16, write_wav
from stages.fit import load_fit
from stages.lipsync import LipsyncParams
from stages.lipsync.features import (
    RATE,
    check_speech,
    frame_energy_db,
    read_clip_wav,
)
from stages.lipsync.model import LipModel, openings
from stages.lipsync.respeak import synthesized
from stages.lipsync.spec import JobSpec, _fail, load_job
from stages.lipsync.transcript import (
    footage_model,
    known_phones,
    phone_expression,
    searched_expression,
)
from stages.plan import PlanParams
from stages.plan.prior import load_phone_prior
from stages.render.interior import choose_exemplars
from talkedit.artifacts import (
    LIP_TRACK,
    PLAN,
    ClipPaths,
    LipModelPaths,
    LipsyncPaths,
    VideoMeta,
    column_array,
    write_parquet,
)
from talkedit.atomic import write_json
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

log = logging.getLogger(__name__)
DEFAULT_ALIGN = AlignParams()
DEFAULT_PLAN = PlanParams()
ACTIVE_FROM_DB, ACTIVE_SPAN_DB = -30.0, 20.0  # frame level re. speech level -> activity 0..1


def read_any_wav(path: Path) -> tuple[np.ndarray, list[str]]:
    from stages.align.audio import open_wav

    with open_wav(path) as (audio, notes):  # converts rate/channels/format
        return audio.read(0, audio.n_samples).astype(np.float64) / 32768.0, notes


def job_audio(spec: JobSpec, root: Path | None
              ) -> tuple[np.ndarray, list[str], Path | None, list | None]:
    """The new speech at 16 kHz, notes on conversions, the file it came from (if one), and
    espeak-ng's phones when it said a text (None otherwise)."""
    if spec.audio_file is not None:
        samples, notes = read_any_wav(spec.audio_file)
        return samples, notes, spec.audio_file, None
    if spec.audio_clip is not None:
        path = ClipPaths.of(spec.audio_clip, root).audio
        return read_clip_wav(path), [], path, None
    try:
        x, phones = synthesized(str(spec.text), spec.voice, spec.rate_wpm)
    except ValueError as exc:
        raise _fail(spec.path, str(exc), "name a voice espeak-ng has") from exc
    return x, [f"synthesized by espeak-ng ({spec.voice}, {spec.rate_wpm} wpm)"], None, phones


def activity(energy_db: np.ndarray) -> np.ndarray:
    """Speech activity 0..1 of each frame from its level re. the speech level."""
    return np.clip((energy_db - ACTIVE_FROM_DB) / ACTIVE_SPAN_DB, 0.0, 1.0)


def ping_pong(n_src: int, copies: int) -> np.ndarray:
    """0..n-1, n-1..0, 0..n-1, ...: ``copies`` passes over the span, never a jump."""
    forward = np.arange(n_src)
    return np.concatenate([forward if k % 2 == 0 else forward[::-1] for k in range(copies)])


def retime(src_active: np.ndarray, new_active: np.ndarray, opts: LipsyncParams) -> np.ndarray:
    """For each of the new audio's frames, the span frame (0-based) shown behind it."""
    n_src, n_out = len(src_active), len(new_active)
    copies = max(1, math.ceil(n_out / n_src))
    ext = ping_pong(n_src, copies)
    act = src_active[ext]
    length = len(ext)
    fixed_end = copies % 2 == 1 and length <= 2 * n_out - 1
    inf = np.inf
    # Banded dynamic programme: frame t may only use ext frames near t's place on the diagonal.
    slope = (length - 1) / max(n_out - 1, 1) if fixed_end else 1.0
    band = max(opts.band_frames, int(abs(slope - 1.0) * n_out) + 2)
    lo = np.array([max(0, int(t * slope) - band) for t in range(n_out)])
    hi = np.array([min(length, int(t * slope) + band + 1) for t in range(n_out)])
    hi[0], lo[0] = 1, 0  # start at the span's first frame
    if fixed_end:
        hi[-1], lo[-1] = length, length - 1
    cost_prev = np.full(length, inf)
    cost_prev[0] = opts.speech_cost * abs(act[0] - new_active[0])
    back = []
    step_cost = np.array([opts.repeat_cost, 0.0, opts.skip_cost])
    for t in range(1, n_out):
        s = np.arange(lo[t], hi[t])
        # Arriving at s by a repeat (from s), a step (s - 1) or a skip (s - 2).
        options = np.stack([np.where(s - k >= 0, cost_prev[np.maximum(s - k, 0)], inf)
                            for k in (0, 1, 2)]) + step_cost[:, None]
        pick = options.argmin(axis=0)
        cost = options[pick, np.arange(len(s))] + opts.speech_cost * np.abs(act[s] - new_active[t])
        cost_prev = np.full(length, inf)
        cost_prev[s] = cost
        back.append((lo[t], pick.astype(np.int8)))
    end = length - 1 if fixed_end else int(np.argmin(cost_prev))
    if not np.isfinite(cost_prev[end]):
        raise AssertionError("re-timing found no path")  # the band always holds one
    path = np.empty(n_out, np.int64)
    path[-1] = end
    for t in range(n_out - 1, 0, -1):
        start, pick = back[t - 1]
        path[t - 1] = path[t] - int(pick[path[t] - start])
    return ext[path]


def footage_frames(n_clip: int, first: int, stop: int) -> np.ndarray:
    """The clip frames a job's retrieval, search and co-articulation model may read: all
    but the span [first, stop) the new speech replaces (as the edit path excludes the words
    it replaces). The lip model's held-out tail is only its own yardstick: the held-out
    sentences scored in benchmarks/lipsync.py are each a job's span, never read by it."""
    frames = np.arange(n_clip)
    return frames[(frames < first) | (frames >= stop)]


def retrieved(predicted: np.ndarray, fitted: np.ndarray, footage: np.ndarray,
              opts: LipsyncParams, components: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, n_expression) expressions of real ``footage`` frames chosen along ``predicted``
    (compared in its leading ``components``), moved ``1 - retrieval_share`` of the way back
    to the prediction, and the clip frame chosen for each row."""
    lead = slice(0, components)
    pick = choose_exemplars(predicted[:, lead], fitted[footage, lead], footage,
                            opts.retrieval_candidates, opts.retrieval_switch_cost)
    chosen = footage[pick]
    share = opts.retrieval_share
    return share * fitted[chosen] + (1 - share) * predicted, chosen


def run_lipplan(job: str, root: Path, lipsync: LipsyncParams, align: AlignParams = DEFAULT_ALIGN,
                plan: PlanParams = DEFAULT_PLAN) -> dict[str, Any]:
    """Plan a lip-sync job: data/plans/<job>/ plan.parquet, audio.wav, lipsync.parquet/json.
    ``align`` aligns a WAV's ``transcript:``, and ``plan`` searches the footage for the
    known words (stages/lipsync/transcript.py)."""
    opts = lipsync
    spec = load_job(job, root, opts)
    paths, clip = LipsyncPaths.of(job, root), ClipPaths.of(spec.clip, root)
    out = paths.outputs
    model = LipModel.load(LipModelPaths.of(spec.clip, root).model, f"lipmodel@{spec.clip}")
    person, table = load_fit(spec.clip, root)
    meta = VideoMeta.read(clip)
    fps, n_clip = meta.fps, len(table)
    if abs(float(model.meta.get("fps", fps)) - fps) > 1e-6:
        raise TalkeditError(LipModelPaths.of(spec.clip, root).model, "was trained at another "
                            "frame rate than the clip's", f"re-run lipmodel@{spec.clip}")
    new, notes, source_file, synthesized_phones = job_audio(spec, root)
    level = check_speech(new, spec.path, opts.silence_dbfs, opts.min_pause_share)
    n_new = max(1, int(round(len(new) / RATE * fps)))

    first, stop = 0, n_clip
    if spec.span is not None:
        first, stop = int(round(spec.span[0] * fps)), min(n_clip, int(round(spec.span[1] * fps)))
        if stop - first < 2:
            raise _fail(spec.path, f"span {list(spec.span)} holds fewer than 2 of the clip's "
                        f"{n_clip} frames ({n_clip / fps:.2f} s)", "give a span inside the clip")
    n_src = stop - first
    if n_new > opts.max_loops * n_src:
        raise TalkeditError(spec.path, f"the new audio lasts {n_new / fps:.1f} s, more than "
                            f"lipsync.max_loops ({opts.max_loops:g}) times the span it replaces "
                            f"({n_src / fps:.1f} s)", "cut the audio, give a longer span or clip, "
                            "or raise lipsync.max_loops (the background plays back and forth)")

    clip_audio = read_clip_wav(clip.audio)
    src_active = activity(frame_energy_db(clip_audio, n_clip, fps))[first:stop]
    new_energy = frame_energy_db(new, n_new, fps)
    background = first + retime(src_active, activity(new_energy), opts)
    predicted, warp = model.from_audio(new, n_new, fps, opts.normalize_voice)
    fitted = column_array(table, "expression").astype(np.float64)
    footage = footage_frames(n_clip, first, stop)
    spoken = (known_phones(spec, synthesized_phones, new, align)
              if opts.phone_share > 0 or opts.search_share > 0 else None)
    models = None if spoken is None else footage_model(spec.clip, root, fitted, fps, footage,
                                                       load_phone_prior(plan.phone_prior))
    if models is not None:  # the words are known: towards the clip's model of them...
        if opts.phone_share > 0:
            predicted = ((1 - opts.phone_share) * predicted
                         + opts.phone_share * phone_expression(models, spoken, n_new, fps))
        if opts.search_share > 0:  # ...and the footage's own pieces of them
            try:
                searched = searched_expression(spec.clip, root, models, spoken, fps, first,
                                               stop, n_new, plan)
            except TalkeditError as exc:
                raise TalkeditError(spec.path, f"its words cannot be searched for in the "
                                    f"clip's footage outside the span ({exc.problem})",
                                    "give a shorter span, or set lipsync.search_share: 0"
                                    ) from exc
            predicted = (1 - opts.search_share) * predicted + opts.search_share * searched
    elif spoken is not None:
        log.warning("%s: the new words are known, but the clip's footage outside the span "
                    "is too short (or lacks a p/b/m or an open vowel) for its co-articulation "
                    "model: the lip model alone drives the mouth", spec.path)
    shown, chosen = predicted, np.full(n_new, -1)
    if opts.retrieval:
        if len(footage) < opts.retrieval_candidates:
            raise TalkeditError(spec.path, f"its span leaves {len(footage)} footage frames "
                                "to retrieve mouths from (lipsync.retrieval is on; it searches "
                                "the clip's frames less the span)",
                                "give a shorter span, or set lipsync.retrieval to false")
        shown, chosen = retrieved(predicted, fitted, footage, opts, len(model.mean))

    # The output timeline: kept frames before the span, the new speech, kept frames after.
    kept_before, kept_after = np.arange(first), np.arange(stop, n_clip)
    source = np.concatenate([kept_before, background, kept_after]).astype(np.int64)
    edited = np.concatenate([np.zeros(first, bool), np.ones(n_new, bool),
                             np.zeros(len(kept_after), bool)])
    segment = np.concatenate([np.zeros(first), np.ones(n_new), np.full(len(kept_after), 2)])
    n_out = len(source)
    expression = fitted[source].copy()
    expression[first:first + n_new] = shown
    plan = {
        "frame": np.arange(n_out), "time_s": np.arange(n_out) / fps, "segment": segment,
        "edited": edited, "source_frame": source,
        "source_time_s": source / fps,  # whole frames: the re-timing picks frames, never between
        "piece": np.where(edited, 0, -1),
        "expression_source_frame": source, "blend_weight": np.zeros(n_out),
        "rotation": column_array(table, "rotation")[source],
        "translation": column_array(table, "translation")[source],
        "scale": table.column("scale").to_numpy()[source],
        "expression": expression,
        "illumination": column_array(table, "illumination")[source],
    }
    # Soundtrack on the same timeline, each part exactly its frames long.
    per = RATE / fps
    new_part = np.zeros(int(round(n_new * per)))
    new_part[:min(len(new), len(new_part))] = new[:len(new_part)]
    audio = np.concatenate([clip_audio[:int(round(first * per))], new_part,
                            clip_audio[int(round(stop * per)):int(round(n_clip * per))]])
    audio = np.concatenate([audio, np.zeros(max(0, int(round(n_out * per)) - len(audio)))])

    out.plan_dir.mkdir(parents=True, exist_ok=True)
    track = {"frame": np.arange(n_new) + first, "time_s": (np.arange(n_new) + first) / fps,
             "source_frame": background, "opening": openings(person, shown),
             "energy_db": new_energy, "expression": shown, "predicted_opening":
             openings(person, predicted), "retrieved_frame": chosen}
    write_parquet(track, LIP_TRACK, paths.expression)
    write_parquet(plan, PLAN, out.plan)
    write_wav(out.audio, to_int16(audio), RATE)
    steps = np.diff(background)
    report = {
        "job": job, "clip": spec.clip, "audio": spec.audio_label, "audio_notes": notes,
        "audio_file": None if source_file is None else str(source_file.name),
        "audio_s": round(len(new) / RATE, 3), "speech_level_dbfs": round(level, 1),
        "span_frames": [first, stop], "new_frames": n_new, "output_frames": n_out,
        "passes": 1 + int((np.diff(np.sign(steps[steps != 0])) != 0).sum()),
        "repeated_frames": int((steps == 0).sum()), "skipped_frames": int((steps > 1).sum()),
        "reversed_frames": int((steps < 0).sum()), "model": model.net_cfg.kind,
        "voice_warp": warp,
        "phones": None if models is None else {
            "source": spoken.source, "share": opts.phone_share,
            "search_share": opts.search_share,
            "count": sum(p != SILENCE for p in spoken.phones)},
        "retrieval": {"share": opts.retrieval_share, "frames": int((chosen >= 0).sum()),
                      "runs": int(1 + (np.diff(chosen) != 1).sum()) if n_new else 0}
        if opts.retrieval else None,
    }
    write_json(paths.report, report)
    log.info("lipplan %s: %s", job, json.dumps(report))
    return report

