"""extract stage: timeline, audio, rotation, variable frame rate, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from stages.extract import ExtractParams, extract_clip
from talkedit.artifacts import FRAMES, ClipPaths, read_parquet
from talkedit.errors import TalkeditError
from talkedit.video import FrameStore
from tests.conftest import REPO, make_video


def _add_clip(root: Path, name: str = "clip", text: str = "hello there", **video_kw) -> ClipPaths:
    paths = ClipPaths.of(name, root)
    make_video(paths.video, **video_kw)
    paths.transcript.write_text(text)
    return paths


def _grey(image: np.ndarray) -> float:
    """The frame-pattern grey level, read away from the red marker."""
    h, w = image.shape[:2]
    return float(image[h // 2:, w // 2:].mean())


def _no_artifacts(paths: ClipPaths) -> bool:
    return not paths.interim.exists() or not any(paths.interim.iterdir())


def test_constant_rate_clip_timeline_and_audio(project: Path) -> None:
    paths = _add_clip(project, n_frames=50, fps=25)
    meta = extract_clip("clip", project, ExtractParams.from_dict({"audio_rate": 16000}))
    frames = read_parquet(paths.frames, FRAMES)
    assert meta["n_frames"] == 50 and len(frames) == 50
    assert np.allclose(frames["time_s"], np.arange(50) / 25)
    assert (frames["source_index"].to_numpy() == np.arange(50)).all()
    with wave.open(str(paths.audio)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(float)
    # 2 s of a 440 Hz tone: the duration within one AAC frame (the encoder pads the last
    # 1024-sample frame), the pitch exact.
    assert abs(len(pcm) / 16000 - 2.0) < 1024 / 16000
    spectrum = np.abs(np.fft.rfft(pcm[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 16000 / len(pcm[2000:-2000])
    assert abs(peak_hz - 440) < 2


def test_frame_store_seek_matches_sequential_decode(project: Path) -> None:
    _add_clip(project, n_frames=40)
    extract_clip("clip", project, ExtractParams.from_dict({}))
    store = FrameStore.for_clip("clip", project)
    sequential = {k: _grey(img) for k, img in store.iter_frames()}
    assert len(sequential) == 40
    for k in (0, 9, 10, 23, 39):
        assert abs(_grey(store.frame(k)) - sequential[k]) < 1.0
    # Grey levels follow the frame index (7 grey levels a frame): frames are in order.
    expected = np.array([(k * 7) % 200 + 20 for k in range(40)], float)
    assert np.abs(np.array([sequential[k] for k in range(40)]) - expected).max() < 3


def test_variable_frame_rate_is_put_on_a_constant_timeline(project: Path) -> None:
    # 25 fps nominal, but frames 10-19 come at twice the rate and 30-34 are missing.
    pts, t = [], 0
    for k in range(45):
        pts.append(t)
        t += 5 if 10 <= k < 20 else (60 if k == 29 else 10)
    paths = _add_clip(project, n_frames=45, pts_list=pts)
    meta = extract_clip("clip", project, ExtractParams.from_dict({"fps": 25}))
    frames = read_parquet(paths.frames, FRAMES)
    assert meta["variable_frame_rate"]
    src_times = np.array(pts) / 250.0
    shown = src_times[frames["source_index"].to_numpy()]
    # Each output frame shows the source frame on screen at its time (never a later one).
    assert (shown <= frames["time_s"].to_numpy() + 0.5 / 25).all()
    assert (frames["time_s"].to_numpy() - shown < 0.25).all()
    assert len(frames) == round((src_times[-1] + 0.04) * 25)


def test_rotation_metadata_is_applied(project: Path) -> None:
    _add_clip(project, n_frames=10, size=(64, 48), rotation=90)
    meta = extract_clip("clip", project, ExtractParams.from_dict({}))
    assert (meta["width"], meta["height"]) == (48, 64)
    image = FrameStore.for_clip("clip", project).frame(3)
    assert image.shape[:2] == (64, 48)
    # The red marker (top-left of the coded picture) lands where a 90° turn puts it.
    red = (image[..., 0] > 200) & (image[..., 1] < 60)
    ys, xs = np.nonzero(red)
    assert ys.mean() > 32 and xs.mean() < 24


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "video is missing"),
        ("not_video", "not a readable video"),
        ("truncated", "corrupt or truncated"),
        ("truncated_faststart", "corrupt or truncated"),
        ("no_audio", "no audio track"),
        ("no_video", "no video stream"),
        ("empty_transcript", "transcript is empty"),
        ("no_transcript", "has no transcript"),
    ],
)
def test_bad_input_fails_with_one_clear_error(project: Path, case: str, message: str) -> None:
    paths = ClipPaths.of("clip", project)
    if case != "missing":
        make_video(paths.video, n_frames=60, audio=case != "no_audio", video=case != "no_video",
                   faststart=case == "truncated_faststart")
        paths.transcript.write_text("" if case == "empty_transcript" else "hello")
    if case == "no_transcript":
        paths.transcript.unlink()
    if case == "not_video":
        paths.video.write_text("this is a transcript, not a video\n" * 20)
    if case.startswith("truncated"):
        data = paths.video.read_bytes()
        paths.video.write_bytes(data[: len(data) // 2])
    with pytest.raises(TalkeditError) as info:
        extract_clip("clip", project, ExtractParams.from_dict({}))
    assert message in str(info.value)
    assert "Fix:" in str(info.value)
    assert _no_artifacts(paths)


def test_clip_name_with_path_characters_is_rejected(project: Path) -> None:
    with pytest.raises(TalkeditError, match="no path characters"):
        extract_clip("../x", project, ExtractParams.from_dict({}))


def test_cli_prints_one_error_line_and_exits_nonzero(project: Path) -> None:
    paths = ClipPaths.of("ghost", project)
    proc = subprocess.run([sys.executable, "-m", "talkedit", "extract", "ghost"], cwd=project,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(paths.video) in lines[0]
    assert not paths.interim.exists()


def test_video_json_records_what_later_stages_need(project: Path) -> None:
    paths = _add_clip(project, n_frames=30)
    extract_clip("clip", project, ExtractParams.from_dict({}))
    meta = json.loads(paths.video_meta.read_text())
    assert meta["fps"] == 25 and meta["n_frames"] == 30 and meta["rotation"] == 0
    assert meta["audio_rate"] == 16000
