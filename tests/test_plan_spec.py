"""Edit specs: operations on the transcript, and every way a spec can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.align.normalize import normalize_text
from stages.plan.diff import edited_spans
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from tests.conftest import write_edit

TRANSCRIPT = "Hello there, my friend. The team met the other team today."


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "talk.txt").write_text(TRANSCRIPT + "\n")
    return tmp_path


def _spec(root: Path, body: str, name: str = "e1") -> Path:
    return write_edit(root, name, body)


def test_operations_replace_delete_insert_keep_punctuation(root: Path) -> None:
    _spec(root, """
clip: talk
operations:
  - replace: my friend          # matched text keeps the sentence's period
    with: dear colleague
  - delete: 10                  # "today.": its period moves to the word before
  - insert: again
    after: [6, 6]
  - replace: team
    occurrence: 2
    with: crew
""")
    spec = load_spec("e1", root)
    assert spec.clip == "talk" and spec.original_text == TRANSCRIPT
    assert spec.edited_text == "Hello there, dear colleague. The team met again the other crew."
    assert len(spec.operations) == 4


def test_whole_text_spec_and_exclusions(root: Path) -> None:
    _spec(root, "clip: talk\ntext: |\n  Hello there.\n  The team met.\nexclude_s: [[1, 2.5]]\n")
    spec = load_spec("e1", root)
    assert spec.edited_text == "Hello there. The team met."
    assert spec.exclude_s == ((1.0, 2.5),)


@pytest.mark.parametrize(("body", "message"), [
    ("clip: talk\ntext: [unclosed\n", r"e1/edit.yaml: is not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("clip: talk\n", "exactly one of text"),
    ("clip: talk\ntext: hi\noperations: [{delete: 0}]\n", "exactly one of text"),
    ("clip: talk\ntext: hi\ncolour: red\n", r"unknown keys \['colour'\]"),
    ("clip: talk\noperations: [{replace: team, with: crew}]\n", r"occurs 2 times.*occurrence"),
    ("clip: talk\noperations: [{replace: cat, with: dog}]\n", "does not occur"),
    ("clip: talk\noperations: [{delete: [3, 40]}]\n", r"outside the transcript's 11 words"),
    ("clip: talk\noperations: [{delete: [1, 3]}, {replace: 2, with: x}]\n", "overlap"),
    ("clip: talk\noperations: [{insert: again}]\n", "before:/after:"),
    ("clip: talk\noperations: [{replace: team, occurrence: 3, with: x}]\n", r"not in 1\.\.2"),
    ("clip: talk\noperations: [{replace: my, with: ''}]\n", "use delete"),
    ("clip: talk\nexclude_s: [[3, 1]]\ntext: hi\n", "end is not after its start"),
])
def test_bad_specs_name_the_file_and_the_fix(root: Path, body: str, message: str) -> None:
    _spec(root, body)
    with pytest.raises(TalkeditError, match=message) as err:
        load_spec("e1", root)
    assert err.value.what.endswith("e1/edit.yaml") and err.value.fix


def test_unknown_clip_lists_the_known_ones(root: Path) -> None:
    _spec(root, "clip: nosuch\ntext: hi\n")
    with pytest.raises(TalkeditError, match=r"names clip 'nosuch'.*Fix: use one of the clips "
                                            r"in data/raw: \['talk'\]"):
        load_spec("e1", root)


def test_missing_spec_and_bad_names(root: Path) -> None:
    with pytest.raises(TalkeditError, match=r"absent/edit.yaml: edit spec not found"):
        load_spec("absent", root)
    with pytest.raises(TalkeditError, match="no path characters"):
        load_spec("../escape", root)
    _spec(root, "clip: ../talk\ntext: hi\n")
    with pytest.raises(TalkeditError, match="no path characters"):
        load_spec("e1", root)


def test_edited_spans_from_the_word_diff() -> None:
    original = normalize_text("Good morning and welcome to the weekly update.")
    words = [w.text for w in original]
    starts = np.arange(len(words), dtype=float)
    ends = starts + 0.8
    edited = normalize_text("Good evening and welcome to our brand new weekly update.")
    spans = edited_spans(words, starts, ends, edited)
    assert [(s.kind, s.orig_first, s.orig_end, s.new_first, s.new_end) for s in spans] == [
        ("replace", 1, 2, 1, 2), ("replace", 5, 6, 5, 8)]
    assert (spans[0].cut_start_s, spans[0].cut_end_s) == (1.0, 1.8)
    # An insertion cuts nothing: at the end of the word before it (no pause in the text)...
    (ins,) = edited_spans(words, starts, ends, normalize_text(
        "Good morning and welcome to the really weekly update."))
    assert (ins.kind, ins.cut_start_s, ins.cut_end_s) == ("insert", 5.8, 5.8)
    # ...or, after a sentence break, right before the next word (the pause stays first).
    (ins,) = edited_spans(words, starts, ends, normalize_text(
        "Good morning. Hi! And welcome to the weekly update."))
    assert (ins.kind, ins.new_first, ins.cut_start_s) == ("insert", 2, 2.0)
    assert edited_spans(words, starts, ends, original) == []
