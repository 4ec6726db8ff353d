"""The watermark (talkedit-ss-v2) survives re-encoding and geometry with its id, stays
silent on unmarked video with an honest false-positive bound, and stays invisible."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.watermark import (
    carphone,
    decode_frames,
    encode_h264,
    face_psnr,
    psnr,
    reencode,
    synthetic,
    talking_photo,
)
from stages.composite import watermark as wm
from talkedit.errors import TalkeditError
from talkedit.params import load_section

KEY = "test-key"
PAYLOAD = 0x5EEDF00D


def mark(frames: list[np.ndarray], payload: int = PAYLOAD, key: str = KEY) -> list[np.ndarray]:
    embedder = wm.WatermarkEmbedder(key, payload)
    return [embedder.embed(frame, i) for i, frame in enumerate(frames)]


def detect(video: bytes | list[np.ndarray], key: str = KEY) -> wm.DetectionResult:
    frames = decode_frames(video, "gray") if isinstance(video, bytes) else video
    return wm.WatermarkDetector(key).feed(frames).result()


@pytest.fixture(scope="module")
def photo() -> list[np.ndarray]:
    return [cv2.resize(f, (640, 384)) for f in talking_photo(24, size=384, seed=3)]


@pytest.fixture(scope="module")
def rendered(photo: list[np.ndarray]) -> bytes:
    """Marked and rendered at CRF 18, like a talkedit output."""
    return encode_h264(mark(photo), 18)


def test_found_after_crf30_reencode_with_its_id(rendered: bytes) -> None:
    result = detect(reencode(rendered, 30))
    assert result.detected and result.payload_id == PAYLOAD
    assert result.z > 1.5 * result.z_needed
    assert result.log10_p < -10 and result.frames == 24
    assert result.flip == "none" and result.lattice is not None
    assert result.lattice.period_ratio == pytest.approx((1.0, 1.0), abs=0.01)


def _geometry(frame: np.ndarray) -> np.ndarray:
    """Crop 10 % off every edge, mirror, rotate 3 degrees, rescale to 0.6x of the original."""
    h, w = frame.shape[:2]
    cropped = frame[round(0.1 * h):round(0.9 * h), round(0.1 * w):round(0.9 * w)][:, ::-1]
    ch, cw = cropped.shape[:2]
    turn = cv2.getRotationMatrix2D((cw / 2, ch / 2), 3.0, 1.0)
    rotated = cv2.warpAffine(cropped, turn, (cw, ch), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    size = (2 * round(0.3 * w), 2 * round(0.3 * h))
    return cv2.resize(rotated, size, interpolation=cv2.INTER_AREA)


def test_found_after_crop_flip_rotation_and_rescale(rendered: bytes) -> None:
    attacked = encode_h264([_geometry(f) for f in decode_frames(rendered)], 23)
    result = detect(attacked)
    assert result.detected and result.payload_id == PAYLOAD
    assert result.flip == "horizontal"
    assert result.lattice is not None
    # Cropping 20 % of each side makes the tile 1/0.8 = 1.25x larger relative to the frame.
    assert result.lattice.period_ratio == pytest.approx((1.25, 1.25), abs=0.03)
    assert abs(abs(result.lattice.rotation_deg) - 3.0) < 0.5


def test_frame_rate_conversion_does_not_matter(rendered: bytes) -> None:
    frames = decode_frames(reencode(rendered, 28), "gray")
    half = detect(frames[::2])  # 25 -> 12.5 fps
    doubled = detect([f for f in frames for _ in (0, 1)])  # 25 -> 50 fps
    assert half.detected and doubled.detected
    assert half.payload_id == doubled.payload_id == PAYLOAD
    assert doubled.z == pytest.approx(detect(frames).z, rel=1e-4)  # repeats add no evidence


def test_unmarked_videos_are_not_detected(photo: list[np.ndarray], rendered: bytes) -> None:
    unmarked = {
        "photo": photo,
        "carphone": carphone((352, 288), n=24),
        "synthetic": synthetic(16, (320, 240), seed=3),
    }
    for name, frames in unmarked.items():
        result = detect(reencode(encode_h264(frames, 18), 28))
        assert not result.detected, name
        assert result.z < result.z_needed - 1.0, (name, result.z)
        assert result.payload_id is None and result.log10_p > -3, name
    other = detect(reencode(rendered, 28), key="another-key")
    assert not other.detected and other.z < other.z_needed - 1.0


def test_false_positive_bound_holds_over_keys(photo: list[np.ndarray]) -> None:
    """For one hypothesis, z of an unmarked video over random keys is a Rademacher sum
    (mean 0, sd 1, tail <= exp(-z^2/2)); the reported p of the maximum over all
    hypotheses, union-bounded, stays conservative."""
    frames = decode_frames(reencode(encode_h264(photo, 18), 28), "gray")
    summed = sum(wm.residual(f) for f in frames)
    lattice = wm.lattice_candidates(summed)[0]
    folded = wm.fold(summed, lattice)
    cells = folded.reshape(wm.TILE_CELLS, wm.FOLD_BINS, wm.TILE_CELLS, wm.FOLD_BINS).sum((1, 3))
    zs = []
    for k in range(300):
        tile = wm.keyed_tile(f"key-{k}".encode())
        u = cells[tile.sync]
        zs.append(float(tile.chips[tile.sync] @ u) / float(np.linalg.norm(u)))
    z = np.array(zs)
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2
    assert (z >= 2.0).mean() <= math.exp(-2.0)
    ps = np.array([wm.WatermarkDetector(f"key-{k}").feed(frames).result().p_value
                   for k in range(12)])
    assert ps.min() > 1e-3  # a bound over ~260k hypotheses: far from alpha = 1e-6


def test_still_video_gets_no_credit_for_repeating_a_frame() -> None:
    still = talking_photo(1, size=256, seed=9)[0]
    one = wm.WatermarkDetector(KEY).feed([still]).result()
    many = wm.WatermarkDetector(KEY).feed([still] * 30).result()
    assert many.z == pytest.approx(one.z, rel=1e-4)
    assert many.log10_p == pytest.approx(one.log10_p, rel=1e-4)


def test_invisible_psnr_at_least_42db_and_only_luma_changes() -> None:
    contents = {
        "photo 512": talking_photo(1, size=512)[0],
        "carphone 704x576": carphone((704, 576), n=1)[0],
        "synthetic 1920x1080": synthetic(1, (1920, 1080))[0],
        "mid grey": np.full((240, 320, 3), 128, np.uint8),
        "noise": np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8),
    }
    for name, frame in contents.items():
        marked = wm.embed_frame(frame, 0, PAYLOAD, KEY)
        assert marked.shape == frame.shape and marked.dtype == np.uint8
        quality = psnr(frame, marked)
        assert 42.0 <= quality < 20 * np.log10(255 / wm.DEFAULT_STRENGTH) + 1.0, (name, quality)
        delta = marked.astype(int) - frame.astype(int)
        unclipped = (frame > 8).all(-1) & (frame < 247).all(-1)
        assert (delta[unclipped, 0] == delta[unclipped, 1]).all()
        assert (delta[unclipped, 1] == delta[unclipped, 2]).all()
    face = talking_photo(1, size=512)[0]
    assert face_psnr(face, wm.embed_frame(face, 0, PAYLOAD, KEY)) >= 42.0


def test_payload_code_corrects_noise_and_rejects_garbage() -> None:
    rng = np.random.default_rng(1)
    for pid in [0, 2**32 - 1, *map(int, rng.integers(0, 2**32, 30))]:
        coded = wm.encode_payload(pid)
        assert coded.shape == (wm.N_CODED,)
        assert wm.decode_payload(coded) == pid
        assert wm.decode_payload(1.6 * coded + rng.normal(0, 1, coded.shape)) == pid
    garbage = [wm.decode_payload(rng.normal(0, 1, wm.N_CODED)) for _ in range(300)]
    assert sum(g is not None for g in garbage) <= 2


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(TalkeditError, match="too small"):
        wm.embed_frame(np.zeros((100, 100, 3), np.uint8), 0, PAYLOAD, KEY)
    with pytest.raises(ValueError, match="uint8"):
        wm.embed_frame(np.zeros((256, 256, 3), np.float32), 0, PAYLOAD, KEY)
    with pytest.raises(ValueError, match="payload id"):
        wm.WatermarkEmbedder(KEY, 2**32)
    with pytest.raises(TalkeditError, match="PSNR"):
        wm.WatermarkEmbedder(KEY, PAYLOAD, strength=2.5)
    empty = wm.WatermarkDetector(KEY).result()
    assert not empty.detected and empty.frames == 0 and empty.payload_id is None
    flat = wm.WatermarkDetector(KEY).feed([np.full((256, 256), 90, np.uint8)] * 3).result()
    assert not flat.detected and flat.frames == 3


def test_params_section_is_checked(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("watermark:\n  key: secret\n  strength: 1.5\n  alpha: 1.0e-9\n"
                      "  audio_depth: 0.1\n  c2pa_trust: [ca.pem]\n")
    got = load_section(wm.WatermarkParams, tmp_path)
    assert got == wm.WatermarkParams("secret", 1.5, 1e-9, 0.1, c2pa_trust=("ca.pem",))
    assert got.key_bytes == b"secret"
    params.write_text("watermark:\n  key: null\n")
    assert load_section(wm.WatermarkParams, tmp_path).key_bytes == wm.DEFAULT_KEY.encode()
    for bad, match in (("strength: 2.5", "watermark.strength"), ("key: 3", "watermark.key"),
                       ("alpha: 0.9", "watermark.alpha"), ("audio_depth: 0.5", "audio_depth"),
                       ("stength: 1", "watermark.stength")):
        params.write_text(f"watermark:\n  {bad}\n")
        with pytest.raises(TalkeditError, match=match):
            load_section(wm.WatermarkParams, tmp_path)
    assert wm.WatermarkParams().key_bytes == wm.DEFAULT_KEY.encode()  # verify outside a project
