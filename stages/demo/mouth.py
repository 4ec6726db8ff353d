"""Phones to mouth articulation: the demo's ground-truth lower-face parameters.

Each ARPAbet phone has an articulatory target (jaw opening, lip width, lip
closure). Targets are held over the middle of each phone and smoothed with a
Gaussian kernel (coarticulation: neighbouring phones blend into each other),
except lip closure for bilabials, which must really reach 1 (p/b/m close the
lips whatever their neighbours are).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

# (jaw_open 0..1, lip_width -1 rounded .. 1 spread, lip_closure 0..1)
PHONE_TARGETS: dict[str, tuple[float, float, float]] = {
    "sil": (0.05, 0.0, 0.3),
    "AA": (0.95, 0.1, 0.0), "AE": (0.8, 0.5, 0.0), "AH": (0.65, 0.1, 0.0),
    "AO": (0.8, -0.5, 0.0), "AW": (0.8, -0.3, 0.0), "AY": (0.8, 0.3, 0.0),
    "EH": (0.6, 0.45, 0.0), "ER": (0.4, -0.3, 0.0), "EY": (0.5, 0.6, 0.0),
    "IH": (0.4, 0.5, 0.0), "IY": (0.25, 0.8, 0.0), "OW": (0.6, -0.8, 0.0),
    "OY": (0.65, -0.5, 0.0), "UH": (0.4, -0.6, 0.0), "UW": (0.3, -1.0, 0.0),
    "P": (0.0, 0.0, 1.0), "B": (0.0, 0.0, 1.0), "M": (0.0, 0.0, 1.0),
    "F": (0.15, 0.2, 0.5), "V": (0.15, 0.2, 0.5),
    "TH": (0.25, 0.3, 0.0), "DH": (0.25, 0.3, 0.0),
    "T": (0.25, 0.3, 0.0), "D": (0.25, 0.3, 0.0), "N": (0.25, 0.2, 0.0),
    "S": (0.15, 0.5, 0.0), "Z": (0.15, 0.5, 0.0), "L": (0.35, 0.2, 0.0),
    "SH": (0.2, -0.5, 0.0), "ZH": (0.2, -0.5, 0.0), "CH": (0.2, -0.5, 0.0),
    "JH": (0.2, -0.5, 0.0), "R": (0.3, -0.6, 0.0), "W": (0.2, -1.0, 0.0),
    "Y": (0.25, 0.6, 0.0), "K": (0.35, 0.1, 0.0), "G": (0.35, 0.1, 0.0),
    "NG": (0.3, 0.1, 0.0), "HH": (0.45, 0.1, 0.0),
}
_BILABIAL = frozenset({"P", "B", "M"})


def articulation_track(phones: list[tuple[str, float, float]], times: np.ndarray,
                       smooth_s: float = 0.035, rate_hz: float = 200.0) -> np.ndarray:
    """Sample (jaw_open, lip_width, lip_closure) at ``times`` from timed phones.

    ``phones`` are (ARPAbet, start_s, end_s) covering the utterance.
    """
    end = max(p[2] for p in phones) if phones else 0.0
    grid = np.arange(0.0, max(end, float(times.max(initial=0.0))) + 0.5, 1.0 / rate_hz)
    targets = np.tile(np.asarray(PHONE_TARGETS["sil"], dtype=np.float64), (len(grid), 1))
    closure_hold = np.zeros(len(grid))
    for phone, start, stop in phones:
        span = (grid >= start) & (grid < stop)
        targets[span] = PHONE_TARGETS.get(phone, PHONE_TARGETS["AH"])
        if phone in _BILABIAL:
            # Lips are shut through the middle 70% of a bilabial.
            mid = (grid >= start + 0.15 * (stop - start)) & (grid < stop - 0.15 * (stop - start))
            closure_hold[mid] = 1.0
    track = gaussian_filter1d(targets, sigma=smooth_s * rate_hz, axis=0, mode="nearest")
    track[:, 2] = np.maximum(track[:, 2], closure_hold)
    # Closed lips cannot be apart: the jaw opening visible at the lips shrinks with closure.
    track[:, 0] *= 1.0 - track[:, 2]
    out = np.stack([np.interp(times, grid, track[:, k]) for k in range(3)], axis=1)
    out[:, 0] = np.clip(out[:, 0], 0.0, 1.0)
    out[:, 1] = np.clip(out[:, 1], -1.0, 1.0)
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    return out.astype(np.float32)
