"""Speech with known phones (espeak-ng's, or an aligned recording) and where targets lie in it.

The synthetic source, the speaker source's fallbacks and the recording source all
cut the new words' phones out of such speech. Its phones need not be the plan's:
espeak and the aligner may pronounce a word differently from the lexicon, so each
word's phones are matched to the target's with difflib, and unmatched stretches are
shared out evenly.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stages.align.normalize import SENTENCE_BREAK, SpokenWord, speakable
from stages.audio.dsp import resample
from stages.audio.psola import Source
from stages.audio.units import Target
from talkedit.espeak import synthesize

PAD_S = 0.5  # silence appended after the speech: pauses it lacks are cut from there
QUIET_DB = 50.0  # this far below the speech's loudest 5 ms (or -60 dBFS), a pause has begun
MAX_TAIL_S = 0.08  # how far a phone next to a pause may reach into it (a stop's release)


@dataclass
class Speech:
    """Float samples at ``sr`` and their phones (seconds); words indexed 0..n_words-1."""

    samples: np.ndarray
    sr: int
    words: list[str]
    word_of: np.ndarray  # per phone: its word, -1 for a pause
    phones: list[str]
    start_s: np.ndarray
    end_s: np.ndarray

    def source(self, name: str) -> Source:
        padded = np.r_[self.samples, np.zeros(int(PAD_S * self.sr))]

        def read(a: int, b: int) -> np.ndarray:
            out = np.zeros(max(0, b - a))
            lo, hi = max(a, 0), min(b, len(padded))
            if hi > lo:
                out[lo - a:hi - a] = padded[lo:hi]
            return out

        return Source(name, read)

    def quiet_from(self, t: float, forward: bool) -> float:
        """Where the sound next to a pause dies away: from ``t`` (seconds), the first 5 ms
        frame into the pause that is QUIET_DB below the speech's loudest (at most
        MAX_TAIL_S away). Synthesizers and aligners put a stop's release or a
        fricative's tail in the pause after the phone; it belongs to the phone."""
        hop = int(0.005 * self.sr)
        n = len(self.samples) // hop
        if n == 0:
            return t
        frames = self.samples[:n * hop].reshape(n, hop)
        level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
        quiet = level < max(level.max() - QUIET_DB, -60.0)
        k = int(t * self.sr) // hop
        steps = int(MAX_TAIL_S * self.sr) // hop
        for j in range(steps + 1):
            i = k + j if forward else k - 1 - j
            if not 0 <= i < n or quiet[i]:
                edge = (i if forward else i + 1) * hop / self.sr
                return max(t, edge) if forward else min(t, edge)
        return t + MAX_TAIL_S if forward else t - MAX_TAIL_S


def sentence_window(words: Sequence[SpokenWord], first: int, end: int,
                    context: int) -> tuple[int, int]:
    """Words [lo, hi) to speak around words [first, end): their sentence, at most
    ``context`` words either side, and at least one neighbour each side if there is one
    (so the synthesizer says the pauses at the span's edges)."""
    lo = first
    while lo > 0 and first - lo < context and words[lo - 1].break_after != SENTENCE_BREAK:
        lo -= 1
    hi = end
    while hi < len(words) and hi - end < context and words[hi - 1].break_after != SENTENCE_BREAK:
        hi += 1
    return min(lo, max(first - 1, 0)), max(hi, min(end + 1, len(words)))


def espeak_speech(words: Sequence[SpokenWord], voice: str, rate_wpm: int, sr: int) -> Speech:
    """espeak-ng saying ``words`` (one token each), resampled to ``sr``.

    Where espeak splits a token into several words, its phones can no longer be told
    apart by word: the words are then said one at a time, one after the other.
    """
    synth = synthesize(speakable(words), voice=voice, rate_wpm=rate_wpm)
    if len(synth.words) == len(words):
        parts = [(synth, [p.word_index for p in synth.phones])]
    else:
        parts = [(s, [k if p.word_index >= 0 else -1 for p in s.phones])
                 for k, s in enumerate(synthesize(speakable([w]), voice=voice,
                                                  rate_wpm=rate_wpm) for w in words)]
    samples, word_of, phones, starts, ends, t = [], [], [], [], [], 0.0
    for s, owner in parts:
        samples.append(s.samples / 32768.0)
        word_of += owner
        phones += [p.phone for p in s.phones]
        starts += [t + p.start_s for p in s.phones]
        ends += [t + p.end_s for p in s.phones]
        t += s.duration_s
    return Speech(resample(np.concatenate(samples), synth.sample_rate, sr), sr,
                  [w.text for w in words], np.asarray(word_of, dtype=np.int64), phones,
                  np.asarray(starts), np.asarray(ends))


def _match_word(target: list[str], labels: list[str], spans: np.ndarray) -> np.ndarray:
    """Each target phone's (start, end) within one word's phones ``spans`` (seconds)."""
    out = np.full((len(target), 2), np.nan)
    matcher = difflib.SequenceMatcher(None, target, labels, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out[i1:i2] = spans[j1:j2]
        elif i2 > i1 and j2 > j1:  # unlike phones: share their time evenly
            out[i1:i2] = _even(spans[j1, 0], spans[j2 - 1, 1], i2 - i1)
    if np.isnan(out).any():  # a target phone with no counterpart: share the whole word
        out = _even(spans[0, 0], spans[-1, 1], len(target))
    return out


def _even(a: float, b: float, n: int) -> np.ndarray:
    edges = np.linspace(a, b, n + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def place(targets: Sequence[Target], speech: Speech, word_map: dict[int, int]) -> np.ndarray:
    """Each target's (start, end) in ``speech``, in its samples.

    ``word_map``: a target's word_position -> the speech's word. A pause target takes
    the longest pause the speech makes between the words around it, or, where it makes
    none, silence from the padding after the speech.
    """
    sr = speech.sr
    spans = np.zeros((len(targets), 2))
    by_word: dict[int, list[int]] = {}
    for k, t in enumerate(targets):
        if t.word_position >= 0:
            by_word.setdefault(t.word_position, []).append(k)
    for pos, ks in by_word.items():
        w = word_map[pos]
        mine = np.flatnonzero(speech.word_of == w)
        if not len(mine):
            raise ValueError(f"the speech has no phones for word {speech.words[w]!r}")
        times = np.stack([speech.start_s[mine], speech.end_s[mine]], axis=1)
        spans[ks] = _match_word([targets[k].phone for k in ks],
                                [speech.phones[j] for j in mine], times) * sr
    for k, t in enumerate(targets):  # a phone next to a pause keeps its release or onset
        if t.word_position < 0:
            continue
        w = word_map[t.word_position]
        mine = np.flatnonzero(speech.word_of == w)
        if (k + 1 == len(targets) or targets[k + 1].word_position < 0) and \
                _pause_next(speech, mine[-1], +1):
            spans[k, 1] = speech.quiet_from(spans[k, 1] / sr, forward=True) * sr
        if (k == 0 or targets[k - 1].word_position < 0) and _pause_next(speech, mine[0], -1):
            spans[k, 0] = speech.quiet_from(spans[k, 0] / sr, forward=False) * sr
    pad_at = len(speech.samples)
    for k, t in enumerate(targets):
        if t.word_position >= 0:
            continue
        before = [targets[j].word_position for j in range(k - 1, -1, -1)
                  if targets[j].word_position >= 0][:1]
        after = [targets[j].word_position for j in range(k + 1, len(targets))
                 if targets[j].word_position >= 0][:1]
        lo_word = word_map.get(before[0]) if before else None
        hi_word = word_map.get(after[0]) if after else None
        pause = _pause_between(speech, lo_word, hi_word)
        if pause is None:
            dur = max(1.0, min(t.end - t.start, PAD_S * sr))
            spans[k] = (pad_at, pad_at + dur)
        else:
            spans[k] = np.asarray(pause) * sr
    return spans


def _pause_next(speech: Speech, phone: int, step: int) -> bool:
    """Whether the speech pauses (or ends) right after (step +1) / before (-1) a phone."""
    j = phone + step
    return not 0 <= j < len(speech.phones) or speech.word_of[j] < 0


def _pause_between(speech: Speech, lo_word: int | None,
                   hi_word: int | None) -> tuple[float, float] | None:
    """The longest pause between two words of the speech; with one of them None, the pause
    right after ``lo_word`` or right before ``hi_word`` (seconds), if there is one."""
    words = speech.word_of
    if lo_word is None and hi_word is None:
        return None
    a = int(np.flatnonzero(words == lo_word).max()) + 1 if lo_word is not None else None
    b = int(np.flatnonzero(words == hi_word).min()) if hi_word is not None else None
    a = b - 1 if a is None else a
    b = a + 1 if b is None else b
    cand = [j for j in range(max(a, 0), min(b, len(words))) if words[j] < 0]
    if not cand:
        return None
    j = max(cand, key=lambda c: speech.end_s[c] - speech.start_s[c])
    return float(speech.start_s[j]), float(speech.end_s[j])
