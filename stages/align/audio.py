"""Audio in: WAV files read in blocks (never whole), converted to 16 kHz mono int16.

The aligner's acoustic model wants 16 kHz 16-bit mono. A WAV that is already
that is read in place; anything else (float, 24-bit, stereo, 44.1 kHz...) is
converted block by block into a temporary file, so a one-hour recording never
sits in memory. ``Audio16k`` is the one interface the rest of the stage reads
through; ``ArrayAudio`` wraps an in-memory recording the same way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)

RATE = 16000
HOP = 160  # 10 ms analysis frames, the acoustic model's frame rate
WIN = 400  # 25 ms analysis window
BLOCK = RATE * 20  # samples per read: bounds memory whatever the recording's length

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
# The first two bytes of WAVE_FORMAT_EXTENSIBLE's sub-format GUID carry the real format.
_SUBFORMATS = {_PCM: "pcm", _FLOAT: "float"}


class Audio16k(ABC):
    """16 kHz mono int16 samples, read by range."""

    sample_rate = RATE

    def __init__(self, n_samples: int) -> None:
        self.n_samples = n_samples

    @property
    def duration_s(self) -> float:
        return self.n_samples / RATE

    @abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as int16 (shorter at the end of the recording)."""

    def blocks(self, size: int = BLOCK, overlap: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(start, samples) blocks covering the recording; each overlaps the next by ``overlap``."""
        for start in range(0, self.n_samples, size):
            yield start, self.read(start, min(self.n_samples, start + size + overlap))


class ArrayAudio(Audio16k):
    """An in-memory recording: int16, or float in [-1, 1]."""

    def __init__(self, samples: np.ndarray, name: str = "audio array") -> None:
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise TalkeditError(name, f"has shape {samples.shape}; a mono 1-D array is expected",
                                "pass one channel (e.g. samples.mean(axis=1))")
        if samples.dtype.kind == "f":
            samples = float_to_int16(samples, name)
        elif samples.dtype != np.int16:
            raise TalkeditError(name, f"has dtype {samples.dtype}",
                                "pass int16 samples or float samples in [-1, 1]")
        super().__init__(len(samples))
        self.samples = samples

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.samples[start:stop]


class FileAudio(Audio16k):
    """int16 mono 16 kHz samples stored in a file at a byte offset (a WAV's data chunk)."""

    def __init__(self, path: Path, offset: int, n_samples: int) -> None:
        super().__init__(n_samples)
        self.path, self.offset = path, offset

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.n_samples, stop)
        if stop <= start:
            return np.zeros(0, np.int16)
        return np.fromfile(self.path, dtype="<i2", count=stop - start,
                           offset=self.offset + 2 * start).astype(np.int16, copy=False)


def float_to_int16(x: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise TalkeditError(name, "holds NaN or infinite samples",
                            "re-export the audio; the file is corrupt")
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype(np.int16)


@dataclass(frozen=True)
class WavInfo:
    path: Path
    sample_rate: int
    channels: int
    kind: str  # pcm | float
    bits: int
    n_frames: int
    data_offset: int

    @property
    def is_native(self) -> bool:
        """Already 16 kHz mono 16-bit PCM: read in place."""
        return (self.sample_rate, self.channels, self.kind, self.bits) == (RATE, 1, "pcm", 16)

    def describe(self) -> str:
        return f"{self.sample_rate} Hz, {self.channels} channel(s), {self.bits}-bit {self.kind}"


def read_wav_info(path: Path) -> WavInfo:
    """Parse a RIFF/WAVE header; one clear error for anything we cannot read."""
    fix = "give a WAV file (PCM or float); the extract stage writes one at data/interim/<clip>/audio.wav"
    if not path.is_file():
        raise TalkeditError(path, "not found", "run the extract stage first (dvc repro)")
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise TalkeditError(path, "is not a WAV file (no RIFF/WAVE header)", fix)
        fmt: tuple[int, int, int, int] | None = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise TalkeditError(path, "has no audio data chunk", fix)
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(size + (size & 1))
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == _EXTENSIBLE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, rate, bits)
            elif cid == b"data":
                if fmt is None:
                    raise TalkeditError(path, "has its data before its format chunk", fix)
                offset = f.tell()
                break
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
    tag, channels, rate, bits = fmt
    kind = _SUBFORMATS.get(tag)
    if kind is None or (kind == "pcm" and bits not in (8, 16, 24, 32)) or (
            kind == "float" and bits not in (32, 64)):
        raise TalkeditError(path, f"uses WAV format tag {tag:#x} with {bits}-bit samples, "
                                  "which this reader does not decode",
                            "convert it to 16-bit PCM, e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav")
    if channels < 1 or rate < 4000:
        raise TalkeditError(path, f"declares {channels} channels at {rate} Hz", fix)
    frame_bytes = channels * bits // 8
    # A streamed WAV may declare size 0 or 0xFFFFFFFF: trust the file's length instead.
    available = path.stat().st_size - offset
    n_frames = (min(size, available) if 0 < size < 0xFFFFFFFF else available) // frame_bytes
    if n_frames == 0:
        raise TalkeditError(path, "holds no samples", "re-extract the audio (dvc repro extract)")
    return WavInfo(path, rate, channels, kind, bits, n_frames, offset)


def _decode(raw: bytes, info: WavInfo) -> np.ndarray:
    """Raw frames -> float64 mono in [-1, 1]."""
    if info.kind == "float":
        x = np.frombuffer(raw, dtype="<f4" if info.bits == 32 else "<f8").astype(np.float64)
    elif info.bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif info.bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)
    else:
        dtype = "<i2" if info.bits == 16 else "<i4"
        x = np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(1 << (info.bits - 1))
    return x.reshape(-1, info.channels).mean(axis=1)


def _iter_frames(info: WavInfo, block: int = BLOCK) -> Iterator[np.ndarray]:
    frame_bytes = info.channels * info.bits // 8
    with open(info.path, "rb") as f:
        f.seek(info.data_offset)
        left = info.n_frames
        while left > 0:
            n = min(block, left)
            yield _decode(f.read(n * frame_bytes), info)
            left -= n


class StreamResampler:
    """Polyphase resampling of a stream, block by block, equal to resampling it whole.

    Each block is filtered with ``pad`` input samples of context on both sides
    (more than the filter's half length) and trimmed, so block seams vanish.
    Blocks are cut at multiples of ``down`` so output sample phases line up.
    """

    def __init__(self, rate_in: int, rate_out: int = RATE) -> None:
        g = math.gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        half = 10 * max(self.up, self.down) / self.up  # resample_poly's default filter, in input samples
        self.pad = self.down * math.ceil((half + 2) / self.down)

    def run(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        buf = np.zeros(0)
        buf_start = 0  # input index of buf[0]; always a multiple of down
        emitted = 0  # input index up to which output has been produced
        for block in blocks:
            buf = np.concatenate([buf, block])
            ready = (buf_start + len(buf) - self.pad) // self.down * self.down
            if ready > emitted:
                yield self._segment(buf, buf_start, emitted, ready, final=False)
                emitted = ready
                drop = max(0, emitted - self.pad - buf_start)
                buf, buf_start = buf[drop:], buf_start + drop
        end = buf_start + len(buf)
        if end > emitted:
            yield self._segment(buf, buf_start, emitted, end, final=True)

    def _segment(self, buf: np.ndarray, buf_start: int, a: int, b: int,
                 final: bool) -> np.ndarray:
        """Output for input [a, b), filtered with context taken from ``buf``."""
        # Imported here: scipy.signal costs workers, which never resample, 60 MB.
        from scipy.signal import resample_poly

        lo = max(buf_start, a - self.pad)
        hi = buf_start + len(buf) if final else b + self.pad
        y = resample_poly(buf[lo - buf_start:hi - buf_start], self.up, self.down)
        first = (a - lo) * self.up // self.down
        n_out = (-(-b * self.up // self.down) if final else b * self.up // self.down) \
            - a * self.up // self.down
        return y[first:first + n_out]


@contextlib.contextmanager
def open_wav(path: str | Path, tmp_dir: Path | None = None) -> Iterator[tuple[Audio16k, list[str]]]:
    """The recording as 16 kHz mono int16, and notes on any conversion done.

    Conversion happens in blocks into a temporary raw file that is removed on exit.
    """
    path = Path(path)
    info = read_wav_info(path)
    if info.is_native:
        yield FileAudio(path, info.data_offset, info.n_frames), []
        return
    notes = [f"converted {path.name} from {info.describe()} to 16000 Hz mono 16-bit"]
    if info.sample_rate != RATE:
        notes.append(f"resampled from {info.sample_rate} Hz to {RATE} Hz")
    scale = 1.0
    if info.kind == "float":
        peak = 0.0
        for x in _iter_frames(info):
            if not np.all(np.isfinite(x)):
                raise TalkeditError(path, "holds NaN or infinite samples",
                                    "re-export the audio; the file is corrupt")
            peak = max(peak, float(np.abs(x).max(initial=0.0)))
        if peak > 1.0:
            scale = 1.0 / peak  # unnormalised float audio: scale down rather than clip
            notes.append(f"float samples peaked at {peak:.2f}; scaled by {scale:.3f} to fit")
    for note in notes:
        log.warning("%s", note)
    fd, tmp_name = tempfile.mkstemp(prefix=".align16k.", suffix=".raw", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        n = 0
        with os.fdopen(fd, "wb") as out:
            blocks = (x * scale for x in _iter_frames(info))
            if info.sample_rate != RATE:
                blocks = StreamResampler(info.sample_rate).run(blocks)
            for y in blocks:
                pcm = (np.clip(y, -1.0, 1.0) * 32767.0).round().astype("<i2")
                out.write(pcm.tobytes())
                n += len(pcm)
        yield FileAudio(tmp, 0, n), notes
    finally:
        tmp.unlink(missing_ok=True)


def frame_energy_db(samples: np.ndarray) -> np.ndarray:
    """Log energy (dB re. 1 LSB²) of 25 ms frames every 10 ms; frame k starts at sample k*HOP."""
    x = samples.astype(np.float64)
    n = max(0, (len(x) - WIN) // HOP + 1)
    if n == 0:
        return np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(n) * HOP
    return 10.0 * np.log10((c[starts + WIN] - c[starts]) / WIN + 1.0)


def high_band_db(audio: Audio16k, above_hz: float = 4200.0) -> float:
    """Share of the recording's power above ``above_hz``, in dB, read block by block.

    Telephone and other 8 kHz audio (upsampled) holds almost nothing over 4 kHz
    (an AAC phone call: -43 dB) where full-band speech holds -20 to -30 dB.
    """
    from scipy import signal

    high = total = 0.0
    for _, x in audio.blocks(BLOCK):
        if len(x) < 512:
            continue
        freqs, power = signal.welch(x.astype(np.float64), RATE, nperseg=512)
        high += float(power[freqs > above_hz].sum()) * len(x)
        total += float(power.sum()) * len(x)
    return 10.0 * math.log10(high / total) if high > 0 and total > 0 else -math.inf


def envelope(audio: Audio16k) -> np.ndarray:
    """Frame energies over the whole recording, read block by block (float32, 400 B/s)."""
    parts = [frame_energy_db(x)[: BLOCK // HOP] for _, x in audio.blocks(BLOCK, WIN - HOP)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
