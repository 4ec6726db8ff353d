"""Confidence and transcript/audio mismatch detection on a stitched alignment.

A forced aligner always returns *some* alignment, even for the wrong words;
what betrays a mismatch is how it had to bend:
- a run of a few phones fits the audio much worse than the recording's other
  phones do (per-frame acoustic score, as a robust z-score within the recording:
  the clip is its own calibration, so a voice or a room that suits the acoustic
  model less moves every phone and flags none), and the aligner squeezed phones
  into the fewest frames it may give them (``span_badness``). A substituted word
  spoils every phone it is forced onto; a dictionary pronunciation the speaker
  does not use spoils one or two, so runs tell the two apart better than single
  phones or whole words do, and runs cross word boundaries (2-3 substituted words,
  an inserted filler);
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
# span_z holds for recordings of up to this many phone runs (the calibration passages:
# 30-37 words, at most 142 runs); longer ones raise it (span_threshold).
SPAN_REF_RUNS = 150
# Acoustic fit condemns words only in recordings with enough words to know what a
# typical fit is (25 words, ~80 phones; two 29-word calibration passages fell under 30).
MIN_FIT_WORDS = 25


@dataclass
class Assessment:
    word_score: np.ndarray  # [0, 1], 0.5 at mismatch_z robust SDs below typical; NaN without scores
    word_issue: list[str]  # "" when the word looks fine
    phone_score: np.ndarray
    phone_issue: list[str]
    worst_span: float = float("nan")  # the highest run badness
    span_bar: float = float("nan")  # runs over this are a mismatch (span_threshold)


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


def phone_badness(phone_z: np.ndarray, dur: np.ndarray, params: AlignParams) -> np.ndarray:
    """Each speech phone's fit z below typical (``-phone_z``), plus ``short_phone_weight``
    when it lasts under ``short_phone_s``."""
    return -phone_z + params.short_phone_weight * (dur < params.short_phone_s)


def span_badness(badness: np.ndarray, params: AlignParams) -> np.ndarray:
    """Badness of every run of ``span_phones`` consecutive speech phones (in time order):
    the run's sum / sqrt(span_phones), so a run of independent typical phones scores
    ~N(0, 1). Empty when there are fewer phones than a run."""
    k = params.span_phones
    if len(badness) < k:
        return np.zeros(0)
    total = np.concatenate([[0.0], np.cumsum(badness)])
    return (total[k:] - total[:-k]) / np.sqrt(k)


def span_threshold(runs: np.ndarray, params: AlignParams) -> float:
    """span_z, raised for recordings with more runs than the calibration passages so a
    correct long transcript is no likelier to hold one run over it than a short one.

    The maximum of n draws from a tail that falls e-fold per ``scale`` grows by
    ``scale * ln(n / m)`` from m draws to n; ``scale`` is measured on the recording itself
    (the mean excess of its runs over their span_tail_quantile: a voice or room whose runs
    spread wider gets a higher bar), since the calibration passages are too short to show
    a long recording's tail. A handful of wrong words moves the top 5 % of thousands of
    runs little."""
    if len(runs) <= SPAN_REF_RUNS:
        return params.span_z
    top = float(np.quantile(runs, params.span_tail_quantile))
    excess = runs[runs > top] - top
    scale = float(excess.mean()) if len(excess) else 0.0
    return params.span_z + scale * float(np.log(len(runs) / SPAN_REF_RUNS))


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

    # Runs of phones: the words of a run over the threshold fit poorly.
    speech_rows = np.flatnonzero(~is_sil & ~failed)
    badness = phone_badness(phone_z[speech_rows], dur[speech_rows], params)
    runs = span_badness(badness, params)
    poor_fit = np.zeros(n_words, bool)
    span_bar = span_threshold(runs, params)
    for r in np.flatnonzero(runs > span_bar) if judge_fit else ():
        # Name the run's words that add to its badness (a run reaches into good neighbours).
        in_run = word_index[speech_rows[r:r + params.span_phones]]
        per_word = np.bincount(in_run, badness[r:r + params.span_phones], minlength=n_words)
        poor_fit[np.unique(in_run[per_word[in_run] > 0])] = True
    worst_span = float(runs.max()) if len(runs) else float("nan")

    word_issue = [""] * n_words
    for i in range(n_words):
        if w_failed[i]:
            word_issue[i] = FAILED
        elif poor_fit[i]:
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
    return Assessment(word_score, word_issue, phone_score, phone_issue, worst_span, span_bar)
