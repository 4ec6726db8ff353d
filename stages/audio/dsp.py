"""Signal analysis for the audio stage: WAV in and out, resampling, pitch, pitch marks, features.

Everything works on float samples in [-1, 1] at one rate (the clip's audio rate),
one 5 ms frame grid, and numpy batches of frames, so that analysing a few hundred
candidate units or a few seconds of speech costs milliseconds.

Pitch is YIN (de Cheveigné & Kawahara 2002): the cumulative-mean-normalized
difference function, its first dip below a threshold, refined by parabolic
interpolation. Pitch marks (one per glottal period, at the period's peak of the
low-passed wave) are what PSOLA cuts its grains around.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import butter, resample_poly, sosfiltfilt

from stages.align.audio import read_wav_info
from talkedit.atomic import atomic_path
from talkedit.errors import TalkeditError

HOP_S = 0.005  # analysis frame step
F0_MIN_HZ, F0_MAX_HZ = 60.0, 400.0  # adult speech
YIN_THRESHOLD = 0.2  # a dip of the normalized difference below this is a period
VOICED_MIN_DBFS = -50.0  # quieter frames are never voiced (their "pitch" is noise)
FULL_SCALE = 32768.0
MARK_LOWPASS_HZ = 700.0  # pitch marks sit on the peaks of the wave below this


@dataclass
class ClipAudio:
    """The clip's audio.wav, memory-mapped: reading a few units never loads the whole file."""

    samples: np.ndarray  # int16 mono
    sample_rate: int
    path: Path
    data_offset: int | None = None  # where the samples start in ``path`` (None: in memory)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as stored (int16; zeros outside the recording), read from
        the file rather than the memory map: streaming a long clip through this leaves
        none of its pages resident."""
        out = np.zeros(max(0, stop - start), dtype=np.int16)
        a, b = max(start, 0), min(stop, len(self.samples))
        if b > a:
            out[a - start:b - start] = (
                self.samples[a:b] if self.data_offset is None else
                np.fromfile(self.path, dtype="<i2", count=b - a, offset=self.data_offset + 2 * a))
        return out

    def region(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float in [-1, 1]; zeros outside the recording."""
        out = np.zeros(max(0, stop - start))
        a, b = max(start, 0), min(stop, len(self.samples))
        if b > a:
            out[a - start:b - start] = self.samples[a:b] / FULL_SCALE
        return out


def read_clip_audio(path: Path) -> ClipAudio:
    info = read_wav_info(Path(path))
    if (info.kind, info.bits, info.channels) != ("pcm", 16, 1):
        raise TalkeditError(path, f"is {info.describe()}, not 16-bit mono PCM",
                            "re-run the extract stage, which writes 16-bit mono")
    samples = np.memmap(path, dtype="<i2", mode="r", offset=info.data_offset,
                        shape=(info.n_frames,))
    return ClipAudio(samples, info.sample_rate, Path(path), info.data_offset)


def write_wav(path: Path, samples: np.ndarray | Iterable[np.ndarray], sample_rate: int) -> None:
    """16-bit mono WAV, written atomically; ``samples`` whole or as consecutive blocks."""
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        for block in [samples] if isinstance(samples, np.ndarray) else samples:
            wav.writeframes(np.asarray(block, dtype="<i2").tobytes())


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * FULL_SCALE), -32768, 32767).astype(np.int16)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    g = gcd(rate_in, rate_out)
    return resample_poly(np.asarray(x, dtype=np.float64), rate_out // g, rate_in // g)


def frames_at(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Windows x[s:s + length] for each start (zeros where they leave the signal)."""
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros((0, length))
    lo = min(0, int(starts.min()))
    hi = max(len(x), int(starts.max()) + length)
    padded = np.zeros(hi - lo)
    padded[-lo:-lo + len(x)] = x
    return padded[(starts - lo)[:, None] + np.arange(length)]


# --- pitch --------------------------------------------------------------------------------


def yin_sizes(sr: int) -> tuple[int, int]:
    """(integration window, longest lag) in samples."""
    return int(round(0.025 * sr)), int(np.ceil(sr / F0_MIN_HZ))


def yin(frames: np.ndarray, sr: int) -> np.ndarray:
    """f0 (Hz) of each frame (rows of window + longest lag samples); 0 where unvoiced."""
    n, length = frames.shape
    window, tau_max = yin_sizes(sr)
    if n == 0:
        return np.zeros(0)
    assert length >= window + tau_max, "frames too short for YIN"
    tau_min = int(np.floor(sr / F0_MAX_HZ))
    nfft = 1 << int(np.ceil(np.log2(length + window)))
    spec = np.fft.rfft(frames, nfft) * np.conj(np.fft.rfft(frames[:, :window], nfft))
    corr = np.fft.irfft(spec, nfft)[:, :tau_max + 1]  # sum_j x[j] x[j + tau], j < window
    energy = np.concatenate([np.zeros((n, 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_lag = energy[:, taus + window] - energy[:, taus]
    diff = np.maximum(energy[:, [window]] + e_lag - 2 * corr, 0.0)
    run = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(run, 1e-12)
    cmnd[:, :tau_min] = 1.0
    # First dip below the threshold, then down to its local minimum.
    below = cmnd < YIN_THRESHOLD
    voiced = below.any(axis=1)
    tau = np.where(voiced, below.argmax(axis=1), 0)
    rows = np.arange(n)
    for _ in range(tau_max):
        step = voiced & (tau < tau_max) & (cmnd[rows, np.minimum(tau + 1, tau_max)]
                                           < cmnd[rows, tau])
        if not step.any():
            break
        tau = tau + step
    # Parabolic interpolation of the dip.
    t0 = np.clip(tau, 1, tau_max - 1)
    a, b, c = cmnd[rows, t0 - 1], cmnd[rows, t0], cmnd[rows, t0 + 1]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    period = t0 + np.clip(shift, -0.5, 0.5)
    level = 10 * np.log10(energy[:, window] / window + 1e-12)
    voiced &= level > VOICED_MIN_DBFS
    return np.where(voiced, sr / np.maximum(period, 1.0), 0.0)


def f0_track(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """f0 of frames centred every ``hop`` samples from x[0] (0 where unvoiced)."""
    window, tau_max = yin_sizes(sr)
    length = window + tau_max
    centres = np.arange(0, len(x), hop)
    return yin(frames_at(x, centres - length // 2, length), sr)


def pitch_marks(x: np.ndarray, sr: int, f0: np.ndarray, hop: int) -> np.ndarray:
    """One mark per glottal period in the voiced stretches of ``x`` (sample indices).

    Marks follow the f0 track period by period, each snapped to the peak of the
    low-passed wave within a fifth of a period of where the track predicts it.
    """
    if not (f0 > 0).any():
        return np.zeros(0, dtype=np.int64)
    sos = butter(2, MARK_LOWPASS_HZ, btype="low", fs=sr, output="sos")
    low = sosfiltfilt(sos, x) if len(x) > 12 else x
    marks: list[int] = []
    voiced = f0 > 0
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        lo, hi = max(0, a * hop - hop // 2), min(len(x), b * hop + hop // 2)
        period = sr / f0[a]
        if marks:  # a stretch right after another: at least half a period after its last mark
            lo = max(lo, marks[-1] + int(0.5 * period))
        if lo >= hi:
            continue
        first = lo + int(np.argmax(low[lo:min(hi, lo + int(period) + 1)]))
        m = first
        while m < hi:
            marks.append(m)
            k = min(int(round(m / hop)), len(f0) - 1)
            period = sr / f0[k] if f0[k] > 0 else period
            guess = m + period
            half = max(1, int(0.2 * period))
            s, e = int(guess) - half, min(len(x), int(guess) + half + 1)
            if s >= hi or e <= s:
                break
            m = s + int(np.argmax(low[s:e]))
    return np.asarray(marks, dtype=np.int64)


# --- frame features -----------------------------------------------------------------------

ENVELOPE_QUEFRENCY_S = 0.002  # envelope lifter: below a 500 Hz voice's period
_MCEP_ALPHA = {8000: 0.31, 11025: 0.357, 16000: 0.42, 22050: 0.455, 24000: 0.466,
               32000: 0.504, 44100: 0.544, 48000: 0.554}  # all-pass warping ~ mel scale (SPTK)


def mcep_alpha(sr: int) -> float:
    rate = min(_MCEP_ALPHA, key=lambda r: abs(r - sr))
    return _MCEP_ALPHA[rate]


def mel_cepstra(frames: np.ndarray, sr: int, order: int = 24) -> np.ndarray:
    """Mel-cepstra c0..c_order of each frame (natural-log amplitude, SPTK's convention).

    The spectral envelope (the log amplitude spectrum, cepstrally smoothed below the
    shortest pitch period so harmonics do not count) is resampled onto the
    all-pass-warped (mel-like) frequency axis and turned into a cepstrum:
    log|H(w~)| = c0 + sum_m c_m cos(m w~).
    """
    n, length = frames.shape
    nfft = max(512, 1 << int(np.ceil(np.log2(length))))
    spec = np.abs(np.fft.rfft(frames * np.hanning(length), nfft))
    cep_lin = np.fft.irfft(np.log(np.maximum(spec, 1e-7)), nfft)
    cut = max(1, int(ENVELOPE_QUEFRENCY_S * sr))
    cep_lin[:, cut + 1:nfft - cut] = 0.0
    log_amp = np.fft.rfft(cep_lin, nfft).real
    alpha = mcep_alpha(sr)
    warped = np.linspace(0.0, np.pi, nfft // 2 + 1)
    linear = warped - 2 * np.arctan(alpha * np.sin(warped) / (1 + alpha * np.cos(warped)))
    grid = np.linspace(0.0, np.pi, nfft // 2 + 1)
    idx = np.clip(np.searchsorted(grid, linear) - 1, 0, len(grid) - 2)
    frac = (linear - grid[idx]) / (grid[1] - grid[0])
    log_warped = log_amp[:, idx] * (1 - frac) + log_amp[:, idx + 1] * frac
    cep = np.fft.irfft(log_warped, nfft)[:, :order + 1]
    cep[:, 1:] *= 2.0
    return cep


def level_db(frames: np.ndarray) -> np.ndarray:
    """Mean-square level of each frame, dBFS (a full-scale sine is -3 dB)."""
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
