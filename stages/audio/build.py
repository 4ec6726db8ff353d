"""The edited video's sound on the plan's output timeline.

* ``kept`` segments: the clip's samples, copied (bit-exact).
* ``new`` segments: the new phones, each half said by some source stretch, stretched
  onto the plan's phone times by PSOLA (``psola.render``); then the span's loudness
  is matched to the kept audio around it (``metrics.loudness_lufs``).
* Splices: the new speech is rendered ``border_ms`` beyond both ends of its span (its
  first and last units continued in their own source) and cross-faded with the kept
  audio over the last ``border_ms`` before the span and the first ``border_ms`` after
  it, so nothing of the words being replaced leaks in. Where the kept audio at a
  border is a pause and that fade would not be click-free, a shorter fade, or the new
  speech fading from/to silence inside its own span, is used instead (``_join_border``).
  Where a deletion makes two kept segments meet, they are cross-faded over
  ``border_ms`` centred on the cut. These join regions are the only kept samples that
  change; ``EditAudio.crossfaded`` lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stages.align.normalize import SpokenWord
from stages.audio.config import RECORDING, SPEAKER, SYNTHETIC, AudioParams
from stages.audio.dsp import HOP_S, ClipAudio, f0_track, resample, to_int16
from stages.audio.metrics import CONTEXT_S, GUARD_MS, discontinuity_db, loudness_lufs
from stages.audio.psola import Source, render
from stages.audio.soundtrack import Soundtrack
from stages.audio.speech import Speech, espeak_speech, place, sentence_window
from stages.audio.units import (
    CLIP,
    TTS,
    Half,
    Inventory,
    Target,
    halves,
    select_units,
    to_runs,
)
from stages.index import VisemeIndex
from stages.recording import RecordingTimer
from talkedit.phonemes import SILENCE

ANCHOR_S = 0.04  # kept audio either side of a span whose pitch the new speech starts/ends at
PAUSE_DBFS = -50.0  # kept audio quieter than this next to a border is a pause


@dataclass
class EditInputs:
    """Everything one edit's audio is made from (read by ``run_audio``)."""

    clip: ClipAudio
    segments: pd.DataFrame  # SEGMENTS
    new_phones: pd.DataFrame  # NEW_PHONES
    n_out: int  # output samples: the plan's frames / fps at the clip's audio rate
    edited: list[SpokenWord]  # the edited transcript's spoken words (word_position indexes it)
    source: str  # speaker | synthetic | recording
    index: VisemeIndex | None = None  # the clip's phones (speaker source)
    exclude_s: tuple[tuple[float, float], ...] = ()  # clip time no unit may come from
    recording: RecordingTimer | None = None


@dataclass
class SpanAudio:
    segment: int
    start: int  # output samples [start, end)
    end: int
    halves: list[Half]
    joins: list[tuple[int, int]]  # cross-fades between units inside the span, output samples
    fallbacks: list[str]
    loudness_new: float = float("nan")  # LUFS, measured in the finished output
    loudness_around: float = float("nan")


@dataclass
class EditAudio:
    samples: Soundtrack  # int16, read a region (or ``blocks``) at a time
    sample_rate: int
    spans: list[SpanAudio]
    splices: list[tuple[int, int]]  # where segments meet: the join (cross-fade) regions
    crossfaded: list[tuple[int, int]]  # the kept samples those joins changed
    border_db: list[float] = field(default_factory=list)  # discontinuity at each splice
    unit_db: list[float] = field(default_factory=list)  # ...and at each join between units


def _sample(t: float, sr: int) -> int:
    return int(round(t * sr))


def build_audio(inp: EditInputs, opts: AudioParams) -> EditAudio:
    """The whole output timeline: kept audio copied, new spans said and spliced in.

    The output is a ``Soundtrack``: the kept segments' mapping onto the clip plus what the
    spans and joins wrote, so an edit of an hour-long clip holds a few seconds of audio."""
    clip, sr = inp.clip, inp.clip.sample_rate
    segs = inp.segments.sort_values("out_start_s").reset_index(drop=True)
    out = Soundtrack(clip, inp.n_out)
    bounds = [(_sample(s.out_start_s, sr), _sample(s.out_end_s, sr)) for s in segs.itertuples()]
    for (a, b), s in zip(bounds, segs.itertuples(), strict=True):
        if s.kind == "kept":
            out.keep(a, b, _sample(s.source_start_s, sr))
    # The plan's frames may outlast its timeline by up to half a frame: the clip goes on.
    end = bounds[-1][1] if bounds else 0
    if end < inp.n_out:
        last = segs.iloc[-1]
        if last["kind"] == "kept":
            out.keep(end, inp.n_out, _sample(last["source_end_s"], sr))

    border = max(1, _sample(opts.border_ms / 1000, sr))
    splices, crossfaded = [], []
    for k in range(1, len(segs)):
        at = bounds[k][0]
        if segs.at[k - 1, "kind"] == "kept" and segs.at[k, "kind"] == "kept":
            lo, hi = _join_kept(out, clip, at, _sample(segs.at[k - 1, "source_end_s"], sr),
                                _sample(segs.at[k, "source_start_s"], sr), border)
            crossfaded.append((lo, hi))
            splices.append((lo, hi))

    spans = []
    for k, s in enumerate(segs.itertuples()):
        if s.kind != "new":
            continue
        a, b = bounds[k]
        b = min(b, inp.n_out)
        if b <= a:
            continue
        # Cross-fades reach into the kept neighbours, never past them.
        lead_in = min(border, a - bounds[k - 1][0]) if k > 0 and \
            segs.at[k - 1, "kind"] == "kept" else 0
        lead_out = min(border, min(bounds[k + 1][1], inp.n_out) - b) \
            if k + 1 < len(segs) and segs.at[k + 1, "kind"] == "kept" else 0
        left = _sample(segs.at[k - 1, "source_end_s"], sr) if lead_in else None
        right = _sample(segs.at[k + 1, "source_start_s"], sr) if lead_out else None
        around = _surroundings(out, a, b, _sample(opts.surround_s, sr))
        span, y = _render_span(inp, opts, int(s.segment), a, b, left, right, around, border)
        core = y[border:border + (b - a)]
        y = y * _loudness_gain(core, around, sr, opts.loudness_block_s)
        out[a:b] = to_int16(y[border:border + (b - a)])
        for at, before, lead, room in ((a, True, y[border - lead_in:border], lead_in),
                                       (b, False, y[border + b - a:border + b - a + lead_out],
                                        lead_out)):
            if room:
                lo, hi, changed_kept = _join_border(out, lead, at, before, sr, border)
                splices.append((lo, hi))
                if changed_kept:
                    crossfaded.append((lo, hi))
        span.loudness_new = loudness_lufs(out[a:b] / 32768.0, sr, opts.loudness_block_s)
        span.loudness_around = loudness_lufs(around, sr, opts.loudness_block_s)
        spans.append(span)

    border_db = [_discontinuity(out, lo, hi, sr) for lo, hi in splices]
    unit_db = [_discontinuity(out, lo, hi, sr) for sp in spans for lo, hi in sp.joins]
    return EditAudio(out, sr, spans, splices, crossfaded, border_db, unit_db)


def _discontinuity(out: Soundtrack, lo: int, hi: int, sr: int) -> float:
    """``discontinuity_db`` of the join [lo, hi), read from the samples it looks at alone
    (its guard and context each side): the same figure as on the whole track."""
    reach = max(1, int(round(GUARD_MS * sr / 1000))) + int(round(CONTEXT_S * 1000 * sr / 1000)) + 1
    w0, w1 = max(0, lo - reach), min(len(out), hi + reach)
    return discontinuity_db(out[w0:w1] / 32768.0, lo - w0, hi - w0, sr)


def _fade(n: int) -> np.ndarray:
    """Raised-cosine fade-in weights (0 -> 1) over n samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _join_kept(out: np.ndarray, clip: ClipAudio, at: int, left_end: int, right_start: int,
               border: int) -> tuple[int, int]:
    """Cross-fade two kept segments meeting at output sample ``at`` (a deletion)."""
    h = border // 2
    lo, hi = max(0, at - h), min(len(out), at + h)
    if hi <= lo:
        return lo, lo
    t = np.arange(lo, hi) - at
    outgoing = clip.region(left_end + t[0], left_end + t[-1] + 1)  # the left one, going on
    incoming = clip.region(right_start + t[0], right_start + t[-1] + 1)  # the right's lead-in
    w = _fade(hi - lo)
    out[lo:hi] = to_int16((1 - w) * outgoing + w * incoming)
    return lo, hi


def _crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Raised-cosine cross-fade from ``outgoing`` to ``incoming`` (int16 kept audio or
    float new audio, either way round) as int16."""
    a = outgoing / 32768.0 if outgoing.dtype == np.int16 else outgoing
    b = incoming / 32768.0 if incoming.dtype == np.int16 else incoming
    w = _fade(len(a))
    return to_int16((1 - w) * a + w * b)


def _join_border(out: np.ndarray, lead: np.ndarray, at: int, before: bool, sr: int,
                 border: int) -> tuple[int, int, bool]:
    """Join new speech to the kept audio at an edit border; return the region changed and
    whether it is kept audio.

    ``lead`` is the new speech's run-in (``before``: ending at ``at``, where the new span
    starts) or run-out (starting at ``at``, where it ends). Candidates, in order of
    preference: cross-fading the run-in/out with the kept audio over ``border``, half,
    a quarter... of it; or, where the kept audio there is a pause, letting the new speech
    itself fade from/to silence inside its span (a plosive's burst in the run-out, or
    resampling ripple, next to a silent pause is better faded inside than carried over).
    The first candidate that joins without a click (<= 0 dB) is taken, else the best.
    """
    reach = int(CONTEXT_S * sr) + 2
    cands: list[tuple[int, int, np.ndarray, bool]] = []
    n = len(lead)
    while n >= 1:
        lo, hi = (at - n, at) if before else (at, at + n)
        faded = (_crossfade(out[lo:hi], lead[-n:]) if before
                 else _crossfade(lead[:n], out[lo:hi]))
        cands.append((lo, hi, faded, True))
        n //= 2
    far = out[max(0, at - border):at] if before else out[at:at + border]
    if len(far) and 20 * np.log10(np.sqrt(np.mean((far / 32768.0) ** 2)) + 1e-12) < PAUSE_DBFS:
        lo, hi = (at, at + border) if before else (at - border, at)
        w = _fade(hi - lo)
        cands.append((lo, hi, to_int16(out[lo:hi] / 32768.0 * (w if before else w[::-1])),
                      False))
    best: tuple[float, int] | None = None
    for k, (lo, hi, faded, _) in enumerate(cands):
        w0, w1 = max(0, lo - reach), min(len(out), hi + reach)
        window = out[w0:w1].astype(np.float64) / 32768.0
        window[lo - w0:hi - w0] = faded / 32768.0
        score = discontinuity_db(window, lo - w0, hi - w0, sr)
        if score <= 0 or best is None or score < best[0]:
            best = (score, k)
        if score <= 0:
            break
    lo, hi, faded, kept = cands[best[1]]
    out[lo:hi] = faded
    return lo, hi, kept


def _surroundings(out: Soundtrack, a: int, b: int, reach: int) -> np.ndarray:
    """Kept output audio within ``reach`` of a span, both sides (other new spans left out)."""
    lo, hi = max(0, a - reach), min(len(out), b + reach)
    parts = [out[lo:a][out.kept(lo, a)], out[b:hi][out.kept(b, hi)]]
    return np.concatenate(parts).astype(np.float64) / 32768.0


def _loudness_gain(y: np.ndarray, around: np.ndarray, sr: int, block_s: float) -> float:
    new, ref = loudness_lufs(y, sr, block_s), loudness_lufs(around, sr, block_s)
    if not (np.isfinite(new) and np.isfinite(ref)):
        return 1.0
    gain = 10 ** ((ref - new) / 20)
    peak = float(np.abs(y).max(initial=0.0)) * gain
    return gain if peak < 0.99 else 0.99 / max(peak / gain, 1e-9)  # never clip


def _log_f0_stats(x: np.ndarray, sr: int) -> tuple[float, float] | None:
    f0 = f0_track(x, sr, max(1, _sample(2 * HOP_S, sr)))  # a range needs no fine grid
    lf = np.log(f0[f0 > 0])
    return (float(np.median(lf)), max(float(np.std(lf)), 0.03)) if len(lf) >= 10 else None


def _anchor(clip: ClipAudio, at: int | None, before: bool, sr: int) -> float | None:
    """Median log f0 of the kept audio just before (or after) a cut; None if unvoiced."""
    if at is None:
        return None
    n = _sample(ANCHOR_S, sr)
    x = clip.region(at - n, at) if before else clip.region(at, at + n)
    f0 = f0_track(x, sr, max(1, _sample(HOP_S, sr)))
    voiced = f0[f0 > 0]
    return float(np.median(np.log(voiced))) if len(voiced) >= 2 else None


# --- the three sources ----------------------------------------------------------------------


def _targets(rows: pd.DataFrame, a: int, sr: int) -> list[Target]:
    return [Target(str(r.phone), int(r.stress), _sample(r.out_start_s, sr) - a,
                   _sample(r.out_end_s, sr) - a, int(r.word_position), str(r.word))
            for r in rows.sort_values("out_start_s").itertuples()]


def _word_range(targets: Sequence[Target]) -> tuple[int, int] | None:
    pos = [t.word_position for t in targets if t.word_position >= 0]
    return (min(pos), max(pos) + 1) if pos else None


def _espeak(inp: EditInputs, opts: AudioParams, targets: Sequence[Target], sr: int,
            around: np.ndarray, match_pitch: bool) -> tuple[Source, np.ndarray]:
    """espeak-ng saying the new words in their sentence, matched in loudness to the
    surrounding speech (and, for fallbacks, moved into the speaker's pitch range)."""
    words = _word_range(targets)
    if words is None:  # pauses only: nothing to say
        speech = Speech(np.zeros(0), sr, [], np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0))
        return speech.source(TTS), place(targets, speech, {})
    lo, hi = sentence_window(inp.edited, words[0], words[1], opts.context_words)
    speech = espeak_speech(inp.edited[lo:hi], opts.tts_voice, opts.tts_rate_wpm, sr)
    source = speech.source(TTS)
    spans = place(targets, speech, {p: p - lo for p in range(lo, hi)})
    ref, own = (loudness_lufs(around, sr, opts.loudness_block_s),
                loudness_lufs(speech.samples, sr, opts.loudness_block_s))
    if np.isfinite(ref) and np.isfinite(own):
        source.gain = 10 ** ((ref - own) / 20)
    if match_pitch:
        speaker, tts = _log_f0_stats(around, sr), _log_f0_stats(speech.samples, sr)
        if speaker is not None and tts is not None:
            source.pitch_map = (*tts, *speaker)
    return source, spans


def _recording_speech(inp: EditInputs, sr: int) -> Speech:
    rec = inp.recording.recording
    phones = rec.phones.sort_values("start_s")
    return Speech(resample(rec.samples, rec.sample_rate, sr), sr,
                  [str(w) for w in rec.words["normalized"]],
                  phones["word_index"].to_numpy(np.int64), list(phones["phone"].astype(str)),
                  phones["start_s"].to_numpy(float), phones["end_s"].to_numpy(float))


@dataclass
class Spoken:
    """New speech for one span: where each half-phone came from, and the samples."""

    halves: list[Half]
    joins: list[tuple[int, int]]  # cross-fades between units, span samples
    fallbacks: list[str]
    samples: np.ndarray  # n + 2 * lead samples; span sample 0 at index ``lead``


def speak(inp: EditInputs, opts: AudioParams, targets: Sequence[Target], n: int,
          left: int | None, right: int | None, around: np.ndarray, lead: int = 0) -> Spoken:
    """Say ``targets`` in ``n`` samples with the edit's source.

    ``left`` / ``right``: the clip samples where the kept audio before / after the span
    ends / starts (None where there is none); ``around``: that kept audio (loudness and
    pitch references); ``lead``: run-in and run-out samples to render as well.
    """
    sr = inp.clip.sample_rate
    fallbacks: list[str] = []
    if inp.source == SPEAKER:
        inv = Inventory(inp.index, inp.clip, inp.exclude_s)
        # espeak-ng is asked only if a fallback is needed, and once.
        tts: Callable[[], tuple[Source, np.ndarray]] = functools.cache(
            lambda: _espeak(inp, opts, targets, sr, around, match_pitch=True))
        sel = select_units(inv, targets, _context(inp.index, left, sr, True),
                           _context(inp.index, right, sr, False), tts, opts.units)
        parts, fallbacks = sel.halves, sel.fallbacks
        sources = {CLIP: inv.source}
        if any(h.source == TTS for h in parts):
            sources[TTS] = tts()[0]
        anchors = (_anchor(inp.clip, left, True, sr), _anchor(inp.clip, right, False, sr))
        rendered = render(to_runs(parts, sources), n, sr, opts.join_ms, opts.smooth_ms, anchors,
                          lead=lead)
    else:
        if inp.source == SYNTHETIC:
            source, spans = _espeak(inp, opts, targets, sr, around, match_pitch=False)
        elif inp.source == RECORDING:
            speech = _recording_speech(inp, sr)
            words = _word_range(targets)
            source = speech.source(RECORDING)
            spans = place(targets, speech, inp.recording.word_map(*words) if words else {})
        else:
            raise ValueError(f"unknown audio source {inp.source!r}")
        parts = [h for k, t in enumerate(targets)
                 for h in halves(t, k, source.name, spans[k, 0], spans[k, 1])]
        rendered = render(to_runs(parts, {source.name: source}), n, sr, opts.join_ms,
                          opts.smooth_ms, smooth_pitch=False, lead=lead)
    return Spoken(parts, rendered.joins, fallbacks, rendered.samples)


def _render_span(inp: EditInputs, opts: AudioParams, segment: int, a: int, b: int,
                 left: int | None, right: int | None, around: np.ndarray,
                 lead: int) -> tuple[SpanAudio, np.ndarray]:
    """One new segment's speech, with ``lead`` samples of run-in and run-out either side."""
    sr = inp.clip.sample_rate
    targets = _targets(inp.new_phones[inp.new_phones["segment"] == segment], a, sr)
    said = speak(inp, opts, targets, b - a, left, right, around, lead)
    joins = [(a + lo, a + hi) for lo, hi in said.joins]
    return SpanAudio(segment, a, b, said.halves, joins, said.fallbacks), said.samples


def _context(index: VisemeIndex, at: int | None, sr: int, before: bool) -> tuple[str, int | None]:
    """The clip phone ending (before=True) or starting at a cut, and its row."""
    if at is None:
        return SILENCE, None
    t = at / sr
    if before:
        k = int(np.searchsorted(index.end_s, t + 1e-3, "right")) - 1
    else:
        k = int(np.searchsorted(index.start_s, t - 1e-3, "left"))
    if not 0 <= k < len(index):
        return SILENCE, None
    return str(index.phones[k]), k
