"""audio stage: the edited video's sound, data/plans/<edit>/audio.wav, on the plan's timeline.

``run_audio(edit, root, audio)`` reads the plan (segments.parquet,
new_phones.parquet, plan.parquet's frame count, and recording/, the user's recording
as the plan aligned it) and the clip's audio.wav, and writes:

* audio.wav: 16-bit mono at the clip's audio rate, exactly the plan's frames / fps
  long. Kept segments are the clip's samples, bit-exact; the new words come from one
  of three sources, chosen by the edit spec's ``audio:`` key or ``audio.source``:
  - ``speaker`` (default): the speaker's own half-phones from the clip (``units.py``),
    espeak-ng only for diphones the speaker never said;
  - ``synthetic``: espeak-ng speaking the new words;
  - ``recording``: the user's recording of them (stages/recording.py);
  each stretched onto the plan's phone times (``psola.py``), loudness-matched to the
  kept audio around it and spliced in with short cross-fades (``build.py``);
* audio_units.parquet: where each half of each new phone's sound came from;
* audio.json: the summary ``run_audio`` returns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from stages.align import normalize_text
from stages.audio.build import EditAudio, EditInputs, build_audio
from stages.audio.config import (
    RECORDING,
    SPEAKER,
    AudioParams,
)
from stages.audio.dsp import read_clip_audio, write_wav
from stages.audio.metrics import (
    DISCONTINUITY_MEASURE,
    LOUDNESS_MEASURE,
)
from stages.audio.soundtrack import BLOCK_SAMPLES
from stages.audio.units import CLIP
from stages.index import VisemeIndex, read_fps
from stages.recording import Recording, RecordingTimer, recorded_text
from talkedit.artifacts import (
    AUDIO_UNITS,
    NEW_PHONES,
    SEGMENTS,
    ClipPaths,
    EditPaths,
    audio_report_path,
    audio_units_path,
    read_parquet,
    write_parquet,
)
from talkedit.atomic import write_json
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

__all__ = ["load_inputs", "run_audio", "summarize"]

log = logging.getLogger(__name__)


def plan_frames(paths: EditPaths) -> int:
    """The plan's output frame count (plan.parquet's rows), read from its footer alone."""
    if not paths.plan.is_file():
        raise TalkeditError(paths.plan, "not found", f"run plan@{paths.edit} first (dvc repro)")
    return pq.ParquetFile(paths.plan).metadata.num_rows


def load_inputs(edit: str, opts: AudioParams, root: Path) -> EditInputs:
    spec = load_spec(edit, root, opts.source)
    choice = spec.audio
    clip_paths, paths = ClipPaths.of(spec.clip, root), EditPaths.of(edit, root)
    hint = f"plan@{edit}"
    segments = read_parquet(paths.segments, SEGMENTS, stage_hint=hint)
    new_phones = read_parquet(paths.new_phones, NEW_PHONES, stage_hint=hint)
    n_frames, fps = plan_frames(paths), read_fps(clip_paths)
    clip = read_clip_audio(clip_paths.audio)
    n_out = int(round(n_frames / fps * clip.sample_rate))
    edited = normalize_text(spec.edited_text, str(spec.path))
    index = VisemeIndex.load(spec.clip, root) if choice.source == SPEAKER else None
    recording = None
    if choice.source == RECORDING and len(new_phones):
        spans = []
        for _, rows in new_phones.groupby("segment", sort=True):
            pos = rows.loc[rows["word_position"] >= 0, "word_position"]
            if len(pos):
                spans.append((int(pos.min()), int(pos.max()) + 1))
        rec = Recording.read(paths, recorded_text(choice, edited, spans))
        recording = RecordingTimer(rec, edited, spans)
    return EditInputs(clip, segments, new_phones, n_out, edited, choice.source, index,
                      spec.exclude_s, recording)


def _unit_rows(result: EditAudio, inp: EditInputs) -> dict[str, list[Any]]:
    sr = result.sample_rate
    rows: dict[str, list[Any]] = {name: [] for name in AUDIO_UNITS.names}
    for span in result.spans:
        phones = inp.new_phones[inp.new_phones["segment"] == span.segment].sort_values(
            "out_start_s").reset_index(drop=True)
        for k, h in enumerate(span.halves):
            p = phones.iloc[h.target]
            out_d, src_d = h.out_end - h.out_start, h.src_end - h.src_start
            for name, value in (
                    ("segment", span.segment), ("phone_position", h.target), ("half", k % 2),
                    ("phone", str(p["phone"])), ("word", str(p["word"])),
                    ("out_start_s", (span.start + h.out_start) / sr),
                    ("out_end_s", (span.start + h.out_end) / sr), ("source", h.source),
                    ("source_start_s", h.src_start / sr), ("source_end_s", h.src_end / sr),
                    ("source_phone", h.row), ("stretch", out_d / src_d if src_d > 0 else np.nan),
                    ("note", h.note)):
                rows[name].append(value)
    return rows


def _kept_exact(result: EditAudio, inp: EditInputs) -> bool:
    """Self-check: every kept sample outside the joins' cross-fades is the clip's own
    (compared a block at a time: the track is never whole in memory)."""
    sr, out = result.sample_rate, result.samples
    for s in inp.segments.itertuples():
        if s.kind != "kept":
            continue
        a, b = int(round(s.out_start_s * sr)), min(int(round(s.out_end_s * sr)), len(out))
        src = int(round(s.source_start_s * sr))
        n = max(0, min(b - a, len(inp.clip) - src))
        for lo in range(a, a + n, BLOCK_SAMPLES):
            hi = min(lo + BLOCK_SAMPLES, a + n)
            changed = np.zeros(hi - lo, dtype=bool)  # the joins' cross-fades
            for c0, c1 in result.crossfaded:
                changed[max(c0, lo) - lo:max(min(c1, hi) - lo, 0)] = True
            same = out[lo:hi] == inp.clip.read(src + lo - a, src + hi - a)
            if not (same | changed).all():
                return False
    return True


def summarize(edit: str, result: EditAudio, inp: EditInputs) -> dict[str, Any]:
    sr = result.sample_rate
    phones = {seg: rows.sort_values("out_start_s")["phone"].to_numpy()
              for seg, rows in inp.new_phones.groupby("segment")}
    spoken = [h for sp in result.spans for h in sp.halves
              if phones[sp.segment][h.target] != SILENCE]
    diffs = [sp.loudness_new - sp.loudness_around for sp in result.spans
             if np.isfinite(sp.loudness_new) and np.isfinite(sp.loudness_around)]
    fallbacks = sorted({f for sp in result.spans for f in sp.fallbacks})
    return {
        "edit": edit, "source": inp.source, "sample_rate": sr,
        "duration_s": round(len(result.samples) / sr, 4), "samples": len(result.samples),
        "new_spans": len(result.spans),
        "new_phones": int((inp.new_phones["phone"] != SILENCE).sum()),
        "speaker_share": round(float(np.mean([h.source == CLIP for h in spoken])), 4)
        if spoken else None,
        "fallbacks": fallbacks,
        "loudness_measure": LOUDNESS_MEASURE,
        "loudness_diff_lu": round(float(max(diffs, key=abs)), 3) if diffs else None,
        "spans": [{"segment": sp.segment, "start_s": round(sp.start / sr, 4),
                   "end_s": round(sp.end / sr, 4),
                   "loudness_lufs": _round(sp.loudness_new),
                   "surroundings_lufs": _round(sp.loudness_around)} for sp in result.spans],
        "discontinuity_measure": DISCONTINUITY_MEASURE,
        "max_border_discontinuity_db": _max(result.border_db),
        "max_unit_join_discontinuity_db": _max(result.unit_db),
        "borders": len(result.border_db), "unit_joins": len(result.unit_db),
        "kept_bit_exact": _kept_exact(result, inp),
        "recording_notes": inp.recording.recording.notes if inp.recording else [],
    }


def _max(values: list[float]) -> float | None:
    return round(float(max(values)), 2) if values else None


def _round(x: float) -> float | None:
    return round(float(x), 3) if np.isfinite(x) else None


def run_audio(edit: str, root: Path, audio: AudioParams) -> dict[str, Any]:
    """Build and write one edit's audio.wav (+ audio_units.parquet, audio.json); return the
    summary: source, speaker share, fallbacks, loudness difference (LU), largest join
    discontinuity (dB over the local signal's own steps)."""
    inp = load_inputs(edit, audio, root)
    result = build_audio(inp, audio)
    paths = EditPaths.of(edit, root)
    summary = summarize(edit, result, inp)
    write_wav(paths.audio, (block for _, block in result.samples.blocks()),
              result.sample_rate)
    write_parquet(_unit_rows(result, inp), AUDIO_UNITS, audio_units_path(paths))
    write_json(audio_report_path(paths), summary)
    log.info("audio %s: %s", edit, summary)
    return summary
