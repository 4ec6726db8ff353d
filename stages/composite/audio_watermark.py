"""Audio watermark on the edited soundtrack (``talkedit-audio-v1``): found on the audio alone.

The new words of an edit are synthetic speech, so the soundtrack is marked too.
A keyed ±1 chip per (time block, frequency band) raises or lowers that band's
magnitude by ``depth`` (a gain of 1 ± depth: ±1.6 dB at 0.2) over the block.
Forty bands span 300-3800 Hz (kept by AAC at 64 kbps and by any resampling
down to 8 kHz); blocks are 64 ms. The chip grid repeats every
``PERIOD_BLOCKS`` blocks (4.1 s), so a trimmed, delayed (codec priming) or
resampled copy is found by a cyclic search, not by knowing where the file
started.

Detection resamples to 16 kHz, takes the log band energies of 32 ms frames,
removes the speech envelope (moving averages over neighbouring bands and over
time), normalises each band by its spread, zeroes silent frames, folds the
frames onto one period for each of the 4 frame phases within a block, and
correlates with the chips at every cyclic shift.
For one (phase, shift) the folded weights are a function of the audio alone and
the chips are fair ±1, so Hoeffding bounds the statistic by exp(-z^2/2) for
any audio; the union bound over the 256 hypotheses gives the reported p.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from stages.composite.watermark import DEFAULT_AUDIO_DEPTH, MAX_AUDIO_DEPTH
from talkedit.errors import TalkeditError

SCHEME = "talkedit-audio-v1"
ANALYSIS_RATE = 16000
FRAME_S = 0.032  # STFT frame; hop is half of it
BLOCK_S = 0.064  # one chip per band lasts a block (4 hops)
PERIOD_BLOCKS = 64  # the chip grid repeats every 4.096 s
BAND_EDGES_HZ = np.geomspace(300.0, 3800.0, 41)  # 40 bands, about 6 % wide each
# Envelope removal, chosen on espeak speech after AAC 64 kbps (z 10.3 and 6.2 on two 8 s
# sentences at depth 0.15, against 4.7 and 5.0 with 20 bands, 128 ms blocks and a
# 5-block envelope): a moving average over 3 blocks in time and over 3 bands.
ENVELOPE_BLOCKS = 3
SPECTRAL_SMOOTH_BANDS = 3
SILENCE_DB = -45.0  # frames this far under the loudest are ignored


@lru_cache(maxsize=8)
def audio_chips(key: bytes) -> np.ndarray:
    """(PERIOD_BLOCKS, bands) keyed ±1 chips."""
    seed = hashlib.sha256(b"|".join([SCHEME.encode(), key]))
    rng = np.random.default_rng(np.frombuffer(seed.digest(), np.uint32))
    return rng.integers(0, 2, (PERIOD_BLOCKS, len(BAND_EDGES_HZ) - 1)).astype(np.float64) * 2 - 1


def _band_of_bins(freqs: np.ndarray) -> np.ndarray:
    """Band index per STFT bin, -1 outside the marked range."""
    band = np.searchsorted(BAND_EDGES_HZ, freqs, side="right") - 1
    band[(freqs < BAND_EDGES_HZ[0]) | (freqs >= BAND_EDGES_HZ[-1])] = -1
    return band


def _stft(pcm: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = 2 * round(FRAME_S * rate / 2)
    return signal.stft(pcm, rate, window="hann", nperseg=n, noverlap=n // 2, boundary="even")


def embed_audio(pcm: np.ndarray, rate: int, key: str | bytes,
                depth: float = DEFAULT_AUDIO_DEPTH) -> np.ndarray:
    """A marked copy of mono int16 audio at any sample rate (same length, int16).

    At the default depth 0.2 (gain 1 +- 0.2, +-1.6 dB) the change is about 15.5 dB
    under speech; params.yaml ``watermark.audio_depth`` sets it."""
    if pcm.ndim != 1:
        raise ValueError(f"expected mono audio (n,), got shape {pcm.shape}")
    if not 0.0 < depth <= MAX_AUDIO_DEPTH:
        raise TalkeditError(f"audio watermark depth {depth}", f"must be within (0, {MAX_AUDIO_DEPTH}]",
                            f"use the default {DEFAULT_AUDIO_DEPTH}")
    if rate < 2 * BAND_EDGES_HZ[-1]:
        raise TalkeditError(f"audio at {rate} Hz", "is too coarse to carry the audio watermark",
                            f"use at least {int(2 * BAND_EDGES_HZ[-1])} Hz")
    if len(pcm) == 0:
        return pcm.astype(np.int16)
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    x = pcm.astype(np.float64)
    freqs, times, spec = _stft(x, rate)
    band = _band_of_bins(freqs)
    block = np.floor(times / BLOCK_S).astype(np.int64) % PERIOD_BLOCKS
    chips = audio_chips(key)[block]  # (frames, bands)
    gain = np.ones(spec.shape)
    marked_bins = band >= 0
    gain[marked_bins] = 1.0 + depth * chips[:, band[marked_bins]].T
    _, y = signal.istft(spec * gain, rate, window="hann", nperseg=2 * round(FRAME_S * rate / 2),
                        noverlap=round(FRAME_S * rate / 2))
    y = y[: len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


@dataclass
class AudioDetection:
    detected: bool
    z: float
    z_needed: float
    log10_p: float
    seconds: float
    hypotheses: int
    alpha: float


def resample(pcm: np.ndarray, rate: int, target: int = ANALYSIS_RATE) -> np.ndarray:
    if rate == target:
        return pcm.astype(np.float64)
    ratio = Fraction(target, rate).limit_denominator(1000)
    return signal.resample_poly(pcm.astype(np.float64), ratio.numerator, ratio.denominator)


def band_energies(x: np.ndarray, chunk_frames: int = 4096) -> np.ndarray:
    """(frames, bands) energy of 16 kHz audio in Hann frames of FRAME_S at half-frame hops,
    computed a chunk of frames at a time (a long soundtrack never holds its whole STFT)."""
    n = 2 * round(FRAME_S * ANALYSIS_RATE / 2)
    hop = n // 2
    padded = np.pad(np.asarray(x, np.float64), (hop, n))
    count = max(0, (len(padded) - n) // hop + 1)
    window = signal.get_window("hann", n)
    band = _band_of_bins(np.fft.rfftfreq(n, 1 / ANALYSIS_RATE))
    n_bands = len(BAND_EDGES_HZ) - 1
    members = np.stack([band == b for b in range(n_bands)], axis=1).astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n)[::hop][:count]
    out = np.empty((count, n_bands))
    for start in range(0, count, chunk_frames):
        power = np.abs(np.fft.rfft(frames[start:start + chunk_frames] * window, axis=1)) ** 2
        out[start:start + chunk_frames] = power @ members
    return out


def band_weights(pcm: np.ndarray, rate: int) -> np.ndarray:
    """(frames, bands) detection weights at 16 kHz: envelope-free, normalised, 0 in silence."""
    energy = band_energies(resample(pcm, rate))
    n_bands = energy.shape[1]
    total = energy.sum(1)
    loud = total > total.max() * 10 ** (SILENCE_DB / 10) if total.size and total.max() > 0 else \
        np.zeros(total.shape, bool)
    logs = np.log(energy + 1e-9 * max(float(total.max(initial=0.0)), 1e-12))
    logs -= uniform_filter1d(logs, SPECTRAL_SMOOTH_BANDS, axis=1, mode="nearest")
    hops_per_block = round(BLOCK_S / (FRAME_S / 2))
    logs -= uniform_filter1d(logs, ENVELOPE_BLOCKS * hops_per_block, axis=0, mode="nearest")
    spread = logs[loud].std(0) if loud.any() else np.ones(n_bands)
    return np.where(loud[:, None], logs / np.maximum(spread, 1e-6), 0.0)


def detect_audio(pcm: np.ndarray, rate: int, key: str | bytes, alpha: float = 1e-6) -> AudioDetection:
    """Look for the mark in mono audio at any rate (int16 or float scaled like int16)."""
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    hops_per_block = round(BLOCK_S / (FRAME_S / 2))
    hypotheses = hops_per_block * PERIOD_BLOCKS
    z_needed = math.sqrt(2 * math.log(hypotheses / alpha))
    seconds = len(pcm) / rate if rate else 0.0
    weights = band_weights(pcm, rate) if len(pcm) > FRAME_S * rate * 4 else np.zeros((0, 1))
    if not np.any(weights):
        return AudioDetection(False, 0.0, z_needed, 0.0, seconds, hypotheses, alpha)
    chips = audio_chips(key)
    frames = np.arange(len(weights))
    best = -math.inf
    for phase in range(hops_per_block):
        block = ((frames + phase) // hops_per_block) % PERIOD_BLOCKS
        folded = np.zeros_like(chips)
        np.add.at(folded, block, weights)
        norm = float(np.linalg.norm(folded))
        if norm == 0.0:
            continue
        # Every cyclic shift s at once: sum_k chips[(k + s) % P] . folded[k].
        per_shift = np.fft.irfft(np.conj(np.fft.rfft(folded, axis=0)) * np.fft.rfft(chips, axis=0),
                                 PERIOD_BLOCKS, axis=0).sum(1)
        best = max(best, float(per_shift.max()) / norm)
    log10_p = min(0.0, math.log10(hypotheses) - best * best / 2 / math.log(10)) if best > 0 else 0.0
    return AudioDetection(log10_p <= math.log10(alpha), best, z_needed, log10_p, seconds,
                          hypotheses, alpha)


def read_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """A file's first audio stream as mono float samples (int16 scale) at 16 kHz; None if none."""
    import av

    from talkedit.video import open_container

    with open_container(path) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=ANALYSIS_RATE)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return pcm.astype(np.float64), ANALYSIS_RATE
