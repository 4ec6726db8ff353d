"""The phone-opening prior: pooling other speakers' per-phone targets (stages/phone_prior.py),
the shipped table (stages/plan/prior.py), and a clip's co-articulation model held towards
it (stages/plan/articulation.py ``PhonePrior``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from stages.demo.corpus import CORPUS_CASES
from stages.demo.mouth import articulation_track
from stages.demo.pairs import CASES, DEV_CASES
from stages.phone_prior import pool_openings, table_of
from stages.plan import PlanParams
from stages.plan.articulation import ArticulationModel, PhonePrior
from stages.plan.prior import PHONE_OPENINGS, load_phone_prior
from stages.plan.search import PHONE_CODES
from talkedit.errors import TalkeditError
from talkedit.params import load_params

FPS = 25.0


def test_pooling_recovers_shared_openings_through_each_speakers_own_line() -> None:
    """Twelve speakers, each opening the same phones to the same relative extent but with
    their own offset and range, their targets noisy as few frames make them; one speaker
    says a phone for 8 frames in an odd context (+3 sd off), beside six saying it for 10.
    The pooled values follow the shared ones (r > 0.98) and that phone stays where the
    others put it."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=len(PHONE_CODES))
    frames = rng.integers(0, 40, size=(12, len(PHONE_CODES))).astype(float)
    offsets, scales = rng.normal(0, 0.3, 12), rng.uniform(0.3, 0.8, 12)
    targets = offsets[:, None] + scales[:, None] * (
        truth[None] + rng.normal(size=frames.shape) * 0.5 / np.sqrt(np.maximum(frames, 1)))
    odd = PHONE_CODES["UW"]
    frames[:, odd] = 0.0
    frames[:6, odd] = 10.0
    frames[6, odd] = 8.0
    targets[6, odd] = offsets[6] + scales[6] * (truth[odd] + 3.0)
    pooled = pool_openings(targets, frames)
    said = frames.sum(axis=0) > 0
    standard = (truth - truth[said].mean()) / truth[said].std()
    assert np.corrcoef(pooled[said], standard[said])[0, 1] > 0.98
    # a frame-weighted mean moves it 0.43 (measured); the weighted median not at all
    assert abs(pooled[odd] - np.interp(truth[odd], np.sort(truth[said]),
                                       np.sort(pooled[said]))) < 0.15
    assert np.isnan(pool_openings(targets, np.where(np.arange(len(PHONE_CODES)) == 0, 0.0,
                                                    frames))[0])


def test_the_shipped_table_is_the_pooling_of_its_corpus_clips() -> None:
    table = json.loads(PHONE_OPENINGS.read_text())
    assert sorted(table["clips"]) == sorted(c.name for c in CORPUS_CASES)
    again = table_of(table["clips"])["openings"]
    assert set(again) == set(table["openings"]) == set(PHONE_CODES)  # every phone covered
    for phone, value in table["openings"].items():
        assert again[phone] == pytest.approx(value, abs=1e-6)
    # closures and the open vowels where every speaker has them
    openings = table["openings"]
    assert max(openings[p] for p in ("M", "P", "B")) < -1.0
    assert min(openings[p] for p in ("AA", "AE", "AW")) > 1.0


def test_the_corpus_shares_no_face_voice_seed_or_text_with_the_scored_and_development_pairs(
        ) -> None:
    pairs = (*CASES, *DEV_CASES)
    demo = load_params(Path(__file__).resolve().parents[1])["demo"]
    for case in CORPUS_CASES:
        assert case.face not in {p.face for p in pairs} | {"astronaut"}
        assert case.voice not in {p.voice for p in pairs} | {demo["voice"]}
        assert case.seed not in {p.seed for p in pairs} | {demo["seed"]}
        words = set(case.text.lower().split())
        for pair in pairs:  # no sentence in common
            assert not set(case.text.split(". ")) & set(pair.text.split(". "))
        assert len(words) > 25
    assert len({c.face for c in CORPUS_CASES}) == len(CORPUS_CASES)


def _clip(seed: int, rare: str, rare_level: float) -> tuple[object, np.ndarray]:
    """A generated clip (stages/demo/mouth.py's articulation) of a common inventory that
    says ``rare`` three times, each time opened to ``rare_level`` (its odd context)."""
    inventory = ["AA", "IY", "EH", "AE", "B", "M", "T", "S", "N", "K", "L", "R", "AH", "D"]
    rng = np.random.default_rng(seed)
    phones, t = [("sil", 0.0, 0.2)], 0.2
    for k in range(150):
        d = float(rng.uniform(0.06, 0.16))
        phone = rare if k in (30, 80, 130) else str(rng.choice(inventory))
        phones.append((phone, t, t + d))
        t += d
    phones.append(("sil", t, t + 0.3))
    times = np.arange(int(phones[-1][2] * FPS)) / FPS
    openness = articulation_track(phones, times)[:, 0].astype(np.float64)
    for phone, a, b in phones:
        if phone == rare:
            openness[(times >= a) & (times < b)] = rare_level
    index = SimpleNamespace(
        phones=np.array([p for p, _, _ in phones], object),
        start_s=np.array([a for _, a, _ in phones]), end_s=np.array([b for _, _, b in phones]),
        usable=np.ones(len(phones), bool))
    return index, openness


def test_a_rarely_said_phone_is_held_towards_the_prior_and_a_common_one_keeps_its_own(
        ) -> None:
    """UW said three times, opened each time as wide as an AA (its context): alone, the
    model learns UW near AA's opening; with the prior (UW about as open as T), UW's target
    moves most of the way to the prior's place in the clip's units, while AA (said ~10x
    more) moves far less, and the stronger the prior, the further UW goes."""
    index, openness = _clip(1, "UW", 0.9)
    usable = np.ones(len(openness), bool)
    values = np.full(len(PHONE_CODES), np.nan)
    own = ArticulationModel.fit(index, openness, usable, FPS).targets
    for phone in ("AA", "IY", "EH", "AE", "B", "M", "T", "S", "N", "K", "L", "R", "AH", "D",
                  "sil"):
        values[PHONE_CODES[phone]] = own[PHONE_CODES[phone]]
    values[PHONE_CODES["UW"]] = own[PHONE_CODES["T"]]
    values = (values - np.nanmean(values)) / np.nanstd(values)  # standard units, as shipped
    uw, aa, t = PHONE_CODES["UW"], PHONE_CODES["AA"], PHONE_CODES["T"]
    moved = {}
    for frames in (10.0, 100.0):
        held = ArticulationModel.fit(index, openness, usable, FPS,
                                     prior=PhonePrior(values, frames)).targets
        moved[frames] = (own[uw] - held[uw]) / (own[uw] - own[t])
        assert abs(held[aa] - own[aa]) < 0.2 * abs(held[uw] - own[uw])
    assert 0.3 < moved[10.0] < moved[100.0] <= 1.05
    assert moved[100.0] > 0.8


def test_the_prior_is_off_at_zero_frames_and_a_missing_table_is_one_clear_error(tmp_path
                                                                                ) -> None:
    assert load_phone_prior(0.0) is None
    prior = load_phone_prior(30.0)
    assert prior is not None and prior.frames == 30.0
    assert np.isfinite(prior.values).all()
    with pytest.raises(TalkeditError, match="not found"):
        load_phone_prior(30.0, tmp_path / "absent.json")
    with pytest.raises(TalkeditError, match="phone_prior"):
        PlanParams(phone_prior=-1.0).check("plan")


@pytest.mark.parametrize("command", ["phone-prior", "lip-prior"])
def test_rebuilding_from_the_corpus_with_bad_paths_is_one_error_line_and_writes_nothing(
        command: str, tmp_path: Path) -> None:
    """Both commands that build from the corpus (the phone table, the lip model's trunks)
    check --work and --out before any work."""
    from typer.testing import CliRunner

    from talkedit.cli import app

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    runner = CliRunner()
    for args, named in ((["--work", str(a_file), "--out", str(tmp_path / "t.json")], a_file),
                        (["--work", str(tmp_path / "w"), "--out",
                          str(tmp_path / "absent" / "t.json")], tmp_path / "absent"),
                        (["--work", str(tmp_path / "w"), "--out", str(tmp_path)], tmp_path)):
        result = runner.invoke(app, [command, *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1
        assert lines[0].startswith(f"error: {named}:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written
