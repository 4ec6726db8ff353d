"""Confidence and transcript/audio mismatch detection on a stitched alignment.

A forced aligner always returns *some* alignment, even for the wrong words;
what betrays a mismatch is how it had to bend:
- a word fits the audio much worse than the recording's other words do
  (per-frame acoustic score, as a robust z-score within the recording);
- a word lies in near-silence (the transcript has words the audio lacks);
- a "silence" holds speech-level energy (the audio has words the transcript lacks);
- a phone lasts implausibly long (the aligner stretched it over missing words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.align.config import AlignParams

FIT, NOT_HEARD, UNTRANSCRIBED, DURATION, FAILED = (
    "poor acoustic fit", "no speech heard", "untranscribed speech", "implausible duration",
    "alignment failed")
_MIN_SCALE = 5.0  # floor on the score spread (per-frame log-likelihood units) for short clips
# Acoustic fit alone condemns only words of at least this many phones: the mean
# score of "a" or "the" rests on a few frames and strays too far by chance.
MIN_FIT_PHONES = 3
# ... and only in recordings with enough words to know what a typical fit is.
MIN_FIT_WORDS = 30


@dataclass
class Assessment:
    word_score: np.ndarray  # [0, 1], 0.5 at the mismatch threshold; NaN without scores
    word_issue: list[str]  # "" when the word looks fine
    phone_score: np.ndarray
    phone_issue: list[str]


def _robust_z(values: np.ndarray, mask: np.ndarray,
              weight: np.ndarray | None = None) -> np.ndarray:
    """(value - median) / robust SD over ``mask``; ``weight`` widens the SD per item."""
    ref = values[mask & np.isfinite(values)]
    if len(ref) == 0:
        return np.full(len(values), np.nan)
    med = np.median(ref)
    scale = max(_MIN_SCALE, 1.4826 * float(np.median(np.abs(ref - med))))
    return (values - med) / (scale * (1.0 if weight is None else weight))


def _confidence(z: np.ndarray, threshold: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(z + threshold)))


def assess(word_index: np.ndarray, start: np.ndarray, end: np.ndarray, score: np.ndarray,
           speech: np.ndarray, failed: np.ndarray, n_words: int,
           params: AlignParams) -> Assessment:
    """Score every phone and word and name what looks wrong.

    Per phone: ``word_index`` (-1 for silence), times, per-frame acoustic
    ``score``, ``speech`` (fraction of speech-level frames) and ``failed``
    (its chunk could not be aligned and was spread evenly).
    """
    dur = np.maximum(end - start, 1e-3)
    is_sil = word_index < 0
    phone_z = np.where(is_sil, _robust_z(score, is_sil), _robust_z(score, ~is_sil))
    phone_score = _confidence(phone_z, params.mismatch_z)
    phone_issue = [""] * len(word_index)

    # Word-level measures: duration-weighted means over each word's phones.
    words = word_index[~is_sil]
    w_dur = np.bincount(words, dur[~is_sil], minlength=n_words)
    safe = np.maximum(w_dur, 1e-9)
    w_raw = np.bincount(words, (score * dur)[~is_sil], minlength=n_words) / safe
    w_speech = np.bincount(words, (speech * dur)[~is_sil], minlength=n_words) / safe
    w_phones = np.bincount(words, minlength=n_words)
    w_longest = np.zeros(n_words)
    np.maximum.at(w_longest, words, dur[~is_sil])
    w_failed = np.zeros(n_words, bool)
    w_failed[words[failed[~is_sil]]] = True
    # A short word's mean score rests on few frames and is noisier: widen its
    # spread by sqrt(typical length / its length), at most twofold.
    typical = float(np.median(w_dur[w_dur > 0])) if (w_dur > 0).any() else 1.0
    noise = np.clip(np.sqrt(typical / np.maximum(w_dur, 1e-3)), 1.0, 2.0)
    word_z = _robust_z(w_raw, ~w_failed & (w_dur > 0), noise)
    word_score = _confidence(word_z, params.mismatch_z)
    judge_fit = int((~w_failed & (w_dur > 0)).sum()) >= MIN_FIT_WORDS

    word_issue = [""] * n_words
    for i in range(n_words):
        if w_failed[i]:
            word_issue[i] = FAILED
        elif judge_fit and word_z[i] < -params.mismatch_z and w_phones[i] >= MIN_FIT_PHONES:
            word_issue[i] = FIT
        elif w_speech[i] < params.min_word_speech:
            word_issue[i] = NOT_HEARD
        elif w_longest[i] > params.max_phone_s:
            word_issue[i] = DURATION
    for k in np.flatnonzero(is_sil):
        if speech[k] * dur[k] >= params.untranscribed_s:
            phone_issue[k] = UNTRANSCRIBED
            # The words on either side of unexplained speech are suspect too.
            for j in (k - 1, k + 1):
                if 0 <= j < len(word_index) and word_index[j] >= 0 and not word_issue[word_index[j]]:
                    word_issue[word_index[j]] = UNTRANSCRIBED
    for k in np.flatnonzero(~is_sil):
        phone_issue[k] = word_issue[word_index[k]]
    word_score[w_failed] = 0.0
    phone_score[failed] = 0.0
    return Assessment(word_score, word_issue, phone_score, phone_issue)
