"""audio stage, without a clip: measures, pitch, PSOLA, recordings, spec and params checks."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stages.audio.speech as speech_module
from stages.align import AlignParams, normalize_text
from stages.audio.build import EditInputs, speak
from stages.audio.config import AudioParams
from stages.audio.dsp import ClipAudio, f0_track, resample
from stages.audio.metrics import discontinuity_db, loudness_lufs, mcd_db
from stages.audio.psola import Run, Source, render
from stages.audio.speech import espeak_speech
from stages.audio.units import Target
from stages.plan.timing import recorded_phones
from stages.recording import RecordingTimer, clipped_share, load_recording
from talkedit.edits import audio_choice
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize

SR = 16000


def speech(text: str = "We measured every step, from the sound of each word to the mouth.",
           voice: str = "en-us") -> np.ndarray:
    s = synthesize(text, voice=voice, rate_wpm=150)
    return resample(s.samples / 32768.0, s.sample_rate, SR)


def array_source(x: np.ndarray, name: str = "x") -> Source:
    def read(a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a)
        lo, hi = max(a, 0), min(b, len(x))
        if hi > lo:
            out[lo - a:hi - a] = x[lo:hi]
        return out

    return Source(name, read)


def median_f0(x: np.ndarray) -> float:
    f0 = f0_track(x, SR, 80)
    return float(np.median(f0[f0 > 0]))


def write_wav(path: Path, x: np.ndarray, rate: int, channels: int = 1) -> Path:
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return path


# --- measures ------------------------------------------------------------------------------


def test_loudness_follows_gain_in_lu() -> None:
    x = speech()
    louder = loudness_lufs(x, SR)
    assert -40 < louder < -5
    assert loudness_lufs(0.5 * x, SR) - louder == pytest.approx(-6.02, abs=0.01)
    short = x[SR:SR + int(0.3 * SR)]  # under one 400 ms block: measured as one block
    assert np.isfinite(loudness_lufs(short, SR))
    assert np.isnan(loudness_lufs(np.zeros(SR), SR))  # all gated


def test_discontinuity_flags_a_step_but_not_a_crossfade() -> None:
    t = np.arange(SR) / SR
    a, b = 0.1 * np.sin(2 * np.pi * 200 * t), 0.1 * np.sin(2 * np.pi * 200 * t + 2.5)
    at = SR // 2
    hard = np.r_[a[:at], b[at:]]
    assert discontinuity_db(hard, at, None, SR) > 6.0
    n = int(0.008 * SR)
    w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    soft = hard.copy()
    soft[at:at + n] = (1 - w) * a[at:at + n] + w * b[at:at + n]
    # A pure tone's steepest step is the same everywhere: the fade matches it (to rounding).
    assert discontinuity_db(soft, at, at + n, SR) <= 0.05


def test_mcd_is_zero_for_itself_and_grows_with_distortion() -> None:
    x = speech()
    assert mcd_db(x, x, SR) < 1e-6
    tilted = np.r_[x[0], x[1:] - 0.9 * x[:-1]]  # a strong spectral tilt
    stretched = render([Run(array_source(x), np.array([0.0, 1.2 * len(x)]),
                            np.array([0.0, len(x)]))], int(1.2 * len(x)), SR).samples
    assert mcd_db(x, tilted, SR) > 3.0
    assert mcd_db(x, stretched, SR) < 2.0  # DTW absorbs the tempo; PSOLA keeps the timbre


# --- pitch and PSOLA -------------------------------------------------------------------------


def test_yin_finds_the_pitch_of_a_pulse_train() -> None:
    x = np.zeros(SR)
    x[::SR // 125] = 0.5  # 125 Hz
    x = np.convolve(x, np.hanning(31), "same")
    assert median_f0(x) == pytest.approx(125.0, rel=0.01)


@pytest.mark.parametrize("stretch", [0.7, 1.0, 1.6])
def test_psola_changes_duration_not_pitch(stretch: float) -> None:
    x = speech()
    n = int(stretch * len(x))
    out = render([Run(array_source(x), np.array([0.0, n]), np.array([0.0, len(x)]))], n, SR)
    assert len(out.samples) == n
    # Pitch where both are voiced, output frame k against the source frame it shows.
    f_in, f_out = f0_track(x, SR, 80), f0_track(out.samples, SR, 80)
    src = np.clip(np.rint(np.arange(len(f_out)) / stretch).astype(int), 0, len(f_in) - 1)
    both = (f_out > 0) & (f_in[src] > 0)
    assert both.sum() > 0.5 * (f_in > 0).sum() * stretch
    assert np.median(f_out[both] / f_in[src][both]) == pytest.approx(1.0, abs=0.02)
    level = 10 * np.log10(np.mean(out.samples ** 2) / np.mean(x ** 2))
    assert abs(level) < 0.5  # dB


def test_psola_moves_pitch_into_another_range() -> None:
    x = speech()
    lf = np.log(median_f0(x))
    up = 2 / 12 * np.log(2)  # two semitones
    source = array_source(x)
    source.pitch_map = (lf, 0.1, lf + up, 0.1)
    out = render([Run(source, np.array([0.0, len(x)]), np.array([0.0, len(x)]))], len(x), SR)

    # The mean log f0 is what a pitch map moves. (The median jumps between the few pitch
    # plateaus of espeak's voice: 2.36 semitones here, 2.13 by the mean.)
    def mean_log_f0(y: np.ndarray) -> float:
        f0 = f0_track(y, SR, 80)
        return float(np.mean(np.log(f0[f0 > 0])))

    semitones = 12 / np.log(2) * (mean_log_f0(out.samples) - mean_log_f0(x))
    assert semitones == pytest.approx(2.0, abs=0.3)


def test_psola_renders_lead_in_and_out_from_the_source_itself() -> None:
    x = speech()
    lead = 160
    a, b = SR, 2 * SR
    run = Run(array_source(x), np.array([0.0, b - a]), np.array([a, b], dtype=float))
    out = render([run], b - a, SR, smooth_pitch=False, lead=lead)
    assert len(out.samples) == b - a + 2 * lead
    # An identity run is the source itself, lead-in and lead-out included (bit for bit).
    assert np.array_equal(out.samples, x[a - lead:b + lead])


# --- recordings ------------------------------------------------------------------------------

TAKE = "We have a weekly video lab now."


@pytest.fixture(scope="module")
def take() -> tuple[np.ndarray, list]:
    """espeak-ng's en-us+f3 saying TAKE at 16 kHz with 0.5 s of silence around, and its
    true phones (seconds in that recording)."""
    s = synthesize(TAKE, voice="en-us+f3", rate_wpm=150)
    x = np.r_[np.zeros(SR // 2), resample(s.samples / 32768.0, s.sample_rate, SR), np.zeros(SR // 2)]
    return x, [(p.phone, p.start_s + 0.5, p.end_s + 0.5, p.word_index) for p in s.phones]


def test_recording_at_another_rate_and_stereo_is_converted_and_logged(
        tmp_path: Path, take: tuple, caplog: pytest.LogCaptureFixture) -> None:
    x, truth = take
    path = write_wav(tmp_path / "take.wav", resample(x, SR, 44100), 44100, channels=2)
    with caplog.at_level(logging.INFO):
        rec = load_recording(path, TAKE, AlignParams())
    assert any("resampled from 44100 Hz" in r.getMessage() for r in caplog.records)
    assert any("2 channel" in n for n in rec.notes)
    assert rec.sample_rate == SR and abs(rec.duration_s - len(x) / SR) < 0.01
    # Word timings within 40 ms of espeak's own (its events are the truth of its audio).
    words = rec.words.set_index("normalized")
    video = [p for p in truth if p[3] == 4]
    assert abs(words.at["video", "start_s"] - video[0][1]) < 0.04
    assert abs(words.at["video", "end_s"] - video[-1][2]) < 0.04


def test_recording_timer_gives_the_plan_the_recorded_phones(tmp_path: Path, take: tuple) -> None:
    x, _ = take
    rec = load_recording(write_wav(tmp_path / "take.wav", x, SR), TAKE, AlignParams())
    edited = normalize_text("Good morning, we have a weekly video lab now.")
    timer = RecordingTimer(rec, edited, [(5, 8)])  # weekly video lab
    phones = recorded_phones(timer, edited, 5, 8)
    assert [p.phone for p in phones if p.phone != "sil"] == \
        ["W", "IY", "K", "L", "IY", "V", "IH", "D", "IY", "OW", "L", "AE", "B"]
    assert {p.word_position for p in phones if p.phone != "sil"} == {5, 6, 7}
    said = rec.words.set_index("normalized")
    total = said.at["lab", "end_s"] - said.at["weekly", "start_s"]
    assert sum(p.duration_s for p in phones) == pytest.approx(total, abs=1e-6)
    assert timer.word_map(5, 8) == {5: 3, 6: 4, 7: 5}


def test_recording_that_says_other_words_fails_clearly(tmp_path: Path) -> None:
    s = synthesize("Good morning everybody, see you here tomorrow.", voice="en-us+f3")
    x = np.r_[np.zeros(SR // 2), resample(s.samples / 32768.0, s.sample_rate, SR), np.zeros(SR // 2)]
    path = write_wav(tmp_path / "wrong.wav", x, SR)
    with pytest.raises(TalkeditError, match="does not say 'weekly video lab'") as err:
        load_recording(path, "weekly video lab", AlignParams())
    assert err.value.what == str(path)


def test_silent_recording_is_rejected(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silent.wav", np.zeros(2 * SR), SR)
    with pytest.raises(TalkeditError, match="is silent"):
        load_recording(path, "weekly video lab", AlignParams())


def test_clipped_recording_is_rejected(tmp_path: Path, take: tuple) -> None:
    x, _ = take
    hot = np.clip(12 * x, -1.0, 1.0)
    assert clipped_share(hot) > 0.01 and clipped_share(x) == 0.0
    with pytest.raises(TalkeditError, match="is clipped"):
        load_recording(write_wav(tmp_path / "hot.wav", hot, SR), TAKE, AlignParams())


# --- spec and params -------------------------------------------------------------------------


def test_spec_audio_key_is_checked(tmp_path: Path) -> None:
    spec = tmp_path / "e" / "edit.yaml"
    spec.parent.mkdir()
    assert audio_choice(None, spec).source == "speaker"
    assert audio_choice(None, spec, "synthetic").source == "synthetic"  # the params default
    assert audio_choice("synthetic", spec).source == "synthetic"
    with pytest.raises(TalkeditError, match="recording was not found"):
        audio_choice({"source": "recording"}, spec)  # default: data/edits/<edit>/recording.wav
    (tmp_path / "e" / "recording.wav").write_bytes(b"")
    got = audio_choice({"source": "recording", "text": "weekly video lab"}, spec)
    assert got.recording == (tmp_path / "e" / "recording.wav").resolve()
    assert got.text == "weekly video lab"
    (tmp_path / "outside.wav").write_bytes(b"")
    with pytest.raises(TalkeditError, match="outside the edit's folder"):  # DVC would miss it
        audio_choice({"source": "recording", "recording": "../outside.wav"}, spec)
    with pytest.raises(TalkeditError, match="unknown keys"):
        audio_choice({"source": "speaker", "voice": "x"}, spec)
    with pytest.raises(TalkeditError, match="not one of"):
        audio_choice("robot", spec)


def test_params_are_checked() -> None:
    assert AudioParams.from_dict({"units": {"tts": 0}}).units.tts == 0
    for bad in ({"source": "robot"}, {"border_ms": 0}, {"nope": 1}, {"units": {"tts": -1}}):
        with pytest.raises(TalkeditError):
            AudioParams.from_dict(bad)


def test_recording_timed_plan_plays_the_recording_as_is(tmp_path: Path, take: tuple) -> None:
    """Once the plan times the new words by the recording, its phones need no stretching:
    the span is the recording's own samples (bit for bit, before the loudness gain)."""
    x, _ = take
    rec = load_recording(write_wav(tmp_path / "take.wav", x, SR), TAKE, AlignParams())
    edited = normalize_text("Good morning, we have a weekly video lab now.")
    timer = RecordingTimer(rec, edited, [(5, 8)])
    t, targets = 0.0, []
    for p in recorded_phones(timer, edited, 5, 8):  # what the plan would lay out
        targets.append(Target(p.phone, p.stress, round(t * SR), round((t + p.duration_s) * SR),
                              p.word_position, p.word))
        t += p.duration_s
    n = targets[-1].end
    clip = ClipAudio(np.zeros(10 * SR, dtype=np.int16), SR, tmp_path / "clip.wav")
    inp = EditInputs(clip, pd.DataFrame(), pd.DataFrame(), len(clip), edited, "recording",
                     recording=timer)
    said = speak(inp, AudioParams(), targets, n, None, None, np.zeros(0))
    start = round(rec.words.set_index("normalized").at["weekly", "start_s"] * SR)
    assert {h.source for h in said.halves} == {"recording"} and not said.joins
    assert np.array_equal(said.samples, rec.samples[start:start + n])


def test_espeak_words_it_cannot_tell_apart_are_said_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def merging(text: str, **kw: object) -> object:
        s = synthesize(text, **kw)
        calls.append(text)
        if len(calls) == 1:  # as if espeak had made one word of two tokens
            s.words = s.words[:-1]
        return s

    monkeypatch.setattr(speech_module, "synthesize", merging)
    said = espeak_speech(normalize_text("weekly video lab"), "en-us", 150, SR)
    assert calls == ["weekly video lab", "weekly", "video", "lab"]
    by_word = [[p for p, w in zip(said.phones, said.word_of, strict=True) if w == k]
               for k in range(3)]
    assert by_word == [["W", "IY", "K", "L", "IY"], ["V", "IH", "D", "IH", "OW"],
                       ["L", "AE", "B"]]
    assert np.all(np.diff(said.start_s) >= 0) and said.end_s[-1] <= len(said.samples) / SR + 1e-3
