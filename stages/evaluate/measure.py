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
* mouth-opening correlation: Pearson r of ``stages.fit.mouth_opening`` over time (the
  landmarker's inner-lip gap: kept for continuity) and of ``ExpressionOpening`` (the
  lower face read through the person model, calibrated and validated against the
  generator's truth on the renderer's training footage: it tracks truth where the
  landmarker puts the lower lip inside the drawn mouth cavity at wide vowels);
* sync offset: the lag (ms) that best correlates the mouth opening with the audio
  envelope; positive = the mouth moves after the sound. By either opening measure: on the
  demo the real frames' lip gap moves ~10 ms earlier against the sound than the
  generator's own jaw_open does, the model's opening within ~3 ms of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from stages.fit import Landmarker, PersonModel, lower_face_mask, mouth_opening
from stages.fit.geometry import apply_similarity, procrustes
from stages.fit.model import inter_ocular
from stages.fit.topology import Topology
from stages.opening import ExpressionOpening
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


def detect_sequence(landmarker: Landmarker, images: Iterable[np.ndarray], dims: int = 2
                    ) -> np.ndarray:
    """(n, N, dims) landmarks of the largest face per frame (NaN where none is found);
    ``dims`` 3 keeps the landmarker's depth (the person model is fitted in 3-D)."""
    out = []
    n_points = landmarker.topology.n_points
    for image in images:
        faces = landmarker.detect(image)
        if faces:
            out.append(max(faces, key=lambda f: f.height_px).points[:, :dims])
        else:
            out.append(np.full((n_points, dims), np.nan, np.float32))
    return np.asarray(out, np.float64).reshape(-1, n_points, dims)


VALIDATION_WINDOW_S = 4.0  # validation r also over windows about a sentence long


def at_positions(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per-frame ``values`` (frame k at position k) read at fractional frame ``positions``,
    linear between the two neighbours (NaN next to a NaN frame; clamped at the ends).

    Why: an edit's output frame maps through the phone time map to a time between two real
    frames (on the demo's held-out sentences 0.23 frame from the nearest on average), and
    pairing it with the nearest real frame shifts the reference by up to half a frame."""
    values = np.asarray(values, np.float64)
    pos = np.clip(np.asarray(positions, np.float64), 0, len(values) - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, len(values) - 1)
    share = pos - below
    # Exact frames keep their value even beside a NaN (0 * NaN would be NaN).
    upper = np.where(share > 0, share * values[above], 0.0)
    return (1 - share) * values[below] + upper


def windowed_r(a: np.ndarray, b: np.ndarray, window: int) -> float:
    """Mean Pearson r over consecutive windows of ``window`` frames (the last partial one
    dropped unless it is the only one)."""
    starts = range(0, max(1, len(a) - window + 1), window)
    values = [pearson(a[s:s + window], b[s:s + window]) for s in starts]
    return _nanmean(np.asarray(values))


def validate_opening(model: PersonModel, points: np.ndarray, jaw_open: np.ndarray,
                     fps: float) -> tuple[ExpressionOpening, dict[str, float]]:
    """The expression measure fitted on the first half of ``points`` (n, N, 3: frames the
    renderer trained on) and scored against ``jaw_open`` on the second half, the
    landmarker's lip gap beside it: r over the half, and mean r over sentence-long
    windows."""
    half = len(points) // 2
    blank = ExpressionOpening.of(model)
    coefficients = blank.coefficients(points)
    measure = blank.fitted(coefficients[:half], jaw_open[:half])
    window = max(3, int(round(VALIDATION_WINDOW_S * fps)))
    series = {"expression": measure.from_coefficients(coefficients[half:]),
              "lips": mouth_opening(points[half:, :, :2])}
    truth = jaw_open[half:]
    check: dict[str, float] = {"fit_frames": half, "validation_frames": len(points) - half}
    for name, values in series.items():
        check[f"{name}_r"] = round(pearson(values, truth), 4)
        check[f"{name}_r_windows"] = round(windowed_r(values, truth, window), 4)
    return measure, check


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
    model_opening: np.ndarray  # (n,) ExpressionOpening (NaN without a calibrated measure)

    def take(self, rows: np.ndarray) -> Track:
        return Track(self.crops[rows], self.landmarks[rows], self.envelope[rows],
                     self.model_opening[rows])

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
        "opening_r_model": pearson(real.model_opening, test.model_opening),
        "sync_offset_ms": sync_offset_ms(test.opening, test.envelope, fps, max_lag_ms),
        "sync_offset_model_ms": sync_offset_ms(test.model_opening, test.envelope, fps,
                                               max_lag_ms),
        "detected_share": float(test.detected.mean()) if len(test.detected) else float("nan"),
    }
