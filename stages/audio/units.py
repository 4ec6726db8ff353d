"""Speaker units: the clip's own phones, cut in half-phones and chosen by a Viterbi search.

The new words' phones become a sequence of half-phone targets (each phone's first and
second half). A clip phone can serve a target only if it is the same phoneme
(phoneme-exact matching); candidates are found with the index stage's suffix array
(one run per viseme class, filtered to the exact phone), the same machinery the plan's
viseme search uses.

Costs, in the spirit of unit-selection synthesis (Hunt & Black 1996):
* target cost of a unit: its neighbour phone on the side the half faces differs from
  the target's (scaled by the viseme distance, a proxy for coarticulation), the
  vowel's stress differs, and |log| of the stretch to the target duration;
* join cost between consecutive units: nothing where they are consecutive in the
  clip (the speaker's own transition); otherwise the pitch jump (semitones), level jump
  (dB) and spectral distance (mel-cepstral dB) across the join, plus a penalty for a
  join at a phone boundary (transitions are where concatenation is heard; the middle of
  a phone is its steadiest part).

Where the speaker never made a transition at all (no diphone a-b anywhere in the usable
clip), espeak-ng's own a-b (the two halves around it, from espeak speaking the new
words, matched in loudness and pitch range by the caller) competes with joining two of
the speaker's phones at that boundary; espeak's halves cost ``tts`` each, so the
search takes them where the speaker's improvised join would be worse. Phones the
speaker never said come from espeak-ng.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stages.audio.config import UnitWeights
from stages.audio.dsp import ClipAudio, level_db, mel_cepstra, yin, yin_sizes
from stages.audio.psola import BORDER, BOUNDARY, MID, Run, Source
from stages.index import VisemeIndex
from stages.visemes import VISEME_ID, viseme_distance, viseme_ids, viseme_of
from talkedit.phonemes import SILENCE, VOWELS

CLIP, TTS = "clip", "tts"  # unit sources besides a recording (config.RECORDING)
MIN_UNIT_S = 0.02  # shorter aligned phones are boundary noise, not units
MIN_HALF_S = 0.004  # durations below this count as this in stretch costs
DIPHONE_EXTRA = 10  # diphone instances kept as candidates besides the K best phones
CEP_DB = 10 / np.log(10) * np.sqrt(2.0)  # cepstral distance -> dB (the MCD scale)
N_CEP = 24  # mel-cepstral coefficients c1..c24 compared at joins


@dataclass(frozen=True)
class Target:
    """One new phone (or pause) to say, in output samples relative to its span."""

    phone: str
    stress: int
    start: float
    end: float
    word_position: int = -1  # edited spoken-word index; -1 for a pause
    word: str = ""


@dataclass
class Half:
    """Half of a target phone and the source stretch that says it (source samples)."""

    source: str  # clip | tts | recording
    src_start: float
    src_end: float
    out_start: float
    out_end: float
    target: int  # index of its target phone
    row: int = -1  # clip unit: visemes.parquet row
    note: str = ""  # why a fallback was used


def halves(target: Target, index: int, source: str, src_start: float, src_end: float,
           row: int = -1, note: str = "") -> tuple[Half, Half]:
    """A target phone said by a source stretch, as its two halves (split at both midpoints)."""
    mid_out, mid_src = (target.start + target.end) / 2, (src_start + src_end) / 2
    return (Half(source, src_start, mid_src, target.start, mid_out, index, row, note),
            Half(source, mid_src, src_end, mid_out, target.end, index, row, note))


def to_runs(parts: Sequence[Half], sources: dict[str, Source]) -> list[Run]:
    """Halves merged into runs wherever one continues the previous in the same source."""
    runs: list[Run] = []
    out_k: list[float] = []
    src_k: list[float] = []
    prev: Half | None = None
    join = BORDER
    for k, h in enumerate(parts):
        if h.out_end <= h.out_start:
            continue
        joined = (prev is not None and h.source == prev.source
                  and abs(h.src_start - prev.src_end) < 0.5)
        if prev is not None and not joined:
            runs.append(Run(sources[prev.source], np.array(out_k), np.array(src_k), join))
            out_k, src_k = [], []
            join = MID if k % 2 else BOUNDARY
        if not out_k:
            out_k, src_k = [h.out_start], [h.src_start]
        out_k.append(h.out_end)
        src_k.append(h.src_end)
        prev = h
    if prev is not None:
        runs.append(Run(sources[prev.source], np.array(out_k), np.array(src_k), join))
    return runs


# --- acoustic features at points -----------------------------------------------------------


@dataclass
class Features:
    """Pitch, level and spectrum of a signal around some points (one row per point)."""

    lf0: np.ndarray  # log f0, NaN where unvoiced
    level: np.ndarray  # dBFS over 20 ms
    cep: np.ndarray  # mel-cepstrum c1..c24 over 20 ms

    def take(self, idx: np.ndarray) -> Features:
        return Features(self.lf0[idx], self.level[idx], self.cep[idx])


def point_features(source: Source, points: np.ndarray, sr: int) -> Features:
    """Features of ``source`` (gain and pitch map applied) centred at sample ``points``."""
    points = np.asarray(np.rint(points), dtype=np.int64)
    if not len(points):
        return Features(np.zeros(0), np.zeros(0), np.zeros((0, N_CEP)))
    window, tau_max = yin_sizes(sr)
    length = window + tau_max
    # One short read per point: candidates lie all over a long clip.
    long = np.stack([source.read(p - length // 2, p - length // 2 + length)
                     for p in points]) * source.gain
    pitch = yin(long, sr)
    short = int(round(0.02 * sr))
    frames = long[:, length // 2 - short // 2:length // 2 - short // 2 + short]
    return Features(source.log_f0(pitch), level_db(frames),
                    mel_cepstra(frames, sr, N_CEP)[:, 1:])


def join_costs(a: Features, b: Features, w: UnitWeights) -> np.ndarray:
    """(len(a), len(b)) cost of joining the end of each ``a`` unit to the start of each ``b``."""
    sq = ((a.cep ** 2).sum(1)[:, None] + (b.cep ** 2).sum(1)[None, :] - 2 * a.cep @ b.cep.T)
    spectrum = CEP_DB * np.sqrt(np.maximum(sq, 0.0))
    level = np.abs(a.level[:, None] - b.level[None, :])
    va, vb = np.isfinite(a.lf0)[:, None], np.isfinite(b.lf0)[None, :]
    semis = 12 / np.log(2) * np.abs(np.nan_to_num(a.lf0)[:, None] - np.nan_to_num(b.lf0)[None, :])
    pitch = np.where(va & vb, w.pitch * semis, np.where(va == vb, 0.0, w.voicing))
    return w.spectrum * spectrum + w.energy * level + pitch


# --- the inventory ---------------------------------------------------------------------------


class Inventory:
    """The clip's usable aligned phones as units, and their features (computed on demand)."""

    def __init__(self, index: VisemeIndex, audio: ClipAudio,
                 blocked_s: Sequence[tuple[float, float]] = ()) -> None:
        self.index, self.audio, self.sr = index, audio, audio.sample_rate
        allowed = index.usable & (index.durations >= MIN_UNIT_S)
        for a, b in blocked_s:  # e.g. the spec's exclude_s: nothing may be taken from there
            allowed &= ~((index.end_s > a) & (index.start_s < b))
        self.allowed = allowed
        self.stress = index.table["stress"].to_numpy(np.int64)
        self.source = Source(CLIP, audio.region)
        self._rows: dict[str, np.ndarray] = {}
        self._features: dict[int, tuple[float, float, np.ndarray]] = {}

    def rows(self, phone: str) -> np.ndarray:
        """Usable clip phones saying ``phone`` (from the suffix array's run of its viseme)."""
        if phone not in self._rows:
            lo, hi = self.index.first(VISEME_ID[viseme_of(phone)])
            rows = np.sort(self.index.sa[lo:hi])
            self._rows[phone] = rows[(self.index.phones[rows] == phone) & self.allowed[rows]]
        return self._rows[phone]

    def diphones(self, a: str, b: str) -> np.ndarray:
        """Rows k whose phones k, k+1 say a then b, both usable."""
        starts = self.index.occurrences(viseme_ids([a, b]))
        starts = starts[starts + 1 < len(self.index)]
        ok = ((self.index.phones[starts] == a) & (self.index.phones[starts + 1] == b)
              & self.allowed[starts] & self.allowed[starts + 1])
        return starts[ok]

    def features(self, points: np.ndarray) -> Features:
        """Features at clip samples ``points`` (cached: neighbouring targets share points)."""
        points = np.asarray(np.rint(points), dtype=np.int64)
        todo = np.unique([p for p in points if p not in self._features])
        if len(todo):
            f = point_features(self.source, todo, self.sr)
            for k, p in enumerate(todo):
                self._features[int(p)] = (f.lf0[k], f.level[k], f.cep[k])
        got = [self._features[int(p)] for p in points]
        if not got:
            return Features(np.zeros(0), np.zeros(0), np.zeros((0, N_CEP)))
        return Features(np.array([g[0] for g in got]), np.array([g[1] for g in got]),
                        np.array([g[2] for g in got]))


# --- selection -------------------------------------------------------------------------------


@dataclass
class Selection:
    halves: list[Half]
    fallbacks: list[str]  # why espeak-ng said some halves ("diphone R-W never said")
    cost: float


@dataclass
class _Step:
    """Candidates for one half-target: clip rows, and row -1 for espeak-ng's half."""

    rows: np.ndarray
    src: np.ndarray  # (n, 2) source samples [start, end)
    cost: np.ndarray  # target cost
    start: Features | None = None
    end: Features | None = None


def _context_cost(have: np.ndarray, want: str) -> np.ndarray:
    """0 for the wanted neighbour; else 0.5 + half the viseme distance."""
    dist = viseme_distance()[VISEME_ID[viseme_of(want)]]
    vid = viseme_ids(list(have)).astype(np.int64)
    return np.where(have == want, 0.0, 0.5 + 0.5 * dist[vid])


def _fallbacks(inv: Inventory, phones: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per half-target: espeak-ng offered (around a diphone never said), espeak-ng only (a
    phone never said), and why."""
    m = len(phones)
    offered, only = np.zeros(2 * m, dtype=bool), np.zeros(2 * m, dtype=bool)
    why = [""] * (2 * m)
    for i, p in enumerate(phones):
        if not len(inv.rows(p)):
            only[2 * i:2 * i + 2] = True
            why[2 * i] = why[2 * i + 1] = f"phone {p} never said"
    for i in range(m - 1):
        if not len(inv.diphones(phones[i], phones[i + 1])):
            for h in (2 * i + 1, 2 * i + 2):
                offered[h] = True
                why[h] = why[h] or f"diphone {phones[i]}-{phones[i + 1]} never said"
    return offered | only, only, why


def select_units(inv: Inventory, targets: Sequence[Target], left: tuple[str, int | None],
                 right: tuple[str, int | None], tts: Callable[[], tuple[Source, np.ndarray]],
                 w: UnitWeights) -> Selection:
    """The cheapest half-phone units saying ``targets``.

    ``left`` / ``right``: the clip phone before / after the span and its row (None at
    the clip's edge or next to another new span). ``tts()`` gives espeak-ng's speech of
    the new words and each target's span in it; it is called only if a target needs it.
    """
    m, sr, idx = len(targets), inv.sr, inv.index
    phones = [t.phone for t in targets]
    offered, only, why = _fallbacks(inv, phones)
    tts_source, tts_spans = tts() if offered.any() else (None, None)
    diphone_rows = [inv.diphones(phones[i], phones[i + 1]) for i in range(m - 1)]
    prev_phone = np.r_[[SILENCE], idx.phones[:-1]]
    next_phone = np.r_[idx.phones[1:], [SILENCE]]
    steps: list[_Step] = []
    for i, t in enumerate(targets):
        rows = inv.rows(t.phone)
        want_prev = phones[i - 1] if i > 0 else left[0]
        want_next = phones[i + 1] if i + 1 < m else right[0]
        half_out = max((t.end - t.start) / 2 / sr, MIN_HALF_S)
        cost_l = cost_r = np.zeros(0)
        if len(rows):
            half_src = np.maximum(idx.durations[rows] / 2, MIN_HALF_S)
            stretch = w.duration * np.abs(np.log(half_out / half_src))
            stress = np.zeros(len(rows))
            if t.phone in VOWELS and t.stress >= 0:
                stress = w.stress * ((inv.stress[rows] > 0) != (t.stress > 0))
            cost_l = w.context * _context_cost(prev_phone[rows], want_prev) + stretch + stress
            cost_r = w.context * _context_cost(next_phone[rows], want_next) + stretch + stress
            keep = np.argsort(cost_l + cost_r, kind="stable")[:w.candidates]
            # Instances of the diphones on either side, so the search can stay in the clip.
            extra = []
            if i > 0 and len(diphone_rows[i - 1]):
                extra.append(np.searchsorted(rows, diphone_rows[i - 1] + 1))
            if i + 1 < m and len(diphone_rows[i]):
                extra.append(np.searchsorted(rows, diphone_rows[i]))
            for pos in extra:
                order = np.argsort((cost_l + cost_r)[pos], kind="stable")
                keep = np.r_[keep, pos[order[:DIPHONE_EXTRA]]]
            keep = np.unique(keep)
            rows, cost_l, cost_r = rows[keep], cost_l[keep], cost_r[keep]
        s, e = idx.start_s[rows] * sr, idx.end_s[rows] * sr
        for side, cost in ((0, cost_l), (1, cost_r)):
            h = 2 * i + side
            span = np.stack([s, (s + e) / 2], 1) if side == 0 else np.stack([(s + e) / 2, e], 1)
            step = _Step(rows, span, cost)
            if offered[h]:
                a, b = tts_spans[i]
                half = [a, (a + b) / 2] if side == 0 else [(a + b) / 2, b]
                step = _Step(np.r_[rows, -1], np.r_[span, [half]],
                             np.r_[cost, 0.0 if only[h] else w.tts])
            step.start, step.end = _step_features(step, inv, tts_source)
            steps.append(step)

    # Viterbi over the half-targets.
    total = steps[0].cost.copy()
    if left[1] is not None:
        cut = inv.features(np.array([idx.end_s[left[1]] * sr]))
        edge = join_costs(cut, steps[0].start, w)[0] + w.boundary
        total += np.where(steps[0].rows == left[1] + 1, 0.0, edge)
    back: list[np.ndarray] = []
    for h in range(1, 2 * m):
        a, b = steps[h - 1], steps[h]
        trans = join_costs(a.end, b.start, w) + (w.boundary if h % 2 == 0 else 0.0)
        ra, rb = a.rows[:, None], b.rows[None, :]
        # Free where the two halves follow each other in their source: the same clip phone,
        # the next clip phone, or espeak-ng's own speech.
        follows = (ra == rb) if h % 2 else ((ra + 1 == rb) & (ra >= 0)) | ((ra < 0) & (rb < 0))
        trans = np.where(follows, 0.0, trans)
        scores = total[:, None] + trans
        back.append(np.argmin(scores, axis=0))
        total = scores[back[-1], np.arange(len(b.rows))] + b.cost
    if right[1] is not None and right[1] < len(idx):
        cut = inv.features(np.array([idx.start_s[right[1]] * sr]))
        edge = join_costs(steps[-1].end, cut, w)[:, 0] + w.boundary
        total = total + np.where((steps[-1].rows >= 0) & (steps[-1].rows + 1 == right[1]),
                                 0.0, edge)
    best = int(np.argmin(total))
    path = [best]
    for bp in reversed(back):
        path.append(int(bp[path[-1]]))
    path.reverse()

    parts: list[Half] = []
    for h, (st, c) in enumerate(zip(steps, path, strict=True)):
        t = targets[h // 2]
        mid_out = (t.start + t.end) / 2
        out = (t.start, mid_out) if h % 2 == 0 else (mid_out, t.end)
        row = int(st.rows[c])
        parts.append(Half(TTS if row < 0 else CLIP, float(st.src[c, 0]), float(st.src[c, 1]),
                          out[0], out[1], h // 2, row, why[h] if row < 0 else ""))
    fallbacks = list(dict.fromkeys(p.note for p in parts if p.note))
    return Selection(parts, fallbacks, float(total[best]))


def _step_features(step: _Step, inv: Inventory, tts: Source | None) -> tuple[Features, Features]:
    """Features at each candidate's start and end (clip units cached, espeak's computed)."""
    clip = step.rows >= 0
    start, end = inv.features(step.src[clip, 0]), inv.features(step.src[clip, 1])
    if clip.all():
        return start, end
    f = point_features(tts, step.src[~clip].reshape(-1), inv.sr)
    first, second = f.take(np.arange(0, len(f.lf0), 2)), f.take(np.arange(1, len(f.lf0), 2))
    return (Features(np.r_[start.lf0, first.lf0], np.r_[start.level, first.level],
                     np.r_[start.cep, first.cep]),
            Features(np.r_[end.lf0, second.lf0], np.r_[end.level, second.level],
                     np.r_[end.cep, second.cep]))
