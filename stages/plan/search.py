"""Viseme search (Fried et al. 2019, step 3): cover the query's phones with pieces of the clip.

A piece matches query phones [i, j) to the clip's phones [p, p + j - i). Its cost:

* viseme mismatch: the visemes' distance (stages/visemes.py), per phone;
* phoneme mismatch: a smaller cost per phone, so exact phonemes win when they exist;
* duration stretch: |log(query duration / clip duration)| per phone;
* context: at both ends, the distance between the clip phone beside the piece and
  the query phone beside it (the phone before/after the edit at the query's ends),
  so pieces whose neighbours look like the query's blend without a visible jump;
* a fixed penalty per piece.

Dynamic programming over split points gives the cheapest cover. The best piece for
each query range comes from two candidate sets: pieces up to ``approx_max_phones``
long are scored at every clip position (mismatches allowed), longer ones only where
their visemes match exactly, enumerated with the index's suffix array. Positions the
caller blocks (excluded time, no face, unusable alignment) are never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.index import VisemeIndex
from stages.visemes import SIL_ID, viseme_distance, viseme_ids
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.phonemes import ARPABET, SILENCE

PHONE_CODES = {p: k for k, p in enumerate(sorted(ARPABET) + [SILENCE])}
MIN_DURATION_S = 0.01


@dataclass(frozen=True)
class SearchWeights(Section):
    """Cost weights and limits (params.yaml plan.search)."""

    SECTION = "plan.search"

    viseme: float = 2.0
    phone: float = 0.5
    context: float = 1.0
    duration: float = 0.25
    piece: float = 1.0
    max_piece_phones: int = 40
    approx_max_phones: int = 1

    def check(self, where: str) -> None:
        for name in ("viseme", "phone", "context", "duration", "piece"):
            if getattr(self, name) < 0:
                raise bad_param(where, name, "must be >= 0", "set negative weights to 0")
        for name in ("max_piece_phones", "approx_max_phones"):
            if getattr(self, name) < 1:
                raise bad_param(where, name, "must be >= 1", "use 40 and 1")


@dataclass(frozen=True)
class Query:
    phones: tuple[str, ...]
    durations: np.ndarray  # seconds per phone
    left: str = SILENCE  # the clip phone right before the edit (context at the query's start)
    right: str = SILENCE  # the one right after it


@dataclass(frozen=True)
class Piece:
    query_start: int  # query phones [query_start, query_end)
    query_end: int
    corpus_start: int  # clip phones (visemes.parquet rows) [corpus_start, + length)
    cost: float  # weighted total, the per-piece penalty included
    viseme_cost: float  # unweighted sums of the terms
    phone_mismatches: int
    duration_cost: float
    context_cost: float

    @property
    def length(self) -> int:
        return self.query_end - self.query_start

    @property
    def corpus_end(self) -> int:
        return self.corpus_start + self.length


class _Tables:
    """Per-index arrays every query reuses (built once, kept on the index)."""

    def __init__(self, index: VisemeIndex) -> None:
        vid = index.visemes.astype(np.int64)
        dist = viseme_distance()
        prev = np.r_[SIL_ID, vid[:-1]] if len(vid) else vid
        nxt = np.r_[vid[1:], SIL_ID] if len(vid) else vid
        self.vis = dist[:, vid]  # (classes, N): distance of each class to each clip phone
        self.prev = dist[:, prev]  # ... to the clip phone before each position
        self.next = dist[:, nxt]  # ... to the clip phone after each position
        self.phone = np.array([PHONE_CODES[p] for p in index.phones], dtype=np.int16)
        self.log_d = np.log(np.maximum(index.durations, MIN_DURATION_S)).astype(np.float32)


def tables(index: VisemeIndex) -> _Tables:
    cached = getattr(index, "_search_tables", None)
    if cached is None:
        cached = _Tables(index)
        index._search_tables = cached  # type: ignore[attr-defined]
    return cached


class _Costs:
    """The cost terms of one query, evaluated at the clip positions asked for."""

    def __init__(self, t: _Tables, query: Query, weights: SearchWeights,
                 blocked: np.ndarray | None) -> None:
        self.t, self.w = t, weights
        self.qv = viseme_ids(list(query.phones)).astype(np.int64)
        self.qp = np.array([PHONE_CODES[p] for p in query.phones], dtype=np.int16)
        self.q_log_d = np.log(np.maximum(np.asarray(query.durations, float),
                                         MIN_DURATION_S)).astype(np.float32)
        self.q_prev = np.r_[viseme_ids([query.left]), self.qv[:-1]].astype(np.int64)
        self.q_next = np.r_[self.qv[1:], viseme_ids([query.right])].astype(np.int64)
        n = len(t.phone)
        self.penalty = (np.where(blocked, np.float32(np.inf), np.float32(0.0))
                        if blocked is not None and blocked.any() else np.zeros(n, np.float32))

    def local(self, a: int, pos: np.ndarray | slice) -> np.ndarray:
        """Cost of query phone a on clip phones ``pos``: viseme, phoneme, stretch; inf if blocked."""
        t, w = self.t, self.w
        return (w.viseme * t.vis[self.qv[a], pos] + w.phone * (t.phone[pos] != self.qp[a])
                + w.duration * np.abs(t.log_d[pos] - self.q_log_d[a]) + self.penalty[pos])

    def start(self, a: int, pos: np.ndarray | slice) -> np.ndarray:
        """Context cost of a piece starting at query phone a, clip phone pos."""
        return self.w.context * self.t.prev[self.q_prev[a], pos]

    def end(self, a: int, pos: np.ndarray | slice) -> np.ndarray:
        """Context cost of a piece ending at query phone a, clip phone pos."""
        return self.w.context * self.t.next[self.q_next[a], pos]


def search(index: VisemeIndex, query: Query, weights: SearchWeights,
           blocked: np.ndarray | None = None) -> list[Piece]:
    """The cheapest cover of the query by pieces of the clip, in query order."""
    m, n = len(query.phones), len(index)
    if m == 0:
        return []
    t = tables(index)
    costs = _Costs(t, query, weights, blocked)
    best = np.full((m, m + 1), np.inf)
    where = np.full((m, m + 1), -1, dtype=np.int64)
    max_len = min(weights.max_piece_phones, m)
    approx = min(weights.approx_max_phones, max_len)
    rows: dict[int, np.ndarray] = {}  # dense local rows, only for approximate pieces >= 2
    for i in range(m):
        _single(index, costs, i, best, where)
        # Short pieces of 2..approx phones: every clip position, mismatches allowed.
        run = None
        for length in range(2, min(approx, m - i) + 1):
            k = length - 1
            for a in (i, i + k):
                if a not in rows:
                    rows[a] = costs.local(a, slice(None))
            run = (rows[i] if run is None else run)[: n - k] + rows[i + k][k:]
            if not len(run):
                break
            total = run + costs.start(i, slice(0, n - k)) + costs.end(i + k, slice(k, None))
            p = int(np.argmin(total))
            best[i, i + length], where[i, i + length] = total[p], p
        # Longer pieces: exact viseme matches only, from the suffix array.
        first_exact = max(approx + 1, 2)
        if max_len >= first_exact and m - i >= first_exact:
            _exact(index, costs, i, first_exact, min(max_len, m - i), best, where)

    # Cheapest cover: f[j] = min_i f[i] + best[i, j] + piece penalty.
    f = np.full(m + 1, np.inf)
    f[0] = 0.0
    back = np.zeros(m + 1, dtype=np.int64)
    for j in range(1, m + 1):
        c = f[:j] + best[:j, j] + weights.piece
        back[j] = int(np.argmin(c))
        f[j] = c[back[j]]
    if not np.isfinite(f[m]):
        raise TalkeditError("viseme search", "cannot cover the new words' "
                            f"phones {' '.join(query.phones)}: every clip phone is blocked",
                            "narrow exclude_s in the edit spec, or check the clip's face fit")
    cuts = [m]
    while cuts[-1] > 0:
        cuts.append(int(back[cuts[-1]]))
    cuts.reverse()
    return [_describe(index, query, t, costs.qv, a, b, int(where[a, b]),
                      float(best[a, b]) + weights.piece)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _single(index: VisemeIndex, costs: _Costs, i: int, best: np.ndarray,
            where: np.ndarray) -> None:
    """Best one-phone piece for query phone i (any viseme).

    Clip phones are visited one viseme class at a time (each class is one run of the
    suffix array), nearest class first; a class whose mismatch cost alone exceeds the
    best found so far cannot win, which ends the scan (usually after a class or two).
    """
    own = int(costs.qv[i])
    class_dist = viseme_distance()[own]
    for c in np.argsort(class_dist, kind="stable"):
        if costs.w.viseme * class_dist[c] >= best[i, i + 1]:
            break
        lo, hi = index.first(int(c))
        if lo >= hi:
            continue
        pos = index.sa[lo:hi]
        total = costs.local(i, pos) + costs.start(i, pos) + costs.end(i, pos)
        k = int(np.argmin(total))
        if total[k] < best[i, i + 1]:
            best[i, i + 1], where[i, i + 1] = total[k], int(pos[k])


def _exact(index: VisemeIndex, costs: _Costs, i: int, first: int, max_len: int,
           best: np.ndarray, where: np.ndarray) -> None:
    """Best exact-viseme piece starting at query phone i, for lengths first..max_len."""
    qv = costs.qv
    lo, hi = index.first(int(qv[i]))
    for depth in range(1, first):  # narrow to the first `first` symbols, unscored
        if lo >= hi:
            return
        lo, hi = index.narrow(lo, hi, depth, int(qv[i + depth]))
    if lo >= hi:
        return
    starts = index.sa[lo:hi]
    length = first
    run = sum(costs.local(i + k, starts + k) for k in range(length))
    while True:
        total = run + costs.start(i, starts) + costs.end(i + length - 1, starts + length - 1)
        p = int(np.argmin(total))
        if total[p] < best[i, i + length]:
            best[i, i + length], where[i, i + length] = total[p], int(starts[p])
        if length == max_len:
            return
        new_lo, new_hi = index.narrow(lo, hi, length, int(qv[i + length]))
        if new_lo >= new_hi:
            return
        run = run[new_lo - lo: new_hi - lo]
        lo, hi = new_lo, new_hi
        starts = index.sa[lo:hi]
        run = run + costs.local(i + length, starts + length)
        length += 1


def _describe(index: VisemeIndex, query: Query, t: _Tables, qv: np.ndarray, a: int, b: int,
              p: int, cost: float) -> Piece:
    """A chosen piece with its cost terms spelled out (for the summary and tests)."""
    span = np.arange(b - a)
    dist = viseme_distance()
    vis = float(dist[qv[a:b], index.visemes[p + span]].sum())
    qp = np.array([PHONE_CODES[x] for x in query.phones[a:b]])
    mismatches = int((t.phone[p + span] != qp).sum())
    q_log = np.log(np.maximum(np.asarray(query.durations[a:b], float), MIN_DURATION_S))
    dur = float(np.abs(t.log_d[p + span] - q_log).sum())
    left = viseme_ids([query.left])[0] if a == 0 else qv[a - 1]
    right = viseme_ids([query.right])[0] if b == len(qv) else qv[b]
    ctx = float(t.prev[left, p] + t.next[right, p + b - a - 1])
    return Piece(a, b, p, cost, vis, mismatches, dur, ctx)
