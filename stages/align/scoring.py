"""Confidence and transcript/audio mismatch detection on a stitched alignment.

A forced aligner always returns *some* alignment, even for the wrong words;
what betrays a mismatch is how it had to bend:
- a run of a few phones fits the audio much worse than the recording's other
  phones do (per-frame acoustic score, as a robust z-score within the recording:
  the clip is its own calibration, so a voice or a room that suits the acoustic
  model less moves every phone and flags none), and the aligner squeezed phones
  into the fewest frames it may give them, or stretched or squeezed them far from
  how long this speaker makes the same phone elsewhere (``span_badness``). Both fit
  and length are measured against the recording's own other instances of the same
  phone (``by_phone``): espeak's R or a reduced "of" fits worse everywhere in a
  recording, which is the voice, not a wrong word. A substituted word
  spoils every phone it is forced onto; a dictionary pronunciation the speaker
  does not use spoils one or two, so runs tell the two apart better than single
  phones or whole words do, and runs cross word boundaries (2-3 substituted words,
  an inserted filler);
- a word lies in near-silence (the transcript has words the audio lacks);
- a "silence" holds speech-level energy (the audio has words the transcript lacks);
- a phone lasts implausibly long (the aligner stretched it over missing words);
- a filler ("um", "you know") squeezed far shorter than the speaker's phones
  (stages/align/fillers.py): the speaker did not say it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stages.align.config import AlignParams
from stages.align.fillers import filler_shares

FIT, NOT_HEARD, UNTRANSCRIBED, DURATION, FAILED, NOT_SAID = (
    "poor acoustic fit", "no speech heard", "untranscribed speech", "implausible duration",
    "alignment failed", "filler not in the audio")
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
    filler_share: list[float] = field(default_factory=list)  # per filler span (fillers.py)


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


def by_phone(values: np.ndarray, phones: np.ndarray, prior: float, centre: float) -> np.ndarray:
    """``values`` less their phone's typical value in this recording: the median over the
    phone's n instances, shrunk toward ``centre`` as if ``prior`` more instances sat there
    (a phone heard once is judged against the recording's overall centre, mostly)."""
    out = np.empty(len(values))
    kinds, which = np.unique(phones, return_inverse=True)
    for k in range(len(kinds)):
        mask = which == k
        n = int(mask.sum())
        out[mask] = values[mask] - (float(np.median(values[mask])) * n + centre * prior) / (n + prior)
    return out


def phone_badness(phone_z: np.ndarray, dur: np.ndarray, phones: np.ndarray,
                  params: AlignParams, joined: np.ndarray | None = None) -> np.ndarray:
    """Each speech phone's fit z below its phone's typical fit in the recording, plus
    ``short_phone_weight`` when it lasts under ``short_phone_s``, plus
    ``duration_weight`` per unit of |ln(duration / its phone's typical duration)|.

    ``joined`` marks a phone that repeats the one before it with no pause between
    ("nineteen ninety": N N): the speaker says one long phone and the aligner splits it
    anywhere, so the two are judged as one (their lengths summed, fits averaged by
    length) at the first, and the second adds nothing."""
    joined = np.zeros(len(dur), bool) if joined is None else joined
    group = np.cumsum(~joined) - 1
    first = np.flatnonzero(~joined)
    g_dur = np.bincount(group, dur)
    g_z = np.bincount(group, phone_z * dur) / g_dur
    g_phones = phones[first]
    fit = by_phone(g_z, g_phones, params.phone_type_prior, 0.0)
    log_dur = np.log(g_dur)
    centre = float(np.median(log_dur)) if len(log_dur) else 0.0
    length = np.abs(by_phone(log_dur, g_phones, params.phone_type_prior, centre))
    badness = np.zeros(len(dur))
    badness[first] = (-fit + params.short_phone_weight * (g_dur < params.short_phone_s)
                      + params.duration_weight * length)
    return badness


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


def assess(word_index: np.ndarray, phone: np.ndarray, start: np.ndarray, end: np.ndarray,
           score: np.ndarray, speech: np.ndarray, failed: np.ndarray, n_words: int,
           params: AlignParams, fillers: Sequence[tuple[int, int]] = ()) -> Assessment:
    """Score every phone and word and name what looks wrong.

    Per phone: ``word_index`` (-1 for silence), its ``phone`` label, times, per-frame acoustic
    ``score``, ``speech`` (fraction of speech-level frames) and ``failed``
    (its chunk could not be aligned and was spread evenly). ``fillers``: the (first, stop)
    words of each filler in the transcript (stages/align/fillers.py).
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
    # A phone repeating the one just before it continues it, also across a "pause" the
    # aligner put in the middle that holds speech (its length then counts to the phone).
    rows_dur = dur[speech_rows]
    same = phone[speech_rows][1:] == phone[speech_rows][:-1]
    gap = np.diff(speech_rows)
    between = np.minimum(speech_rows[:-1] + 1, len(dur) - 1)
    bridged = (gap == 2) & is_sil[between] & (speech[between] >= 0.5)
    joined = np.concatenate([[False], same & ((gap == 1) | bridged)])
    rows_dur[1:] += np.where(joined[1:] & bridged, dur[between], 0.0)
    badness = phone_badness(phone_z[speech_rows], rows_dur, phone[speech_rows], params, joined)
    runs = span_badness(badness, params)
    poor_fit = np.zeros(n_words, bool)
    span_bar = span_threshold(runs, params)
    for r in np.flatnonzero(runs > span_bar) if judge_fit else ():
        # Name the run's words that add to its badness (a run reaches into good neighbours).
        in_run = word_index[speech_rows[r:r + params.span_phones]]
        per_word = np.bincount(in_run, badness[r:r + params.span_phones], minlength=n_words)
        poor_fit[np.unique(in_run[per_word[in_run] > 0])] = True
    worst_span = float(runs.max()) if len(runs) else float("nan")
    # Fillers squeezed far under the speaker's phone length were not said.
    shares = filler_shares(fillers, word_index[speech_rows], dur[speech_rows])
    unsaid = np.zeros(n_words, bool)
    for (first, stop), share in zip(fillers, shares, strict=True):
        unsaid[first:stop] |= share < params.filler_min_share

    word_issue = [""] * n_words
    for i in range(n_words):
        if w_failed[i]:
            word_issue[i] = FAILED
        elif unsaid[i]:
            word_issue[i] = NOT_SAID
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
    return Assessment(word_score, word_issue, phone_score, phone_issue, worst_span, span_bar,
                      shares)
