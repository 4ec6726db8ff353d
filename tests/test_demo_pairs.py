"""Edit-with-truth pairs (stages/demo/pairs.py) and the generator's check of the photo's mouth."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from stages.demo.face_rig import MAX_REST_OPENING, FaceRig, detect_landmarks, rest_opening
from stages.demo.pairs import CASES, DEV_CASES, PairCase, face_photo, make_pair
from talkedit.errors import TalkeditError


def test_a_photo_with_an_open_mouth_is_refused_and_a_closed_one_accepted(
        caplog: pytest.LogCaptureFixture) -> None:
    open_mouth = face_photo("carphone:59")  # the carphone man mid-word
    opening = rest_opening(detect_landmarks(open_mouth))
    assert opening > MAX_REST_OPENING
    with pytest.raises(TalkeditError, match="mouth is open") as err:
        FaceRig(open_mouth, 256, source="carphone 59")
    assert "closed and neutral" in err.value.fix
    with caplog.at_level(logging.WARNING):
        for case in CASES:  # the yardstick's faces: closed mouths, no warning
            FaceRig(face_photo(case.face), 256, source=case.face)
    assert not [r for r in caplog.records if "lips apart" in r.getMessage()]


def test_a_pair_is_the_clip_and_the_same_face_and_voice_saying_the_edit(tmp_path: Path) -> None:
    case = PairCase("pair-test", "astronaut", "en-us", 170, 3, "Bring the red box home today.",
                    (("red box", "blue cup"),))
    assert case.edited_text == "Bring the blue cup home today."
    paths = make_pair(case, tmp_path, size=128)
    clip = pd.read_parquet(tmp_path / "data" / "raw" / "pair-test.truth_phones.parquet")
    truth = pd.read_parquet(paths["truth_phones"])
    said = lambda t: " ".join(dict.fromkeys(t[t["word"] != ""]["word"]))  # noqa: E731
    assert said(clip) == "Bring the red box home today"
    assert said(truth) == "Bring the blue cup home today"
    # Same rig, seed and voice: the words either side of the edit are timed alike.
    first = lambda t: t[t["word"] == "Bring"]["end_s"].max()  # noqa: E731
    assert abs(first(clip) - first(truth)) < 0.02
    assert (tmp_path / "truth" / "pair-test.mp4").stat().st_size > 0
    with pytest.raises(TalkeditError, match="exactly once"):
        _ = PairCase("x", "astronaut", "en-us", 150, 0, "a a", (("a", "b"),)).edited_text


def test_the_development_pairs_are_not_the_scored_ones() -> None:
    """Settings are chosen on DEV_CASES and scored on CASES: no name, text, edited word or
    (face, voice, seed) in common, and every dev edit applies to its text exactly once."""
    scored = {(c.face, c.voice, c.seed) for c in CASES}
    new_words = {w for c in CASES for _, new in c.operations for w in new.lower().split()}
    for case in DEV_CASES:
        assert case.name not in {c.name for c in CASES}
        assert (case.face, case.voice, case.seed) not in scored
        assert case.text not in {c.text for c in CASES}
        assert case.edited_text != case.text  # raises when an edit is not found once
        dev_new = {w for _, new in case.operations for w in new.lower().split()}
        assert not dev_new & new_words - {"a", "the", "and", "my"}
