"""Query timing: how long the speaker would take to say each new phone.

espeak-ng speaks the new words in their sentence (``talkedit.espeak.synthesize``
reports each phone's exact duration in its own audio). Its durations are then
rescaled to this speaker: a phone's factor is the speaker's median duration of it
(speaker_rate.parquet, from the aligner) over espeak's median duration of it when
speaking the clip's own transcript, shrunk towards the overall factor when either side
has seen the phone only a few times.

The new words' phones are the lexicon's (the aligner's ``pronounce``), so they are the
same phone set the clip was aligned with; espeak's phones for a word are matched to
them with difflib, and a word keeps espeak's total duration.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stages.align.normalize import NO_BREAK, SENTENCE_BREAK, SpokenWord, speakable
from stages.recording import RecordingTimer
from talkedit.espeak import Synthesis, synthesize
from talkedit.phonemes import SILENCE

log = logging.getLogger(__name__)
MIN_PHONE_S = 0.01


@dataclass
class QueryPhone:
    phone: str  # ARPAbet without stress, or "sil"
    stress: int
    duration_s: float  # rescaled to the speaker
    tts_duration_s: float  # as espeak-ng said it
    word_position: int  # edited spoken-word index; -1 for a pause
    word: str  # "" for a pause


def _median_durations(synth: Synthesis) -> pd.DataFrame:
    rows = [(p.phone, p.end_s - p.start_s) for p in synth.phones if p.word_index >= 0]
    df = pd.DataFrame(rows, columns=["phone", "d"])
    return df.groupby("phone")["d"].agg(["median", "count"])


class RateModel:
    """Per-phone factor from espeak-ng's durations to the speaker's."""

    def __init__(self, speaker: pd.DataFrame, tts: pd.DataFrame, prior: float) -> None:
        speaker = speaker.set_index("phone")
        common = [p for p in tts.index if p in speaker.index and p != SILENCE
                  and speaker.at[p, "median_s"] > 0]
        if common:
            s_med = speaker.loc[common, "median_s"].to_numpy(float)
            t_med = tts.loc[common, "median"].to_numpy(float)
            n = np.minimum(speaker.loc[common, "count"].to_numpy(float),
                           tts.loc[common, "count"].to_numpy(float))
            # Overall factor: total speaker time over total espeak time for the same counts.
            self.overall = float((n * s_med).sum() / max((n * t_med).sum(), 1e-9))
            own = s_med / t_med
            shrunk = (n * own + prior * self.overall) / (n + prior)
            self.factors = dict(zip(common, shrunk, strict=True))
        else:
            self.overall, self.factors = 1.0, {}
        self.tts_median = {p: float(v) for p, v in tts["median"].items()}

    def factor(self, phone: str) -> float:
        return self.factors.get(phone, self.overall)

    @classmethod
    def measure(cls, speaker_rate: pd.DataFrame, transcript: Sequence[SpokenWord], voice: str,
                rate_wpm: int, prior: float, max_words: int) -> RateModel:
        synth = synthesize(speakable(transcript[:max_words]), voice=voice, rate_wpm=rate_wpm,
                           timings_only=True)  # the phones' durations only
        return cls(speaker_rate, _median_durations(synth), prior)


def _word_durations(lexicon: list[str], tts: list[tuple[str, float]],
                    typical: Callable[[str], float]) -> np.ndarray:
    """espeak's word duration spread over the lexicon's phones (difflib-matched)."""
    tts_phones = [p for p, _ in tts]
    tts_d = np.array([d for _, d in tts], dtype=float)
    out = np.array([typical(p) for p in lexicon], dtype=float)
    matcher = difflib.SequenceMatcher(None, lexicon, tts_phones, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out[i1:i2] = tts_d[j1:j2]
        elif tag == "replace":  # unlike phones: share espeak's time by typical durations
            out[i1:i2] *= tts_d[j1:j2].sum() / max(out[i1:i2].sum(), 1e-9)
    total = tts_d.sum()
    if total > 0 and out.sum() > 0:
        out *= total / out.sum()  # the word lasts as long as espeak said it
    return np.maximum(out, MIN_PHONE_S)


def time_words(edited: Sequence[SpokenWord], first: int, end: int,
               prons: Sequence[list[tuple[str, int]]], rates: RateModel, voice: str,
               rate_wpm: int, context_words: int,
               pause_before: bool, pause_after: bool,
               alternatives: Sequence[Sequence[list[tuple[str, int]]]] | None = None
               ) -> list[QueryPhone]:
    """Timed phones of edited words [first, end), spoken in their sentence.

    ``prons[k]`` is the lexicon's pronunciation of edited word k (as [(phone, stress)]);
    ``alternatives[k]``, when given, all its pronunciations: the one closest to what
    espeak-ng says in the sentence is used ("read the book": R IY D, not the past tense
    R EH D the lexicon lists first), so the mouth is planned for the word as spoken.

    Pauses espeak makes between the new words are kept; one before (after) them only
    when ``pause_before`` (``pause_after``): the edited text breaks there and the clip
    has no pause of its own at that cut.
    """
    lo = first
    while lo > 0 and first - lo < context_words and edited[lo - 1].break_after != SENTENCE_BREAK:
        lo -= 1
    hi = end
    while hi < len(edited) and hi - end < context_words and (
            edited[hi - 1].break_after != SENTENCE_BREAK):
        hi += 1
    # At least one neighbour each side, so espeak says the pauses at the span's edges.
    lo, hi = min(lo, max(first - 1, 0)), max(hi, min(end + 1, len(edited)))
    window = list(edited[lo:hi])
    synth = synthesize(speakable(window), voice=voice, rate_wpm=rate_wpm)
    if len(synth.words) != len(window):
        log.warning("espeak-ng split %r into %d words, not %d: timing by typical durations",
                    speakable(window), len(synth.words), len(window))
        synth = None
    out: list[QueryPhone] = []
    for pos in range(first, end):
        word = edited[pos]
        tts = ([(p.phone, p.end_s - p.start_s) for p in synth.phones
                if p.word_index == pos - lo] if synth else [])
        lexicon = prons[pos]
        if alternatives is not None and tts:
            lexicon = closest_pronunciation([lexicon, *alternatives[pos]], [p for p, _ in tts])
        durations = _word_durations([p for p, _ in lexicon], tts,
                                    lambda p: rates.tts_median.get(p, 0.08))
        if pos > first and synth is not None:
            gap = _pause_between(synth, pos - 1 - lo, pos - lo)
            if gap > 0:
                out.append(QueryPhone(SILENCE, -1, gap * rates.overall, gap, -1, ""))
        for (phone, stress), d in zip(lexicon, durations, strict=True):
            out.append(QueryPhone(phone, stress, d * rates.factor(phone), d, pos, word.text))
    if synth is not None and pause_before and first > lo:
        gap = _pause_between(synth, first - 1 - lo, first - lo)
        if gap > 0:
            out.insert(0, QueryPhone(SILENCE, -1, gap * rates.overall, gap, -1, ""))
    if synth is not None and pause_after and edited[end - 1].break_after > NO_BREAK:
        gap = _pause_between(synth, end - 1 - lo, end - lo) if end < hi else _final_pause(synth)
        if gap > 0:
            out.append(QueryPhone(SILENCE, -1, gap * rates.overall, gap, -1, ""))
    return out


def closest_pronunciation(candidates: Sequence[list[tuple[str, int]]], said: list[str]
                          ) -> list[tuple[str, int]]:
    """The candidate whose phones match ``said`` best (the first one on a tie)."""
    def score(pron: list[tuple[str, int]]) -> float:
        return difflib.SequenceMatcher(None, [p for p, _ in pron], said, autojunk=False).ratio()

    return max(candidates, key=score)  # max keeps the first of equal scores


def _pause_between(synth: Synthesis, left: int, right: int) -> float:
    """Seconds of pause espeak put between two of its words (after the left one's last phone)."""
    last = max((k for k, p in enumerate(synth.phones) if p.word_index == left), default=None)
    if last is None:
        return 0.0
    total = 0.0
    for p in synth.phones[last + 1:]:
        if p.word_index == right or p.word_index > right:
            break
        if p.phone == SILENCE:
            total += p.end_s - p.start_s
    return total


def _final_pause(synth: Synthesis) -> float:
    tail = synth.phones[-1] if synth.phones else None
    return tail.end_s - tail.start_s if tail is not None and tail.phone == SILENCE else 0.0


def recorded_phones(timer: RecordingTimer, edited: Sequence[SpokenWord], first: int, end: int
                    ) -> list[QueryPhone]:
    """The new words [first, end) as timed query phones, with the user's recording's
    durations and the pauses it makes between them (instead of the synthesizer's)."""
    phones = timer.recording.phones.sort_values("start_s").reset_index(drop=True)
    rec_words = list(timer.word_map(first, end).values())
    inside = phones[(phones["word_index"] >= rec_words[0]) | (phones["word_index"] < 0)]
    out: list[QueryPhone] = []
    started = False
    for row in inside.itertuples():
        w = int(row.word_index)
        if w > rec_words[-1]:
            break
        d = float(row.end_s - row.start_s)
        if w >= 0:
            started = True
            pos = first + (w - rec_words[0])
            out.append(QueryPhone(str(row.phone), int(row.stress), d, d, pos, edited[pos].text))
        elif started and row.phone == SILENCE:  # a pause between two of the new words
            out.append(QueryPhone(SILENCE, -1, d, d, -1, ""))
    while out and out[-1].phone == SILENCE:
        out.pop()
    return out
