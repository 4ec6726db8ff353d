"""Colour matching of a generated face to the real frame around it, and its helpers.

Shared by the composite (stages/composite/blend.py: the crop against the frame, on the band
inside the mask's border) and the render's chin warp (stages/render/jaw.py: the generator's
pixels against the warped frame behind them, issue 13).
"""

from __future__ import annotations

import cv2
import numpy as np


def bounding_box(where: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns of a 2-D bool array's True pixels (None: there are none)."""
    rows, cols = np.flatnonzero(where.any(axis=1)), np.flatnonzero(where.any(axis=0))
    if not len(rows):
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur computed at reduced resolution (the result is low-frequency anyway)."""
    factor = int(max(1, min(8, sigma // 3)))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


OUTLIER_MADS = 3.0  # robust deviations (1.4826 MAD, the normal's sigma) a band pixel may differ
MIN_SPREAD = 2.0  # grey levels: the deviation is never taken as smaller (uniform bands)


def inliers(diff: np.ndarray, band: np.ndarray) -> np.ndarray:
    """(h, w) float 0/1: band pixels whose colour difference lies within OUTLIER_MADS robust
    deviations of the band's median difference (1 off the band: the caller masks)."""
    keep = np.ones(band.shape, np.float32)
    values = diff[band]
    if len(values) < 8:
        return keep
    # Distances on the band only (the rest is masked by the caller anyway).
    distance = np.linalg.norm(values - np.median(values, axis=0), axis=-1)
    spread = max(1.4826 * float(np.median(distance)), MIN_SPREAD)
    keep[band] = np.where(distance > OUTLIER_MADS * spread, np.float32(0.0), np.float32(1.0))
    return keep


def match_colour(fg: np.ndarray, bg: np.ndarray, band: np.ndarray, inside: np.ndarray,
                  sigma: float) -> np.ndarray:
    """Add the local low-frequency colour offset (bg - fg) measured on ``band``.

    Away from the band the offset falls back to the band's mean offset. Band pixels whose
    difference is an outlier (beyond ``OUTLIER_MADS`` robust deviations of the band's
    median difference) are left out: where the band crosses an edge that the two images
    place differently (a chin against a dark collar, issue 13), their difference is shape,
    not light, and would shade the whole region around it.
    """
    diff = bg - fg
    band = band * inliers(diff, band > 0)
    diff_on_band = diff * band[..., None]
    weight = smooth(band, sigma)
    # The band pixels' sum in the whole box's order (a sum over rows of (n, 3) adds them one
    # after another: the box's zeros change nothing).
    mean = diff_on_band[np.nonzero(band)].sum(0) / max(float(band.sum()), 1.0)
    weight_max = float(weight.max())
    # The offset is added inside only: computed in the inside's bounding box alone (the
    # same float32 operations per pixel as on the whole box, which the blend's pad and,
    # with the chin warp, the larger alpha make several times larger).
    matched = fg.copy()
    box = bounding_box(inside > 0)
    if box is None:
        return matched
    offset = smooth(diff_on_band, sigma)[box] / np.maximum(weight[box], 1e-3)[..., None]
    confidence = np.minimum(weight[box] * (4.0 / max(weight_max, 1e-6)), 1.0)[..., None]
    offset = confidence * (offset - mean) + mean
    matched[box] = fg[box] + offset * (inside[box][..., None] > 0)
    return matched
