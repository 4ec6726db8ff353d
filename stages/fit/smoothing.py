"""Temporal smoothing of per-frame parameters, and the lag/jitter measures to judge it.

The stage runs offline over the whole clip, so it can afford a centred
(zero-phase) filter: a Savitzky-Golay filter fits a low-order polynomial in a
window centred on each frame, which removes landmark jitter without delaying
the mouth (a causal filter such as one-euro always lags fast lip motion; it is
kept here for comparison and for live use).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from talkedit.errors import TalkeditError

METHODS = ("savgol", "one_euro", "none")


def window_frames(ms: float, fps: float, order: int) -> int:
    """An odd window of about ``ms`` milliseconds, long enough for the polynomial order."""
    n = int(round(ms / 1000.0 * fps))
    n = max(n, order + 2)
    return n + 1 if n % 2 == 0 else n


def smooth(x: np.ndarray, method: str, fps: float, window_ms: float = 200.0, order: int = 2,
           min_cutoff_hz: float = 1.0, beta: float = 3.0) -> np.ndarray:
    """Smooth (n, d) or (n,) series along time."""
    x = np.asarray(x, dtype=np.float64)
    if method == "none" or len(x) < 3:
        return x.copy()
    if method == "savgol":
        window = window_frames(window_ms, fps, order)
        if window > len(x):
            window = len(x) if len(x) % 2 else len(x) - 1
        if window <= order:
            return x.copy()
        return savgol_filter(x, window, order, axis=0, mode="interp")
    if method == "one_euro":
        return one_euro(x, fps, min_cutoff_hz, beta)
    raise TalkeditError(f"fit smoothing method {method!r}", "is unknown",
                        f"use one of {', '.join(METHODS)}")


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * fps)


def one_euro(x: np.ndarray, fps: float, min_cutoff_hz: float = 1.0, beta: float = 3.0,
             d_cutoff_hz: float = 1.0) -> np.ndarray:
    """Casiez et al.'s one-euro filter (causal): less smoothing when the signal moves fast."""
    out = np.empty_like(x)
    out[0] = x[0]
    dx_prev = np.zeros_like(x[0])
    for i in range(1, len(x)):
        dx = (x[i] - out[i - 1]) * fps
        dx_prev = dx_prev + _alpha(d_cutoff_hz, fps) * (dx - dx_prev)
        a = _alpha(min_cutoff_hz + beta * np.abs(dx_prev), fps)
        out[i] = out[i - 1] + a * (x[i] - out[i - 1])
    return out


def lag_frames(signal: np.ndarray, reference: np.ndarray, max_lag: int = 8) -> float:
    """The shift (frames, sub-frame by a parabola through the peak) that best lines
    ``signal`` up with ``reference``; > 0 means the signal comes late."""
    s = (signal - signal.mean()) / (signal.std() + 1e-12)
    r = (reference - reference.mean()) / (reference.std() + 1e-12)
    n = len(s)
    scores = np.array([np.mean(s[lag:] * r[:n - lag]) if lag >= 0 else np.mean(s[:lag] * r[-lag:])
                       for lag in range(-max_lag, max_lag + 1)])
    best = int(np.argmax(scores))
    offset = 0.0
    if 0 < best < len(scores) - 1:
        left, mid, right = scores[best - 1:best + 2]
        curve = left - 2 * mid + right
        offset = 0.5 * (left - right) / curve if curve < 0 else 0.0
    return float(best - max_lag + offset)


def jitter(signal: np.ndarray, still: np.ndarray | None = None) -> float:
    """RMS frame-to-frame change over the frames where the true motion is ``still``.

    Where the face does not move, every change is tracking noise; measured
    elsewhere this would mostly count real motion.
    """
    x = np.asarray(signal, dtype=np.float64)
    pairs = np.ones(len(x) - 1, dtype=bool) if still is None else still[1:] & still[:-1]
    step = np.diff(x, axis=0)[pairs]
    return float(np.sqrt(np.mean(step ** 2))) if len(step) else float("nan")


def still_frames(truth: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Frames where a reference signal holds still (it changes by less than ``tol``)."""
    d = np.abs(np.diff(truth))
    calm = np.r_[d[0], np.maximum(d[1:], d[:-1]), d[-1]] < tol
    return calm
