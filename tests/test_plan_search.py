"""The viseme search against a brute-force reference, and its preferences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.index import VisemeIndex, build_viseme_table
from stages.plan.search import Query, SearchWeights, search
from stages.visemes import viseme_distance, viseme_ids
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

PHONES = ["P", "B", "M", "AA", "AE", "IY", "IH", "T", "S", "K", "L", "UW", "W", "F", SILENCE]


def _index(labels: list[str], durations: np.ndarray) -> VisemeIndex:
    ends = np.cumsum(durations)
    df = pd.DataFrame({"word_index": 0, "phone": labels, "stress": -1,
                       "start_s": ends - durations, "end_s": ends, "score": 1.0,
                       "low_confidence": False})
    return VisemeIndex(build_viseme_table(df, None, 25.0))


def _brute_force(index: VisemeIndex, q: Query, w: SearchWeights, blocked: np.ndarray) -> float:
    """Cheapest cover cost by enumerating every piece (no index, no pruning)."""
    dist = viseme_distance()
    cv, qv = index.visemes, viseme_ids(list(q.phones))
    n, m = len(cv), len(qv)
    log_c = np.log(np.maximum(index.durations, 0.01))
    log_q = np.log(np.maximum(q.durations, 0.01))
    left, right = viseme_ids([q.left])[0], viseme_ids([q.right])[0]
    sil = viseme_ids([SILENCE])[0]

    def piece(i: int, j: int, p: int) -> float:
        cost = 0.0
        for k in range(j - i):
            if blocked[p + k]:
                return np.inf
            cost += (w.viseme * dist[qv[i + k], cv[p + k]]
                     + w.phone * (q.phones[i + k] != index.phones[p + k])
                     + w.duration * abs(log_q[i + k] - log_c[p + k]))
        q_before = left if i == 0 else qv[i - 1]
        q_after = right if j == m else qv[j]
        c_before = sil if p == 0 else cv[p - 1]
        c_after = sil if p + j - i == n else cv[p + j - i]
        return cost + w.context * (dist[q_before, c_before] + dist[q_after, c_after])

    f = [0.0] + [np.inf] * m
    for j in range(1, m + 1):
        for i in range(max(0, j - w.max_piece_phones), j):
            for p in range(n - (j - i) + 1):
                exact = np.array_equal(cv[p:p + j - i], qv[i:j])
                if j - i > w.approx_max_phones and not exact:
                    continue
                f[j] = min(f[j], f[i] + piece(i, j, p) + w.piece)
    return f[m]


@pytest.mark.parametrize("approx", [1, 2])
def test_search_finds_the_cheapest_cover(approx: int) -> None:
    rng = np.random.default_rng(approx)
    w = SearchWeights(approx_max_phones=approx, max_piece_phones=6)
    for trial in range(12):
        labels = list(rng.choice(PHONES, 70))
        index = _index(labels, rng.uniform(0.04, 0.15, 70))
        blocked = rng.random(70) < (0.2 if trial % 2 else 0.0)
        m = int(rng.integers(1, 8))
        q = Query(tuple(rng.choice(PHONES[:-1], m)), rng.uniform(0.04, 0.15, m),
                  str(rng.choice(PHONES)), str(rng.choice(PHONES)))
        pieces = search(index, q, w, blocked)
        assert [p.query_start for p in pieces] == [0, *[p.query_end for p in pieces[:-1]]]
        assert pieces[-1].query_end == m
        for p in pieces:
            assert not blocked[p.corpus_start:p.corpus_end].any()
            if p.length > approx:
                assert p.viseme_cost == 0
        total = sum(p.cost for p in pieces)
        assert total == pytest.approx(_brute_force(index, q, w, blocked), rel=1e-5, abs=1e-5)


def test_an_exact_occurrence_is_one_piece_with_exact_phonemes() -> None:
    # B AA T occurs verbatim once; P AA T (same visemes, other phonemes) twice; all
    # between pauses, so context does not decide.
    labels = [SILENCE, "P", "AA", "T", SILENCE, "S", SILENCE, "B", "AA", "T", SILENCE, "K",
              SILENCE, "P", "AA", "T", SILENCE]
    index = _index(labels, np.full(len(labels), 0.08))
    q = Query(("B", "AA", "T"), np.full(3, 0.08))
    (piece,) = search(index, q, SearchWeights())
    assert (piece.corpus_start, piece.viseme_cost, piece.phone_mismatches) == (7, 0, 0)


def test_a_query_with_no_whole_match_is_covered_by_matching_pieces() -> None:
    labels = [SILENCE, "S", "AA", "M", "IY", SILENCE, "L", "UW", "K", SILENCE]
    index = _index(labels, np.full(len(labels), 0.08))
    q = Query(("AA", "M", "L", "UW"), np.full(4, 0.08))
    pieces = search(index, q, SearchWeights())
    assert [(p.corpus_start, p.length) for p in pieces] == [(2, 2), (6, 2)]
    assert all(p.viseme_cost == 0 and p.phone_mismatches == 0 for p in pieces)


def test_everything_blocked_is_a_clear_error() -> None:
    index = _index(["S", "AA", "T"], np.full(3, 0.08))
    with pytest.raises(TalkeditError, match="every clip phone is blocked.*exclude_s"):
        search(index, Query(("AA",), np.array([0.1])), SearchWeights(), np.ones(3, bool))
