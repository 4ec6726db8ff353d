"""index stage: the viseme table, the suffix array, and visemes.parquet from real alignments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.index import IndexParams, VisemeIndex, build_viseme_table, run_index, suffix_array
from stages.visemes import PHONE_TO_VISEME, VISEME_NAMES, viseme_distance, viseme_ids, viseme_of
from talkedit.artifacts import (
    PHONES,
    VISEMES,
    WORDS,
    ClipPaths,
    read_parquet,
    write_parquet,
)
from talkedit.errors import TalkeditError
from talkedit.phonemes import ARPABET, SILENCE


def test_viseme_table_groups_lookalike_phones() -> None:
    assert set(PHONE_TO_VISEME) == ARPABET | {SILENCE}
    assert viseme_of("P") == viseme_of("B") == viseme_of("M") == "P"  # bilabials
    assert viseme_of("F") == viseme_of("V") == "F"  # labiodentals
    assert viseme_of("W") == viseme_of("R")
    assert len({viseme_of(p) for p in ("P", "F", "AA", "UW", "IY", SILENCE)}) == 6
    with pytest.raises(ValueError, match="not an ARPAbet phone"):
        viseme_of("AH0")


def test_viseme_distance_is_a_bounded_symmetric_metric_like_table() -> None:
    d = viseme_distance()
    n = len(VISEME_NAMES)
    assert d.shape == (n, n)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert d.max() == pytest.approx(1.0) and d[~np.eye(n, dtype=bool)].min() > 0
    i = {v: k for k, v in enumerate(VISEME_NAMES)}
    # A near miss costs less than a far one: spread IY vs EH, bilabial P vs open AA.
    assert d[i["IY"], i["EH"]] < 0.5 * d[i["P"], i["AA"]]


def test_suffix_array_sorts_every_suffix() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 60, 400):
        for alphabet in (1, 2, 14):
            s = rng.integers(0, alphabet, n)
            sa = suffix_array(s)
            assert list(sa) == sorted(range(n), key=lambda k: list(s[k:]))


def _phones(labels: list[str], durations: list[float] | None = None) -> pd.DataFrame:
    d = np.asarray(durations if durations is not None else [0.08] * len(labels))
    ends = np.cumsum(d)
    return pd.DataFrame({"word_index": [-1 if p == SILENCE else 0 for p in labels],
                         "phone": labels, "stress": -1, "start_s": ends - d, "end_s": ends,
                         "score": 1.0, "low_confidence": False})


def test_occurrences_are_every_match_of_a_viseme_sequence() -> None:
    rng = np.random.default_rng(2)
    phones = list(rng.choice(["P", "B", "AA", "IY", "T", "S", SILENCE], 500))
    index = VisemeIndex(build_viseme_table(_phones(phones), None, 25.0))
    vid = index.visemes
    for length in (1, 2, 3, 5):
        for _ in range(20):
            start = int(rng.integers(0, len(vid) - length))
            pattern = vid[start:start + length]
            naive = [k for k in range(len(vid) - length + 1)
                     if np.array_equal(vid[k:k + length], pattern)]
            assert list(index.occurrences(pattern)) == naive
    assert len(index.occurrences(viseme_ids(["UW", "UW", "UW"]))) == 0


def test_table_frames_neighbours_and_usability() -> None:
    phones = _phones([SILENCE, "HH", "AH", "L", "OW", SILENCE], [0.52, 0.08, 0.12, 1.4, 0.12, 0.32])
    phones.loc[4, "low_confidence"] = True
    t = build_viseme_table(phones, None, 25.0)
    assert list(t["start_frame"]) == [0, 13, 15, 18, 53, 56]  # round(start * fps)
    assert list(t["end_frame"]) == [13, 15, 18, 53, 56, 64]
    assert list(t["prev_phone"]) == [SILENCE, SILENCE, "HH", "AH", "L", "OW"]
    assert list(t["next_viseme"]) == ["K", "AH", "K", "AO", "SIL", "SIL"]
    # L lasts 1.4 s (> max_phone_s) and OW's word is low-confidence: neither is searched;
    # the 0.52 s pause is fine (pauses may be long).
    assert list(t["usable"]) == [True, True, True, False, False, True]


def test_bad_phone_label_names_the_file_and_the_fix() -> None:
    with pytest.raises(TalkeditError, match="phones.parquet.*not ARPAbet.*re-run the align"):
        build_viseme_table(_phones(["HH", "AH0"]), None, 25.0)


def test_run_index_on_the_aligned_demo(indexed_demo_root: Path) -> None:
    paths = ClipPaths.of("demo", indexed_demo_root)
    table = read_parquet(paths.visemes, VISEMES)
    phones = read_parquet(paths.phones, PHONES)
    fps = json.loads(paths.video_meta.read_text())["fps"]
    assert len(table) == len(phones)
    assert list(table["phone"]) == list(phones.sort_values("start_s")["phone"])
    assert np.all(np.diff(table["start_s"]) >= 0)
    # Frame spans tile the clip: each phone's span starts where the previous one ends.
    assert np.array_equal(table["start_frame"].to_numpy()[1:], table["end_frame"].to_numpy()[:-1])
    assert table["end_frame"].iloc[-1] == pytest.approx(table["end_s"].iloc[-1] * fps, abs=1)
    # Every spoken class but the rare ZH-like ones occurs in the 30 s script.
    spoken = table[table["phone"] != SILENCE]
    assert spoken["viseme"].nunique() >= 12
    assert (table["word"] != "").sum() == len(spoken)
    sa = table["suffix_array"].to_numpy()
    assert sorted(sa) == list(range(len(table)))
    vid = table["viseme_id"].to_numpy()
    assert all(list(vid[a:]) <= list(vid[b:]) for a, b in zip(sa[:-1], sa[1:], strict=True))


def test_run_index_needs_the_align_stage(tmp_path: Path) -> None:
    with pytest.raises(TalkeditError, match=r"phones.parquet: not found.*align@nowhere"):
        run_index("nowhere", tmp_path, IndexParams.from_dict({}))
    with pytest.raises(TalkeditError, match="index.max_phone"):
        run_index("nowhere", tmp_path, IndexParams.from_dict({"max_phone": 2}))


def test_run_index_rejects_a_clip_without_speech(tmp_path: Path) -> None:
    paths = ClipPaths.of("quiet", tmp_path)
    write_parquet(_phones([SILENCE]), PHONES, paths.phones)
    write_parquet({name: [] for name in WORDS.names}, WORDS, paths.words)
    with pytest.raises(TalkeditError, match="no spoken phone"):
        run_index("quiet", tmp_path, IndexParams.from_dict({}))
    assert not paths.visemes.exists()
