"""A second voice in the recording: words whose pitch is not the speaker's.

The aligner fits the transcript to whatever it hears; someone else talking over the
speaker passes as the speaker's words (a forced aligner has no notion of who speaks).
The speaker's voice has a pitch range of its own: each word's median F0 (from a
normalised autocorrelation, 10 ms frames) is compared with the recording's median over
all words, as a robust z-score. Several such words close together are reported, so the
edit is not silent about them. Single words are not: emphasis or a question lifts one
word's pitch without anyone else speaking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stages.align.audio import RATE, Audio16k

HOP = RATE // 100  # 10 ms frames
WINDOW = int(0.04 * RATE)  # 40 ms: two periods of an 50 Hz voice
F0_RANGE_HZ = (60.0, 400.0)
MIN_PERIODICITY = 0.45  # normalised autocorrelation at the period: below it, unvoiced
MIN_VOICED_FRAMES = 5  # a word with fewer voiced frames has no pitch of its own
BLOCK = 10 * RATE  # samples analysed at a time: memory stays flat however long the clip


def pitch_track(audio: Audio16k) -> np.ndarray:
    """F0 (Hz) of every 10 ms frame, NaN where unvoiced or silent."""
    lo, hi = int(RATE / F0_RANGE_HZ[1]), int(RATE / F0_RANGE_HZ[0])
    n_frames = max(0, (audio.n_samples - WINDOW) // HOP + 1)
    f0 = np.full(n_frames, np.nan)
    for start, block in audio.blocks(BLOCK, overlap=WINDOW):
        x = block.astype(np.float64) / 32768.0
        first = start // HOP
        n = min(n_frames - first, (len(x) - WINDOW) // HOP + 1, BLOCK // HOP)
        if n <= 0:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][:n]
        frames = frames - frames.mean(axis=1, keepdims=True)
        ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * WINDOW)) ** 2)[:, :WINDOW]
        energy = ac[:, 0]
        lag = lo + np.argmax(ac[:, lo:hi], axis=1)
        periodicity = ac[np.arange(n), lag] / np.maximum(energy, 1e-12)
        voiced = (periodicity > MIN_PERIODICITY) & (energy > 1e-6 * WINDOW)
        f0[first:first + n] = np.where(voiced, RATE / lag, np.nan)
    return f0


@dataclass(frozen=True)
class OtherVoice:
    start_s: float
    end_s: float
    words: int  # words in the run whose pitch is off
    median_z: float  # their median pitch z (> 0: higher than the speaker)


def word_pitch_z(words: pd.DataFrame, f0: np.ndarray) -> np.ndarray:
    """Each word's median log-F0 as a robust z-score against the recording's words."""
    log_f0 = np.log(f0)
    per_word = np.full(len(words), np.nan)
    in_words = np.zeros(len(f0), bool)
    for i, (a, b) in enumerate(zip(words["start_s"], words["end_s"], strict=True)):
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        lo, hi = int(a * 100), int(np.ceil(b * 100))
        in_words[lo:hi] = True
        voiced = log_f0[lo:hi][np.isfinite(log_f0[lo:hi])]
        if len(voiced) >= MIN_VOICED_FRAMES:
            per_word[i] = np.median(voiced)
    ref = log_f0[in_words & np.isfinite(log_f0)]
    if len(ref) < 10 * MIN_VOICED_FRAMES:
        return np.full(len(words), np.nan)
    centre = np.median(ref)
    scale = max(1.4826 * float(np.median(np.abs(ref - centre))), 0.02)  # 0.02: ~2 % of F0
    return (per_word - centre) / scale


def other_voices(audio: Audio16k, words: pd.DataFrame, z: float, min_words: int,
                 window_s: float) -> list[OtherVoice]:
    """Runs of at least ``min_words`` words with |pitch z| > ``z``, each within
    ``window_s`` of the next: where another voice may be speaking."""
    if z <= 0 or len(words) == 0:
        return []
    pitch_z = word_pitch_z(words, pitch_track(audio))
    odd = np.flatnonzero(np.abs(np.nan_to_num(pitch_z)) > z)
    starts, ends = words["start_s"].to_numpy(float), words["end_s"].to_numpy(float)
    runs: list[list[int]] = []
    for i in odd:
        if runs and starts[i] - ends[runs[-1][-1]] <= window_s:
            runs[-1].append(int(i))
        else:
            runs.append([int(i)])
    return [OtherVoice(round(float(starts[r[0]]), 2), round(float(ends[r[-1]]), 2), len(r),
                       round(float(np.median(pitch_z[r])), 1))
            for r in runs if len(r) >= min_words]
