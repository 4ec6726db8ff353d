"""The soundtrack's watermark: found after AAC 64 kbps, resampling and trims, silent on
unmarked speech with an honest bound, and enough on its own for verify to say "edited"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.audio_watermark import aac_round_trip, mux
from benchmarks.watermark import talking_photo
from stages.composite import audio_watermark as aw
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkParams
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize

KEY = "test-key"
TEXTS = [
    "The quick brown fox jumps over the lazy dog. We met at the station at nine and took "
    "the slow train to the coast, where the wind was cold and the sea was grey.",
    "Please remember to bring the blue folder to the meeting on Thursday, because the "
    "numbers inside it changed again last week and nobody has checked them yet.",
]


@pytest.fixture(scope="module")
def speech() -> list[tuple[np.ndarray, int]]:
    """Two voices, 15-17 s each: about the length of a short edited clip's soundtrack."""
    spoken = [synthesize(" ".join(TEXTS)), synthesize(" ".join(TEXTS[::-1]), voice="en-us+f3",
                                                      rate_wpm=180)]
    return [(s.samples, s.sample_rate) for s in spoken]


def test_found_after_aac_resampling_and_trims(speech: list[tuple[np.ndarray, int]]) -> None:
    for pcm, rate in speech:
        marked = aw.embed_audio(pcm, rate, KEY)
        assert marked.dtype == np.int16 and len(marked) == len(pcm)
        change_db = 10 * np.log10(np.sum(pcm.astype(float) ** 2)
                                  / np.sum((marked.astype(float) - pcm) ** 2))
        assert 13.0 < change_db < 19.0  # depth 0.2: about 15.5 dB under the speech
        attacks = {
            "aac 64k": (aac_round_trip(marked, rate), aw.ANALYSIS_RATE),
            "aac 64k at 44.1 kHz": (aac_round_trip(marked, rate, 44100), 44100),
            "resampled to 8 kHz": (aw.resample(marked, rate, 8000), 8000),
            "trimmed 1.3 s, aac": (aac_round_trip(marked[int(1.3 * rate):], rate),
                                   aw.ANALYSIS_RATE),
        }
        for name, (audio, audio_rate) in attacks.items():
            found = aw.detect_audio(audio, audio_rate, KEY)
            assert found.detected, (name, found.z)
            assert found.z > found.z_needed + 2.0, (name, found.z)


def test_unmarked_speech_is_not_detected(speech: list[tuple[np.ndarray, int]]) -> None:
    for pcm, rate in speech:
        clean = aw.detect_audio(aac_round_trip(pcm, rate), aw.ANALYSIS_RATE, KEY)
        assert not clean.detected and clean.z < clean.z_needed - 2.0
        other = aw.detect_audio(aw.embed_audio(pcm, rate, "another key"), rate, KEY)
        assert not other.detected and other.z < other.z_needed - 2.0
    silent = aw.detect_audio(np.zeros(16000 * 3), 16000, KEY)
    assert not silent.detected and silent.z == 0.0
    assert not aw.detect_audio(np.zeros(100), 16000, KEY).detected


def test_null_statistic_is_a_rademacher_sum(speech: list[tuple[np.ndarray, int]]) -> None:
    """One (phase, shift) hypothesis on unmarked speech over 300 keys: mean 0, sd 1, and a
    tail under Hoeffding's exp(-z^2/2): what the reported bound rests on."""
    pcm, rate = speech[0]
    weights = aw.band_weights(aac_round_trip(pcm, rate), aw.ANALYSIS_RATE)
    hops = round(aw.BLOCK_S / (aw.FRAME_S / 2))
    folded = np.zeros((aw.PERIOD_BLOCKS, weights.shape[1]))
    np.add.at(folded, (np.arange(len(weights)) // hops) % aw.PERIOD_BLOCKS, weights)
    z = np.array([float((aw.audio_chips(f"k{k}".encode()) * folded).sum()) / np.linalg.norm(folded)
                  for k in range(300)])
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2
    assert (z >= 2.0).mean() <= np.exp(-2.0)


def test_verify_finds_the_audio_mark_alone(speech: list[tuple[np.ndarray, int]],
                                           tmp_path: Path) -> None:
    pcm, rate = speech[0]
    frames = talking_photo(25, size=256, seed=5)  # unmarked frames: only the audio carries it
    settings = WatermarkParams(key=KEY)
    marked = mux(aw.embed_audio(pcm, rate, KEY), rate, frames, tmp_path / "marked_audio.mp4")
    del marked
    report = verify_video(tmp_path / "marked_audio.mp4", settings)
    assert not report.watermark.found and report.audio.found
    assert report.verdict == "edited" and report.exit_code == 0
    assert "audio mark:  found" in report.render()
    mux(pcm, rate, frames, tmp_path / "clean.mp4")
    clean = verify_video(tmp_path / "clean.mp4", settings)
    assert not clean.audio.found and clean.verdict == "no_evidence"


def test_bad_audio_input_fails_clearly() -> None:
    with pytest.raises(ValueError, match="mono"):
        aw.embed_audio(np.zeros((2, 100), np.int16), 16000, KEY)
    with pytest.raises(TalkeditError, match="too coarse"):
        aw.embed_audio(np.zeros(8000, np.int16), 4000, KEY)
    with pytest.raises(TalkeditError, match="depth"):
        aw.embed_audio(np.zeros(8000, np.int16), 16000, KEY, depth=0.5)
    assert len(aw.embed_audio(np.zeros(0, np.int16), 16000, KEY)) == 0
