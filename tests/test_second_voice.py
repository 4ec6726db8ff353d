"""A second voice talking over the speaker is reported by align (stages/align/voices.py)."""

from __future__ import annotations

import numpy as np
import pytest

from stages.align import AlignParams, align_audio
from stages.align.audio import ArrayAudio
from stages.align.evaluate import synthetic_clip
from stages.align.voices import other_voices, pitch_track
from stages.demo.stress import StressParams, degrade_audio
from stages.demo.transcripts import passages

LEAD = np.zeros(8000, np.int16)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, str]:
    text = " ".join(passages()[:2])  # ~25 s: enough words to know the speaker's pitch
    clip = synthetic_clip(text, rate_wpm=150)
    return np.concatenate([LEAD, clip.samples, LEAD]), text


def _voices(samples: np.ndarray, text: str) -> list:
    words, _ = align_audio(samples, text, AlignParams(on_mismatch="mark"))
    p = AlignParams()
    return other_voices(ArrayAudio(samples), words, p.other_voice_z, p.other_voice_words,
                        p.other_voice_window_s)


def test_pitch_track_finds_a_known_tone() -> None:
    t = np.arange(16000) / 16000
    tone = (0.3 * 32767 * np.sign(np.sin(2 * np.pi * 125.0 * t))).astype(np.int16)
    f0 = pitch_track(ArrayAudio(tone))
    assert np.nanmedian(f0) == pytest.approx(125.0, rel=0.02)
    assert np.isnan(pitch_track(ArrayAudio(np.zeros(16000, np.int16)))).all()


def test_one_voice_is_not_reported(speech) -> None:
    samples, text = speech
    assert _voices(samples, text) == []


def test_a_second_voice_over_the_speaker_is_reported_where_it_speaks(speech) -> None:
    samples, text = speech
    mixed, facts = degrade_audio(samples, 16000, (len(LEAD), len(samples) - len(LEAD)),
                                 StressParams(second_person_at_s=8.0), "en-us",
                                 np.random.default_rng(0))
    start, end = facts["second_voice_s"]
    found = _voices(mixed, text)
    assert found, "the second voice passed unreported"
    assert all(v.start_s < end and v.end_s > start for v in found)  # only where it spoke
    assert sum(v.words for v in found) >= 3
