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
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import fft as sp_fft
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
BLOCK_FRAMES = 512  # STFT hops marked at a time (8 s at 16 kHz: about 15 MB of work arrays)


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


def embed_audio(pcm: np.ndarray, rate: int, key: str | bytes,
                depth: float = DEFAULT_AUDIO_DEPTH) -> np.ndarray:
    """A marked copy of mono int16 audio at any sample rate (same length, int16).

    At the default depth 0.2 (gain 1 +- 0.2, +-1.6 dB) the change is about 15.5 dB
    under speech; params.yaml ``watermark.audio_depth`` sets it."""
    if pcm.ndim != 1:
        raise ValueError(f"expected mono audio (n,), got shape {pcm.shape}")
    blocks = list(embed_audio_blocks(lambda a, b: pcm[a:b], len(pcm), rate, key, depth))
    return np.concatenate(blocks) if blocks else pcm.astype(np.int16)


def embed_audio_blocks(read: Callable[[int, int], np.ndarray], length: int, rate: int,
                       key: str | bytes, depth: float = DEFAULT_AUDIO_DEPTH,
                       block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """``embed_audio`` of the ``length`` samples ``read(start, stop)`` gives, yielded in
    order as int16 blocks of about ``block_frames`` STFT hops: memory is flat in the
    soundtrack's length.

    Sample for sample the one-pass transform's result (scipy's ``stft`` with even boundary
    extension and zero padding, the gains, ``istft``): each output sample is the
    overlap-add of the two Hann frames that cover it, over their squared windows;
    a block keeps only the samples both of whose frames it computed (consecutive blocks
    share one frame), and computes every frame by the same operations as the one pass.
    Audio of at most half a frame cannot carry the mark and is returned as it is."""
    if not 0.0 < depth <= MAX_AUDIO_DEPTH:
        raise TalkeditError(f"audio watermark depth {depth}", f"must be within (0, {MAX_AUDIO_DEPTH}]",
                            f"use the default {DEFAULT_AUDIO_DEPTH}")
    if rate < 2 * BAND_EDGES_HZ[-1]:
        raise TalkeditError(f"audio at {rate} Hz", "is too coarse to carry the audio watermark",
                            f"use at least {int(2 * BAND_EDGES_HZ[-1])} Hz")
    if block_frames < 2:
        raise ValueError(f"block_frames must be at least 2, got {block_frames}")
    n = 2 * round(FRAME_S * rate / 2)  # STFT frame
    hop = half = n // 2
    if length <= half:
        if length:
            yield np.asarray(read(0, length), dtype=np.int16)
        return
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    chips = audio_chips(key)
    band = _band_of_bins(sp_fft.rfftfreq(n, 1 / rate))
    marked_bins = band >= 0
    window = signal.get_window("hann", n)
    # As scipy's stft applies them: the window as complex, the 'spectrum' scale as the
    # complex square root of 1 / sum(window)^2
    window_c = window.astype(np.complex128)
    scale = np.sqrt(1.0 / window_c.sum() ** 2)
    # The padded signal: ``half`` samples mirrored at each end, then zeros up to whole hops.
    padded_len = length + 2 * half
    padded_len += (-(padded_len - n) % hop) % n
    frames_total = (padded_len - n) // hop + 1
    first = 0
    while True:
        stop = min(first + block_frames, frames_total)
        x = _padded(read, length, half, first * hop, (stop - 1) * hop + n)
        segments = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
        spec = sp_fft.rfft((window_c * segments).real, n=n)
        spec *= scale
        spec = np.moveaxis(spec, -1, 0)  # (bins, frames), as stft returns it
        times = (half + np.arange(first, stop) * hop) / float(rate) - half / rate
        block = np.floor(times / BLOCK_S).astype(np.int64) % PERIOD_BLOCKS
        gain = np.ones(spec.shape)
        gain[marked_bins] = 1.0 + depth * chips[block][:, band[marked_bins]].T
        pieces = sp_fft.irfft(spec * gain, axis=-2, n=n)[:n, :]
        pieces *= window.sum()  # istft's undoing of the scale
        pieces *= window[:, None]
        # Overlap-add: with a hop of half a frame, a sample is the second half of one frame
        # plus the first half of the next, over the two windows' squares (istft's loop adds
        # these same two terms to zero, so the sums are the same numbers). Kept: the padded
        # samples both of whose frames are in this block, inside the output.
        y = (pieces[half:, :-1] + pieces[:half, 1:]).ravel(order="F")
        norm = window[half:] ** 2 + window[:half] ** 2
        part = y / np.tile(np.where(norm > 1e-10, norm, 1.0), stop - first - 1)
        lo = max((first + 1) * hop, half) - (first + 1) * hop
        hi = min(stop * hop, length + half) - (first + 1) * hop
        if hi > lo:
            yield np.clip(np.round(part[lo:hi]), -32768, 32767).astype(np.int16)
        if stop == frames_total:
            return
        first = stop - 1


def _padded(read: Callable[[int, int], np.ndarray], length: int, half: int, start: int,
            stop: int) -> np.ndarray:
    """Samples [start, stop) of the signal extended as stft does: ``half`` samples
    mirrored about each end sample (scipy's even extension), then zeros."""
    at = np.arange(start, stop)
    i = np.abs(at - half)  # signal index of each padded sample
    i = np.where(i >= length, 2 * (length - 1) - i, i)
    inside = at < length + 2 * half
    out = np.zeros(stop - start)
    if inside.any():
        lo, hi = int(i[inside].min()), int(i[inside].max()) + 1
        out[inside] = np.asarray(read(lo, hi), dtype=np.float64)[i[inside] - lo]
    return out


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


Source = Callable[[], Iterable[np.ndarray]]
"""The signal to analyse (16 kHz, int16 scale) as blocks of samples in order; each call
starts it over. Detection reads it twice: the loudest frame sets the silence threshold."""

ANALYSIS_CHUNK_FRAMES = 256  # analysis frames at a time (4 s at 16 kHz: ~4 MB of work arrays)
ARRAY_BLOCK = 1 << 16  # samples an in-memory signal is handed over in


def _analysis_frame() -> tuple[int, int]:
    """Analysis frame length and hop, in samples at ANALYSIS_RATE."""
    n = 2 * round(FRAME_S * ANALYSIS_RATE / 2)
    return n, n // 2


def array_source(x: np.ndarray) -> Source:
    """An in-memory 16 kHz signal as a Source (slices: nothing is copied)."""
    return lambda: (x[i:i + ARRAY_BLOCK] for i in range(0, len(x), ARRAY_BLOCK))


def _frame_chunks(blocks: Iterable[np.ndarray], chunk_frames: int) -> Iterator[np.ndarray]:
    """The (frames, n) analysis windows, at hops of half a frame, of the signal in ``blocks``
    with a hop of zeros before it and a frame of zeros after (every sample is in two
    frames), ``chunk_frames`` frames at a time: only about one chunk of samples is held."""
    n, hop = _analysis_frame()
    need = (chunk_frames - 1) * hop + n  # samples that make a whole chunk of frames
    pending, held = [np.zeros(hop)], hop
    for block in itertools.chain(blocks, [np.zeros(n)]):
        pending.append(np.asarray(block, np.float64).reshape(-1))
        held += len(pending[-1])
        if held < need:
            continue
        x = np.concatenate(pending)
        frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
        whole = len(frames) // chunk_frames * chunk_frames
        yield from (frames[s:s + chunk_frames] for s in range(0, whole, chunk_frames))
        pending, held = [x[whole * hop:]], len(x) - whole * hop
    x = np.concatenate(pending)
    if len(x) >= n:
        yield np.lib.stride_tricks.sliding_window_view(x, n)[::hop]


def _energy_chunks(source: Source, chunk_frames: int) -> Iterator[np.ndarray]:
    """(frames, bands) energy of the analysis frames (Hann), a chunk of frames at a time."""
    n, _ = _analysis_frame()
    window = signal.get_window("hann", n)
    band = _band_of_bins(np.fft.rfftfreq(n, 1 / ANALYSIS_RATE))
    members = np.stack([band == b for b in range(len(BAND_EDGES_HZ) - 1)], axis=1)
    members = members.astype(np.float64)
    for frames in _frame_chunks(source(), chunk_frames):
        yield (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2) @ members


def _envelope_free(source: Source, peak: float, chunk_frames: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per chunk of frames: the log band energies less their envelope (a moving average
    over SPECTRAL_SMOOTH_BANDS bands, then over ENVELOPE_BLOCKS blocks of time), and which
    frames are loud (within SILENCE_DB of ``peak``, the loudest frame's energy). The moving
    average in time needs frames either side of a chunk: each chunk is held back until
    the next one brings them, so the values are the whole-signal filter's."""
    size = ENVELOPE_BLOCKS * round(BLOCK_S / (FRAME_S / 2))
    ahead = size - 1 - size // 2  # frames after a frame in its window (scipy's, origin 0)
    behind = size // 2
    floor = 1e-9 * max(peak, 1e-12)
    threshold = peak * 10 ** (SILENCE_DB / 10)
    held = np.zeros((0, len(BAND_EDGES_HZ) - 1))  # logs of frames [first, first + len)
    loud_held = np.zeros(0, bool)
    first = done = 0  # held's first frame; frames before ``done`` are out
    chunks = _energy_chunks(source, chunk_frames)
    for energy in itertools.chain(chunks, [None]):
        last = energy is None
        if not last:
            logs = np.log(energy + floor)
            logs -= uniform_filter1d(logs, SPECTRAL_SMOOTH_BANDS, axis=1, mode="nearest")
            held = np.concatenate([held, logs])
            loud_held = np.concatenate([loud_held, energy.sum(1) > threshold])
        stop = first + len(held) if last else first + len(held) - ahead
        if stop > done:
            # Frames near held's edges see the "nearest" padding only at the signal's ends.
            smooth = uniform_filter1d(held, size, axis=0, mode="nearest")
            yield (held - smooth)[done - first:stop - first], loud_held[done - first:stop - first]
            done = stop
        keep = max(done - behind, first)
        held, loud_held, first = held[keep - first:], loud_held[keep - first:], keep


@dataclass
class _Scan:
    """What the first read of a signal tells: its length and its loudest frame's energy."""

    samples: int
    peak: float

    @classmethod
    def of(cls, source: Source, chunk_frames: int) -> _Scan:
        samples = 0

        def counted() -> Iterator[np.ndarray]:
            nonlocal samples
            for block in source():
                samples += len(block)
                yield block

        peaks = [float(e.sum(1).max()) for e in _energy_chunks(counted, chunk_frames) if len(e)]
        return cls(samples, max(peaks, default=0.0))


def band_weights(pcm: np.ndarray, rate: int) -> np.ndarray:
    """(frames, bands) detection weights at 16 kHz: envelope-free, normalised, 0 in silence.
    (Detection folds them as they stream; this holds them all, for looking at.)"""
    source = array_source(resample(pcm, rate))
    scan = _Scan.of(source, ANALYSIS_CHUNK_FRAMES)
    parts = list(_envelope_free(source, scan.peak, ANALYSIS_CHUNK_FRAMES))
    if not parts:
        return np.zeros((0, len(BAND_EDGES_HZ) - 1))
    logs = np.concatenate([p[0] for p in parts])
    loud = np.concatenate([p[1] for p in parts]) if scan.peak > 0 else np.zeros(len(logs), bool)
    spread = logs[loud].std(0) if loud.any() else np.ones(logs.shape[1])
    return np.where(loud[:, None], logs / np.maximum(spread, 1e-6), 0.0)


def detect_audio(pcm: np.ndarray, rate: int, key: str | bytes, alpha: float = 1e-6) -> AudioDetection:
    """Look for the mark in mono audio at any rate (int16 or float scaled like int16)."""
    seconds = len(pcm) / rate if rate else 0.0
    if len(pcm) <= FRAME_S * rate * 4:
        return _detect(array_source(np.zeros(0)), key, alpha, seconds)
    return _detect(array_source(resample(pcm, rate)), key, alpha, seconds)


def detect_audio_file(path: str | Path, key: str | bytes, alpha: float = 1e-6
                      ) -> AudioDetection | None:
    """``detect_audio`` of a file's first audio stream, decoded as it is analysed (twice):
    memory is flat in the soundtrack's length. None when the file has no audio."""
    source = audio_source(path)
    return None if source is None else _detect(source, key, alpha)


def _detect(source: Source, key: str | bytes, alpha: float, seconds: float | None = None,
            chunk_frames: int = ANALYSIS_CHUNK_FRAMES) -> AudioDetection:
    """The detection statistic of a streamed 16 kHz signal (``seconds``: its length as the
    caller counts it; default its 16 kHz samples). Weights are folded onto the chip period
    as they come; each band's spread over the loud frames (which normalises the weights) is
    pooled chunk by chunk (Chan et al.'s update) and divides the folded sums at the end."""
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    hops_per_block = round(BLOCK_S / (FRAME_S / 2))
    hypotheses = hops_per_block * PERIOD_BLOCKS
    z_needed = math.sqrt(2 * math.log(hypotheses / alpha))
    scan = _Scan.of(source, chunk_frames)
    if seconds is None:
        seconds = scan.samples / ANALYSIS_RATE
    nothing = AudioDetection(False, 0.0, z_needed, 0.0, seconds, hypotheses, alpha)
    if scan.samples <= FRAME_S * ANALYSIS_RATE * 4 or scan.peak <= 0:
        return nothing
    chips = audio_chips(key)
    folded = np.zeros((hops_per_block, *chips.shape))  # per phase, before dividing by spread
    count, mean, m2 = 0, np.zeros(chips.shape[1]), np.zeros(chips.shape[1])
    marked = False  # any nonzero weight
    start = 0
    for logs, loud in _envelope_free(source, scan.peak, chunk_frames):
        frames = start + np.flatnonzero(loud)
        start += len(loud)
        part = logs[loud]
        if not len(part):
            continue
        marked = marked or bool(np.any(part))
        for phase in range(hops_per_block):
            np.add.at(folded[phase], ((frames + phase) // hops_per_block) % PERIOD_BLOCKS, part)
        part_mean = part.mean(0)
        delta, total = part_mean - mean, count + len(part)
        m2 += ((part - part_mean) ** 2).sum(0) + delta ** 2 * count * len(part) / total
        mean += delta * len(part) / total
        count = total
    if not marked:
        return nothing
    folded /= np.maximum(np.sqrt(m2 / count), 1e-6)
    best = -math.inf
    for per_phase in folded:
        norm = float(np.linalg.norm(per_phase))
        if norm == 0.0:
            continue
        # Every cyclic shift s at once: sum_k chips[(k + s) % P] . folded[k].
        per_shift = np.fft.irfft(np.conj(np.fft.rfft(per_phase, axis=0))
                                 * np.fft.rfft(chips, axis=0), PERIOD_BLOCKS, axis=0).sum(1)
        best = max(best, float(per_shift.max()) / norm)
    log10_p = min(0.0, math.log10(hypotheses) - best * best / 2 / math.log(10)) if best > 0 else 0.0
    return AudioDetection(log10_p <= math.log10(alpha), best, z_needed, log10_p, seconds,
                          hypotheses, alpha)


def audio_source(path: str | Path) -> Source | None:
    """A file's first audio stream as a Source: mono int16 blocks at 16 kHz, decoded afresh
    on each call. None if the file has no audio."""
    import av

    from talkedit.video import open_container

    with open_container(path) as container:
        if not container.streams.audio:
            return None

    def blocks() -> Iterator[np.ndarray]:
        with open_container(path) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=ANALYSIS_RATE)
            for frame in container.decode(container.streams.audio[0]):
                yield from (f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            yield from (f.to_ndarray().reshape(-1) for f in resampler.resample(None))

    return blocks


def read_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """A file's first audio stream as mono float samples (int16 scale) at 16 kHz; None if none."""
    source = audio_source(path)
    if source is None:
        return None
    chunks = list(source())
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return pcm.astype(np.float64), ANALYSIS_RATE
