"""What the audio stage measures and reports: loudness, join discontinuity, mel-cepstral distortion.

* Loudness: ITU-R BS.1770 (K-weighting, absolute -70 LUFS and relative -10 LU gates)
  through pyloudnorm, integrated over momentary-style blocks: 400 ms blocks with 75 %
  overlap, the BS.1770 momentary window. A span shorter than one block is measured
  as one block of its own length. New words last about a second, too short for the
  3 s short-term window, so both the new span and its surroundings use this measure.
* Join discontinuity: the largest sample-to-sample step in a join's region (its
  cross-fade, or 0.5 ms around a hard join), against the largest step in the 20 ms
  either side of it (the local signal's own steepness), in dB. At or below 0 dB the
  join jumps no more than the signal itself does there: no click. (Natural speech,
  measured at random points of the demo clip, exceeds 0 dB at about 1 % of them, at
  voice onsets.)
* MCD: mel-cepstral distortion between a reference and a test recording, the
  standard (10 / ln 10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2) dB per frame pair,
  averaged over the frame pairs of a DTW alignment of the two (c0, the level, is
  left out). 25 ms frames every 5 ms, from each recording's first to last speech frame.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyloudnorm

from stages.audio.dsp import HOP_S, frames_at, level_db, mel_cepstra

LOUDNESS_MEASURE = ("ITU-R BS.1770 gated loudness over 400 ms momentary blocks (75% overlap); "
                    "spans under 400 ms as one block")
DISCONTINUITY_MEASURE = ("steepest sample step in a join's cross-fade (+-0.5 ms) over the "
                         "steepest in the 20 ms either side, dB; <= 0 dB: no click")
CONTEXT_S = 0.02  # a join's steps are compared with the signal's this far either side
GUARD_MS = 0.5  # ...outside the join region widened by this each side
MIN_LOUDNESS_S = 0.05
STEP_FLOOR = 10 ** (-50 / 20)  # steps below -50 dBFS count as inaudible, whatever the context
MCD_ORDER = 24
MCD_SPEECH_DB = 40.0  # frames more than this below the recording's loudest are not speech


def loudness_lufs(x: np.ndarray, sr: int, block_s: float = 0.4) -> float:
    """BS.1770 gated loudness of float samples in [-1, 1] (NaN if too short or all gated)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < MIN_LOUDNESS_S * sr:
        return float("nan")
    block = min(block_s, (len(x) - 1) / sr)
    meter = pyloudnorm.Meter(sr, block_size=block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(meter.integrated_loudness(x))
    return value if np.isfinite(value) else float("nan")


def discontinuity_db(y: np.ndarray, lo: int, hi: int | None = None, sr: int = 16000,
                     guard_ms: float = GUARD_MS, context_ms: float = CONTEXT_S * 1000) -> float:
    """How far the steepest step in a join region [lo, hi) exceeds the local signal's, dB.

    The region is where two signals are mixed (a cross-fade), or just the join sample
    (``hi`` None); it is widened by ``guard_ms`` each side. The reference is the steepest
    step in the ``context_ms`` before and after it: two pitch periods even at 100 Hz.
    """
    y = np.asarray(y, dtype=np.float64)
    hi = lo if hi is None else hi
    g, c = max(1, int(round(guard_ms * sr / 1000))), int(round(context_ms * sr / 1000))
    step = np.abs(np.diff(y))  # step[k]: from sample k to k + 1
    a, b = max(0, lo - g), min(len(step), hi + g)
    near = step[a:b]
    around = np.r_[step[max(0, a - c):a], step[b:b + c]]
    if not len(near):
        return float("-inf")
    local = max(float(around.max(initial=0.0)), STEP_FLOOR)
    return float(20 * np.log10(max(float(near.max()), 1e-12) / local))


# --- mel-cepstral distortion -----------------------------------------------------------


def _speech_cepstra(x: np.ndarray, sr: int) -> np.ndarray:
    hop, length = int(round(HOP_S * sr)), int(round(0.025 * sr))
    frames = frames_at(np.asarray(x, float), np.arange(0, max(1, len(x) - length + 1), hop),
                       length)
    level = level_db(frames)
    speech = np.flatnonzero(level > level.max() - MCD_SPEECH_DB)
    frames = frames[speech[0]:speech[-1] + 1] if len(speech) else frames[:0]
    return mel_cepstra(frames, sr, MCD_ORDER)[:, 1:]


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest monotone path through a cost matrix (steps right, down, diagonal)."""
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        # acc[i, j] = cost[i, j] + min(acc[i-1, j-1], acc[i-1, j], acc[i, j-1]): the last
        # term is a running minimum, so each row is one prefix-min over cumulative sums.
        from_above = np.minimum(acc[i - 1], np.r_[np.inf, acc[i - 1, :-1]])
        s = np.cumsum(cost[i])
        acc[i] = s + np.minimum.accumulate(from_above - np.r_[0.0, s[:-1]])
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        options = []
        if i > 0 and j > 0:
            options.append((acc[i - 1, j - 1], i - 1, j - 1))
        if i > 0:
            options.append((acc[i - 1, j], i - 1, j))
        if j > 0:
            options.append((acc[i, j - 1], i, j - 1))
        _, i, j = min(options)
        path.append((i, j))
    rows, cols = zip(*reversed(path), strict=True)
    return np.asarray(rows), np.asarray(cols)


def mcd_db(reference: np.ndarray, test: np.ndarray, sr: int) -> float:
    """Mel-cepstral distortion (dB) of ``test`` against ``reference`` over DTW-aligned frames."""
    a, b = _speech_cepstra(reference, sr), _speech_cepstra(test, sr)
    if not len(a) or not len(b):
        return float("nan")
    sq = (a ** 2).sum(axis=1)[:, None] + (b ** 2).sum(axis=1)[None, :] - 2 * a @ b.T
    dist = np.sqrt(np.maximum(sq, 0.0))
    rows, cols = dtw_path(dist)
    return float(10 / np.log(10) * np.sqrt(2.0) * dist[rows, cols].mean())
