"""The speaker's co-articulation model: how open the mouth is from the phones around it.

Stitched phrases open late and small where a piece's phone was said between other
neighbours than the new words': its opening carries its old context (a vowel cut from
before a closure closes early; one taken from a stressed word opens too wide). Here the
clip's own openness (``retime.openness_proxy``) is modelled as each phone's target,
held over the phone and smoothed by a Gaussian (the smoothing spreads each phone into
its neighbours: co-articulation, after Cohen & Massaro), plus a constant; the targets are
fitted by least squares on the clip's usable frames and the smoothing width is chosen on
the clip's second half (fitted on its first). Nothing but the clip and its alignment is
used. ``correct`` then moves the new words' planned expression along the openness
direction towards the model's curve for the *new* phone sequence (their own neighbours
and durations), keeping every other part of the retrieved expression (lip shape,
rounding, teeth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from stages.index import VisemeIndex
from stages.plan.search import PHONE_CODES

RATE_HZ = 200.0  # the model's time grid
SIGMAS_S = (0.02, 0.03, 0.04, 0.05, 0.06)  # smoothing widths tried on the clip's second half
RIDGE = 1e-3
BLOCK = 4096  # grid points smoothed at once (20 s)


def phone_design(phones: list[str], starts: np.ndarray, ends: np.ndarray, times: np.ndarray,
                 sigma_s: float) -> np.ndarray:
    """(len(times), phones + 1): each phone's smoothed indicator at ``times``, and 1.

    The indicators live on a RATE_HZ grid from 0 s, smoothed in blocks of BLOCK grid points
    (padded by the Gaussian's reach, so every value is the one a whole-grid pass gives) and
    only where ``times`` fall: a 31-minute clip's whole grid would hold 0.12 GB per copy."""
    horizon = max(float(np.max(ends, initial=0.0)), float(np.max(times, initial=0.0))) + 0.5
    grid = np.arange(0.0, horizon, 1.0 / RATE_HZ)
    codes = np.array([PHONE_CODES[p] for p in phones], np.int64)
    # grid points [first, last) lie in the phone: grid >= start and grid < end
    first = np.searchsorted(grid, np.asarray(starts, np.float64), "left")
    last = np.searchsorted(grid, np.asarray(ends, np.float64), "left")
    width = sigma_s * RATE_HZ
    pad = int(4.0 * width + 0.5) + 1  # gaussian_filter1d's reach (truncate 4.0), and one
    times = np.asarray(times, np.float64)
    out = np.ones((len(times), len(PHONE_CODES) + 1))
    # np.interp reads the two grid points around a time: the block of the first one
    block_of = np.clip(np.searchsorted(grid, times, "right") - 1, 0, len(grid) - 1) // BLOCK
    for block in np.unique(block_of):
        s, e = int(block) * BLOCK, min((int(block) + 1) * BLOCK + 1, len(grid))
        a, b = max(0, s - pad), min(len(grid), e + pad)
        held = np.zeros((b - a, len(PHONE_CODES)))
        for k in np.flatnonzero((last > a) & (first < b)):
            held[max(first[k], a) - a:min(last[k], b) - a, codes[k]] = 1.0
        smooth = gaussian_filter1d(held, width, axis=0, mode="nearest")[s - a:e - a]
        rows = block_of == block
        for k in range(smooth.shape[1]):
            out[rows, k] = np.interp(times[rows], grid[s:e], smooth[:, k])
    return out


@dataclass(frozen=True)
class ArticulationModel:
    weights: np.ndarray  # per phone code, then the constant
    sigma_s: float
    validation_r: float  # r with the clip's openness on its second half (fitted on the first)

    @classmethod
    def fit(cls, index: VisemeIndex, openness: np.ndarray, usable: np.ndarray, fps: float
            ) -> ArticulationModel | None:
        """Fitted on the clip's usable frames (``usable``); None when too few."""
        n = len(openness)
        t = np.arange(n) / fps
        phones = [str(p) for p in index.phones]
        first = usable & (np.arange(n) < n // 2)
        second = usable & ~first
        if first.sum() < 25 or second.sum() < 25:
            return None
        best: tuple[float, float] | None = None
        for sigma in SIGMAS_S:
            x = phone_design(phones, index.start_s, index.end_s, t, sigma)
            w = _solve(x[first], openness[first])
            r = float(np.corrcoef(x[second] @ w, openness[second])[0, 1])
            if np.isfinite(r) and (best is None or r > best[0]):
                best = (r, sigma)
        if best is None:
            return None
        x = phone_design(phones, index.start_s, index.end_s, t, best[1])
        return cls(_solve(x[usable], openness[usable]), best[1], best[0])

    def predict(self, phones: list[str], starts: np.ndarray, ends: np.ndarray,
                times: np.ndarray) -> np.ndarray:
        return phone_design(phones, starts, ends, times, self.sigma_s) @ self.weights


def _solve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge least squares (phones the clip never says keep a zero target)."""
    reg = RIDGE * len(x) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + reg, x.T @ y)


def correct(expression: np.ndarray, direction: np.ndarray, target: np.ndarray,
            weight: np.ndarray) -> np.ndarray:
    """``expression`` (n, d) moved along the unit ``direction`` so that its openness
    (projection on it) goes ``weight`` (n,) of the way to ``target`` (n,)."""
    openness = expression @ direction
    return expression + (weight * (target - openness))[:, None] * direction[None, :]
