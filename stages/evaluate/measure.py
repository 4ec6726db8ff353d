"""What the evaluate stage measures on a frame sequence against the real one.

Every method (talkedit, the baselines, the real footage) is reduced to a
``Track``: its frames in the fit's aligned face crop (pose removed), the
project's landmarker run on its full frames, and its own audio envelope at the
frame times. Scores compare a track with the real track frame by frame (the
caller pairs the frames):

* mouth PSNR / SSIM: ``stages.render.evaluate`` region metrics inside the real
  frame's lower-face polygon (the fit's ``mask_polygon``, the region an edit repaints);
* LMD: mean distance of the mouth landmarks after a similarity fit of the rigid
  head points onto the real frame's (head motion removed), over the real frame's
  inter-ocular distance;
* mouth-opening correlation: Pearson r of ``stages.fit.mouth_opening`` over time;
* sync offset: the lag (ms) that best correlates the mouth opening with the audio
  envelope; positive = the mouth moves after the sound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from stages.fit import Landmarker, lower_face_mask, mouth_opening
from stages.fit.geometry import apply_similarity, procrustes
from stages.fit.model import inter_ocular
from stages.fit.topology import Topology
from stages.render.evaluate import region_psnr, region_ssim


def mouth_points(topo: Topology) -> np.ndarray:
    """The landmark indices LMD compares: the lips (both lip contours)."""
    if topo.name == "mediapipe":
        from mediapipe.python.solutions import face_mesh_connections as fm

        return np.array(sorted({i for edge in fm.FACEMESH_LIPS for i in edge}))
    if topo.name == "ibug68":
        return np.arange(48, 68)
    return np.array(sorted({i for pair in topo.inner_lip_pairs for i in pair}))


def aligned_crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """The fit's aligned crop of one frame (same warp as stages/fit/crops.py writes)."""
    m = np.asarray(transform, np.float64).reshape(2, 3)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def detect_sequence(landmarker: Landmarker, images: Iterable[np.ndarray]) -> np.ndarray:
    """(n, N, 2) landmarks of the largest face per frame (NaN where none is found)."""
    out = []
    n_points = landmarker.topology.n_points
    for image in images:
        faces = landmarker.detect(image)
        if faces:
            out.append(max(faces, key=lambda f: f.height_px).points[:, :2])
        else:
            out.append(np.full((n_points, 2), np.nan, np.float32))
    return np.asarray(out, np.float64).reshape(-1, n_points, 2)


def audio_envelope(samples: np.ndarray, sr: int, times_s: np.ndarray,
                   window_s: float) -> np.ndarray:
    """RMS amplitude of ``samples`` in a ``window_s`` window centred on each time."""
    half = int(round(window_s * sr / 2))
    out = np.empty(len(times_s))
    for k, t in enumerate(times_s):
        c = int(round(t * sr))
        seg = samples[max(0, c - half):max(0, c + half)]
        out[k] = np.sqrt(np.mean(np.square(seg, dtype=np.float64))) if len(seg) else 0.0
    return out


@dataclass
class Track:
    """One method's frames over the evaluated span, and what the scores need of them."""

    crops: np.ndarray  # (n, S, S, 3) uint8 aligned face crops
    landmarks: np.ndarray  # (n, N, 2) image px, NaN where the landmarker found no face
    envelope: np.ndarray  # (n,) its own audio's RMS at the frame times

    def take(self, rows: np.ndarray) -> Track:
        return Track(self.crops[rows], self.landmarks[rows], self.envelope[rows])

    @property
    def opening(self) -> np.ndarray:
        return mouth_opening(self.landmarks)

    @property
    def detected(self) -> np.ndarray:
        return np.isfinite(self.landmarks).all(axis=(1, 2))


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) < 1e-12 or np.std(b[ok]) < 1e-12:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def lmd(real: np.ndarray, test: np.ndarray, topo: Topology) -> np.ndarray:
    """Per-frame mouth landmark distance / the real frame's inter-ocular distance (NaN where
    either frame has no landmarks)."""
    out = np.full(len(real), np.nan)
    ok = np.isfinite(real).all(axis=(1, 2)) & np.isfinite(test).all(axis=(1, 2))
    if not ok.any():
        return out
    pad = np.zeros((*real[ok].shape[:2], 1))
    r3, t3 = np.concatenate([real[ok], pad], -1), np.concatenate([test[ok], pad], -1)
    rigid = list(topo.rigid)
    s, rot, t = procrustes(t3[:, rigid], r3[:, rigid])
    moved = apply_similarity(t3, s, rot, t)
    mouth = mouth_points(topo)
    dist = np.linalg.norm(moved[:, mouth, :2] - r3[:, mouth, :2], axis=-1).mean(axis=1)
    out[ok] = dist / np.maximum(inter_ocular(real[ok], topo), 1e-9)
    return out


def sync_offset_ms(opening: np.ndarray, envelope: np.ndarray, fps: float,
                   max_lag_ms: float) -> float:
    """Lag (ms) maximising the correlation of mouth opening(t) with envelope(t - lag),
    refined between frames by a parabola through the peak; NaN if undefined."""
    max_lag = max(1, int(round(max_lag_ms * fps / 1000)))
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(len(lags), np.nan)
    n = len(opening)
    for i, lag in enumerate(lags):
        a = opening[max(0, lag):n + min(0, lag)]
        b = envelope[max(0, -lag):n - max(0, lag)]
        if len(a) >= max(8, n // 2):
            r[i] = pearson(a, b)
    if not np.isfinite(r).any():
        return float("nan")
    k = int(np.nanargmax(r))
    shift = 0.0
    if 0 < k < len(r) - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        denom = r[k - 1] - 2 * r[k] + r[k + 1]
        shift = 0.5 * (r[k - 1] - r[k + 1]) / denom if denom < 0 else 0.0
    return float((lags[k] + shift) * 1000.0 / fps)


def score_track(real: Track, test: Track, polygons: np.ndarray, topo: Topology, fps: float,
                max_lag_ms: float) -> dict[str, float]:
    """Scores of ``test`` against ``real`` (frames paired row by row). ``polygons``: the
    real frames' lower-face outlines in crop px."""
    size = real.crops.shape[1]
    psnr, ssim = [], []
    for k in range(len(real.crops)):
        region = lower_face_mask(polygons[k], size).astype(bool)
        psnr.append(region_psnr(real.crops[k], test.crops[k], region))
        ssim.append(region_ssim(real.crops[k], test.crops[k], region))
    return {
        "mouth_psnr_db": _nanmean(np.asarray(psnr)),
        "mouth_ssim": _nanmean(np.asarray(ssim)),
        "lmd": _nanmean(lmd(real.landmarks, test.landmarks, topo)),
        "opening_r": pearson(real.opening, test.opening),
        "sync_offset_ms": sync_offset_ms(test.opening, test.envelope, fps, max_lag_ms),
        "detected_share": float(test.detected.mean()) if len(test.detected) else float("nan"),
    }
