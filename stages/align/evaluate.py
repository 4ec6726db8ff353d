"""Alignment accuracy against known truth (synthetic clips from talkedit.espeak.synthesize).

The synthesizer's phone string can differ from the lexicon's (other
pronunciation, a dropped word-final phone), so sequences are matched first
(minimum edit distance, within a time band) and only boundaries whose phones
on both sides matched are scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from talkedit.espeak import synthesize

# espeak-ng times a voiceless stop from its release burst and gives the silent closure
# before it to the previous phone; aligners (and TIMIT-trained ones like the paper's
# P2FA) put the closure in the stop, where the lips of a /p/ are actually shut. Errors
# at boundaries into these phones are mostly that convention, so they are also
# reported apart.
CLOSURE_CONVENTION = frozenset({"p", "t", "k", "ch"})


@dataclass(frozen=True)
class BoundaryErrors:
    signed_s: np.ndarray  # aligned - truth, per matched boundary
    n_truth: int  # boundaries in the truth
    into: tuple[str, ...] = ()  # per boundary: the (truth) phone or word that follows it

    @property
    def abs_ms(self) -> np.ndarray:
        return np.abs(self.signed_s) * 1000

    @property
    def matched(self) -> int:
        return len(self.signed_s)

    @property
    def mae_ms(self) -> float:
        return float(self.abs_ms.mean())

    @property
    def median_ms(self) -> float:
        return float(np.median(self.abs_ms))

    def within(self, ms: float) -> float:
        return float((self.abs_ms <= ms).mean())

    def excluding(self, labels: frozenset[str] = CLOSURE_CONVENTION) -> BoundaryErrors:
        """The boundaries not followed by one of ``labels`` (a word: by its first phone)."""
        keep = np.array([lab not in labels for lab in self.into], dtype=bool)
        return BoundaryErrors(self.signed_s[keep], self.n_truth,
                              tuple(lab for lab, k in zip(self.into, keep, strict=True) if k))

    def __repr__(self) -> str:
        return (f"MAE {self.mae_ms:5.1f} ms  median {self.median_ms:5.1f} ms  "
                f"<=20 ms {100 * self.within(20):5.1f}%  matched {self.matched}/{self.n_truth}")

    @staticmethod
    def concat(parts: Sequence[BoundaryErrors]) -> BoundaryErrors:
        return BoundaryErrors(np.concatenate([p.signed_s for p in parts]),
                              sum(p.n_truth for p in parts),
                              tuple(lab for p in parts for lab in p.into))


# Reference clips for accuracy checks (tests and benchmarks/align.py): different voices,
# rates across 130-190 wpm, different texts. Kept apart from any text used for tuning.
REFERENCE_CLIPS: list[tuple[str, str, int]] = [
    ("Thanks for joining me today. I want to show you how we turned a messy spreadsheet into a "
     "simple dashboard that the whole team actually uses. It took two weeks, a lot of coffee, "
     "and more meetings than I would like to admit.", "en-us", 160),
    ("My grandmother kept a garden behind her house for almost forty years. Every spring she "
     "planted tomatoes, beans and sunflowers, and every autumn she gave most of the harvest "
     "away to her neighbours.", "en-us+f3", 135),
    ("The city council voted on Tuesday to build a new bridge across the river. Supporters say "
     "it will cut travel times in half, while critics worry about the cost and the noise during "
     "construction.", "en-gb-x-rp", 185),
]


_SUBJECTS = ["The new manager", "My brother", "Our small team", "A local farmer", "The old teacher",
             "Every visitor", "The quiet neighbor", "Her younger sister", "The city library",
             "A curious student", "The night nurse", "His best friend", "The tired driver",
             "A famous painter", "The school band", "Our landlord"]
_VERBS = ["painted", "repaired", "described", "carried", "ordered", "borrowed", "cleaned",
          "studied", "measured", "delivered", "photographed", "moved", "sold", "found",
          "checked", "wrapped"]
_OBJECTS = ["the wooden fence", "a bright red bicycle", "three boxes of apples",
            "the broken window", "a long letter", "the evening news", "two cups of coffee",
            "the garden path", "an old map of the harbor", "the kitchen table",
            "a pair of muddy boots", "the blue curtains", "a basket of fresh bread",
            "the heavy piano", "a dozen paper lanterns", "the family car"]
_ADVERBIALS = ["before lunch", "on a rainy Tuesday", "without any help", "in the middle of the night",
               "after the meeting", "near the station", "with great care", "for almost an hour",
               "during the holidays", "at the end of the week", "while everyone was asleep",
               "under the bright lights", "as quickly as possible", "behind the museum",
               "just before the storm", "in front of the whole class"]


def practice_text(n_words: int, seed: int = 0) -> str:
    """Plain English sentences, about ``n_words`` long, rarely repeating (for long test audio)."""
    rng = np.random.default_rng(seed)
    sentences: list[str] = []
    count = 0
    while count < n_words:
        subj, verb, obj, adv = (str(rng.choice(x)) for x in (_SUBJECTS, _VERBS, _OBJECTS,
                                                              _ADVERBIALS))
        if rng.random() < 0.3:
            obj2 = str(rng.choice(_OBJECTS))
            sentence = f"{subj} {verb} {obj} {adv}, and then {verb} {obj2} too."
        else:
            sentence = f"{subj} {verb} {obj} {adv}."
        sentences.append(sentence)
        count += len(sentence.split())
    return " ".join(sentences)


@dataclass(frozen=True)
class SyntheticClip:
    """Speech with exact truth: espeak-ng's audio at 16 kHz and its own phone/word events."""

    text: str
    samples: np.ndarray  # int16, 16 kHz
    phones: pd.DataFrame  # word_index, phone, stress, start_s, end_s ("sil" for pauses)
    words: pd.DataFrame  # word, start_s, end_s

    @property
    def duration_s(self) -> float:
        return len(self.samples) / 16000


def synthetic_clip(text: str, voice: str = "en-us", rate_wpm: int = 160) -> SyntheticClip:
    """Synthesize ``text`` and resample to 16 kHz, as the demo clip and the extract stage do."""
    syn = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    g = np.gcd(16000, syn.sample_rate)
    x = resample_poly(syn.samples.astype(np.float64), 16000 // g, syn.sample_rate // g)
    samples = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    phones = pd.DataFrame([vars(p) for p in syn.phones])
    words = pd.DataFrame({"word": [w.text for w in syn.words],
                          "start_s": [w.start_s for w in syn.words],
                          "end_s": [w.end_s for w in syn.words]})
    return SyntheticClip(text, samples, phones, words)


def matched_pairs(a: Sequence[str], a_time: np.ndarray, b: Sequence[str], b_time: np.ndarray,
                  band_s: float = 1.0) -> list[tuple[int, int]]:
    """Index pairs of equal labels in a best alignment (longest common subsequence).

    Only items within ``band_s`` of each other in time may be paired: that keeps
    the dynamic program linear in length (an hour of phones is fine), and a
    repeated sentence can never be matched to its other occurrence.
    """
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return []
    a_arr, b_arr = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    b_time = np.asarray(b_time, dtype=float)
    lo = np.searchsorted(b_time, np.asarray(a_time) - band_s, "left")  # 0-based b index
    hi = np.maximum(np.searchsorted(b_time, np.asarray(a_time) + band_s, "right"), lo + 1)
    inf = 10**9
    # Row i (1..n) holds D[i][j] for j in [lo_i, hi_i] (1-based j = b index + 1), plus j = 0.
    prev_lo, prev = 0, np.arange(m + 1, dtype=np.int64)  # row 0: D[0][j] = j
    moves: list[tuple[int, np.ndarray]] = []
    for i in range(1, n + 1):
        j0, j1 = int(lo[i - 1]) + 1, int(min(hi[i - 1], m))  # band of j, 1-based inclusive
        js = np.arange(j0, j1 + 1)

        def prev_at(j: np.ndarray, p_lo: int = prev_lo, p: np.ndarray = prev) -> np.ndarray:
            k = j - p_lo
            ok = (k >= 0) & (k < len(p))
            return np.where(ok, p[np.clip(k, 0, len(p) - 1)], inf)

        # A substitution costs two gaps: the alignment then maximises matched pairs (LCS).
        cost = 2 * (a_arr[i - 1] != b_arr[js - 1]).astype(np.int64)
        diag = prev_at(js - 1) + cost
        up = prev_at(js) + 1
        best = np.minimum(diag, up)
        move = np.where(diag <= up, 0, 1)  # 0 diagonal, 1 up (skip a[i-1])
        left_start = i if j0 == 1 else inf  # D[i][0] = i when the band reaches column 0
        x = np.concatenate([[left_start if j0 == 1 else inf], best])
        # D[i][j] = min(x_j, D[i][j-1] + 1): a running minimum of x_k + (j - k).
        ks = np.arange(len(x))
        run = np.minimum.accumulate(x - ks) + ks
        left = run[1:] < best
        row = np.where(left, run[1:], best)
        moves.append((j0, np.where(left, 2, move).astype(np.int8)))  # 2: left (skip b[j-1])
        prev_lo, prev = j0 - 1, np.concatenate([[i if j0 == 1 else inf], row])
    # Trace back from the best end of the last row.
    pairs: list[tuple[int, int]] = []
    i, j = n, int(prev_lo + np.argmin(prev + (m - (prev_lo + np.arange(len(prev))))))
    while i > 0 and j > 0:
        j0, mv = moves[i - 1]
        if j < j0 or j - j0 >= len(mv):
            break
        step = mv[j - j0]
        if step == 0:
            if a[i - 1] == b[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _mid(df: pd.DataFrame) -> np.ndarray:
    return ((df["start_s"] + df["end_s"]) / 2).to_numpy(dtype=float)


def phone_boundary_errors(aligned: pd.DataFrame, truth: pd.DataFrame) -> BoundaryErrors:
    """Errors of the boundaries between consecutive phones (pauses included as "sil")."""
    pairs = matched_pairs(aligned["phone"].str.lower().tolist(), _mid(aligned),
                          truth["phone"].str.lower().tolist(), _mid(truth))
    hyp_end, true_end = aligned["end_s"].to_numpy(), truth["end_s"].to_numpy()
    labels = truth["phone"].str.lower().tolist()
    kept = [(i, j) for (i, j), (i2, j2) in zip(pairs, pairs[1:], strict=False)
            if i2 == i + 1 and j2 == j + 1]
    return BoundaryErrors(np.array([hyp_end[i] - true_end[j] for i, j in kept]),
                          max(0, len(truth) - 1), tuple(labels[j + 1] for _, j in kept))


def word_boundary_errors(aligned: pd.DataFrame, truth: pd.DataFrame) -> BoundaryErrors:
    """Errors of word starts and ends, for words matched by spelling (``normalized`` vs ``word``).

    A boundary is labelled by the first phone of the word starting there (``pron``
    of the aligned word; a word's end by the next word's), for ``excluding``.
    """
    clean = [re.sub(r"[^a-z']", "", w.lower()) for w in truth["word"]]
    pairs = matched_pairs(aligned["normalized"].tolist(), _mid(aligned), clean, _mid(truth))
    first = [p.split()[0].rstrip("012").lower() if p else "" for p in aligned.get(
        "pron", pd.Series([""] * len(aligned)))]
    errs, into = [], []
    for i, j in pairs:
        errs += [aligned["start_s"].iat[i] - truth["start_s"].iat[j],
                 aligned["end_s"].iat[i] - truth["end_s"].iat[j]]
        into += [first[i], first[i + 1] if i + 1 < len(first) else ""]
    return BoundaryErrors(np.array(errs), 2 * len(truth), tuple(into))
