"""Per-frame signals a detector reads off a fitted clip: mouth opening, rigid head motion,
and texture statistics of the face and the background.

Everything is measured against the clip itself (robust z-scores over its own frames),
so the thresholds transfer between speakers, cameras and resolutions.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.fit import head_angles_deg, mouth_opening
from stages.fit.model import inter_ocular
from stages.fit.topology import Topology, topology_for
from talkedit.artifacts import FACE, ClipPaths, column_array, read_parquet
from talkedit.video import FrameStore

MAD_TO_SD = 1.4826


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """(x - median) / (1.4826 MAD), the scale floored at ``floor`` (a clip with almost no
    variation would otherwise turn rounding noise into huge z)."""
    x = np.asarray(values, np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return np.full_like(x, np.nan)
    med = float(np.median(x[ok]))
    scale = max(MAD_TO_SD * float(np.median(np.abs(x[ok] - med))), floor)
    return (x - med) / scale


def spike(values: np.ndarray) -> np.ndarray:
    """How far each sample stands above both neighbours: a jump between frames t-1 and t
    shows in the per-transition series as one sample far above its neighbours, while
    smooth motion keeps neighbours alike."""
    x = np.asarray(values, np.float64)
    out = np.full_like(x, np.nan)
    if len(x) >= 3:
        out[1:-1] = x[1:-1] - np.maximum(x[:-2], x[2:])
    return out


@dataclass
class FaceSignals:
    """What the face table says, frame by frame."""

    time_s: np.ndarray  # (n,)
    detected: np.ndarray  # (n,) bool: landmarks measured, not interpolated
    landmarks: np.ndarray  # (n, N, 2) image px
    opening: np.ndarray  # (n,) inner-lip gap / inter-ocular distance
    rigid_jump: np.ndarray  # (n,) spike of the rigid points' motion into frame t, / eyes
    topology: Topology
    head_angles: np.ndarray | None = None  # (n, 3) yaw, pitch, roll in degrees (the fit's)


def face_signals(paths: ClipPaths, clip: str) -> FaceSignals:
    table = read_parquet(paths.face, FACE, stage_hint=f"fit@{clip}")
    lm = column_array(table, "landmarks_2d").astype(np.float64)
    n = len(table)
    lm = lm.reshape(n, -1, 2)
    topo = topology_for(lm.shape[1])
    detected = table["detected"].to_numpy(bool)
    eyes = np.maximum(inter_ocular(lm, topo), 1e-6)
    rigid = lm[:, list(topo.rigid)].mean(axis=1)
    speed = np.r_[np.nan, np.linalg.norm(np.diff(rigid, axis=0), axis=1)] / eyes
    speed[~(detected & np.r_[False, detected[:-1]])] = np.nan
    angles = head_angles_deg(column_array(table, "rotation").astype(np.float64))
    return FaceSignals(table["time_s"].to_numpy(float), detected, lm, mouth_opening(lm, topo),
                       spike(speed), topo, angles)


@dataclass
class TextureSignals:
    """Pixel statistics per frame (NaN where the face is not measured)."""

    face_diff: np.ndarray  # mean |luma change| from frame t-1 in the upper face
    background_diff: np.ndarray  # ... outside the face
    mouth_detail: np.ndarray  # log(high-frequency energy: mouth region / upper face)


def unexplained(values: np.ndarray, explain: np.ndarray) -> np.ndarray:
    """``values`` less what a least-squares fit on ``explain`` (n, k) and a constant
    accounts for: the mouth's detail changes with how open it is (teeth, lip texture) and
    with the head's pose (foreshortening), in real footage as in rendered."""
    x = np.column_stack([np.ones(len(values)), explain])
    ok = np.isfinite(values) & np.isfinite(x).all(axis=1)
    out = np.full(len(values), np.nan)
    if ok.sum() > 2 * x.shape[1]:
        beta, *_ = np.linalg.lstsq(x[ok], values[ok], rcond=None)
        out[ok] = values[ok] - x[ok] @ beta
    return out


def _box(points: np.ndarray, grow: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    dx, dy = (x1 - x0) * grow, (y1 - y0) * grow
    h, w = shape
    return (int(max(0, x0 - dx)), int(max(0, y0 - dy)), int(min(w, x1 + dx + 1)),
            int(min(h, y1 + dy + 1)))


def _mean_in(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    part = image[y0:y1, x0:x1]
    return float(part.mean()) if part.size else float("nan")


def texture_signals(store: FrameStore, face: FaceSignals) -> TextureSignals:
    """One streaming pass over the frames (one previous frame held)."""
    n = len(store)
    face_diff, background_diff, detail = (np.full(n, np.nan) for _ in range(3))
    topo = face.topology
    lips = sorted({i for pair in topo.inner_lip_pairs for i in pair})
    nose_y = face.landmarks[:, topo.nose_bottom, 1]
    previous: np.ndarray | None = None
    for k, image in store.iter_frames():
        luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if k >= len(face.detected) or not face.detected[k]:
            previous = luma
            continue
        pts = face.landmarks[k]
        upper_pts = pts[list(topo.rigid)]
        upper_pts = upper_pts[upper_pts[:, 1] < nose_y[k]]
        upper = _box(upper_pts, 0.0, luma.shape)
        mouth = _box(pts[lips], 0.5, luma.shape)  # the inner lips, grown to the whole mouth
        whole = _box(pts, 0.15, luma.shape)
        high = np.abs(cv2.Laplacian(luma, cv2.CV_32F, ksize=3))
        detail[k] = np.log((_mean_in(high, mouth) + 1e-3) / (_mean_in(high, upper) + 1e-3))
        if previous is not None:
            change = np.abs(luma - previous)
            face_diff[k] = _mean_in(change, upper)
            outside = np.ones(change.shape, bool)
            outside[whole[1]:whole[3], whole[0]:whole[2]] = False
            background_diff[k] = float(change[outside].mean()) if outside.any() else np.nan
        previous = luma
    return TextureSignals(face_diff, background_diff, detail)


def read_wav_16k(path: Path) -> tuple[np.ndarray, int]:
    """The extracted soundtrack as float samples in [-1, 1] and its rate."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0, rate


def frame_loudness(samples: np.ndarray, rate: int, times: np.ndarray, span_s: float
                   ) -> np.ndarray:
    """The soundtrack's RMS level in dB (full scale) over ``span_s`` centred on each time:
    an envelope the mouth follows whatever the aligner made of the words."""
    half = max(1, int(round(span_s * rate / 2)))
    power = np.r_[0.0, np.cumsum(samples.astype(np.float64) ** 2)]
    centre = np.round(np.asarray(times) * rate).astype(int)
    lo = np.clip(centre - half, 0, len(samples))
    hi = np.clip(centre + half, 0, len(samples))
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    return 10 * np.log10(mean + 1e-10)
