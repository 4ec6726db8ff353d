"""Compositing speed at 1280x720: blend + label + watermark per frame, and with H.264 encoding.

Target (issue 8): >= 25 frames/s at 1280x720 on the project's 2-core machine
for the compositing step. The encode is reported separately (x264 at the
composite stage's preset) since it is the same for any video writer.

    python benchmarks/composite.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage.data import astronaut

from stages.composite.blend import composite_crop, draw_edited_label
from stages.composite.compose import CompositeParams
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams
from talkedit.params import load_section
from talkedit.video import VideoWriter

REPO = Path(__file__).resolve().parents[1]

N = 100
CROP = 256


def make_inputs() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """720p frames with a face (the astronaut at 2x), a generated-looking crop, its transform."""
    face = cv2.resize(astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[:, 128:1152] = face[100:820]
    frames = [np.roll(canvas, k % 7, axis=1) for k in range(8)]  # a little motion
    scale = CROP / 300.0
    cx, cy = 128 + 446.0, 300.0 - 100 + 0.0
    image_to_crop = np.array([[scale, 0, CROP / 2 - scale * cx], [0, scale, CROP / 2 - scale * cy]])
    real = cv2.warpAffine(canvas, image_to_crop, (CROP, CROP))
    crop = np.clip(real.astype(np.float32) * 1.06 + 5, 0, 255).astype(np.uint8)
    mask = np.zeros((CROP, CROP), np.uint8)
    cv2.ellipse(mask, (CROP // 2, int(CROP * 0.62)), (int(CROP * 0.33), int(CROP * 0.25)), 0, 0,
                360, 255, -1)
    return frames, crop, image_to_crop, mask


def main() -> None:
    frames, crop, m, mask = make_inputs()
    settings = load_section(WatermarkParams, REPO)
    params = load_section(CompositeParams, REPO)
    marker = WatermarkEmbedder(settings.key_bytes, 12345, settings.strength)
    blend = params.blend
    for k in range(5):  # warm-up (pattern caches)
        marker.embed(composite_crop(frames[k % 8], crop, m, mask, blend), k)

    t0 = time.perf_counter()
    for k in range(N):
        composite_crop(frames[k % 8], crop, m, mask, blend)
    blend_fps = N / (time.perf_counter() - t0)

    out_frames = []
    t0 = time.perf_counter()
    for k in range(N):
        image = draw_edited_label(composite_crop(frames[k % 8], crop, m, mask, blend))
        out_frames.append(marker.embed(image, k))
    step_fps = N / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with VideoWriter(Path(tmp) / "out.mp4", 1280, 720, 25, crf=params.crf,
                         preset=params.preset) as out:
            for image in out_frames:
                out.write(image)
        encode_fps = N / (time.perf_counter() - t0)
    total_fps = 1.0 / (1.0 / step_fps + 1.0 / encode_fps)
    print(f"1280x720, {N} edited frames, crop {CROP}px")
    print(f"  blend only                     : {blend_fps:6.1f} frames/s")
    print(f"  composite step (blend+label+wm): {step_fps:6.1f} frames/s  (target >= 25)")
    print(f"  H.264 encode (preset {params.get('preset', 'medium')}, crf {params.get('crf', 12)})"
          f" : {encode_fps:6.1f} frames/s")
    print(f"  step + encode, one after other : {total_fps:6.1f} frames/s")


if __name__ == "__main__":
    main()
