"""Window scores for each kind of evidence, and the spans they flag.

Evidence, per window of ``window_s`` seconds (sync: ``sync_window_s`` around its centre).
Near speech the aligner left unaligned (see ``unaligned``) no phone-based evidence is
taken: there the phones say nothing about the mouth.

* ``closure``: for each M, B or P spoken in the window, how open the mouth stays at its
  most closed moment around the phone, less the dip it makes there (a closure shorter
  than a frame interval falls between frames: ``closing_dip``), over the speaker's own
  range (0 = as closed as the speaker ever gets, 1 = as open as wide-open vowels), as
  far as another bilabial within ``CORROBORATE_S`` is left open too (``corroborate``).
  Real lips close for bilabials; lip-sync fakes often do not (Agarwal & Farid 2020).
* ``sync_offset_ms``: the lag that best matches the mouth opening to the opening the
  aligned phones predict, against the clip's typical lag (the peak of the windows' summed
  correlation curves), counted where it improves the match by at least
  ``sync_min_gain`` in r (``sync_gain``, kept for the record; elsewhere the peak is
  noise): a dub or a retimed span drifts. A constant offset is no evidence (cameras and
  encoders shift sound by a few frames). It counts only as far as ``sync_persist``
  consecutive windows drift the same way (drift persists, noise does not), and as far as
  the soundtrack's loudness envelope drifts the same way against the mouth
  (``agreed_drift``: the aligner's lock onto a neighbouring syllable moves the phones, not
  the sound).
* ``pace`` (clip-wide, on the windows with speech): how much better the phones match the
  mouth over the whole speech when their timeline is stretched (``pace_ratio``) than at
  the clip's own pace, and the soundtrack's loudness envelope likewise (the smaller of
  the two gains: both must agree): another take of the words runs at its own pace.
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
EVIDENCE = ("closure", "sync_offset_ms", "pace", "seam", "texture")
# Jumps smaller than these never count as seams however still the clip is otherwise:
# eye-distance fraction per frame for the head (a hundredth: below what landmark tracking
# resolves; 0.002 let tracking jitter of a fraction of a pixel score as seams in clean
# clips), 8-bit luma levels for pixels (half a level: H.264 quantisation noise).
RIGID_FLOOR, PIXEL_FLOOR = 0.01, 0.5


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


# A closure shorter than the frame interval falls between two frames (espeak's P lasts
# 35 ms, a frame 40 ms: in training every clean clip's most open M/B/P was such a P); the
# frames then show the lips on their way to and back from closing: a dip in the opening.
# What that dip accounts for is no evidence of a failed closure; a mouth that stays open
# through the bilabial (a dub, a mouth rendered for other sounds) shows none.
DIP_SPAN_S = 0.12


def closing_dip(opening: np.ndarray, ok: np.ndarray, at: int, span: int) -> float:
    """How far the opening at frame ``at`` lies below the lower of the highest openings
    within ``span`` frames before and after it (0 when it is no dip)."""
    before = opening[max(0, at - span):at][ok[max(0, at - span):at]]
    after = opening[at + 1:at + 1 + span][ok[at + 1:at + 1 + span]]
    if not len(before) or not len(after):
        return 0.0
    return max(0.0, min(float(before.max()), float(after.max())) - float(opening[at]))


# One M, B or P read open is weak evidence at 25 fps: in training, every clean clip's most
# open bilabial was a P whose lips, in the generator's own truth, reached only 30-57 % of a
# closure at any frame (a closure shorter than the frame interval, the aligner giving it
# 50-135 ms), and texts dense in such P's gave more such chances per clip. A dub or a mouth
# rendered for other words leaves bilabials open one after another: a failure counts as
# far as another bilabial within CORROBORATE_S of it fails too (training: clean clips'
# highest such pair 0.05 of the range, dubs' median 0.09, upper tenth 0.53).
CORROBORATE_S = 1.0


def corroborate(bilabials: list[dict], within_s: float) -> None:
    """Set each bilabial's ``corroborated`` score: the lesser of its own score and the
    highest score of another bilabial starting within ``within_s`` of it (NaN: none
    there, so it cannot be corroborated)."""
    starts = np.array([b["start_s"] for b in bilabials])
    scores = np.array([b["score"] for b in bilabials])
    for i, b in enumerate(bilabials):
        others = (np.abs(starts - starts[i]) <= within_s) & (np.arange(len(starts)) != i)
        b["corroborated"] = (min(float(scores[i]), float(scores[others].max()))
                             if others.any() else float("nan"))


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


ENVELOPE_RANGE_DB = 35.0  # the loudness envelope's range below its peak (quieter: silence)
LOUD_DB = 25.0  # sound within this of the clip's loud level (90th percentile) is speech
ALIGN_SLACK_S = 0.1  # speech this near an aligned phone counts as aligned


def unaligned(speech: np.ndarray, loudness: np.ndarray | None, fps: float) -> np.ndarray:
    """Frames with speech-loud sound that no aligned phone comes near: words the
    aligner squeezed into too little time or missed (it happens at clip ends)."""
    if loudness is None or not len(loudness):
        return np.zeros(len(speech), bool)
    loud = loudness > np.percentile(loudness, 90) - LOUD_DB
    return loud[:len(speech)] & ~near(speech, ALIGN_SLACK_S * fps)


def near(mask: np.ndarray, frames: float) -> np.ndarray:
    """``mask`` grown by ``frames`` either way."""
    k = int(round(frames))
    if k <= 0 or not mask.any():
        return mask.copy()
    return np.convolve(mask.astype(float), np.ones(2 * k + 1), mode="same") > 0


PACES = np.round(np.arange(0.80, 1.2501, 0.01), 2)  # soundtrack pace / mouth pace searched
PACE_AGREEMENT = 0.05  # the phones' and the envelope's best paces this close: one take's pace


def pace_fit(opening: np.ndarray, expected: np.ndarray, speech: np.ndarray, max_lag: int
             ) -> tuple[float, float, float]:
    """(pace, r, r at pace 1): how the phones' timeline must be stretched (and shifted,
    up to ``max_lag`` frames) to match the mouth over the whole speech, the correlation
    there, and the best correlation without stretching. Another take of the words (a dub)
    runs at its own pace, so its phones drift steadily against the mouth; the clip's own
    soundtrack does not."""
    frames = np.flatnonzero(speech)
    if len(frames) < 16:
        return float("nan"), float("nan"), float("nan")
    a, b = int(frames[0]), int(frames[-1]) + 1
    t = np.arange(a, b, dtype=np.float64)
    centre = (a + b - 1) / 2
    grid = np.arange(len(expected), dtype=np.float64)
    r = np.full((len(PACES), 2 * max_lag + 1), np.nan)
    target = opening[a:b]
    for i, pace in enumerate(PACES):
        for j, lag in enumerate(range(-max_lag, max_lag + 1)):
            source = centre + pace * (t - centre) - lag
            inside = (source >= 0) & (source <= len(expected) - 1)
            if inside.mean() >= 0.8:
                r[i, j] = correlation(target[inside], np.interp(source[inside], grid, expected))
    if not np.isfinite(r).any():
        return float("nan"), float("nan"), float("nan")
    i, _ = np.unravel_index(np.nanargmax(r), r.shape)
    unit = int(np.flatnonzero(PACES == 1.0)[0])
    return float(PACES[i]), float(np.nanmax(r)), float(np.nanmax(r[unit]))


# Scores compared on log(score + offset): positive and right-skewed (a clip in perfect sync
# has a 0 ms offset); the others (shares and correlations) as they are.
LOG_SCALED = {"seam": 0.0, "texture": 0.0}


def scaled(kind: str, values: np.ndarray | pd.Series | float) -> np.ndarray:
    """A score on the scale its calibration fits a normal distribution on."""
    x = np.asarray(values, np.float64)
    return np.log(np.maximum(x + LOG_SCALED[kind], 1e-6)) if kind in LOG_SCALED else x


# The least score each type needs before it counts, whatever the calibration says: below
# these a score is within what the measurement itself resolves (a quarter of the
# speaker's opening range; two frames of lag at 25 fps; a correlation gain of 0.05;
# 4 and 1 robust SD for a frame jump and mouth detail).
LEAST_THRESHOLD = {"closure": 0.25, "sync_offset_ms": 80.0, "pace": 0.05, "seam": 4.0,
                   "texture": 1.0}


def unscaled(kind: str, value: float) -> float:
    return float(np.exp(value) - LOG_SCALED[kind]) if kind in LOG_SCALED else float(value)


# Ratios below this say only "cleaner than usual": clipped there, which is also the score
# of a window where nothing could be measured.
LOWEST_RATIO = -1.0


@dataclass(frozen=True)
class Calibration:
    """Per evidence type, the highest window score a clean clip typically reaches and
    the threshold above which a window is flagged. A window's ratio for a type is its
    score's place between the two (on the scaled axis): <= 0 is an ordinary clean level,
    > 1 is flagged; so the types' ratios are comparable and their maximum ranks windows."""

    typical: dict[str, float]
    threshold: dict[str, float]

    def ratios(self, windows: pd.DataFrame) -> pd.DataFrame:
        """Each score's ratio (> 1 = flagged); NaN where not measured."""
        out = {}
        for kind in EVIDENCE:
            low, high = scaled(kind, self.typical[kind]), scaled(kind, self.threshold[kind])
            ratio = (scaled(kind, windows[kind]) - low) / max(float(high - low), 1e-9)
            out[kind] = np.maximum(ratio, LOWEST_RATIO)  # NaN stays NaN
        return pd.DataFrame(out, index=windows.index)


def window_starts(duration_s: float, window_s: float, hop_s: float) -> np.ndarray:
    if duration_s <= window_s:
        return np.array([0.0])
    starts = np.arange(0.0, duration_s - window_s + 1e-9, hop_s)
    if starts[-1] + window_s < duration_s - 1e-6:
        starts = np.r_[starts, duration_s - window_s]
    return np.round(starts, 6)


def score_windows(face: FaceSignals, texture: TextureSignals, phones: pd.DataFrame | None,
                  fps: float, window_s: float, hop_s: float, sync_window_s: float,
                  max_lag_ms: float, closure_slack_s: float, sync_min_gain: float,
                  loudness: np.ndarray | None = None, sync_persist: int = 3
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
    half_sync = sync_window_s / 2
    expected = speech = trusted = None
    if phones is not None and len(phones):
        expected = expected_opening(phones, times, 0.04)
        speech = np.zeros(n, bool)
        for row in phones[phones["phone"] != SILENCE].itertuples():
            speech[(times >= row.start_s) & (times < row.end_s)] = True
        # Where the aligner lost the words, the phones say nothing of the mouth: near
        # sound it left unaligned, no sync or closure evidence is taken (and the pace
        # fit leaves it out). A dub's soundtrack is aligned like any other.
        trusted = ~near(unaligned(speech, loudness, fps), half_sync * fps)
        # A closure shorter than the frame interval can fall between two frames: only
        # bilabials held at least one frame are judged.
        held = phones["end_s"] - phones["start_s"] >= 1.0 / fps - 1e-6
        # ...and only where the aligner is sure of the phone (a misplaced M is no evidence)
        sure = ~phones["low_confidence"].astype(bool) if "low_confidence" in phones else True
        for row in phones[phones["phone"].isin(BILABIALS) & held & sure].itertuples():
            if not trusted[min(n - 1, int(row.start_s * fps))]:
                continue
            around = ((times >= row.start_s - closure_slack_s)
                      & (times <= row.end_s + closure_slack_s) & ok)
            if around.any():
                least_at = int(np.flatnonzero(around)[np.argmin(opening[around])])
                least = float(opening[least_at])
                dip = closing_dip(opening, ok, least_at, int(round(DIP_SPAN_S * fps)))
                bilabials.append({"phone": row.phone, "word_index": int(row.word_index),
                                  "start_s": float(row.start_s), "end_s": float(row.end_s),
                                  "opening": least, "dip": dip,
                                  "score": (least - closed - dip) / spread})
        corroborate(bilabials, CORROBORATE_S)

    starts = window_starts(duration, window_s, hop_s)
    max_lag = max(1, int(round(max_lag_ms * fps / 1000)))
    filled = (np.interp(np.arange(n), np.flatnonzero(ok), opening[ok]) if ok.any()
              else opening)
    curves: dict[int, np.ndarray] = {}
    envelope_curves: dict[int, np.ndarray] = {}
    envelope = (np.maximum(loudness, loudness.max() - ENVELOPE_RANGE_DB)
                if loudness is not None and len(loudness) == n else None)
    rows = []
    for w, start in enumerate(starts):
        end = min(duration, start + window_s)
        in_win = (times >= start) & (times < end)
        row = {"window": w, "start_s": float(start), "end_s": float(end),
               "closure": np.nan, "sync_lag_ms": np.nan, "sync_r": np.nan, "sync_gain": np.nan,
               "sync_offset_ms": np.nan, "pace": np.nan, "pace_ratio": np.nan, "seam": np.nan,
               "texture": np.nan}
        mids = [b["corroborated"] for b in bilabials
                if start <= (b["start_s"] + b["end_s"]) / 2 < end
                and np.isfinite(b["corroborated"])]
        if mids:
            row["closure"] = max(mids)
        if expected is not None and speech is not None and trusted is not None:
            centre = (start + end) / 2
            a = int(max(0, round((centre - half_sync) * fps)))
            b = int(min(n, round((centre + half_sync) * fps)))
            if speech[a:b].mean() >= 0.5 and ok[a:b].mean() >= 0.8 and trusted[a:b].all():
                curve = lag_curve(filled, expected, a, b, max_lag)
                if np.isfinite(curve).any():
                    curves[w] = curve
                    if envelope is not None:
                        envelope_curves[w] = lag_curve(filled, envelope, a, b, max_lag)
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
        envelope_typical = (peak(np.nanmean(np.vstack(list(envelope_curves.values())), axis=0))
                            if envelope_curves and np.isfinite(
                                np.vstack(list(envelope_curves.values()))).any() else None)
        for w, curve in curves.items():
            best = peak(curve)
            r_best = float(np.nanmax(curve))
            r_typical = float(curve[t_index]) if np.isfinite(curve[t_index]) else r_best
            gain = r_best - r_typical
            drift = best - typical if gain >= sync_min_gain else 0.0  # signed
            if w in envelope_curves:
                drift = agreed_drift(drift, envelope_curves[w], envelope_typical)
            windows.loc[w, ["sync_lag_ms", "sync_r", "sync_gain", "sync_offset_ms"]] = [
                (best - max_lag) * 1000.0 / fps, r_best, gain,
                drift * 1000.0 / fps]
    if expected is not None and speech is not None:
        pace, r_pace, r_unit = pace_fit(filled, expected, speech & ok & trusted, max_lag)
        gain = r_pace - r_unit
        if loudness is not None and len(loudness) == n:
            # The sound's own envelope must agree: stretching it must help as well. The
            # aligner alone sometimes times a phrase as if it ran faster (a clean clip's
            # phones then "prefer" another pace); a dub's envelope drifts like its phones.
            envelope = np.maximum(loudness, loudness.max() - ENVELOPE_RANGE_DB)
            loud = loudness > loudness.max() - ENVELOPE_RANGE_DB
            pace_env, r_env, r_env_unit = pace_fit(filled, envelope, loud & ok, max_lag)
            gain = float(np.fmin(gain, r_env - r_env_unit))
            # ...at the same pace: a dub's phones and envelope both run at its take's pace;
            # a clean clip's two gains, when both show, come from unrelated stretches.
            if not abs(pace - pace_env) <= PACE_AGREEMENT:
                gain = min(gain, 0.0)
        # clip-wide evidence, on the windows it concerns: those with speech in them
        talking = np.array([speech[(times >= r.start_s) & (times < r.end_s)].any()
                            for r in windows.itertuples()])
        windows["pace"] = np.where(talking, gain, np.nan)
        windows["pace_ratio"] = np.where(talking, pace, np.nan)
    if curves:
        # A lag of one window alone is noise more often than drift (the lag search locks
        # onto a neighbouring syllable now and then): a dub or a retimed span keeps its lag,
        # the same way, over several windows, so each window's drift counts only as far as
        # ``sync_persist`` consecutive windows around it drift the same way.
        windows["sync_offset_ms"] = persistent(windows["sync_offset_ms"].to_numpy(float),
                                               sync_persist)
        gains = windows["sync_gain"].to_numpy(float)  # kept for the record: one neighbour
        windows["sync_gain"] = np.fmin(gains, np.fmax(np.r_[np.nan, gains[:-1]],
                                                      np.r_[gains[1:], np.nan]))
    return windows, bilabials


def agreed_drift(drift: float, envelope_curve: np.ndarray, envelope_typical: float | None
                 ) -> float:
    """A window's drift (frames, signed) as far as the soundtrack's own loudness envelope
    drifts the same way against the mouth: the lesser of the two, 0 where they disagree.
    The phones' drift alone is often the aligner's: it locks a phrase onto a neighbouring
    syllable now and then (training: every clean window drifting 250-300 ms), while the
    sound itself keeps its place; a dub's sound drifts with its phones."""
    if drift == 0.0 or envelope_typical is None or not np.isfinite(envelope_curve).any():
        return drift
    envelope_drift = peak(envelope_curve) - envelope_typical
    if envelope_drift * drift <= 0:
        return 0.0
    return float(np.sign(drift) * min(abs(drift), abs(envelope_drift)))


def persistent(signed: np.ndarray, run: int) -> np.ndarray:
    """Per window, the largest drift that ``run`` consecutive measured windows including it
    all reach with one sign (0 where none do; NaN where not measured): how far a drift
    persists, not how far one window strays."""
    out = np.where(np.isfinite(signed), 0.0, np.nan)
    run = max(1, min(run, len(signed)))
    for start in range(len(signed) - run + 1):
        values = signed[start:start + run]
        if np.isfinite(values).all() and ((values > 0).all() or (values < 0).all()):
            out[start:start + run] = np.fmax(out[start:start + run], np.abs(values).min())
    return out
