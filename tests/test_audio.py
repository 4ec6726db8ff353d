"""audio stage on the demo clip: identity, deletion, replacement (three sources), hidden truth."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import talkedit.edits as edits
from stages.align import AlignParams, normalize_text
from stages.audio.config import AudioParams
from stages.audio.dsp import resample
from stages.audio.evaluate import heldout_check
from stages.audio.metrics import discontinuity_db
from stages.audio.stage import run_audio
from stages.plan import PlanParams, run_plan
from stages.plan.timing import recorded_phones
from stages.recording import RecordingTimer, load_recording
from talkedit.artifacts import (
    AUDIO_UNITS,
    NEW_PHONES,
    SEGMENTS,
    WORDS,
    ClipPaths,
    EditPaths,
    audio_report_path,
    audio_units_path,
    read_parquet,
)
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize
from tests.conftest import REPO, repo_section, write_edit

SR = 16000
BORDER = 0.008  # params.yaml audio.border_ms


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def plan_and_speak(root: Path, edit: str, spec: dict, **audio: object) -> tuple[dict, np.ndarray]:
    write_edit(root, edit, spec)
    audio_params = repo_section(AudioParams, **audio)
    run_plan(edit, root, repo_section(PlanParams), repo_section(AlignParams), audio_params)
    summary = run_audio(edit, root, audio_params)
    out, rate = read_wav(EditPaths.of(edit, root).audio)
    assert rate == SR
    return summary, out


def clip_audio(root: Path) -> np.ndarray:
    return read_wav(ClipPaths.of("demo", root).audio)[0]


def expected_samples(root: Path, edit: str) -> int:
    frames = len(pd.read_parquet(EditPaths.of(edit, root).plan, columns=["frame"]))
    return int(round(frames / 25 * SR))


def segments(root: Path, edit: str) -> pd.DataFrame:
    return read_parquet(EditPaths.of(edit, root).segments, SEGMENTS)


def test_unchanged_edit_reproduces_the_clip_audio_exactly(audio_demo_root: Path) -> None:
    text = ClipPaths.of("demo", audio_demo_root).transcript.read_text()
    summary, out = plan_and_speak(audio_demo_root, "audio_same", {"clip": "demo", "text": text})
    clip = clip_audio(audio_demo_root)
    assert summary["new_spans"] == 0 and summary["kept_bit_exact"]
    frames = json.loads(ClipPaths.of("demo", audio_demo_root).video_meta.read_text())["n_frames"]
    # The clip's audio.wav may run a little past its last frame; the edit is frames / fps long.
    assert len(out) == expected_samples(audio_demo_root, "audio_same") == frames * SR // 25
    assert np.array_equal(out, clip[:len(out)])


def test_deletion_removes_exactly_the_word(audio_demo_root: Path) -> None:
    summary, out = plan_and_speak(audio_demo_root, "audio_delete",
                                  {"clip": "demo", "operations": [{"delete": "small"}]})
    clip = clip_audio(audio_demo_root)
    segs = segments(audio_demo_root, "audio_delete")
    assert list(segs["kind"]) == ["kept", "kept"]
    words = read_parquet(ClipPaths.of("demo", audio_demo_root).words, WORDS)
    small = words[words["normalized"] == "small"].iloc[0]
    # The cut is the word, from where "our" ends to where "research" starts.
    before, after = words.iloc[small.word_index - 1], words.iloc[small.word_index + 1]
    assert segs.at[0, "source_end_s"] == pytest.approx(before.end_s, abs=1e-9)
    assert segs.at[1, "source_start_s"] == pytest.approx(after.start_s, abs=1e-9)
    cut = int(round(segs.at[0, "source_end_s"] * SR))
    resume = int(round(segs.at[1, "source_start_s"] * SR))
    h = int(BORDER * SR) // 2
    assert len(out) == expected_samples(audio_demo_root, "audio_delete")
    assert np.array_equal(out[:cut - h], clip[:cut - h])  # bit-exact up to the join's fade
    tail = len(out) - (cut + h)
    expected = clip[resume + h:resume + h + tail]
    assert np.array_equal(out[cut + h:cut + h + len(expected)], expected)
    # The output ends on a whole video frame: past the clip's end it is padded with silence.
    assert len(out) - (cut + h + len(expected)) < SR // 25 and not out[cut + h + len(expected):].any()
    assert (resume - cut) / SR == pytest.approx(after.start_s - before.end_s, abs=1 / SR)
    assert summary["kept_bit_exact"] and summary["borders"] == 1
    assert summary["max_border_discontinuity_db"] <= 0.0
    assert discontinuity_db(out / 32768, cut - h, cut + h, SR) <= 0.0


@pytest.fixture(scope="module")
def replaced(audio_demo_root: Path) -> dict[str, tuple[dict, np.ndarray]]:
    """The bundled demo edit (two replacements) spoken by the speaker and by espeak-ng."""
    spec = yaml.safe_load((REPO / "data" / "edits" / "demo" / "edit.yaml").read_text())
    out = {}
    for source in ("speaker", "synthetic"):
        edit = f"audio_demo_{source}"
        # A voice unlike the clip's (the demo speaker is espeak-ng en-us itself).
        out[source] = plan_and_speak(audio_demo_root, edit, spec, source=source,
                                     tts_voice="en-us+f3")
    return out


@pytest.mark.parametrize("source", ["speaker", "synthetic"])
def test_replacement_keeps_the_rest_and_joins_cleanly(audio_demo_root: Path, replaced: dict,
                                                      source: str) -> None:
    summary, out = replaced[source]
    edit = f"audio_demo_{source}"
    clip = clip_audio(audio_demo_root)
    assert summary["source"] == source and summary["new_spans"] == 2
    assert len(out) == expected_samples(audio_demo_root, edit)
    border = int(BORDER * SR)
    for seg in segments(audio_demo_root, edit).itertuples():
        if seg.kind != "kept":
            continue
        a, b = round(seg.out_start_s * SR), round(seg.out_end_s * SR)
        src = round(seg.source_start_s * SR)
        lo = border if a > 0 else 0  # the fades at the edit borders
        hi = border if b < len(out) else 0
        n = min(b, len(out)) - a
        assert np.array_equal(out[a + lo:a + n - hi], clip[src + lo:src + n - hi])
    assert summary["kept_bit_exact"]
    # Borders: no step steeper than the signal's own within 20 ms (<= 0 dB).
    assert summary["borders"] == 4 and summary["max_border_discontinuity_db"] <= 0.0
    # Loudness of each new span within 1 LU of the kept audio around it.
    assert abs(summary["loudness_diff_lu"]) <= 1.0
    for span in summary["spans"]:
        assert abs(span["loudness_lufs"] - span["surroundings_lufs"]) <= 1.0
    units = read_parquet(audio_units_path(EditPaths.of(edit, audio_demo_root)), AUDIO_UNITS)
    new = read_parquet(EditPaths.of(edit, audio_demo_root).new_phones, NEW_PHONES)
    assert len(units) == 2 * len(new)
    assert json.loads(audio_report_path(EditPaths.of(edit, audio_demo_root)).read_text())[
        "source"] == source


def test_speaker_source_uses_the_speaker_and_joins_smoothly(replaced: dict) -> None:
    summary, _ = replaced["speaker"]
    assert summary["speaker_share"] >= 0.8  # of the new phones' halves
    # Joins between units: within what the clip's own speech shows at random points
    # (it exceeds 0 dB at 1 % of them, by up to 4 dB, at voice onsets).
    assert summary["max_unit_join_discontinuity_db"] <= 3.0
    assert replaced["synthetic"][0]["speaker_share"] == 0.0


def test_speaker_voice_beats_a_synthetic_voice_on_hidden_truth(audio_demo_root: Path) -> None:
    """Say sentence 3 of the demo from the rest of it (its time excluded from the units)."""
    got = heldout_check("demo", 3, repo_section(AudioParams, tts_voice="en-us+f3"),
                        audio_demo_root)
    print("hidden truth:", got)
    assert got["speaker"]["speaker_share"] >= 0.6
    assert got["speaker"]["mcd_db"] < got["synthetic"]["mcd_db"] - 2.0
    assert got["speaker"]["mcd_db"] < 8.0


@pytest.fixture(scope="module")
def recording_edit(audio_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 44.1 kHz stereo recording of the new words (espeak-ng's en-us+f3 voice)."""
    s = synthesize("Weekly video lab. Extraordinary,", voice="en-us+f3", rate_wpm=150)
    x = np.r_[np.zeros(SR // 2), resample(s.samples / 32768.0, s.sample_rate, SR),
              np.zeros(SR // 2)]
    pcm = np.clip(np.round(resample(x, SR, 44100) * 32767), -32768, 32767).astype("<i2")
    path = audio_demo_root / "data" / "edits" / "audio_rec" / "take1.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.repeat(pcm, 2).tobytes())
    return path


def test_recording_source_end_to_end(audio_demo_root: Path, recording_edit: Path) -> None:
    # The spec's `audio:` key makes the plan time the new words by the recording.
    assert "audio" in edits.SPEC_KEYS
    spec = yaml.safe_load((REPO / "data" / "edits" / "demo" / "edit.yaml").read_text())
    spec["audio"] = {"source": "recording", "recording": recording_edit.name}
    summary, out = plan_and_speak(audio_demo_root, "audio_rec", spec)
    assert summary["source"] == "recording" and summary["speaker_share"] == 0.0
    assert any("resampled from 44100 Hz" in n for n in summary["recording_notes"])
    assert summary["kept_bit_exact"] and summary["max_border_discontinuity_db"] <= 0.0
    assert abs(summary["loudness_diff_lu"]) <= 1.0
    assert len(out) == expected_samples(audio_demo_root, "audio_rec")


def test_recording_timer_times_the_plans_new_words(audio_demo_root: Path,
                                                   recording_edit: Path) -> None:
    """What the plan will call: the new words' phones with the recording's durations."""
    edited = normalize_text((audio_demo_root / "data" / "raw" / "demo.txt").read_text()
                            .replace("small research team", "weekly video lab")
                            .replace("promising", "extraordinary"))
    first = next(k for k, w in enumerate(edited) if w.text == "weekly" and k > 7)
    last = next(k for k, w in enumerate(edited) if w.text == "extraordinary")
    spans = [(first, first + 3), (last, last + 1)]
    rec = load_recording(recording_edit, "weekly video lab extraordinary", AlignParams())
    timer = RecordingTimer(rec, edited, spans)
    phones = recorded_phones(timer, edited, *spans[1])
    said = rec.words.set_index("normalized")
    assert [p.word for p in phones] == ["extraordinary"] * len(phones)
    assert sum(p.duration_s for p in phones) == pytest.approx(
        said.at["extraordinary", "end_s"] - said.at["extraordinary", "start_s"], abs=1e-6)
    assert all(p.duration_s == p.tts_duration_s > 0 for p in phones)


def test_missing_plan_or_recording_is_a_clear_error(audio_demo_root: Path) -> None:
    write_edit(audio_demo_root, "audio_noplan",
               {"clip": "demo", "operations": [{"delete": "small"}]})
    with pytest.raises(TalkeditError, match="run plan@audio_noplan first"):
        run_audio("audio_noplan", audio_demo_root, AudioParams())
    with pytest.raises(TalkeditError, match="recording was not found"):
        run_audio("audio_noplan", audio_demo_root, AudioParams(source="recording"))
