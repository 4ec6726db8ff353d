"""Hard-clip options of the demo generator (stages/demo/stress.py) and wrong transcripts
(stages/demo/transcripts.py): the degradations do what they say, with the truth exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.align.normalize import normalize_text
from stages.demo import DemoParams, generate_demo
from stages.demo.stress import (
    StressParams,
    _codec_round_trip,
    _room_response,
    degrade_audio,
    head_track,
    occluder_track,
)
from stages.demo.transcripts import (
    CALIBRATION_FILE,
    DEVELOPMENT_FILE,
    HELDOUT_FILE,
    PASSAGES_FILE,
    insert_filler,
    passages,
    substitute,
    swap,
)
from talkedit.errors import TalkeditError

SR = 16000


def _speech(seconds: float = 3.0) -> np.ndarray:
    """A voiced, speech-like test signal: harmonics with a syllable-rate envelope."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 140 * h * t) / h for h in range(1, 8))
    return (8000 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) / 3).astype(np.int16)


@pytest.mark.parametrize("kind", ["white", "pink", "music"])
@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0])
def test_noise_is_mixed_at_the_requested_snr(kind: str, snr_db: float) -> None:
    clean = _speech()
    noisy, facts = degrade_audio(clean, SR, (0, len(clean)), StressParams(noise=kind, snr_db=snr_db),
                                 "en-us", np.random.default_rng(0))
    noise = noisy.astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert facts["snr_db"] == snr_db
    assert abs(measured - snr_db) < 0.2


def test_reverb_keeps_the_direct_path_at_lag_zero_and_decays_at_rt60() -> None:
    h = _room_response(0.5, SR, np.random.default_rng(0))
    assert np.argmax(np.abs(h)) == 0
    energy = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder backward integral
    db = 10 * np.log10(energy / energy[0])
    t_20 = np.argmax(db[1:] < -20) / SR  # the tail alone decays 60 dB in RT60: -20 dB at ~RT60/3
    assert 0.1 < t_20 < 0.25


def test_phone_codec_removes_its_own_delay() -> None:
    clean = _speech().astype(np.float64) / 32768
    coded = _codec_round_trip(clean, SR)
    assert len(coded) == len(clean)
    lags = np.arange(-40, 41)
    corr = [np.dot(clean[100 + k:-100 + k], coded[100:-100]) for k in lags]
    assert abs(lags[int(np.argmax(corr))]) <= 1  # within a sample at 16 kHz
    # 8 kHz sampling: nothing left above 4 kHz.
    spectrum = np.abs(np.fft.rfft(coded)) ** 2
    freqs = np.fft.rfftfreq(len(coded), 1 / SR)
    assert spectrum[freqs > 4200].sum() < 1e-3 * spectrum.sum()


def test_turns_reach_the_requested_yaw_and_keep_the_face_in_place() -> None:
    times = np.arange(200) / 25
    head = head_track(np.zeros((200, 5)), times, StressParams(turn_deg=30, turn_every_s=4),
                      focal_px=1024)
    assert head[:, 0].max() == pytest.approx(30, abs=0.5)
    assert head[:, 0].min() == pytest.approx(-30, abs=0.5)
    # The rig pans the picture by f tan(yaw); the turn is shifted back by as much.
    np.testing.assert_allclose(head[:, 3], -1024 * np.tan(np.radians(head[:, 0])), atol=1e-6)
    with pytest.raises(TalkeditError, match="turn_deg"):
        StressParams.from_dict({"turn_deg": 60})


def test_occluder_crosses_for_the_requested_time() -> None:
    times = np.arange(100) / 25
    track = occluder_track(times, StressParams(occlude_at_s=1.0, occlude_s=0.5))
    crossing = np.flatnonzero(np.isfinite(track))
    assert crossing[0] == 25 and crossing[-1] == 37  # 1.0 .. 1.5 s at 25 fps


def test_default_params_leave_the_clip_alone() -> None:
    assert not DemoParams().stress.active
    assert StressParams(noise="white").active


def test_hard_clip_truth(tmp_path: pytest.TempPathFactory) -> None:
    """A 2.5 s 640x360 clip with a small face, a crossing object and blinks: exact truth."""
    text = tmp_path / "t.txt"
    text.write_text("We measured every word.\n")
    stress = StressParams(width=640, height=360, eye_px=60, occlude_at_s=0.8, occlude_s=0.5,
                          blink_every_s=1.0, camera_noise=3.0, noise="white", snr_db=10)
    summary = generate_demo(tmp_path, DemoParams(name="hard", text=str(text), size=256,
                                                 stress=stress), out_dir=tmp_path)
    truth = pd.read_parquet(tmp_path / "hard.truth_stress.parquet")
    assert summary["stress"]["width"] == 640 and summary["stress"]["snr_db"] == 10
    assert truth["eye_px"].median() == pytest.approx(60, rel=0.05)
    covered = truth.loc[truth["occluded_share"] > 0, "time_s"]
    assert len(covered) >= 3 and covered.min() >= 0.8 and covered.max() <= 1.3
    assert (truth["blink"] > 0).sum() >= 3


def test_wrong_transcripts_change_what_they_say_they_change() -> None:
    text = passages()[0]
    rng = np.random.default_rng(0)
    tokens = text.split()
    for n in (1, 2, 3):
        changed_text, changed = substitute(text, n, rng)
        after = changed_text.split()
        assert len(changed) == n
        assert [i for i, (a, b) in enumerate(zip(tokens, after, strict=True)) if a != b] == changed
    swapped, pair = swap(text, rng)
    assert sorted(swapped.lower().split()) != [] and swapped.split()[pair[0]] != tokens[pair[0]]
    filled, at = insert_filler(text, rng, "you know")
    assert filled.split()[at[0]:at[-1] + 1] == ["you", "know"]
    assert len(passages()) == 20 and all(len(p.split()) >= 30 for p in passages())
    # four disjoint sets: evaluated, calibrated on, developed on, held out for later changes
    sets = [set(passages(f))
            for f in (PASSAGES_FILE, CALIBRATION_FILE, DEVELOPMENT_FILE, HELDOUT_FILE)]
    assert [len(s) for s in sets] == [20, 20, 20, 80] and len(set.union(*sets)) == 140
    assert all(30 <= len(p.split()) <= 37 for p in sets[3])


def test_written_forms_keep_letters_and_read_urls() -> None:
    spoken = [w.text for w in normalize_text("Grüße from Łódź: see https://talkedit.org/docs")]
    assert spoken == ["grusse", "from", "lodz", "see", "talkedit", "dot", "org", "slash", "docs"]


def test_square_frame_truth_is_where_the_rig_draws_the_eyes(tmp_path) -> None:
    """Without a canvas the truth eye corners are the rig's own landmarks, moved by the pose."""
    from stages.demo.face_rig import FaceRig, HeadPose, load_face
    from stages.demo.stress import Picture

    rig = FaceRig(load_face(None), 256)
    picture = Picture(rig, StressParams(camera_noise=1.0), 25, np.random.default_rng(0))
    pose = HeadPose(0.0, 0.0, 0.0, 5.0, -3.0)
    _, truth = picture.frame(rig.render(0.0, 0.0, 0.0, pose), pose, 0.0, float("nan"), 0.0)
    assert truth["eye_left_x"] == pytest.approx(rig.landmarks[33, 0] + 5.0, abs=0.01)
    assert truth["eye_left_y"] == pytest.approx(rig.landmarks[33, 1] - 3.0, abs=0.01)
