"""Invisible keyed spread-spectrum watermark in luma that survives geometry (DESIGN.md §4, §6).

Every rendered talkedit frame carries it; ``talkedit verify`` finds it again
after re-encoding (H.264 CRF 30), crops of up to 10 % per edge, a horizontal
(or vertical) flip, rescaling (0.25x-2x, also to another aspect ratio; 0.25x
only with a re-encode kinder than CRF 30), frame rate conversion and small
rotations (benchmarks/watermark.py measures each), and reads back a 32-bit id that links the
video to its provenance manifest.

The scheme (``talkedit-ss-v2``), and why:

* **A periodic tile.** A keyed ``TILE_CELLS`` x ``TILE_CELLS`` grid of ±1
  chips is repeated over the whole frame, cubic-upsampled to a smooth pattern.
  Cells are ``1/CELLS_SHORT_SIDE`` of the frame's short side (5.6 px at
  720p), so a plain rescale keeps the pattern where it was relative to the
  frame. The repetition is the synchronisation template (a self-referencing
  mark, Kutter 1999): the autocorrelation of the received frame peaks at the
  tile's lattice vectors, whatever crop, rescale, aspect change or small
  rotation happened. The tile's size is a trade: the statistic of a folded
  tile cannot exceed sqrt(sync cells) (11.3 for 16x16 cells, measured z 9.7
  at 720p/CRF 30; 40x40 gave 21), while the lattice needs about three
  repetitions per side to show in the autocorrelation.
* **Static.** The pattern does not change over time: it rides along in
  skipped H.264 blocks (a pattern that changed every frame tripled the bitrate
  of a still clip), and frame-rate conversion, trims or dropped frames do not
  matter to a detector that sums all frames.
* **Perceptual masking.** Amplitude follows a luminance-adaptation JND model
  with a mild texture term, normalised so every frame gets the same RMS change
  (``strength`` levels: PSNR = 20 log10(255 / strength), 42 dB at 2.0), added
  equally to R, G and B so only luma changes.
* **Detection.** Each frame is area-resized to a working size where a cell is
  ``WORK_CELL_PX`` px (so the work per frame is the same at any resolution),
  high-passed and divided by its local variance (the locally optimal detector
  for a non-stationary host), and summed over frames into one residual image.
  Its autocorrelation gives up to ``VECTOR_CANDIDATES`` candidates for each
  of the two lattice vectors (near-horizontal, near-vertical; refined on the
  2nd and 3rd lattice points); of their pairs, and of the square lattices
  each one makes alone, the ``LATTICE_CANDIDATES`` whose lattice points light
  up the autocorrelation most, plus the untouched geometry, are tried. For
  each lattice the residual is folded into one tile (``FOLD_BINS`` bins per
  cell side), and the sync statistic
  ``Z = sum_i chip_i * U_i / ||U||`` over the tile's sync cells is computed
  for every cyclic shift and each of the four flips (FFT correlation).
* **False-positive bound.** For one hypothesis (lattice, flip, shift), the
  folded weights ``U`` are a function of the video alone and the chips are
  independent fair ±1, so ``Z`` is a Rademacher sum and Hoeffding gives
  ``P(Z >= z) <= exp(-z^2 / 2)`` for any video content. The lattice candidates
  come from the video alone (no key), so a union bound over every hypothesis
  tried (lattices x 4 flips x shifts) bounds the chance that an unmarked
  video scores the maximum found. The untouched geometry (nominal lattice, no
  flip, tile at the origin: 25 alignments) is a second family that shares
  alpha with the search (half each), so a plain rescale or re-encode needs
  z >= 6.0 where the full search needs 7.6.
* **Payload.** Half of the tile's cells are sync; the rest carry a 32-bit id
  plus CRC-16, encoded with the K=7 rate-1/2 convolutional code (133, 171)
  and spread over the cells. At the best hypothesis, soft correlations feed a
  Viterbi decoder; the CRC rejects wrong decodes (payload ``None``).

Geometry constants are part of the format (changing them breaks detection of
existing videos), so they live here and not in params.yaml; the key, the
strength and the decision threshold are knobs (params.yaml ``watermark``).
"""

from __future__ import annotations

import binascii
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param

SCHEME = "talkedit-ss-v2"
PAYLOAD_BITS = 32
CRC_BITS = 16
CELLS_SHORT_SIDE = 128  # cells across the short side of a frame
TILE_CELLS = 40  # the repeated tile is TILE_CELLS x TILE_CELLS cells (3.2 tiles per short side)
MIN_SHORT_SIDE = 128  # 1 px cells: found at the render's quality, not after rescaling
SYNC_SHARE = 0.5  # share of the tile's cells that carry the detection (sync) chips
WORK_CELL_PX = 2  # detection works at CELLS_SHORT_SIDE * 2 = 256 px on the short side
FOLD_BINS = 4  # bins per cell side when folding onto the tile (1/8 cell misalignment at most)
ALIGNED_SHIFT_BINS = 2  # an untouched or rescaled frame's tile sits this close to the origin
VECTOR_CANDIDATES = 8  # autocorrelation peaks kept per lattice vector
LATTICE_CANDIDATES = 12  # pairs of them tried, best lattice-comb score first
LATTICE_MAX_ANGLE_DEG = 8.0  # rotations the lattice search covers
LATTICE_PERIOD_RANGE = (0.65, 1.6)  # tile period / nominal: crops, and aspect changes up to 1.3

_CONV_K = 7
_CONV_POLYS = (0o133, 0o171)
_INFO_BITS = PAYLOAD_BITS + CRC_BITS
N_CODED = (_INFO_BITS + _CONV_K - 1) * len(_CONV_POLYS)  # 108 coded bits

# The public key: anyone can verify (and, knowing it, could forge or remove) the mark;
# params.yaml ``watermark.key`` may set a private one.
DEFAULT_KEY = "talkedit-public-watermark-v1"
DEFAULT_STRENGTH = 1.5  # frame PSNR 44.6 dB (the composite output stays >= 40 dB from its source at CRF 12); astronaut face 43.8 dB
DEFAULT_ALPHA = 1e-6
DEFAULT_AUDIO_DEPTH = 0.2  # see audio_watermark.py
MAX_AUDIO_DEPTH = 0.3
MIN_PSNR_DB = 42.0
MAX_STRENGTH = 255.0 / 10 ** (MIN_PSNR_DB / 20)  # 2.02 levels RMS = PSNR 42 dB

Key = str | bytes


# --- settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class WatermarkParams(Section):
    """The ``watermark:`` section of params.yaml: the marks' knobs and the Content
    Credentials signer (see credentials.SigningSettings)."""

    SECTION = "watermark"

    key: str | None = None  # None = the public DEFAULT_KEY (anyone can verify)
    strength: float = DEFAULT_STRENGTH  # RMS luma change in 8-bit levels
    alpha: float = DEFAULT_ALPHA  # per-video false-positive bound for "detected"
    audio_depth: float = DEFAULT_AUDIO_DEPTH  # soundtrack mark: band gains 1 +- depth
    c2pa_cert: str | None = None  # signer's PEM chain (leaf first); None = a local CA
    c2pa_key: str | None = None  # its private key (PEM)
    c2pa_trust: tuple[str, ...] = ()  # PEM CA files verify trusts

    @property
    def key_bytes(self) -> bytes:
        return (self.key or DEFAULT_KEY).encode("utf-8")

    def check(self, where: str = "watermark") -> None:
        if self.key is not None and not isinstance(self.key, str):
            raise bad_param(where, "key", f"is a {type(self.key).__name__}, not a string",
                            "quote the key, or set it to null for the public default")
        if not 0.3 <= self.strength <= MAX_STRENGTH:
            raise bad_param(where, "strength", f"is {self.strength}: must be within "
                            f"0.3..{MAX_STRENGTH:.2f} levels RMS (above that PSNR drops under "
                            f"{MIN_PSNR_DB:g} dB; below, H.264 erases it)",
                            f"use the default {DEFAULT_STRENGTH}")
        if not 0.0 < self.alpha < 0.5:
            raise bad_param(where, "alpha", f"is {self.alpha}: must be within (0, 0.5)",
                            f"use the default {DEFAULT_ALPHA:g}")
        if not 0.0 < self.audio_depth <= MAX_AUDIO_DEPTH:
            raise bad_param(where, "audio_depth", f"is {self.audio_depth}: must be within "
                            f"(0, {MAX_AUDIO_DEPTH}]", f"use the default {DEFAULT_AUDIO_DEPTH}")
        for name in ("c2pa_cert", "c2pa_key"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise bad_param(where, name, "is not a path", "give a PEM file path, or null")
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            raise bad_param(where, "c2pa_cert", "is set without c2pa_key (or the other way)",
                            "set both (your certificate chain and its key), or neither")
        if not all(isinstance(t, str) for t in self.c2pa_trust):
            raise bad_param(where, "c2pa_trust", "must be a list of PEM file paths",
                            "write it as [ca1.pem, ca2.pem]")


def _key_bytes(key: Key) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


# --- payload: 32-bit id, CRC-16, convolutional code -------------------------------------------


def payload_to_int(payload_id: bytes | int) -> int:
    """A payload id as an int in [0, 2**32); bytes are read big-endian."""
    if isinstance(payload_id, bytes | bytearray):
        if len(payload_id) > PAYLOAD_BITS // 8:
            raise ValueError(f"payload id is {len(payload_id)} bytes; at most {PAYLOAD_BITS // 8}")
        payload_id = int.from_bytes(payload_id, "big")
    if not isinstance(payload_id, int | np.integer) or not 0 <= int(payload_id) < 2**PAYLOAD_BITS:
        raise ValueError(f"payload id {payload_id!r} is not an int in [0, 2**{PAYLOAD_BITS})")
    return int(payload_id)


def _crc(value: int) -> int:
    # CRC-16/CCITT-FALSE (init 0xFFFF), so the all-zero word is not a valid codeword.
    return binascii.crc_hqx(value.to_bytes(PAYLOAD_BITS // 8, "big"), 0xFFFF)


def _bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each (state, input bit): the next state and the coded symbols (±1).

    The state holds the last K-1 input bits, newest in the lowest bit.
    """
    n_states = 1 << (_CONV_K - 1)
    nxt = np.zeros((n_states, 2), np.int64)
    sym = np.zeros((n_states, 2, len(_CONV_POLYS)), np.float64)
    for s in range(n_states):
        for b in (0, 1):
            reg = (s << 1) | b
            nxt[s, b] = reg & (n_states - 1)
            sym[s, b] = [1 - 2 * _parity(reg & g) for g in _CONV_POLYS]
    return nxt, sym


def encode_payload(payload_id: bytes | int) -> np.ndarray:
    """The id + CRC as ``N_CODED`` ±1 symbols (a terminated convolutional code)."""
    value = payload_to_int(payload_id)
    info = _bits(value, PAYLOAD_BITS) + _bits(_crc(value), CRC_BITS) + [0] * (_CONV_K - 1)
    nxt, sym = _trellis()
    state, out = 0, []
    for b in info:
        out.extend(sym[state, b])
        state = int(nxt[state, b])
    return np.asarray(out, np.float32)


def decode_payload(soft: np.ndarray) -> int | None:
    """Soft-decision Viterbi decode of ``N_CODED`` correlations; None if the CRC fails.

    ``soft[j]`` is positive when coded symbol j looks like +1. With equal noise
    on every symbol, maximising sum(soft * symbols) is maximum likelihood.
    """
    soft = np.asarray(soft, np.float64).reshape(-1, len(_CONV_POLYS))
    nxt, sym = _trellis()
    n_states = nxt.shape[0]
    # Each state ns is entered from two states (the oldest bit was 0 or 1) with input ns & 1.
    dst = np.arange(n_states)
    prev = np.stack([dst >> 1, (dst >> 1) | (n_states >> 1)])  # (2, n_states)
    branch_sym = sym[prev, dst & 1]  # (2, n_states, 2)
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((len(soft), n_states), np.int64)  # which predecessor won, per step
    for t, y in enumerate(soft):
        cand = metric[prev] + branch_sym @ y
        choice[t] = np.argmax(cand, axis=0)
        metric = cand[choice[t], dst]
    state, decoded = 0, []  # terminated code: the path ends in state 0
    for t in range(len(soft) - 1, -1, -1):
        decoded.append(state & 1)
        state = int(prev[choice[t, state], state])
    info = decoded[::-1][:_INFO_BITS]
    value = int("".join(map(str, info[:PAYLOAD_BITS])), 2)
    crc = int("".join(map(str, info[PAYLOAD_BITS:])), 2)
    return value if crc == _crc(value) else None


# --- keyed tile and geometry ----------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """The keyed chips of the repeated tile: chip ±1 per cell, and its role."""

    chips: np.ndarray  # (TILE_CELLS, TILE_CELLS) float32 ±1
    group: np.ndarray  # (TILE_CELLS, TILE_CELLS) int: -1 sync, else the coded-bit index

    @property
    def sync(self) -> np.ndarray:
        return self.group < 0


@lru_cache(maxsize=8)
def keyed_tile(key: bytes) -> Tile:
    """Chips and cell roles, a pure function of the key."""
    seed = hashlib.sha256(b"|".join([SCHEME.encode(), key, f"tile{TILE_CELLS}".encode()]))
    rng = np.random.default_rng(np.frombuffer(seed.digest(), np.uint32))
    n = TILE_CELLS * TILE_CELLS
    chips = rng.integers(0, 2, n).astype(np.float32) * 2 - 1
    order = rng.permutation(n)
    n_sync = round(SYNC_SHARE * n)
    group = np.empty(n, np.int64)
    group[order[:n_sync]] = -1
    group[order[n_sync:]] = np.arange(n - n_sync) % N_CODED
    shape = (TILE_CELLS, TILE_CELLS)
    return Tile(chips.reshape(shape), group.reshape(shape))


def cell_px(height: int, width: int) -> float:
    """A cell's side in pixels for a frame of this size (TalkeditError if too small)."""
    if min(height, width) < MIN_SHORT_SIDE:
        raise TalkeditError(f"frame {width}x{height}", "is too small to carry the watermark",
                            f"use frames of at least {MIN_SHORT_SIDE} px per side")
    return min(height, width) / CELLS_SHORT_SIDE


def tiled_pattern(tile_values: np.ndarray, height: int, width: int) -> np.ndarray:
    """The tile repeated over a frame from its top-left corner, cubic-upsampled to cells of
    ``cell_px`` and normalised to unit RMS (float32, H x W)."""
    cell = cell_px(height, width)
    rows, cols = math.ceil(height / cell) + 1, math.ceil(width / cell) + 1
    reps = (math.ceil(rows / TILE_CELLS), math.ceil(cols / TILE_CELLS))
    grid = np.tile(tile_values.astype(np.float32), reps)[:rows, :cols]
    pattern = cv2.resize(grid, (round(cols * cell), round(rows * cell)),
                         interpolation=cv2.INTER_CUBIC)[:height, :width]
    return pattern / np.sqrt(np.mean(pattern * pattern))


# --- perceptual mask ------------------------------------------------------------------


def _luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB frame (or a grey frame as is), uint8 or float."""
    if frame.ndim == 3:
        if frame.shape[2] != 3:
            raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if frame.ndim != 2:
        raise ValueError(f"expected an RGB or grey frame, got shape {frame.shape}")
    return frame


def _mask_quarter(luma: np.ndarray) -> np.ndarray:
    """Relative visibility threshold (median 1) at quarter resolution.

    Luminance adaptation (Chou and Li's JND: mid-grey shows the least change)
    plus a mild texture term. Texture masking is kept weak on purpose: x264
    quantises textured blocks hardest, so energy put there is mostly lost.
    Quarter resolution is enough (the mask is smooth) and keeps embedding fast.
    """
    h, w = luma.shape
    small = cv2.resize(luma, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    mean = cv2.blur(small, (5, 5))
    var = cv2.blur(small * small, (5, 5)) - mean * mean
    texture = np.sqrt(np.maximum(var, 0.0))
    lum = np.where(mean < 127, 17 * (1 - np.sqrt(mean / 127)) + 3, 3 / 128 * (mean - 127) + 3)
    jnd = lum + 0.1 * texture
    return np.clip(jnd / np.median(jnd), 0.5, 2.0).astype(np.float32)


def perceptual_mask(luma: np.ndarray) -> np.ndarray:
    """The relative amplitude of the mark per pixel (median 1), at the frame's size."""
    h, w = luma.shape
    return cv2.resize(_mask_quarter(luma), (w, h), interpolation=cv2.INTER_LINEAR)


# --- embedding --------------------------------------------------------------------------


class WatermarkEmbedder:
    """Marks the frames of one video; the pattern is computed once per frame size."""

    def __init__(self, key: Key, payload_id: bytes | int, strength: float = DEFAULT_STRENGTH) -> None:
        self.key = _key_bytes(key)
        self.payload_id = payload_to_int(payload_id)
        WatermarkParams(strength=strength).check()
        self.strength = strength
        tile = keyed_tile(self.key)
        coded = encode_payload(self.payload_id)
        self._tile_values = tile.chips * np.where(tile.sync, 1.0, coded[np.maximum(tile.group, 0)])
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def pattern(self, height: int, width: int) -> np.ndarray:
        """The unit-RMS luma pattern at a frame size (float32, H x W)."""
        if (height, width) not in self._cache:
            self._cache.clear()  # one size per video
            self._cache[(height, width)] = tiled_pattern(self._tile_values, height, width)
        return self._cache[(height, width)]

    def embed(self, frame_rgb: np.ndarray, frame_index: int = 0) -> np.ndarray:
        """A marked copy of one RGB uint8 frame (the mark is the same in every frame;
        ``frame_index`` is kept for callers that stream frames)."""
        if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame_rgb.dtype} "
                             f"{frame_rgb.shape}")
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        h, w = frame_rgb.shape[:2]
        delta = self.pattern(h, w) * perceptual_mask(_luma(frame_rgb))
        # Fix the RMS so PSNR is the same on every frame, whatever the mask did (estimated
        # on every 4th row: within 1 % of the full-frame RMS, at a quarter of the cost).
        rms = float(np.sqrt(np.mean(np.square(delta[::4]))))
        delta *= self.strength / max(rms, 1e-6)
        # Equal change in R, G, B moves luma only; cv2.add rounds and saturates.
        return cv2.add(frame_rgb, cv2.merge([delta, delta, delta]), dtype=cv2.CV_8U)


@lru_cache(maxsize=2)  # each holds a full-size pattern (8 MB at 1080p)
def _embedder(key: bytes, payload_id: int, strength: float) -> WatermarkEmbedder:
    return WatermarkEmbedder(key, payload_id, strength)


def embed_frame(frame_rgb: np.ndarray, frame_index: int, payload_id: bytes | int, key: Key,
                strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """Mark one RGB uint8 frame; the per-video pattern cache is kept between calls."""
    return _embedder(_key_bytes(key), payload_to_int(payload_id), float(strength)).embed(
        frame_rgb, frame_index)


# --- detection ------------------------------------------------------------------------------


def working_size(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the detector's working image: WORK_CELL_PX px per nominal cell."""
    scale = CELLS_SHORT_SIDE * WORK_CELL_PX / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def residual(luma: np.ndarray) -> np.ndarray:
    """The frame as the detector sees it: resized to the working size, band-passed around
    the cell scale, divided by the local variance and weighted by where the mark was put."""
    rows, cols = working_size(*luma.shape)
    interp = cv2.INTER_AREA if rows <= luma.shape[0] else cv2.INTER_CUBIC
    work = np.clip(cv2.resize(luma.astype(np.float32), (cols, rows), interpolation=interp), 0, 255)
    # High-pass at 2/3 of a cell, variance over about a cell: measured best of the band and
    # variance scales tried (z 9.7 against 8.1 for a one-cell high-pass, 720p at CRF 30).
    band = work - cv2.GaussianBlur(work, (0, 0), 2 * WORK_CELL_PX / 3, borderType=cv2.BORDER_REFLECT)
    var = cv2.GaussianBlur(band * band, (0, 0), WORK_CELL_PX, borderType=cv2.BORDER_REFLECT)
    return band * perceptual_mask(work) / (var + 0.5)


@dataclass(frozen=True)
class Lattice:
    """The tile's period vectors in working pixels: ``across`` near +x, ``down`` near +y."""

    across: tuple[float, float]  # (dx, dy)
    down: tuple[float, float]

    @property
    def period_ratio(self) -> tuple[float, float]:
        """Tile period across and down relative to an untouched frame's (1.0, 1.0)."""
        nominal = TILE_CELLS * WORK_CELL_PX
        return math.hypot(*self.across) / nominal, math.hypot(*self.down) / nominal

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.across[1], self.across[0]))


def _parabolic(left: float, centre: float, right: float) -> float:
    """Sub-sample offset of a peak from three samples around it."""
    curve = left - 2 * centre + right
    return 0.0 if curve >= 0 else float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))


def _autocorrelation(image: np.ndarray) -> np.ndarray:
    """Linear autocorrelation (lag (dy, dx) at index [dy mod 2H, dx mod 2W]), per overlapping pixel."""
    h, w = image.shape
    spectrum = np.fft.rfft2(image, (2 * h, 2 * w))
    acf = np.fft.irfft2(spectrum * np.conj(spectrum), (2 * h, 2 * w))
    dy = np.minimum(np.arange(2 * h), 2 * h - np.arange(2 * h))
    dx = np.minimum(np.arange(2 * w), 2 * w - np.arange(2 * w))
    overlap = np.maximum(h - dy, 1)[:, None] * np.maximum(w - dx, 1)[None, :]
    return acf / overlap


def _peak_near(acf: np.ndarray, dy: float, dx: float, radius: int) -> tuple[float, float, float] | None:
    """The highest autocorrelation within ``radius`` of a lag, sub-pixel: (dy, dx, value)."""
    h2, w2 = acf.shape
    if abs(dy) + radius + 1 >= h2 // 2 or abs(dx) + radius + 1 >= w2 // 2:
        return None
    cy, cx = round(dy), round(dx)
    best = max((acf[(cy + j) % h2, (cx + i) % w2], cy + j, cx + i)
                for j in range(-radius, radius + 1) for i in range(-radius, radius + 1))
    value, py, px = best
    oy = _parabolic(acf[(py - 1) % h2, px % w2], value, acf[(py + 1) % h2, px % w2])
    ox = _parabolic(acf[py % h2, (px - 1) % w2], value, acf[py % h2, (px + 1) % w2])
    return py + oy, px + ox, float(value)


def _lattice_vectors(acf: np.ndarray, vertical: bool) -> list[tuple[float, float]]:
    """Up to VECTOR_CANDIDATES period vectors (dx, dy) near +x (or +y), best first, each
    refined on the lattice points at 2x and 3x it (least squares through the origin)."""
    nominal = TILE_CELLS * WORK_CELL_PX
    lo, hi = (round(r * nominal) for r in LATTICE_PERIOD_RANGE)
    side = math.ceil(hi * math.tan(math.radians(LATTICE_MAX_ANGLE_DEG)))
    h2, w2 = acf.shape
    along = np.arange(lo, hi + 1)
    across = np.arange(-side, side + 1)
    if vertical:
        block = acf[np.ix_(along % h2, across % w2)].astype(np.float32)  # rows: dy, cols: dx
    else:
        block = acf[np.ix_(across % h2, along % w2)].T.astype(np.float32)  # rows: dx, cols: dy
    inside = np.abs(across)[None, :] <= along[:, None] * math.tan(math.radians(LATTICE_MAX_ANGLE_DEG))
    peaks = (block == cv2.dilate(block, np.ones((3, 3), np.uint8))) & inside
    peaks &= block > 0
    order = np.argsort(block[peaks])[::-1][:VECTOR_CANDIDATES]
    coords = np.argwhere(peaks)[order]
    vectors = []
    for a, c in coords:
        d_along, d_across = int(along[a]), int(across[c])
        dy, dx = (d_along, d_across) if vertical else (d_across, d_along)
        # Multiples only where the frame still overlaps itself by half: a farther peak
        # rests on few pixels and pulls the estimate off instead of sharpening it.
        points = [(k, _peak_near(acf, k * dy, k * dx, 1 if k == 1 else 2)) for k in (1, 2, 3)
                  if k == 1 or (abs(k * dy) <= h2 / 4 and abs(k * dx) <= w2 / 4)]
        found = [(k, p) for k, p in points if p is not None and p[2] > 0]
        norm = sum(k * k for k, _ in found)
        vectors.append((sum(k * p[1] for k, p in found) / norm,
                        sum(k * p[0] for k, p in found) / norm))
    return vectors


def _comb_score(acf: np.ndarray, lattice: Lattice) -> float:
    """How strongly the autocorrelation peaks on a lattice's first points (both vectors,
    their sum and difference, and their doubles): a true lattice lights up all of them."""
    (ax, ay), (dx, dy) = lattice.across, lattice.down
    h2, w2 = acf.shape
    score = 0.0
    for k, m in ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2)):
        ly, lx = round(k * ay + m * dy), round(k * ax + m * dx)
        if abs(ly) < h2 // 2 and abs(lx) < w2 // 2:
            score += float(acf[ly % h2, lx % w2])
    return score


def lattice_candidates(summed_residual: np.ndarray) -> list[Lattice]:
    """The tile lattices the autocorrelation of a residual image suggests (key-free):
    the untouched geometry, then the LATTICE_CANDIDATES best pairs of vector candidates."""
    acf = _autocorrelation(summed_residual)
    # Keep the sharp peaks of a periodic pattern, drop the host's broad correlation (this
    # moved the true lattice vectors into the first three candidates of a cropped, rotated,
    # 0.6x copy where they were 4th and missing before).
    acf -= cv2.GaussianBlur(acf.astype(np.float32), (0, 0), 3).astype(acf.dtype)
    nominal = float(TILE_CELLS * WORK_CELL_PX)
    across = _lattice_vectors(acf, vertical=False)
    down = _lattice_vectors(acf, vertical=True)
    pairs = [Lattice(a, d) for a in across for d in down]
    # A square lattice from either vector alone: one direction can be too weak to show
    # (two of ten cropped clips at CRF 30 lost their vertical vector).
    pairs += [Lattice(a, (-a[1], a[0])) for a in across]
    pairs += [Lattice((d[1], -d[0]), d) for d in down]
    pairs.sort(key=lambda lattice: _comb_score(acf, lattice), reverse=True)
    # The untouched geometry (any plain rescale) is always tried, found or not.
    return [Lattice((nominal, 0.0), (0.0, nominal)), *pairs[:LATTICE_CANDIDATES]]


def fold(summed_residual: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Sum the residual onto one tile: (TILE_CELLS * FOLD_BINS)^2 bins, rows along ``down``."""
    h, w = summed_residual.shape
    basis = np.array([[lattice.across[0], lattice.down[0]], [lattice.across[1], lattice.down[1]]])
    inverse = np.linalg.inv(basis)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = inverse[0, 0] * xs + inverse[0, 1] * ys
    b = inverse[1, 0] * xs + inverse[1, 1] * ys
    bins = TILE_CELLS * FOLD_BINS
    ia = np.floor((a % 1.0) * bins).astype(np.int64) % bins
    ib = np.floor((b % 1.0) * bins).astype(np.int64) % bins
    return np.bincount((ib * bins + ia).ravel(), summed_residual.ravel(),
                       minlength=bins * bins).reshape(bins, bins)


def _cell_sums(folded: np.ndarray) -> np.ndarray:
    """For every bin offset s, the sum of the FOLD_BINS x FOLD_BINS bins from s (cyclic)."""
    out = np.zeros_like(folded)
    for dy in range(FOLD_BINS):
        for dx in range(FOLD_BINS):
            out += np.roll(folded, (-dy, -dx), axis=(0, 1))
    return out


def _on_bins(cells: np.ndarray) -> np.ndarray:
    """A per-cell array placed on the bin grid (one bin per cell, zeros between)."""
    bins = TILE_CELLS * FOLD_BINS
    out = np.zeros((bins, bins))
    out[::FOLD_BINS, ::FOLD_BINS] = cells
    return out


def _correlate(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Cyclic cross-correlation: out[s] = sum_t template[t] * image[s + t]."""
    return np.fft.irfft2(np.fft.rfft2(image) * np.conj(np.fft.rfft2(template)), image.shape)


FLIPS = {"none": (1, 1), "horizontal": (1, -1), "vertical": (-1, 1), "both": (-1, -1)}


@dataclass(frozen=True)
class Hypothesis:
    z: float
    lattice: Lattice
    flip: str
    shift: tuple[int, int]  # bins (down, across)
    cells: np.ndarray  # (TILE_CELLS, TILE_CELLS) folded cell sums at this alignment


def best_alignment(summed_residual: np.ndarray, tile: Tile, lattices: list[Lattice],
                   flips: tuple[str, ...] = tuple(FLIPS), near_origin: int | None = None
                   ) -> Hypothesis | None:
    """The (lattice, flip, shift) with the highest sync z over every one tried; with
    ``near_origin``, only shifts within that many bins of (0, 0) (cyclically)."""
    sync_chips = _on_bins(np.where(tile.sync, tile.chips, 0.0))
    sync_mask = _on_bins(tile.sync.astype(np.float64))
    bins = TILE_CELLS * FOLD_BINS
    allowed = np.ones((bins, bins), bool)
    if near_origin is not None:
        near = np.minimum(np.arange(bins), bins - np.arange(bins)) <= near_origin
        allowed = near[:, None] & near[None, :]
    best: Hypothesis | None = None
    for lattice in lattices:
        folded = fold(summed_residual, lattice)
        for flip in flips:
            fy, fx = FLIPS[flip]
            sums = _cell_sums(folded[::fy, ::fx])
            num = _correlate(sums, sync_chips)
            den = _correlate(sums * sums, sync_mask)
            z = np.where(allowed, num / np.sqrt(np.maximum(den, 1e-30)), -np.inf)
            sy, sx = np.unravel_index(int(np.argmax(z)), z.shape)
            if best is None or z[sy, sx] > best.z:
                rows = (sy + FOLD_BINS * np.arange(TILE_CELLS)) % sums.shape[0]
                cols = (sx + FOLD_BINS * np.arange(TILE_CELLS)) % sums.shape[1]
                best = Hypothesis(float(z[sy, sx]), lattice, flip, (int(sy), int(sx)),
                                  sums[np.ix_(rows, cols)])
    return best


def payload_soft(tile: Tile, cells: np.ndarray) -> np.ndarray:
    """Per-coded-bit normalised correlations of the payload cells at an alignment."""
    payload = ~tile.sync
    corr = (tile.chips * cells)[payload]
    group = tile.group[payload]
    num = np.bincount(group, corr, minlength=N_CODED)
    den = np.bincount(group, cells[payload] ** 2, minlength=N_CODED)
    return num / np.sqrt(np.maximum(den, 1e-24))


@dataclass
class DetectionResult:
    detected: bool
    p_value: float  # bound on the chance that an unmarked video scores this high
    log10_p: float  # the same, as log10 (p underflows to 0 for strong marks)
    z: float  # sync statistic of the best hypothesis
    frames: int
    payload_id: int | None  # None when not detected or the CRC fails
    hypotheses: int = 0  # the union bound's factor behind p (see WatermarkDetector.result)
    lattice: Lattice | None = None
    flip: str | None = None
    alpha: float = DEFAULT_ALPHA  # the threshold on p_value behind ``detected``

    @property
    def z_needed(self) -> float:
        """The z that ``detected`` needs with this many hypotheses."""
        return z_threshold(self.alpha, max(self.hypotheses, 1))


def z_threshold(alpha: float, hypotheses: int) -> float:
    """Smallest z with hypotheses * exp(-z^2/2) <= alpha."""
    return math.sqrt(2 * math.log(hypotheses / alpha))


def _log10_tail(z: float) -> float:
    """log10 of Hoeffding's bound exp(-z^2/2) for z > 0 (1 otherwise)."""
    return -(z * z / 2) / math.log(10) if z > 0 else 0.0


class WatermarkDetector:
    """Streaming detector: feed frames (any order, any rate), then read ``result()``."""

    def __init__(self, key: Key, alpha: float = DEFAULT_ALPHA) -> None:
        self.key = _key_bytes(key)
        WatermarkParams(alpha=alpha).check()
        self.alpha = alpha
        self.frames = 0
        # Per working size: the frames' residuals summed (one size in any real video).
        self._sums: dict[tuple[int, int], np.ndarray] = {}
        self._counts: dict[tuple[int, int], int] = {}

    def update(self, frame: np.ndarray) -> None:
        """Consume one frame (RGB or grey, any size)."""
        luma = _luma(frame)
        self.frames += 1
        if min(luma.shape) < 2 * WORK_CELL_PX:
            return
        r = residual(luma)
        self._sums[r.shape] = self._sums[r.shape] + r if r.shape in self._sums else r
        self._counts[r.shape] = self._counts.get(r.shape, 0) + 1

    def feed(self, frames: Iterable[np.ndarray]) -> WatermarkDetector:
        for frame in frames:
            self.update(frame)
        return self

    def result(self) -> DetectionResult:
        nothing = DetectionResult(False, 1.0, 0.0, 0.0, self.frames, None, alpha=self.alpha)
        if not self._sums:
            return nothing
        summed = self._sums[max(self._counts, key=self._counts.__getitem__)]
        if not np.any(summed):
            return nothing  # flat frames carry no evidence either way
        lattices = lattice_candidates(summed)
        tile = keyed_tile(self.key)
        # Two families share alpha (weighted Bonferroni, half each): the untouched
        # geometry (any plain rescale or re-encode: nominal lattice, no flip, the tile at
        # the origin), and the full search. Each family's p is union-bounded over its own
        # hypotheses; ``hypotheses`` reports 2x the size of the family that gave the p.
        bins = TILE_CELLS * FOLD_BINS
        families = [
            (best_alignment(summed, tile, lattices[:1], ("none",), ALIGNED_SHIFT_BINS),
             2 * (2 * ALIGNED_SHIFT_BINS + 1) ** 2),
            (best_alignment(summed, tile, lattices), 2 * len(lattices) * len(FLIPS) * bins * bins),
        ]
        scored = [(min(0.0, _log10_tail(h.z) + math.log10(n)), h, n)
                  for h, n in families if h is not None]
        if not scored:
            return nothing
        log10_p, best, hypotheses = min(scored, key=lambda item: item[0])
        detected = log10_p <= math.log10(self.alpha)
        payload = decode_payload(payload_soft(tile, best.cells)) if detected else None
        return DetectionResult(
            detected=detected, p_value=10.0**log10_p, log10_p=log10_p, z=best.z,
            frames=self.frames, payload_id=payload, hypotheses=hypotheses,
            lattice=best.lattice, flip=best.flip, alpha=self.alpha)


def detect_file(path: str | Path, key: Key, alpha: float = DEFAULT_ALPHA,
                max_frames: int | None = None) -> DetectionResult:
    """Run the detector over a video file's frames (luma straight from the decoder)."""
    from talkedit.video import open_container

    detector = WatermarkDetector(key, alpha)
    with open_container(path) as container:
        if not container.streams.video:
            raise TalkeditError(path, "has no video stream", "give a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            detector.update(frame.to_ndarray(format="gray"))
            if max_frames is not None and detector.frames >= max_frames:
                break
    return detector.result()
