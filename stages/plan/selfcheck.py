"""The plan's self-check: re-create a stretch of the clip's own speech and score it.

The quality screen's other factors (stages/plan/quality.py) are proxies; this one measures.
A few spans of the clip's kept speech, each about as long as the edit's new phones and
away from the edit, are hidden in turn (their frames and phones taken out of the usable
footage, as ``exclude_s`` takes out a span). Each is said anew by the same planner from
what remains (the same viseme search, timeline, blend and co-articulation model, the model
fitted without it), its phones timed as the clip says them, and the planned opening is
scored against the clip's own fitted opening of the hidden span (Pearson r, frames of the
span). No generator truth is needed: the fit exists for any clip. A clip whose footage is
too short, too noisy to align, or too poorly fitted for the planner gets a low r here, as
its edit does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stages.index import VisemeIndex
from stages.plan.retime import FramePlan, SpanPlan
from stages.plan.search import Query, SearchWeights, search
from stages.plan.timing import QueryPhone
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.phonemes import SILENCE


@dataclass(frozen=True)
class SelfCheckParams(Section):
    """params.yaml plan.self_check."""

    SECTION = "plan.self_check"

    spans: int = 3  # hidden spans re-created (0 = no self-check)
    min_phones: int = 12  # a hidden span says at least this many phones (the edit's, if more)
    away_s: float = 1.0  # a hidden span keeps this far from every edited span
    min_r: float = 0.80  # a self-check r under this warns (chosen: stages/plan/quality.py)

    def check(self, where: str) -> None:
        if self.spans < 0 or self.min_phones < 1 or self.away_s < 0:
            raise bad_param(where, "spans", "needs spans >= 0, min_phones >= 1, away_s >= 0")
        if not -1 <= self.min_r <= 1:
            raise bad_param(where, "min_r", "must be a correlation in [-1, 1]")


@dataclass(frozen=True)
class SelfCheck:
    r: float | None  # over all hidden spans' frames together; None: none could be hidden
    spans: tuple[tuple[float, float, float], ...]  # (start s, end s, r) of each

    def as_dict(self) -> dict[str, object]:
        return {"r": None if self.r is None else round(self.r, 3),
                "spans": [[round(a, 3), round(b, 3), round(r, 3)] for a, b, r in self.spans]}


def hidden_spans(index: VisemeIndex, blocked: np.ndarray, allowed: np.ndarray, fps: float,
                 n_phones: int, avoid: Sequence[tuple[float, float]], away_s: float,
                 count: int) -> list[tuple[int, int]]:
    """Up to ``count`` non-overlapping runs of clip phones [i, j), each from a word's first
    phone to a word's last, saying at least ``n_phones`` phones (pauses not counted),
    wholly usable (search and frames) and ``away_s`` from every ``avoid`` span; spread
    evenly over the candidates (deterministic)."""
    n = len(index)
    said = index.phones != SILENCE
    starts = np.flatnonzero(said & np.r_[True, index.word_index[1:] != index.word_index[:-1]])
    bad_frames = np.r_[0, np.cumsum(~allowed)]
    candidates = []
    for i in starts:
        j, count_said = i, 0
        while j < n and count_said < n_phones:
            count_said += bool(said[j])
            j += 1
        while j < n and said[j] and index.word_index[j] == index.word_index[j - 1]:
            j += 1  # to the end of the word
        if count_said < n_phones or blocked[i:j].any():
            continue
        a, b = float(index.start_s[i]), float(index.end_s[j - 1])
        first, last = int(np.floor(a * fps)), min(int(np.ceil(b * fps)) + 1, len(allowed))
        if bad_frames[last] - bad_frames[first] > 0:
            continue
        if any(a < hi + away_s and b > lo - away_s for lo, hi in avoid):
            continue
        candidates.append((int(i), int(j)))
    chosen: list[tuple[int, int]] = []
    for k in range(count):  # the candidate nearest each quantile that overlaps none chosen
        target = (k + 0.5) / count * len(candidates)
        for c in sorted(range(len(candidates)), key=lambda c: (abs(c + 0.5 - target), c)):
            i, j = candidates[c]
            if all(j <= i2 or i >= j2 for i2, j2 in chosen):
                chosen.append((i, j))
                break
    return sorted(chosen)


# (span, frames its pieces may read, frames the co-articulation model may learn from)
PlanFrames = Callable[[SpanPlan, np.ndarray, np.ndarray], FramePlan]


def self_check(index: VisemeIndex, openness: np.ndarray, direction: np.ndarray,
               blocked: np.ndarray, allowed: np.ndarray, fps: float, weights: SearchWeights,
               opts: SelfCheckParams, n_phones: int, avoid: Sequence[tuple[float, float]],
               plan_frames: PlanFrames) -> SelfCheck:
    """Each hidden span (``hidden_spans``) planned anew by ``plan_frames`` from the footage
    without it (the co-articulation model from the footage without any hidden span: one
    fit, most of the self-check's cost); its planned opening against ``openness`` (the
    clip's fitted opening)."""
    results = []
    planned_all, fitted_all = [], []
    spans = hidden_spans(index, blocked, allowed, fps, max(n_phones, opts.min_phones), avoid,
                         opts.away_s, opts.spans)
    frames_t = np.arange(len(allowed)) / fps

    def frames_of(a: float, b: float) -> np.ndarray:
        return (frames_t >= a - 0.5 / fps) & (frames_t < b + 0.5 / fps)

    without = allowed.copy()
    for i, j in spans:
        without &= ~frames_of(float(index.start_s[i]), float(index.end_s[j - 1]))
    for i, j in spans:
        a, b = float(index.start_s[i]), float(index.end_s[j - 1])
        hidden = (index.end_s > a) & (index.start_s < b)
        rest = allowed & ~frames_of(a, b)
        durations = index.durations[i:j]
        query = Query(tuple(str(p) for p in index.phones[i:j]), durations,
                      str(index.phones[i - 1]) if i > 0 else SILENCE,
                      str(index.phones[j]) if j < len(index) else SILENCE)
        rows = np.arange(int(np.ceil(a * fps)), min(int(b * fps) + 1, len(openness)))
        try:
            pieces = search(index, query, weights, blocked | hidden)
        except TalkeditError:  # the rest cannot say it: as poor as a re-creation gets
            planned = np.full(len(rows), float(np.mean(openness[rest])))
        else:
            phones = [QueryPhone(p, 0, float(d), float(d), -1, "")
                      for p, d in zip(query.phones, durations, strict=True)]
            frames = plan_frames(SpanPlan(a, b, phones, pieces), rest, without)
            # The new phones last as long as the clip's: output time is clip time here.
            planned = frames.rows(int(rows[0]), int(rows[-1]) + 1).expression @ direction
        planned_all.append(planned)
        fitted_all.append(openness[rows])
        results.append((a, b, _r(planned, openness[rows])))
    # One r over every hidden frame: steadier than a mean of short spans' r.
    pooled = _r(np.concatenate(planned_all), np.concatenate(fitted_all)) if results else None
    return SelfCheck(pooled, tuple(results))


def _r(planned: np.ndarray, fitted: np.ndarray) -> float:
    """Pearson r; 0 where either is flat (a constant plan follows nothing)."""
    if len(planned) < 3 or np.ptp(planned) == 0 or np.ptp(fitted) == 0:
        return 0.0
    return float(np.corrcoef(planned, fitted)[0, 1])
