"""TD-PSOLA: say a sequence of source stretches, each time-warped onto its output span.

A ``Run`` is one contiguous stretch of a source (the clip, espeak's speech, a
recording) mapped piecewise-linearly onto output samples. Rendering walks the
output one glottal period at a time (5 ms steps where unvoiced): at each output
pitch mark it takes the source grain (two periods, Hann-windowed, centred on the
nearest source pitch mark) at the warped source time and overlap-adds it. Durations
change by repeating or skipping grains; pitch by spacing the output marks.

Joins between runs:
* cross-fade: around each join, grains from both runs (each extended past its end
  at natural speed) are mixed with linear weights over ``join_ms``. Grains are
  centred on pitch marks, so the mix is pitch-synchronous: the waves add in phase,
  and the hand-over happens in the low-energy tails of each period.
* pitch: the log-f0 step across a join is split between the two sides and ramped
  out over ``smooth_ms`` each way; at the span's borders the new speech is bent to
  the kept audio's pitch (``anchors``).
* loudness: at joins inside a phone (``mid``) the level step is smoothed the same
  way; at phone boundaries a level change is the speech's own and is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from stages.audio.dsp import F0_MIN_HZ, HOP_S, f0_track, pitch_marks

BORDER, MID, BOUNDARY = "border", "mid", "boundary"
MEASURE_S = 0.03  # pitch and level either side of a join are measured over this much
MARGIN_S = 0.08  # source read beyond a run's ends, for cross-fades and measurements
UNVOICED_HALF_S = 0.005  # grain half-length (and step) where the output is unvoiced
MAX_LEVEL_STEP_DB = 12.0  # larger level steps inside a phone are only partly evened out


@dataclass
class Source:
    """A signal units are cut from, at the output rate, and how to match it to the speaker."""

    name: str  # clip | tts | recording
    read: Callable[[int, int], np.ndarray]  # samples [a, b) as float, zeros outside
    gain: float = 1.0  # linear gain applied to everything read
    # log-f0 (mean, sd) of the source and of the speaker: source pitch is mapped onto the
    # speaker's range (espeak fallbacks); None keeps the source's own pitch.
    pitch_map: tuple[float, float, float, float] | None = None

    def log_f0(self, f0: np.ndarray) -> np.ndarray:
        """Log f0 of the rendered speech for the source's f0 (NaN where unvoiced)."""
        with np.errstate(divide="ignore"):
            lf = np.where(f0 > 0, np.log(np.maximum(f0, 1e-9)), np.nan)
        if self.pitch_map is not None:
            mu, sd, mu_to, sd_to = self.pitch_map
            lf = mu_to + (lf - mu) * (sd_to / max(sd, 1e-6))
        return lf


@dataclass
class Run:
    source: Source
    out_knots: np.ndarray  # output samples (relative to the span), increasing
    src_knots: np.ndarray  # the source samples they show
    join: str = BORDER  # what kind of join starts this run: border | mid | boundary

    @property
    def out_start(self) -> float:
        return float(self.out_knots[0])

    @property
    def out_end(self) -> float:
        return float(self.out_knots[-1])

    def source_at(self, t: np.ndarray | float) -> np.ndarray:
        """Source sample shown at output time t; beyond the run's ends, at natural speed."""
        t = np.asarray(t, dtype=np.float64)
        s = np.interp(t, self.out_knots, self.src_knots)
        s = np.where(t < self.out_start, self.src_knots[0] - (self.out_start - t), s)
        return np.where(t > self.out_end, self.src_knots[-1] + (t - self.out_end), s)

    def is_identity(self) -> bool:
        return bool(np.allclose(self.out_knots - self.out_knots[0],
                                self.src_knots - self.src_knots[0], atol=0.5))


@dataclass
class _Analysis:
    start: int  # source sample of x[0]
    x: np.ndarray
    f0: np.ndarray  # per hop, from x[0]
    lf: np.ndarray  # rendered log f0 per hop (pitch map applied), NaN unvoiced
    marks: np.ndarray  # pitch marks, indices into x
    periods: np.ndarray  # period (samples) at each mark


def _analyse(run: Run, sr: int, hop: int) -> _Analysis:
    margin = int(MARGIN_S * sr)
    a = int(np.floor(run.src_knots.min())) - margin
    b = int(np.ceil(run.src_knots.max())) + margin
    x = run.source.read(a, b) * run.source.gain
    f0 = f0_track(x, sr, hop)
    marks = pitch_marks(x, sr, f0, hop)
    frame = np.clip(np.rint(marks / hop).astype(np.int64), 0, max(len(f0) - 1, 0))
    own = np.where(f0[frame] > 0, sr / np.maximum(f0[frame], 1e-9), 0.0) if len(marks) else \
        np.zeros(0)
    gaps = np.diff(marks).astype(np.float64)
    periods = own.copy()
    if len(marks) > 1:
        # Where neighbouring marks are one period apart, their spacing is the period.
        left = np.r_[np.inf, gaps]
        right = np.r_[gaps, np.inf]
        near = np.minimum(left, right)
        ok = (near < 1.5 * np.maximum(own, 1)) & (own > 0)
        periods[ok] = near[ok]
    periods = np.where(periods > 0, periods, sr / 100.0)
    return _Analysis(a, x, f0, run.source.log_f0(f0), marks, np.rint(periods).astype(np.int64))


@lru_cache(maxsize=512)
def _hann(half: int) -> np.ndarray:
    """2*half+1 points, zero at both ends: shifted by ``half`` two of them sum to 1."""
    return np.hanning(2 * half + 1)


@dataclass
class Rendered:
    samples: np.ndarray
    joins: list[tuple[int, int]] = field(default_factory=list)  # cross-fades between runs


def render(runs: list[Run], n: int, sr: int, join_ms: float = 10.0, smooth_ms: float = 80.0,
           anchors: tuple[float | None, float | None] = (None, None),
           smooth_pitch: bool = True, lead: int = 0) -> Rendered:
    """``n`` output samples saying ``runs`` (which tile [0, n) in order).

    ``anchors``: log f0 of the kept audio just before / after the span (None: unvoiced or
    no kept audio there). ``smooth_pitch`` False keeps each source's own pitch contour.
    ``lead``: also render that many samples before 0 and after n (the first and last
    runs continued at natural speed), to cross-fade with the kept audio around the span;
    the result then holds n + 2 * lead samples, output sample 0 at index ``lead``.
    """
    if not runs or n <= 0:
        return Rendered(np.zeros(max(n, 0) + 2 * lead))
    runs = _with_lead(runs, n, lead)
    n_all = n + 2 * lead
    starts = np.array([r.out_start for r in runs])
    if len(runs) == 1 and runs[0].is_identity() and not smooth_pitch and \
            runs[0].source.pitch_map is None:
        # Nothing to stretch or bend: the source as it is (e.g. a recording timed to the plan).
        s0 = int(round(runs[0].src_knots[0] - runs[0].out_knots[0]))
        return Rendered(runs[0].source.read(s0, s0 + n_all) * runs[0].source.gain)
    n = n_all
    hop = max(1, int(round(HOP_S * sr)))
    analyses = [_analyse(r, sr, hop) for r in runs]
    joins = [int(round(s)) for s in starts[1:]]
    grid = np.arange(0, n + hop, hop, dtype=np.float64)
    owner = np.clip(np.searchsorted(starts, grid, "right") - 1, 0, len(runs) - 1)
    lf = np.full(len(grid), np.nan)
    for i, (run, an) in enumerate(zip(runs, analyses, strict=True)):
        at = owner == i
        lf[at] = _lookup(an, run.source_at(grid[at]) - an.start, hop)
    width = smooth_ms / 1000 * sr
    gain_db = np.zeros(len(grid))
    if smooth_pitch:
        lf = lf + _pitch_corrections(runs, analyses, grid, lf, joins, anchors,
                                     (lead, n - lead), width, sr, hop)
    gain_db += _level_corrections(runs, analyses, grid, joins, width, sr)

    half_x = [min(join_ms / 2000 * sr, 0.4 * (runs[k].out_end - runs[k].out_start),
                  0.4 * (runs[k + 1].out_end - runs[k + 1].out_start))
              for k in range(len(runs) - 1)]
    pad = sr // 20  # room for a grain's half before sample 0 and after sample n
    out = np.zeros(n + 2 * pad + 1)
    uv_half = max(1, int(round(UNVOICED_HALF_S * sr)))
    rng = np.random.default_rng(0)  # unvoiced grains are jittered, reproducibly
    t = 0.0
    while t < n:
        k = min(int(round(t / hop)), len(grid) - 1)
        voiced = bool(np.isfinite(lf[k]))
        step = min(sr / np.exp(lf[k]), sr / F0_MIN_HZ) if voiced else float(uv_half)
        r = int(np.clip(np.searchsorted(starts, t, "right") - 1, 0, len(runs) - 1))
        parts = [(r, 1.0)]
        if r > 0 and t < runs[r].out_start + half_x[r - 1]:
            w = (t - (runs[r].out_start - half_x[r - 1])) / (2 * half_x[r - 1])
            parts = [(r - 1, 1.0 - w), (r, w)]
        elif r < len(runs) - 1 and t >= runs[r + 1].out_start - half_x[r]:
            w = (t - (runs[r + 1].out_start - half_x[r])) / (2 * half_x[r])
            parts = [(r, 1.0 - w), (r + 1, w)]
        g = 10 ** (gain_db[k] / 20)
        centre = int(round(t)) + pad
        for i, w in parts:
            if w <= 0:
                continue
            pos = float(runs[i].source_at(t))
            stretch = max(step, 1.0) / max(float(runs[i].source_at(t + step)) - pos, 1e-9)
            grain = _grain(analyses[i], pos - analyses[i].start, voiced, step, uv_half,
                           rng if stretch > 1.05 else None)
            h = len(grain) // 2
            lo = centre - h
            if lo < 0:
                grain, lo = grain[-lo:], 0
            seg = out[lo:lo + len(grain)]
            seg += w * g * grain[:len(seg)]
        t += max(step, 1.0)
    fades = [(int(np.floor(j - h)) - lead, int(np.ceil(j + h)) - lead)
             for j, h in zip(starts[1:], half_x, strict=True)]
    return Rendered(out[pad:pad + n], fades)


def _with_lead(runs: list[Run], n: int, lead: int) -> list[Run]:
    """The runs shifted by ``lead``, the first and last extended by ``lead`` at natural speed."""
    out = [Run(r.source, r.out_knots + lead, r.src_knots, r.join) for r in runs]
    if lead > 0:
        first, last = out[0], out[-1]
        out[0] = Run(first.source, np.r_[0.0, first.out_knots],
                     np.r_[first.src_knots[0] - lead, first.src_knots], first.join)
        last = out[-1]
        out[-1] = Run(last.source, np.r_[last.out_knots, n + 2.0 * lead],
                      np.r_[last.src_knots, last.src_knots[-1] + (n + 2.0 * lead
                                                                  - last.out_knots[-1])],
                      last.join)
    return out


def _lookup(an: _Analysis, pos: np.ndarray, hop: int) -> np.ndarray:
    """Rendered log f0 at source positions (relative to the analysis); NaN where unvoiced."""
    f = pos / hop
    i0 = np.clip(np.floor(f).astype(np.int64), 0, len(an.lf) - 1)
    i1 = np.clip(i0 + 1, 0, len(an.lf) - 1)
    a, b = an.lf[i0], an.lf[i1]
    frac = np.clip(f - i0, 0.0, 1.0)
    both = np.isfinite(a) & np.isfinite(b)
    return np.where(both, a * (1 - frac) + b * frac, np.where(frac < 0.5, a, b))


def _grain(an: _Analysis, pos: float, voiced: bool, step: float, uv_half: int,
           rng: np.random.Generator | None) -> np.ndarray:
    """The windowed source grain to place at an output mark whose source position is ``pos``.

    ``rng`` (where the source is being stretched) jitters unvoiced grains.
    """
    if voiced and len(an.marks):
        i = int(np.searchsorted(an.marks, pos))
        cand = [j for j in (i - 1, i) if 0 <= j < len(an.marks)]
        j = min(cand, key=lambda c: abs(an.marks[c] - pos))
        half = int(an.periods[j])
        if abs(an.marks[j] - pos) <= 1.5 * half:
            return _cut(an.x, int(an.marks[j]), half)
    # Unvoiced (or no period near): a noise grain, jittered where stretched so that
    # repeated grains do not buzz at the grain rate.
    half = int(round(step)) if voiced else uv_half
    jitter = rng.uniform(-0.5, 0.5) * half if rng is not None else 0.0
    centre = int(round(pos + jitter))
    return _cut(an.x, centre, half)


def _cut(x: np.ndarray, centre: int, half: int) -> np.ndarray:
    a, b = centre - half, centre + half + 1
    seg = np.zeros(2 * half + 1)
    lo, hi = max(a, 0), min(b, len(x))
    if hi > lo:
        seg[lo - a:hi - a] = x[lo:hi]
    return seg * _hann(half)


def _side_median(values: np.ndarray, grid: np.ndarray, lo: float, hi: float) -> float | None:
    sel = (grid >= lo) & (grid < hi) & np.isfinite(values)
    return float(np.median(values[sel])) if sel.sum() >= 2 else None


def _ramp(grid: np.ndarray, at: float, width: float, before: bool) -> np.ndarray:
    """1 at the join falling linearly to 0 ``width`` away, on one side of it."""
    d = (at - grid) if before else (grid - at)
    inside = (d >= 0) & (d < width) if before else (d >= 0) & (d <= width)
    return np.where(inside, 1.0 - d / width, 0.0)


def _pitch_corrections(runs: list[Run], analyses: list[_Analysis], grid: np.ndarray,
                       lf: np.ndarray, joins: list[int],
                       anchors: tuple[float | None, float | None],
                       borders: tuple[float, float], width: float,
                       sr: int, hop: int) -> np.ndarray:
    """Log-f0 offsets that close the pitch step at every join and border."""
    corr = np.zeros(len(grid))
    span = MEASURE_S * sr
    for k, at in enumerate(joins):
        # Each side measured on its own run's source, extended past the join.
        before = _side_lf(runs[k], analyses[k], at - span, at, hop)
        after = _side_lf(runs[k + 1], analyses[k + 1], at, at + span, hop)
        if before is None or after is None:
            continue
        step = after - before
        corr += step / 2 * _ramp(grid, at, width, before=True)
        corr -= step / 2 * _ramp(grid, at, width, before=False)
    # The borders: the new speech starts and ends at the kept audio's pitch, the offset
    # held over the lead-in and ramped out over ``width`` into the span.
    (left, right), (lo, hi) = anchors, borders
    first = _side_median(lf, grid, lo, lo + span)
    if left is not None and first is not None:
        corr += (left - first) * np.clip(1 - (grid - lo) / width, 0.0, 1.0)
    last = _side_median(lf, grid, hi - span, hi)
    if right is not None and last is not None:
        corr += (right - last) * np.clip(1 - (hi - grid) / width, 0.0, 1.0)
    return corr


def _side_lf(run: Run, an: _Analysis, lo: float, hi: float, hop: int) -> float | None:
    t = np.arange(lo, hi, hop)
    vals = _lookup(an, run.source_at(t) - an.start, hop)
    vals = vals[np.isfinite(vals)]
    return float(np.median(vals)) if len(vals) >= 2 else None


def _level_corrections(runs: list[Run], analyses: list[_Analysis], grid: np.ndarray,
                       joins: list[int], width: float, sr: int) -> np.ndarray:
    """dB offsets that close the level step at joins inside a phone."""
    corr = np.zeros(len(grid))
    span = int(MEASURE_S * sr)
    for k, at in enumerate(joins):
        if runs[k + 1].join != "mid":
            continue
        a = int(round(float(runs[k].source_at(at - 0.5)))) - analyses[k].start
        b = int(round(float(runs[k + 1].source_at(at + 0.5)))) - analyses[k + 1].start
        left = analyses[k].x[max(0, a - span):max(0, a)]
        right = analyses[k + 1].x[max(0, b):b + span]
        if len(left) < span // 2 or len(right) < span // 2:
            continue
        step = 10 * np.log10((np.mean(right ** 2) + 1e-10) / (np.mean(left ** 2) + 1e-10))
        step = float(np.clip(step, -MAX_LEVEL_STEP_DB, MAX_LEVEL_STEP_DB))
        corr += step / 2 * _ramp(grid, at, width, before=True)
        corr -= step / 2 * _ramp(grid, at, width, before=False)
    return corr
