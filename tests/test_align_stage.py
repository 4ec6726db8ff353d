"""align: the stage end to end (run_align on a project folder), bad inputs and wrong transcripts."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import resample_poly

from stages.align import AlignParams, run_align
from stages.align.evaluate import (
    REFERENCE_CLIPS,
    SyntheticClip,
    phone_boundary_errors,
    synthetic_clip,
    word_boundary_errors,
)
from talkedit.artifacts import PHONES, SPEAKER_RATE, WORDS, ClipPaths, read_parquet
from talkedit.errors import TalkeditError
from tests.test_align_io import write_wav

CLIP = "talk"


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    text, voice, rate = REFERENCE_CLIPS[0]
    return synthetic_clip(text, voice, rate)


def setup_clip(root: Path, transcript: str, samples: np.ndarray, rate: int = 16000,
               kind: str = "int16") -> ClipPaths:
    paths = ClipPaths.of(CLIP, root)
    paths.transcript.parent.mkdir(parents=True, exist_ok=True)
    paths.transcript.write_text(transcript)
    paths.interim.mkdir(parents=True, exist_ok=True)
    x = samples.astype(np.float64) / 32768 if samples.dtype == np.int16 else samples
    write_wav(paths.audio, x, rate, kind)
    return paths


def assert_nothing_written(paths: ClipPaths, keep: set[str] | None = None) -> None:
    """Only the inputs (and ``keep``) are in the clip's folder: no partial or temp files."""
    left = [p.name for p in paths.interim.iterdir() if p.name not in {"audio.wav", *(keep or ())}]
    assert left == [], f"half-written artifacts left behind: {left}"


def test_run_align_writes_the_three_artifacts(project: Path) -> None:
    # Written with a number, a currency amount and an abbreviation; spoken in full.
    written = "Dr. Lee paid $150 for 2 tickets to the concert in 1999, and it was worth it."
    spoken = ("Doctor Lee paid one hundred fifty dollars for two tickets to the concert in "
              "nineteen ninety nine, and it was worth it.")
    clip = synthetic_clip(spoken, "en-us", 160)
    paths = setup_clip(project, written, clip.samples)
    summary = run_align(CLIP, project, AlignParams.from_dict({}))

    words = read_parquet(paths.words, WORDS)
    phones = read_parquet(paths.phones, PHONES)
    rates = read_parquet(paths.speaker_rate, SPEAKER_RATE)
    assert summary["words"] == len(words) == 22 and summary["chunks"] == 1
    assert summary["backend"] == "pocketsphinx" and summary["mismatches"] == []
    # the fit check's worst run and its bar (a short recording: span_z itself)
    assert summary["worst_span"] < summary["span_bar"] == AlignParams().span_z
    assert summary["duration_s"] == pytest.approx(clip.duration_s, abs=0.01)
    tokens = written.split()
    dollars = words[words["written_index"] == tokens.index("$150")]
    assert dollars["normalized"].tolist() == ["one", "hundred", "fifty", "dollars"]
    assert (dollars["word"] == "$150").all()
    assert words["written_index"].is_monotonic_increasing
    assert word_boundary_errors(words, clip.words).mae_ms <= 30
    assert phone_boundary_errors(phones, clip.phones).mae_ms <= 20
    # Pauses are rows of their own; stress follows the pronunciation used.
    assert (phones.loc[phones["phone"] == "sil", "word_index"] == -1).all()
    assert set(phones.loc[phones["phone"].isin(["P", "T", "K"]), "stress"]) == {-1}
    assert {0, 1} <= set(phones.loc[phones["phone"].isin(["AH", "IH", "EH"]), "stress"])
    first = words.iloc[0]
    assert first["pron"] == "D AA1 K T ER0" and first["pron_source"] == "cmudict"
    # Speaker rate: per-phone duration statistics of the confident phones.
    ok = phones[~phones["low_confidence"]]
    assert rates["count"].sum() == len(ok)
    dur = (ok["end_s"] - ok["start_s"]).groupby(ok["phone"])
    ah = rates.set_index("phone").loc["AH"]
    assert ah["mean_s"] == pytest.approx(dur.mean()["AH"]) and ah["median_s"] == pytest.approx(
        dur.median()["AH"])
    assert (rates["std_s"] >= 0).all() and rates["phone"].iat[-1] == "sil"


def test_16bit_and_float_wavs_align_the_same(project: Path, clip: SyntheticClip) -> None:
    paths = setup_clip(project, clip.text, clip.samples, kind="int16")
    run_align(CLIP, project, AlignParams.from_dict({}))
    a = read_parquet(paths.phones)
    setup_clip(project, clip.text, clip.samples.astype(np.float32) / 32768, kind="float32")
    run_align(CLIP, project, AlignParams.from_dict({}))
    b = read_parquet(paths.phones)
    assert len(a) == len(b) and (a["phone"] == b["phone"]).all()
    assert np.abs(a["start_s"] - b["start_s"]).max() <= 0.003


def test_other_sample_rate_is_resampled_and_logged(project: Path, clip: SyntheticClip,
                                                   caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    x44 = resample_poly(clip.samples.astype(np.float64) / 32768, 441, 160)
    setup_clip(project, clip.text, x44, rate=44100, kind="float32")
    scratch = project / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with caplog.at_level(logging.WARNING):
        summary = run_align(CLIP, project, AlignParams.from_dict({}))
    assert "resampled from 44100 Hz to 16000 Hz" in caplog.text
    assert any("44100 Hz" in note for note in summary["audio_notes"])
    phones = read_parquet(ClipPaths.of(CLIP, project).phones)
    errors = phone_boundary_errors(phones, clip.phones)
    assert errors.mae_ms <= 20, errors
    assert list(scratch.iterdir()) == []  # the converted copy is removed
    assert_nothing_written(ClipPaths.of(CLIP, project), keep={"words.parquet", "phones.parquet",
                                                              "speaker_rate.parquet", "align.json"})


@pytest.mark.parametrize(("case", "problem", "fix"), [
    ("silent", "is silent", "muted"),
    ("too_short", "need at least", "transcript of this recording"),
    ("non_latin", "non-Latin script", "transliterate"),
    ("empty", "no words to align", "write what is said"),
    ("missing_audio", "not found", "extract stage"),
])
def test_bad_input_is_one_clear_error(project: Path, clip: SyntheticClip, case: str,
                                      problem: str, fix: str) -> None:
    transcript, samples = clip.text, clip.samples
    if case == "silent":
        samples = np.zeros(len(samples), np.int16)
    elif case == "too_short":
        samples = samples[:16000]
    elif case == "non_latin":
        transcript = "\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002 \u8c22\u8c22\u3002"
    elif case == "empty":
        transcript = " \n"
    paths = setup_clip(project, transcript, samples)
    if case == "missing_audio":
        paths.audio.unlink()
    with pytest.raises(TalkeditError) as err:
        run_align(CLIP, project, AlignParams.from_dict({}))
    assert problem in err.value.problem and fix in err.value.fix
    named = paths.transcript if case in ("non_latin", "empty") else paths.audio
    assert str(named) in err.value.what
    assert_nothing_written(paths)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text)


def test_transcript_missing_a_sentence_is_caught(project: Path, clip: SyntheticClip) -> None:
    sentences = _sentences(clip.text)
    missing = sentences[1]  # said between ~1.2 s and ~7.5 s
    paths = setup_clip(project, " ".join(s for s in sentences if s != missing), clip.samples)
    with pytest.raises(TalkeditError) as err:
        run_align(CLIP, project, AlignParams.from_dict({}))
    assert "does not match its transcript" in err.value.problem
    assert "speech with no transcript words at" in err.value.problem
    times = [float(t) for t in re.findall(r"(\d+\.\d)[ -]", err.value.problem)]
    assert times and 0.5 <= times[0] <= 7.5
    assert "align.on_mismatch: mark" in err.value.fix
    assert_nothing_written(paths)

    # Under on_mismatch: mark it continues and flags the words around the gap.
    summary = run_align(CLIP, project, AlignParams.from_dict({"on_mismatch": "mark"}))
    words = read_parquet(paths.words)
    flagged = words[words["low_confidence"]]
    assert len(flagged) >= 1 and summary["low_confidence_words"] == len(flagged)
    assert (flagged["start_s"] < 9.0).all() and (flagged["issue"] != "").all()
    phones = read_parquet(paths.phones)
    gap = phones[(phones["word_index"] < 0) & phones["low_confidence"]]
    assert (gap["end_s"] - gap["start_s"]).sum() >= 1.0  # the missing sentence's audio
    # Speaker rate leaves the flagged pause out.
    rates = read_parquet(paths.speaker_rate).set_index("phone")
    confident_pauses = (phones["word_index"] < 0) & ~phones["low_confidence"]
    assert rates.loc["sil", "count"] == confident_pauses.sum() < (phones["word_index"] < 0).sum()


def test_swapped_words_are_caught(project: Path, clip: SyntheticClip) -> None:
    tokens = clip.text.split()
    i, j = tokens.index("spreadsheet"), tokens.index("dashboard")
    tokens[i], tokens[j] = tokens[j], tokens[i]
    paths = setup_clip(project, " ".join(tokens), clip.samples)
    with pytest.raises(TalkeditError) as err:
        run_align(CLIP, project, AlignParams.from_dict({}))
    assert "poor acoustic fit" in err.value.problem
    # a swapped word is named, alone or in the quoted group of neighbours flagged with it
    assert re.search(r"'[^']*\b(spreadsheet|dashboard)\b[^']*' at", err.value.problem)
    assert_nothing_written(paths)


def test_transcript_with_words_never_said_is_caught(project: Path, clip: SyntheticClip) -> None:
    sentences = _sentences(clip.text)
    extra = "The weather was lovely all week long, and nobody wanted to stay inside."
    paths = setup_clip(project, " ".join([sentences[0], extra, *sentences[1:]]), clip.samples)
    with pytest.raises(TalkeditError) as err:
        run_align(CLIP, project, AlignParams.from_dict({}))
    assert "does not match its transcript" in err.value.problem
    assert_nothing_written(paths)


def test_failing_chunk_is_retried_with_wider_beams(project: Path, clip: SyntheticClip) -> None:
    paths = setup_clip(project, clip.text, clip.samples)
    # 1e-5 prunes far too hard for this clip; the second beam succeeds.
    summary = run_align(CLIP, project, AlignParams.from_dict({"beams": [1e-5, 1e-80]}))
    assert summary["retried_chunks"] == 1 and summary["failed_chunks"] == 0
    words = read_parquet(paths.words)
    assert word_boundary_errors(words, clip.words).mae_ms <= 30
    assert isinstance(words, pd.DataFrame) and not words["low_confidence"].any()
