"""Peak-keeping in the plan: pronunciations as espeak-ng says them in context, each
stretched phone's extreme frame kept, and the new words' opening drawn towards the
speaker's co-articulation model (stages/plan/timing.py, retime.py, articulation.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from stages.plan.retime import FaceParams, Track, _expression_at, phone_extremes
from stages.plan.timing import closest_pronunciation

FPS = 25.0


def test_the_pronunciation_espeak_says_in_context_is_chosen() -> None:
    past, present = [("R", -1), ("EH", 1), ("D", -1)], [("R", -1), ("IY", 1), ("D", -1)]
    assert closest_pronunciation([past, past, present], ["R", "IY", "D"]) == present
    assert closest_pronunciation([past, present], ["R", "EH", "D"]) == past
    assert closest_pronunciation([past, present], ["W", "AH", "T"]) == past  # tie: preferred


def test_a_stretched_piece_shows_its_phones_extreme_frames() -> None:
    """A clip whose mouth opens to 1.0 at frame 12 (a vowel) and shuts at frame 15 (a
    p/b/m shorter than a frame): sampled between frames, the stretched piece loses both;
    with the extremes pinned, the output shows them, within half a frame of their place."""
    n = 40
    openness = np.full(n, 0.3)
    openness[[11, 12, 13]] = [0.6, 1.0, 0.6]
    openness[15] = 0.0
    expression = np.zeros((n, 64))
    expression[:, 0] = openness
    face = FaceParams(np.zeros((n, 3)), np.zeros((n, 3)), np.ones(n), expression,
                      np.zeros((n, 27)), np.ones(n, bool))
    # Clip phones AA [0.40, 0.58) and B [0.58, 0.62), played half a frame out of step
    # with the clip's frames: every output frame falls between two of them.
    src_knots = np.array([0.40, 0.58, 0.62])
    out_knots = 2.02 + (src_knots - 0.40)
    extremes = phone_extremes(["AA", "B"], out_knots, src_knots, openness, FPS)
    assert np.allclose(extremes[:, 1] * FPS, [12, 15])
    t = np.arange(int(out_knots[0] * FPS), int(np.ceil(out_knots[-1] * FPS)) + 1) / FPS
    plain = Track(out_knots, src_knots, 0, 0.0, n / FPS)
    pinned = Track(out_knots, src_knots, 0, 0.0, n / FPS, extremes)
    before = _expression_at(face, plain, t, FPS)[0][:, 0]
    after = _expression_at(face, pinned, t, FPS)[0][:, 0]
    assert before.max() < 0.9 and before.min() > 0.1
    assert after.max() == 1.0 and after.min() == 0.0
    for (out_s, _), k in zip(extremes, [np.argmax(after), np.argmin(after)], strict=True):
        assert abs(t[k] - out_s) <= 0.5 / FPS + 1e-9


def test_a_bilabial_that_shuts_the_lips_just_after_its_aligned_end_is_kept() -> None:
    """A B aligned to [0.60, 0.627) (shorter than a frame) whose closed frame is the next
    one (16, at 0.64 s: the lips lag the sound): the extreme is looked for up to a frame
    beyond the phone, never past the middle of its neighbour, and pinned inside the B."""
    openness = np.full(40, 0.5)
    openness[16] = 0.0
    openness[18] = -1.0  # inside the next phone's second half: not this B's closure
    src_knots = np.array([0.50, 0.60, 0.627, 0.80])
    out_knots = 3.0 + np.array([0.0, 0.10, 0.18, 0.35])
    (out_s, src_s), = phone_extremes(["AA", "B", "AA"], out_knots, src_knots, openness,
                                     FPS)[1:2]
    assert src_s * FPS == 16 and out_knots[1] <= out_s <= out_knots[2]
    # Within the piece's readable range only.
    rows = phone_extremes(["B"], out_knots[1:3], src_knots[1:3], openness, FPS,
                          src_lo=0.55, src_hi=0.63)
    assert rows[0, 1] * FPS != 16


def _articulated(phones: list[tuple[str, float, float]], fps: float) -> np.ndarray:
    from stages.demo.mouth import articulation_track

    t = np.arange(int(phones[-1][2] * fps)) / fps
    return articulation_track(phones, t)[:, 0].astype(np.float64)


def _sentence(rng: np.random.Generator, start: float, words: int
              ) -> list[tuple[str, float, float]]:
    inventory = ["AA", "IY", "UW", "EH", "B", "M", "P", "T", "S", "N", "K", "L", "R", "AE"]
    out, t = [("sil", 0.0, start)] if start > 0 else [], start
    for _ in range(words * 3):
        d = float(rng.uniform(0.05, 0.15))
        out.append((str(rng.choice(inventory)), t, t + d))
        t += d
    out.append(("sil", t, t + 0.3))
    return out


def test_the_coarticulation_model_predicts_an_unseen_phone_sequence() -> None:
    """Fitted on a clip whose opening follows a co-articulated phone sequence (phones held
    and smoothed), the model predicts the opening of a *different* sequence of the same
    phones (new neighbours, new durations) better than any single phone's average."""
    from stages.plan.articulation import ArticulationModel

    rng = np.random.default_rng(3)
    phones = _sentence(rng, 0.2, 40)
    openness = _articulated(phones, FPS)
    table = {"phone": [p for p, _, _ in phones], "start_s": [a for _, a, _ in phones],
             "end_s": [b for _, _, b in phones]}
    index = SimpleNamespace(  # what the model reads of a VisemeIndex
        phones=np.array(table["phone"], object), start_s=np.array(table["start_s"]),
        end_s=np.array(table["end_s"]), usable=np.ones(len(phones), bool))
    model = ArticulationModel.fit(index, openness, np.ones(len(openness), bool), FPS)
    assert model is not None and model.validation_r > 0.95
    new = _sentence(np.random.default_rng(4), 0.0, 8)
    truth = _articulated(new, FPS)
    t = np.arange(len(truth)) / FPS
    predicted = model.predict([p for p, _, _ in new], np.array([a for _, a, _ in new]),
                              np.array([b for _, _, b in new]), t)
    assert np.corrcoef(predicted, truth)[0, 1] > 0.95


def test_the_coarticulation_model_learns_how_far_the_lips_lag_the_aligned_phones(
        monkeypatch) -> None:
    """A clip whose lips move 15 ms after its aligned phones (the demo's fitted footage
    lags its alignment by ~10 ms): the model finds the lag between its grid points
    (``LAGS_S``, 10 ms apart) and predicts a new sequence said with the same lag better
    than the model held to the aligned times."""
    import stages.plan.articulation as articulation
    from stages.plan.articulation import ArticulationModel

    lag = 0.015
    phones = _sentence(np.random.default_rng(5), 0.2, 40)
    openness = _articulated([(p, a + lag, b + lag) for p, a, b in phones], FPS)
    index = SimpleNamespace(
        phones=np.array([p for p, _, _ in phones], object),
        start_s=np.array([a for _, a, _ in phones]), end_s=np.array([b for _, _, b in phones]),
        usable=np.ones(len(phones), bool))
    usable = np.ones(len(openness), bool)
    model = ArticulationModel.fit(index, openness, usable, FPS)
    assert model is not None and abs(model.lag_s - lag) < 0.004, model.lag_s
    new = _sentence(np.random.default_rng(6), 0.0, 8)
    truth = _articulated([(p, a + lag, b + lag) for p, a, b in new], FPS)
    t = np.arange(len(truth)) / FPS
    args = ([p for p, _, _ in new], np.array([a for _, a, _ in new]),
            np.array([b for _, _, b in new]), t)
    monkeypatch.setattr(articulation, "LAGS_S", (0.0,))  # held to the aligned times
    unlagged = ArticulationModel.fit(index, openness, usable, FPS)
    assert unlagged is not None and unlagged.lag_s == 0.0
    r_lagged = np.corrcoef(model.predict(*args), truth)[0, 1]
    r_unlagged = np.corrcoef(unlagged.predict(*args), truth)[0, 1]
    assert r_lagged > r_unlagged + 0.005, (r_lagged, r_unlagged)


def test_the_lag_between_grid_points_is_the_top_of_a_parabola() -> None:
    from stages.plan.articulation import _vertex

    def score(x: float) -> float:
        return 0.9 - 40 * (x - 0.013) ** 2

    assert np.isclose(_vertex({x: score(x) for x in (-0.01, 0.0, 0.01, 0.02)}), 0.013)
    # at the grid's end, or where the scores do not bend down: the grid's best
    assert _vertex({x: score(x) for x in (-0.01, 0.0)}) == 0.0
    assert _vertex({-0.01: 0.5, 0.0: 0.6, 0.01: 0.8}) == 0.01
    assert _vertex({-0.01: 0.5, 0.0: float("nan"), 0.01: 0.8}) == 0.01
    assert _vertex({}) == 0.0


def _fitted_without(absent: set[str], seed: int) -> tuple[object, object]:
    """A co-articulation model fitted on a generated clip (stages/demo/mouth.py) that never
    says the phones ``absent``; its inputs' namespace too."""
    from stages.plan.articulation import ArticulationModel

    inventory = ["AA", "AY", "IY", "IH", "UW", "EH", "AE", "B", "M", "T", "S", "N", "K",
                 "L", "R", "W"]
    rng = np.random.default_rng(seed)
    phones, t = [("sil", 0.0, 0.2)], 0.2
    for _ in range(150):
        d = float(rng.uniform(0.06, 0.16))
        phones.append((str(rng.choice([p for p in inventory if p not in absent])), t, t + d))
        t += d
    phones.append(("sil", t, t + 0.3))
    openness = _articulated(phones, FPS)
    index = SimpleNamespace(
        phones=np.array([p for p, _, _ in phones], object),
        start_s=np.array([a for _, a, _ in phones]), end_s=np.array([b for _, _, b in phones]),
        usable=np.ones(len(phones), bool))
    return ArticulationModel.fit(index, openness, np.ones(len(openness), bool), FPS), index


def _held_target(model: object, phone: str) -> float:
    """The model's opening in the middle of ``phone`` held 0.4 s between T's."""
    phones = ["T", phone, "T"]
    starts, ends = np.array([0.0, 0.2, 0.6]), np.array([0.2, 0.6, 0.8])
    return float(model.predict(phones, starts, ends, np.array([0.4]))[0])


def test_a_phone_the_clip_never_says_borrows_its_viseme_class_target(monkeypatch) -> None:
    """A clip without AW (the demo re-created without sentence 3 has none): AW's viseme
    class (AA, AW, AY) opens wide, so the pooled model plans a held AW near the truth's
    opening (0.8), where the model without classes left it at the clip's average; a phone
    the clip says often keeps its own target, not its class's (IY 0.25 vs IH 0.40)."""
    import stages.plan.articulation as articulation
    from stages.demo.mouth import PHONE_TARGETS

    model, _ = _fitted_without({"AW"}, 11)
    aw = _held_target(model, "AW")
    assert abs(aw - PHONE_TARGETS["AW"][0]) < 0.1, aw  # measured 0.87 (0.34 unpooled)
    for phone in ("IY", "IH", "AA", "UW"):
        assert abs(_held_target(model, phone) - PHONE_TARGETS[phone][0]) < 0.04, phone
    monkeypatch.setattr(articulation, "CLASS_RIDGE_SHARE", 1e9)  # no pooling: as before
    unpooled, _ = _fitted_without({"AW"}, 11)
    assert _held_target(unpooled, "AW") < PHONE_TARGETS["AW"][0] - 0.3  # the average


def test_coarticulation_moves_only_the_opening_and_only_where_asked() -> None:
    from stages.plan.articulation import correct

    rng = np.random.default_rng(0)
    expression = rng.normal(size=(10, 6))
    direction = np.eye(6)[2]
    target = np.linspace(-1, 1, 10)
    weight = np.r_[np.zeros(3), np.full(4, 0.5), np.ones(3)]
    moved = correct(expression, direction, target, weight)
    assert np.allclose(moved[:3], expression[:3])  # weight 0: untouched
    assert np.allclose(np.delete(moved, 2, axis=1), np.delete(expression, 2, axis=1))
    assert np.allclose(moved[7:, 2], target[7:])  # weight 1: on the target
    assert np.allclose(moved[3:7, 2], (expression[3:7, 2] + target[3:7]) / 2)


def test_a_new_bilabial_shuts_the_lips_where_the_smoothed_model_leaves_them_open(
        monkeypatch) -> None:
    """The co-articulation model smooths each phone into its neighbours, so a short M
    between open vowels stays open in its prediction; the closure step brings the middle
    of each p/b/m (or the frame nearest it, when it is shorter than a frame) towards the
    clip's own closed level no faster than the clip moves, the closure and its neighbours
    sharing the way."""
    import stages.plan.articulation as articulation
    from stages.plan.articulation import (
        CLOSURE_SHARE,
        ArticulationModel,
        closure_weight,
        shut,
    )

    # The clip's boundaries are the lips' own here: nothing to realign (realigning moves a
    # few by noise and the short M's prediction 0.55 -> 0.48, which this test is not about).
    monkeypatch.setattr(articulation, "REALIGN_PASSES", 0)
    rng = np.random.default_rng(3)
    phones = _sentence(rng, 0.2, 40)
    openness = _articulated(phones, FPS)
    index = SimpleNamespace(
        phones=np.array([p for p, _, _ in phones], object),
        start_s=np.array([a for _, a, _ in phones]), end_s=np.array([b for _, _, b in phones]),
        usable=np.ones(len(phones), bool))
    model = ArticulationModel.fit(index, openness, np.ones(len(openness), bool), FPS)
    assert model is not None and abs(model.closed) < 0.02  # the clip's p/b/m shut to ~0
    # "AA B AA" with a 160 ms B (its middle half [0.30, 0.38) holds frames 0.32 and 0.36;
    # its onset frame 0.28 is left to move), then "AA M AA" with a 20 ms M between frames
    # 0.68 and 0.72 (0.72 is nearer its middle).
    new = [("AA", 0.0, 0.26), ("B", 0.26, 0.42), ("AA", 0.42, 0.65), ("M", 0.695, 0.715),
           ("AA", 0.715, 1.0)]
    names, starts, ends = [p for p, _, _ in new], np.array([a for _, a, _ in new]), np.array(
        [b for _, _, b in new])
    t = np.arange(25) / FPS
    predicted = model.predict(names, starts, ends, t)
    weight = closure_weight(names, starts, ends, t)
    assert np.flatnonzero(weight).tolist() == [8, 9, 18]  # 0.32, 0.36 (B); 0.72 (M)
    assert predicted[18] - model.closed > 0.3  # smoothed, the short M leaves the lips apart
    direction = np.eye(3)[0]
    expression = np.column_stack([predicted, rng.normal(size=(25, 2))])
    shut_lips = shut(expression, direction, weight, model.closed, model.max_step, np.ones(25))
    opening = shut_lips[:, 0]
    at = weight > 0
    # (a) a fully shut closure, its neighbours under an envelope rising max_step per frame;
    # (b) the neighbours kept, the closure as low as max_step per frame from them allows.
    away = np.abs(np.arange(25)[:, None] - np.flatnonzero(at)[None, :]).min(axis=1)
    envelope = np.minimum(predicted, model.closed + model.max_step * away)
    reach = (predicted[~at][None, :] - model.max_step * np.abs(
        np.arange(25)[:, None] - np.flatnonzero(~at)[None, :])).max(axis=1)
    kept = np.where(at, np.minimum(predicted, np.maximum(model.closed, reach)), predicted)
    assert np.allclose(opening, CLOSURE_SHARE * kept + (1 - CLOSURE_SHARE) * envelope)
    # Never faster than the clip where it was not already: each step within max_step.
    fast = np.abs(np.diff(predicted)) > model.max_step
    assert (np.abs(np.diff(opening))[~fast] <= model.max_step + 1e-9).all()
    # The short M between wide vowels: both the M and the vowels around it give way
    # (0.55 -> 0.26; 0.37 and 0.81 lowered), short of shut; between half-open vowels the
    # lips meet and the vowels are lowered only where max_step requires.
    assert opening[18] < predicted[18] - 0.25 and opening[18] > model.closed
    assert (opening[[17, 19]] < predicted[[17, 19]]).all()
    half = expression * np.array([0.3, 1.0, 1.0])
    half_open = shut(half, direction, weight, model.closed, model.max_step, np.ones(25))[:, 0]
    assert np.isclose(half_open[18], model.closed)
    assert np.allclose(shut_lips[:, 1:], expression[:, 1:])  # only the opening moves
    assert np.allclose(shut(expression, direction, weight, model.closed, model.max_step,
                            np.zeros(25)), expression)  # weight 0: untouched


def test_the_lip_shape_model_rounds_and_spreads_a_new_sequence_and_keeps_its_opening() -> None:
    """A clip whose expression holds the opening, the lip width (rounded UW .. spread IY)
    and the closure along three directions, all co-articulated (stages/demo/mouth.py):
    fitted with the expression, the model's shape predicts the width of a *different*
    sequence; ``reshape`` moves a retrieved expression whose width is wrong ``weight`` of
    the way to it, and never along the opening direction."""
    from stages.demo.mouth import articulation_track
    from stages.plan.articulation import MODEL_COLUMNS, ArticulationModel, reshape

    rng = np.random.default_rng(5)
    phones = _sentence(rng, 0.2, 40)
    t = np.arange(int(phones[-1][2] * FPS)) / FPS
    basis = np.linalg.qr(rng.normal(size=(8, 3)))[0].T  # opening, width, closure: orthonormal
    expression = articulation_track(phones, t).astype(np.float64) @ basis \
        + 0.01 * rng.normal(size=(len(t), 8))
    direction = basis[0]
    index = SimpleNamespace(
        phones=np.array([p for p, _, _ in phones], object),
        start_s=np.array([a for _, a, _ in phones]), end_s=np.array([b for _, _, b in phones]),
        usable=np.ones(len(phones), bool))
    model = ArticulationModel.fit(index, expression @ direction, np.ones(len(t), bool), FPS,
                                  expression)
    assert model is not None and model.shape is not None
    assert model.shape.shape == (MODEL_COLUMNS, 8)
    new = _sentence(np.random.default_rng(6), 0.0, 8)
    names, starts, ends = ([p for p, _, _ in new], np.array([a for _, a, _ in new]),
                           np.array([b for _, _, b in new]))
    tn = np.arange(int(new[-1][2] * FPS)) / FPS
    truth = articulation_track(new, tn).astype(np.float64)
    # Retrieved: the right opening, the width and closure of other phones (shuffled).
    wrong = truth[rng.permutation(len(tn))]
    planned = np.column_stack([truth[:, 0], wrong[:, 1:]]) @ basis
    weight = np.ones(len(tn))
    weight[:6], weight[6:12] = 0.0, 0.5
    moved = reshape(planned, direction, model, names, starts, ends, tn, weight)
    assert np.allclose(moved @ direction, planned @ direction)  # the opening is kept
    assert np.array_equal(moved[:6], planned[:6])  # weight 0: untouched
    width, full = moved @ basis[1], weight == 1
    assert np.corrcoef(width[full], truth[full, 1])[0, 1] > 0.95
    assert abs(np.corrcoef(planned[full] @ basis[1], truth[full, 1])[0, 1]) < 0.5
    # Half way: the mean of the retrieved shape and the one moved all the way.
    whole = reshape(planned, direction, model, names, starts, ends, tn, np.ones(len(tn)))
    assert np.allclose(moved[6:12], (planned[6:12] + whole[6:12]) / 2)


def test_reshaping_a_long_plans_new_words_reads_only_their_rows() -> None:
    """In place on a 31-minute plan's (n, 64) expression (24 MB), with 60 new frames: the
    model's shape is predicted at those rows only, nothing of the plan's size is copied."""
    import tracemalloc

    from stages.plan.articulation import MODEL_COLUMNS, ArticulationModel, reshape

    n, rng = 47_113, np.random.default_rng(7)
    expression = rng.normal(size=(n, 64))
    direction = np.eye(64)[0]
    model = ArticulationModel(np.zeros(MODEL_COLUMNS), 0.03, 0.9, 0.0, 0.1,
                              rng.normal(size=(MODEL_COLUMNS, 64)))
    weight = np.zeros(n)
    weight[40_000:40_060] = 0.5
    times = np.arange(n) / FPS
    phones, starts, ends = ["AA", "B", "UW"], np.array([1600.0, 1600.8, 1601.2]), \
        np.array([1600.8, 1601.2, 1602.4])
    before = expression.copy()
    tracemalloc.start()
    try:
        out = reshape(expression, direction, model, phones, starts, ends, times, weight,
                      out=expression)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert out is expression and peak < 6  # the plan is 24 MB; measured 3.3 (the grid)
    assert np.array_equal(expression[:40_000], before[:40_000])
    assert np.array_equal(expression[40_060:], before[40_060:])
    assert not np.array_equal(expression[40_000:40_060], before[40_000:40_060])
    assert np.allclose(expression[:, 0], before[:, 0])  # the opening is kept


def test_boundaries_the_aligner_placed_early_are_moved_to_where_the_lips_show_them(
        monkeypatch) -> None:
    """A clip whose lips follow its phones, aligned with every T, K, P and L starting 25 ms
    early (the demo's aligner starts them 34-60 ms early against the generator's phones):
    ``realigned`` moves those boundaries back towards the lips' (mean error down by a
    fifth), and the model moves new phones' boundaries into T, K and L later as the
    clip's moved (``ArticulationModel.onsets``), the others' hardly. (Predictions of a
    new sequence here are r 0.99 with or without: the gain is measured on development
    data, benchmarks/plan_opening.py.)"""
    import stages.plan.articulation as articulation
    from stages.plan.articulation import ArticulationModel, realigned

    phones = _sentence(np.random.default_rng(13), 0.2, 40)
    openness = _articulated(phones, FPS)
    names = [p for p, _, _ in phones]
    true_bounds = np.array([b for _, _, b in phones[:-1]])
    early = np.isin(names[1:], ["T", "K", "P", "L"])
    bounds = true_bounds - np.where(
        early, np.minimum(0.025, 0.5 * np.array([b - a for _, a, b in phones[:-1]])), 0.0)
    starts, ends = np.r_[phones[0][1], bounds], np.r_[bounds, phones[-1][2]]
    index = SimpleNamespace(phones=np.array(names, object), start_s=starts, end_s=ends,
                            usable=np.ones(len(phones), bool))
    usable = np.ones(len(openness), bool)
    monkeypatch.setattr(articulation, "LAGS_S", (0.0,))
    moved = ArticulationModel.fit(index, openness, usable, FPS)
    assert moved is not None
    t = np.arange(len(openness)) / FPS
    weights = articulation._fit(names, starts, ends, t, moved.sigma_s, openness)[0]
    moved_starts, moved_ends = realigned(names, starts, ends, t, openness, weights,
                                         moved.sigma_s)
    before = np.abs(ends[:-1] - true_bounds)[early].mean()
    after = np.abs(moved_ends[:-1] - true_bounds)[early].mean()
    assert after < 0.8 * before, (before, after)
    assert np.array_equal(moved_ends[:-1], moved_starts[1:])  # still one boundary each
    # What the boundaries into each phone moved, on average: the phones the aligner
    # started early start later on new words too, the others stay.
    from stages.plan.search import PHONE_CODES

    onsets = {p: moved.onsets[PHONE_CODES[p]] for p in set(names[1:])}
    assert min(onsets[p] for p in ("T", "K", "L")) > 0.005, onsets
    assert np.mean([abs(v) for p, v in onsets.items() if p not in ("T", "K", "P", "L")]) \
        < 0.003, onsets
