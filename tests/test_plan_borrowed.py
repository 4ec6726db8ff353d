"""The co-articulation model's larger share where a new phone's piece says another phone
(stages/plan/__init__.py ``borrowed_phones``, stages/plan/articulation.py
``borrowed_weight``): such a piece opens as its own phone did (EH for EY opens wider)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

FPS = 25.0


def test_a_new_phone_is_borrowed_where_its_piece_says_another_phone() -> None:
    from stages.plan import borrowed_phones
    from stages.plan.search import Piece

    clip = np.array(["sil", "EH", "T", "K", "AA", "B", "sil"], object)
    index = SimpleNamespace(phones=clip)
    span = SimpleNamespace(
        phones=[SimpleNamespace(phone=p) for p in ("EY", "T", "AA", "P")],
        pieces=[Piece(0, 2, 1, 0.0, 0.0, 1, 0.0, 0.0), Piece(2, 4, 4, 0.0, 0.0, 1, 0.0, 0.0)])
    assert borrowed_phones(span, index) == [True, False, False, True]  # EH for EY, B for P


def test_the_borrowed_weight_is_one_inside_zero_away_and_changes_gradually() -> None:
    from stages.plan.articulation import borrowed_weight

    t = np.arange(40) / FPS
    w = borrowed_weight(t, np.array([0.4]), np.array([0.8]), 0.03)
    assert w[14] > 0.95 and w[:6].max() < 1e-3 and w[27:].max() < 1e-3  # 0.56 s; far off
    assert ((w >= 0) & (w <= 1)).all() and np.abs(np.diff(w)).max() < 0.6
    assert not borrowed_weight(t, np.array([]), np.array([]), 0.03).any()


def _said(phones: list[str], seed: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(seed)
    out, t = [("sil", 0.0, 0.2)], 0.2
    for p in phones:
        d = float(rng.uniform(0.08, 0.16))
        out.append((p, t, t + d))
        t += d
    out.append(("sil", t, t + 0.3))
    return out


def _opening(phones: list[tuple[str, float, float]]) -> np.ndarray:
    from stages.demo.mouth import articulation_track

    t = np.arange(int(phones[-1][2] * FPS)) / FPS
    return articulation_track(phones, t)[:, 0].astype(np.float64)


def test_a_borrowed_piece_is_moved_further_towards_the_new_phones_own_opening() -> None:
    """A clip that says EY a few times among many EH/AE: a new "T EY K" whose EY comes
    from an EH piece opens 0.1 too wide (the generator's EY 0.5, EH 0.6). With the model's
    share 0.8 at the borrowed phone instead of 0.6, its planned EY lands nearer the truth,
    while the frames away from it are moved exactly as before."""
    from stages.plan.articulation import ArticulationModel, borrowed_weight, correct

    rng = np.random.default_rng(5)
    inventory = ["EH", "AE", "AA", "IY", "T", "K", "S", "N", "M", "L"]
    words = [str(rng.choice(inventory)) for _ in range(300)]
    for k in range(10, 300, 60):
        words[k] = "EY"  # 5 EYs in the clip
    clip = _said(words, 1)
    index = SimpleNamespace(phones=np.array([p for p, _, _ in clip], object),
                            start_s=np.array([a for _, a, _ in clip]),
                            end_s=np.array([b for _, _, b in clip]),
                            usable=np.ones(len(clip), bool))
    opening = _opening(clip)
    model = ArticulationModel.fit(index, opening, np.ones(len(opening), bool), FPS)
    assert model is not None

    new = _said(["S", "T", "EY", "K", "AA", "N", "IY", "S"], 2)
    truth = _opening(new)
    retrieved = _opening([("EH" if p == "EY" else p, a, b) for p, a, b in new])
    t = np.arange(len(truth)) / FPS
    phones = [p for p, _, _ in new]
    starts, ends = np.array([a for _, a, _ in new]), np.array([b for _, _, b in new])
    target = model.predict(phones, starts, ends, t)
    borrowed = np.array([p == "EY" for p in phones])
    other = borrowed_weight(t, starts[borrowed], ends[borrowed], model.sigma_s)
    direction = np.ones(1)
    uniform = correct(retrieved[:, None], direction, target, np.full(len(t), 0.6))[:, 0]
    shared = correct(retrieved[:, None], direction, target, 0.6 + 0.2 * other)[:, 0]
    ey = (t >= starts[3]) & (t < ends[3])
    before = np.abs(uniform[ey] - truth[ey]).mean()
    after = np.abs(shared[ey] - truth[ey]).mean()
    assert after < 0.8 * before, (before, after)  # measured 0.044 -> 0.032
    away = other < 1e-6
    assert away.sum() > len(t) // 2 and np.allclose(shared[away], uniform[away])
