"""Window scores for each kind of evidence, and the spans they flag.

Evidence, per window of ``window_s`` seconds (sync: ``sync_window_s`` around its centre):

* ``closure``: for each M, B or P spoken in the window, how open the mouth stays at its
  most closed moment around the phone, over the speaker's own range (0 = as closed as
  the speaker ever gets, 1 = as open as wide-open vowels). Real lips close for bilabials;
  lip-sync fakes often do not (Agarwal & Farid 2020).
* ``sync_offset_ms``: the lag that best matches the mouth opening to the opening the
  aligned phones predict, against the clip's typical lag (the peak of the windows' summed
  correlation curves), counted where it improves the match by at least
  ``sync_min_gain`` in r (elsewhere the peak is noise); and the typical lag itself
  (real footage is in sync): a dub or a retimed span drifts.
* ``sync_gain``: how much better than the typical lag the window's best lag matches
  (r at best - r at typical): a mouth that follows another take of the words.
  Both sync scores count only as far as a neighbouring window's agree (drift persists,
  noise does not).
* ``seam``: the largest jump between consecutive frames (rigid head points, upper-face
  pixels, background pixels), in robust z over the clip's own transitions.
* ``texture``: how far the mouth region's detail (vs the upper face), less what the mouth's
  opening and the head's pose explain, departs from the clip's typical level: a
  re-rendered mouth is smoother or noisier than the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stages.detect.signals import (
    MAD_TO_SD,
    FaceSignals,
    TextureSignals,
    robust_z,
    spike,
    unexplained,
)
from talkedit.phonemes import SILENCE, VOWELS

BILABIALS = frozenset({"M", "B", "P"})
EVIDENCE = ("closure", "sync_offset_ms", "sync_gain", "seam", "texture")
# Jumps smaller than these never count as seams however still the clip is otherwise:
# eye-distance fraction per frame for the head, 8-bit luma levels for pixels.
RIGID_FLOOR, PIXEL_FLOOR = 0.002, 0.25


def expected_opening(phones: pd.DataFrame, times: np.ndarray, smooth_s: float) -> np.ndarray:
    """The mouth opening the phones predict at each time: open for vowels, shut for
    bilabials and pauses, half-way otherwise; smoothed like a real mouth's inertia."""
    out = np.zeros(len(times))
    for row in phones.itertuples():
        level = (1.0 if row.phone in VOWELS else 0.0 if row.phone in BILABIALS
                 or row.phone == SILENCE else 0.2 if row.phone in ("F", "V") else 0.45)
        out[(times >= row.start_s) & (times < row.end_s)] = level
    if len(times) > 1 and smooth_s > 0:
        dt = float(np.median(np.diff(times)))
        sigma = smooth_s / dt
        k = np.arange(-int(3 * sigma) - 1, int(3 * sigma) + 2)
        kernel = np.exp(-0.5 * (k / max(sigma, 1e-6)) ** 2)
        out = np.convolve(np.pad(out, len(k) // 2, mode="edge"), kernel / kernel.sum(), "valid")
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (r is undefined there)."""
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def lag_curve(opening: np.ndarray, expected: np.ndarray, a: int, b: int, max_lag: int
              ) -> np.ndarray:
    """Correlation of opening[a:b] with expected[a-L:b-L] for L = -max_lag..max_lag
    (frames; positive L = the mouth moves after the sound); NaN where too little overlaps."""
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        lo, hi = max(a, lag, 0), min(b, len(expected) + lag)
        if hi - lo >= max(8, (b - a) // 2):
            out[i] = correlation(opening[lo:hi], expected[lo - lag:hi - lag])
    return out


def peak(curve: np.ndarray) -> float:
    """The index of the curve's maximum, refined between samples by a parabola."""
    k = int(np.nanargmax(curve))
    if 0 < k < len(curve) - 1 and np.isfinite(curve[k - 1:k + 2]).all():
        denom = curve[k - 1] - 2 * curve[k] + curve[k + 1]
        if denom < 0:
            return k + 0.5 * (curve[k - 1] - curve[k + 1]) / denom
    return float(k)


@dataclass(frozen=True)
class Thresholds:
    """A window is flagged for an evidence type when its score exceeds these."""

    closure: float
    sync_offset_ms: float
    sync_gain: float
    seam: float
    texture: float

    def ratios(self, windows: pd.DataFrame) -> pd.DataFrame:
        """Each score over its threshold (> 1 = flagged); NaN where not measured."""
        return pd.DataFrame({
            "closure": windows["closure"] / self.closure,
            "sync_offset_ms": windows["sync_offset_ms"] / self.sync_offset_ms,
            "sync_gain": windows["sync_gain"] / self.sync_gain,
            "seam": windows["seam"] / self.seam,
            "texture": windows["texture"] / self.texture,
        })


def window_starts(duration_s: float, window_s: float, hop_s: float) -> np.ndarray:
    if duration_s <= window_s:
        return np.array([0.0])
    starts = np.arange(0.0, duration_s - window_s + 1e-9, hop_s)
    if starts[-1] + window_s < duration_s - 1e-6:
        starts = np.r_[starts, duration_s - window_s]
    return np.round(starts, 6)


def score_windows(face: FaceSignals, texture: TextureSignals, phones: pd.DataFrame | None,
                  fps: float, window_s: float, hop_s: float, sync_window_s: float,
                  max_lag_ms: float, closure_slack_s: float, sync_min_gain: float
                  ) -> tuple[pd.DataFrame, list[dict]]:
    """Per-window scores (NaN where the evidence cannot be measured), and each bilabial's
    closure measurement."""
    times = face.time_s
    n = len(times)
    duration = n / fps
    opening = np.where(face.detected, face.opening, np.nan)
    ok = np.isfinite(opening)
    closed = float(np.percentile(opening[ok], 3)) if ok.any() else float("nan")
    spread = max(float(np.percentile(opening[ok], 97)) - closed, 1e-3) if ok.any() else 1.0

    jumps = np.vstack([robust_z(face.rigid_jump, RIGID_FLOOR),
                       robust_z(spike(texture.face_diff), PIXEL_FLOOR),
                       robust_z(spike(texture.background_diff), PIXEL_FLOOR)])
    measured = np.isfinite(jumps).any(axis=0)
    seam = np.full(n, np.nan)
    seam[measured] = np.nanmax(jumps[:, measured], axis=0)
    explain = np.column_stack([opening, face.head_angles if face.head_angles is not None
                               else np.zeros((n, 0))])
    detail = unexplained(texture.mouth_detail, explain)
    finite_detail = detail[np.isfinite(detail)]
    detail_mid = float(np.median(finite_detail)) if len(finite_detail) else float("nan")
    detail_sd = (max(MAD_TO_SD * float(np.median(np.abs(finite_detail - detail_mid))), 0.02)
                 if len(finite_detail) else 1.0)

    bilabials: list[dict] = []
    expected = speech = None
    if phones is not None and len(phones):
        expected = expected_opening(phones, times, 0.04)
        speech = np.zeros(n, bool)
        for row in phones[phones["phone"] != SILENCE].itertuples():
            speech[(times >= row.start_s) & (times < row.end_s)] = True
        # A closure shorter than the frame interval can fall between two frames: only
        # bilabials held at least one frame are judged.
        held = phones["end_s"] - phones["start_s"] >= 1.0 / fps - 1e-6
        # ...and only where the aligner is sure of the phone (a misplaced M is no evidence)
        sure = ~phones["low_confidence"].astype(bool) if "low_confidence" in phones else True
        for row in phones[phones["phone"].isin(BILABIALS) & held & sure].itertuples():
            around = ((times >= row.start_s - closure_slack_s)
                      & (times <= row.end_s + closure_slack_s) & ok)
            if around.any():
                least = float(np.min(opening[around]))
                bilabials.append({"phone": row.phone, "word_index": int(row.word_index),
                                  "start_s": float(row.start_s), "end_s": float(row.end_s),
                                  "opening": least, "score": (least - closed) / spread})

    starts = window_starts(duration, window_s, hop_s)
    max_lag = max(1, int(round(max_lag_ms * fps / 1000)))
    half_sync = sync_window_s / 2
    filled = (np.interp(np.arange(n), np.flatnonzero(ok), opening[ok]) if ok.any()
              else opening)
    curves: dict[int, np.ndarray] = {}
    rows = []
    for w, start in enumerate(starts):
        end = min(duration, start + window_s)
        in_win = (times >= start) & (times < end)
        row = {"window": w, "start_s": float(start), "end_s": float(end),
               "closure": np.nan, "sync_lag_ms": np.nan, "sync_r": np.nan, "sync_gain": np.nan,
               "sync_offset_ms": np.nan, "seam": np.nan, "texture": np.nan}
        mids = [b["score"] for b in bilabials if start <= (b["start_s"] + b["end_s"]) / 2 < end]
        if mids:
            row["closure"] = max(mids)
        if expected is not None and speech is not None:
            centre = (start + end) / 2
            a = int(max(0, round((centre - half_sync) * fps)))
            b = int(min(n, round((centre + half_sync) * fps)))
            if speech[a:b].mean() >= 0.5 and ok[a:b].mean() >= 0.8:
                curve = lag_curve(filled, expected, a, b, max_lag)
                if np.isfinite(curve).any():
                    curves[w] = curve
        if in_win.sum() >= 2 and np.isfinite(seam[in_win]).any():
            row["seam"] = float(np.nanmax(seam[in_win]))
        win_detail = detail[in_win & np.isfinite(detail)]
        if len(win_detail) >= 3:
            row["texture"] = abs(float(np.median(win_detail)) - detail_mid) / detail_sd
        rows.append(row)
    windows = pd.DataFrame(rows)
    if curves:
        # The clip's typical lag: the peak of all windows' curves together.
        typical = peak(np.nanmean(np.vstack(list(curves.values())), axis=0))
        t_index = int(round(typical))
        for w, curve in curves.items():
            best = peak(curve)
            r_best = float(np.nanmax(curve))
            r_typical = float(curve[t_index]) if np.isfinite(curve[t_index]) else r_best
            gain = r_best - r_typical
            drift = abs(best - typical) if gain >= sync_min_gain else 0.0
            windows.loc[w, ["sync_lag_ms", "sync_r", "sync_gain", "sync_offset_ms"]] = [
                (best - max_lag) * 1000.0 / fps, r_best, gain,
                max(drift, abs(typical - max_lag)) * 1000.0 / fps]
        # A lag of one window alone is noise more often than drift: a dub or a retimed span
        # keeps its lag over neighbouring windows, so each window's sync scores count only
        # as far as a neighbour's agree.
        for column in ("sync_gain", "sync_offset_ms"):
            values = windows[column].to_numpy(float)
            neighbours = np.fmax(np.r_[np.nan, values[:-1]], np.r_[values[1:], np.nan])
            windows[column] = np.fmin(values, neighbours)
    return windows, bilabials
