"""Compositing a generated face crop into the frame: no visible seam, nothing else touched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from stages.composite.blend import BlendParams, composite_crop, draw_edited_label

CROP = 128


def _setup() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = astronaut()  # a real face photo, 512x512
    scale = CROP / 150.0  # a 150 px box around the astronaut's lower face -> 128 px crop
    cx, cy = 223.0, 150.0
    image_to_crop = np.array([[scale, 0, CROP / 2 - scale * cx], [0, scale, CROP / 2 - scale * cy]])
    real = cv2.warpAffine(frame, image_to_crop, (CROP, CROP), flags=cv2.INTER_LINEAR)
    mask = np.zeros((CROP, CROP), np.uint8)
    cv2.ellipse(mask, (64, 70), (44, 34), 0, 0, 360, 255, -1)
    return frame, real, image_to_crop, mask


def _generated(real: np.ndarray) -> np.ndarray:
    """A plausible generator output: the right face, but brighter, warmer and slightly soft."""
    rng = np.random.default_rng(0)
    out = real.astype(np.float64) * np.array([1.10, 1.04, 0.98]) + 8 + rng.normal(0, 2, real.shape)
    return cv2.GaussianBlur(np.clip(out, 0, 255).astype(np.uint8), (0, 0), 0.7)


def _border_band(image_to_crop: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    hard = cv2.warpAffine((mask > 0).astype(np.uint8), image_to_crop, shape[::-1],
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    k = np.ones((7, 7), np.uint8)
    return (cv2.dilate(hard, k) > 0) & ~(cv2.erode(hard, k) > 0)


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def test_seam_gradient_stays_within_1_5x_of_the_source() -> None:
    frame, real, m, mask = _setup()
    gen = _generated(real)
    band = _border_band(m, mask, frame.shape[:2])
    out = composite_crop(frame, gen, m, mask)
    ratio = _gradient(out)[band].mean() / _gradient(frame)[band].mean()
    # The same crop pasted without blending shows its edge: the measure can fail.
    hard = cv2.warpAffine((mask > 0).astype(np.uint8), m, (512, 512),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
    pasted = frame.copy()
    pasted[hard] = cv2.warpAffine(gen, m, (512, 512), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[hard]
    naive = _gradient(pasted)[band].mean() / _gradient(frame)[band].mean()
    assert ratio <= 1.5, ratio
    assert naive > 1.15 and naive - ratio > 0.1, (naive, ratio)


def test_colour_is_matched_inside_the_mask() -> None:
    frame, real, m, mask = _setup()
    out = composite_crop(frame, _generated(real), m, mask)
    inside = cv2.warpAffine((mask > 0).astype(np.uint8), m, (512, 512),
                            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    # The generator's +8..+10% colour cast is gone: mean colour within 3 levels of the source.
    diff = out[inside].astype(float).mean(0) - frame[inside].astype(float).mean(0)
    assert np.abs(diff).max() < 3.0, diff


def test_pixels_outside_the_feathered_mask_are_untouched() -> None:
    frame, real, m, mask = _setup()
    out = composite_crop(frame, _generated(real), m, mask, BlendParams())
    near = cv2.warpAffine((mask > 0).astype(np.uint8), m, (512, 512),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    near = cv2.dilate(near, np.ones((61, 61), np.uint8)) > 0
    assert np.array_equal(out[~near], frame[~near])
    assert not np.array_equal(out[near], frame[near])


@pytest.mark.parametrize("size", [(144, 176), (720, 1280)])
def test_label_is_drawn_in_the_corner_only(size: tuple[int, int]) -> None:
    frame = np.full((*size, 3), 128, np.uint8)
    out = draw_edited_label(frame)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.max() < size[0] * 0.25 and xs.max() < size[1] * 0.5


def test_colour_match_ignores_an_edge_the_two_images_place_differently(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A chin over a dark collar: the crop's collar edge sits 5 px lower than the frame's and
    its skin is 10 levels darker (another moment's light). The colour offset must come from
    the skin (light), not from the band pixels where skin meets collar (shape)."""
    import stages.composite.blend as blend

    size = 128
    frame = np.full((size, size, 3), 150, np.uint8)
    frame[96:] = 30  # collar
    crop = np.full((size, size, 3), 140, np.uint8)
    crop[101:] = 30
    mask = np.zeros((size, size), np.uint8)
    mask[24:112, 24:104] = 255  # its lower band crosses both collar edges
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    skin = (slice(40, 80), slice(40, 88))  # well inside, far from the collar

    def skin_error() -> float:
        out = composite_crop(frame, crop, identity, mask, BlendParams(feather_px=2.0))
        return float(np.abs(out[skin].astype(float) - 150).mean())

    robust = skin_error()
    monkeypatch.setattr(blend, "OUTLIER_MADS", np.inf)  # every band pixel counted, as before
    plain = skin_error()
    assert robust < 1.0, robust
    assert plain > 1.5 and plain > 3 * robust, (plain, robust)  # what the outlier test removes
