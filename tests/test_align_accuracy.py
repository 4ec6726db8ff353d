"""align: boundary accuracy against exact truth (espeak-ng's own phoneme events).

Clips are synthesized, resampled to 16 kHz (as the demo clip and the extract
stage do) and aligned; errors count only boundaries whose phones on both sides
match the synthesizer's (its phone string differs from CMUdict's in places).

espeak-ng's synthesis is not bit-exact from call to call, so thresholds hold a
margin over the spread seen across repeated syntheses. Boundaries into a
voiceless stop are also checked apart: espeak starts the stop at its burst,
the aligner (like TIMIT-trained aligners) at its closure (see
stages.align.evaluate.CLOSURE_CONVENTION).
"""

from __future__ import annotations

import numpy as np
import pytest

from stages.align import align_audio
from stages.align.evaluate import (
    REFERENCE_CLIPS,
    BoundaryErrors,
    SyntheticClip,
    phone_boundary_errors,
    practice_text,
    synthetic_clip,
    word_boundary_errors,
)


@pytest.fixture(scope="module")
def reference_clips() -> list[SyntheticClip]:
    return [synthetic_clip(text, voice, rate) for text, voice, rate in REFERENCE_CLIPS]


@pytest.fixture(scope="module")
def reference_alignments(reference_clips: list[SyntheticClip]) -> list:
    return [align_audio(clip.samples, clip.text) for clip in reference_clips]


@pytest.mark.parametrize("k", range(len(REFERENCE_CLIPS)), ids=[v for _, v, _ in REFERENCE_CLIPS])
def test_boundaries_match_truth(reference_clips: list[SyntheticClip], reference_alignments: list,
                                k: int) -> None:
    clip = reference_clips[k]
    words, phones = reference_alignments[k]
    pe = phone_boundary_errors(phones, clip.phones)
    we = word_boundary_errors(words, clip.words)
    assert pe.matched >= 0.8 * pe.n_truth, pe
    assert pe.mae_ms <= 20 and pe.median_ms <= 15, pe
    assert pe.within(20) >= 0.65 and pe.excluding().within(20) >= 0.72, pe
    assert we.matched >= 0.9 * we.n_truth and we.mae_ms <= 30, we
    # Tables are well formed: phones tile the recording, words cover their phones.
    assert phones["start_s"].iat[0] == 0.0
    assert phones["end_s"].iat[-1] == pytest.approx(clip.duration_s, abs=1e-3)
    assert np.allclose(phones["end_s"].to_numpy()[:-1], phones["start_s"].to_numpy()[1:])
    assert (phones["end_s"] > phones["start_s"]).all()
    assert not words["low_confidence"].any() and words["score"].median() > 0.8
    assert set(words["pron_source"]) == {"cmudict"}


def test_word_boundaries_over_all_reference_clips(reference_clips: list[SyntheticClip],
                                                  reference_alignments: list) -> None:
    pooled = BoundaryErrors.concat([word_boundary_errors(words, clip.words) for clip, (words, _)
                                    in zip(reference_clips, reference_alignments, strict=True)])
    assert pooled.mae_ms <= 25 and pooled.median_ms <= 15, pooled


def test_alignment_is_deterministic(reference_clips: list[SyntheticClip]) -> None:
    clip = reference_clips[0]
    first = align_audio(clip.samples, clip.text)
    align_audio(reference_clips[1].samples, reference_clips[1].text)  # other work in between
    again = align_audio(clip.samples, clip.text)
    assert first[0].equals(again[0]) and first[1].equals(again[1])


def test_refinement_improves_on_the_raw_aligner(reference_clips: list[SyntheticClip]) -> None:
    clip = reference_clips[0]
    raw = phone_boundary_errors(align_audio(clip.samples, clip.text, {"refine": False})[1],
                                clip.phones)
    refined = phone_boundary_errors(align_audio(clip.samples, clip.text)[1], clip.phones)
    assert refined.median_ms < raw.median_ms and refined.mae_ms < raw.mae_ms


def test_long_recording_is_chunked_in_parallel_without_losing_accuracy() -> None:
    # ~80 s of speech with 20 s chunks and two worker processes.
    clip = synthetic_clip(practice_text(210, seed=7), "en-us", 170)
    assert clip.duration_s > 60
    words, phones = align_audio(clip.samples, clip.text,
                                {"chunk_s": 15, "max_chunk_s": 25, "workers": 2,
                                 "parallel_min_s": 0})
    pe = phone_boundary_errors(phones, clip.phones)
    we = word_boundary_errors(words, clip.words)
    assert pe.mae_ms <= 20 and pe.within(20) >= 0.70 and pe.matched >= 0.8 * pe.n_truth, pe
    assert we.mae_ms <= 25, we
    assert not words["low_confidence"].any()
    assert words["start_s"].is_monotonic_increasing


def test_unknown_word_uses_espeak_and_still_aligns() -> None:
    text = "The zorbleflax machine hummed quietly in the corner of the room."
    clip = synthetic_clip(text, "en-us", 150)
    words, phones = align_audio(clip.samples, text)
    row = words.set_index("normalized").loc["zorbleflax"]
    assert row["pron_source"] == "espeak" and not row["low_confidence"]
    assert word_boundary_errors(words, clip.words).mae_ms <= 25
