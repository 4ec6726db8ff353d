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
    import talkedit.colour as colour

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
    monkeypatch.setattr(colour, "OUTLIER_MADS", np.inf)  # every band pixel counted, as before
    plain = skin_error()
    assert robust < 1.0, robust
    assert plain > 1.5 and plain > 3 * robust, (plain, robust)  # what the outlier test removes


def test_blending_only_inside_the_mask_gives_the_whole_boxs_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The colour offset is computed in the mask's bounding box and the result pasted there
    only (issue 13's turnaround: the blend box is several times the mask's with the chin
    warp): the same bytes as the offset and paste over the whole box (the formulas before)."""
    import stages.composite.blend as blend
    import talkedit.colour as colour

    frame, real, image_to_crop, mask = _setup()
    crop = _generated(real)

    def whole_box_colour(fg: np.ndarray, bg: np.ndarray, band: np.ndarray, inside: np.ndarray,
                         sigma: float) -> np.ndarray:
        diff = bg - fg
        band = band * colour.inliers(diff, band > 0)
        diff_on_band = diff * band[..., None]
        weight = colour.smooth(band, sigma)
        offset = colour.smooth(diff_on_band, sigma) / np.maximum(weight, 1e-3)[..., None]
        mean = diff_on_band.reshape(-1, 3).sum(0) / max(float(band.sum()), 1.0)
        confidence = np.minimum(weight * (4.0 / max(float(weight.max()), 1e-6)), 1.0)[..., None]
        return fg + (confidence * (offset - mean) + mean) * (inside[..., None] > 0)

    rng = np.random.default_rng(3)
    for trial in range(6):
        # Masks of several shapes and places (one touching the crop's edge), noisy crops.
        mask = np.zeros((CROP, CROP), np.uint8)
        centre = (int(rng.integers(20, 108)), int(rng.integers(20, 108)))
        cv2.ellipse(mask, centre, (int(rng.integers(10, 60)), int(rng.integers(10, 50))),
                    float(rng.uniform(0, 180)), 0, 360, 255, -1)
        noisy = np.clip(crop + rng.normal(0, 6, crop.shape), 0, 255).astype(np.uint8)
        fg, bg = (rng.uniform(0, 255, (90, 110, 3)).astype(np.float32) for _ in range(2))
        inside = np.zeros((90, 110), np.float32)
        inside[30:70, 20:60 + 5 * trial] = rng.uniform(0.01, 1, (40, 40 + 5 * trial))
        band = np.zeros_like(inside)
        band[30:70, 20:60 + 5 * trial] = (inside[30:70, 20:60 + 5 * trial] > 0.8)
        np.testing.assert_array_equal(blend.match_colour(fg, bg, band, inside, 14.0),
                                      whole_box_colour(fg, bg, band, inside, 14.0))
        now = composite_crop(frame, noisy, image_to_crop, mask)
        with monkeypatch.context() as patch:
            patch.setattr(blend, "match_colour", whole_box_colour)
            before = composite_crop(frame, noisy, image_to_crop, mask)
        assert (now != frame).sum() > 1000  # the face was pasted...
        np.testing.assert_array_equal(now, before)  # ...the same bytes
