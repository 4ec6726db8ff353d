"""Clips without speech (params.yaml ``video_clips:``): a video with no sound and no
transcript is a valid reenactment target or source. It is extracted (silence for its
sound), fitted and trained by stages of its own, never aligned; edit-by-text work (an
edit, a lip-sync job) refuses it with one error line and writes nothing; the reenactment
checks (no face, frame rates, too short a target) hold for it."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, make_video

SPOKEN = "Maybe we should open the window."


def without_sound(src: Path, dst: Path) -> Path:
    """The video stream of ``src`` alone (stream copy): a clip with no audio track."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short generated face clip with no sound (data/raw/<x>.mp4 in a scratch root)."""
    from stages.demo import DemoParams, generate_demo

    root = tmp_path_factory.mktemp("video_clips")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "words.txt").write_text(SPOKEN)
    generate_demo(root, DemoParams(name="talk", text=str(root / "words.txt"), size=128))
    return without_sound(root / "data" / "raw" / "talk.mp4", root / "mute.mp4")


def _wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), wav.getframerate()


def test_a_clip_without_sound_extracts_with_silence_and_no_transcript(tmp_path: Path) -> None:
    from stages.extract import ExtractParams, extract_video_clip
    from talkedit.artifacts import ClipPaths, VideoMeta

    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    make_video(raw / "mute.mp4", n_frames=30, fps=25, audio=False)
    make_video(raw / "tone.mp4", n_frames=30, fps=25, audio=True)
    for clip in ("mute", "tone"):
        extract_video_clip(clip, tmp_path, ExtractParams())
    mute, rate = _wav(ClipPaths.of("mute", tmp_path).audio)
    meta = VideoMeta.read(ClipPaths.of("mute", tmp_path))
    assert rate == 16000 and meta.n_frames == 30
    assert len(mute) == meta.audio_samples == 30 * 16000 // 25  # as long as the video
    assert not mute.any()
    tone, _ = _wav(ClipPaths.of("tone", tmp_path).audio)  # a sound track is kept as it is
    assert np.sqrt(np.mean(tone.astype(float) ** 2)) > 3000


def test_a_clip_with_speech_still_needs_its_sound(tmp_path: Path) -> None:
    from stages.extract import ExtractParams, extract_clip
    from talkedit.errors import TalkeditError

    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    make_video(raw / "mute.mp4", n_frames=30, audio=False)
    (raw / "mute.txt").write_text("hello there\n")
    with pytest.raises(TalkeditError, match="video_clips"):
        extract_clip("mute", tmp_path, ExtractParams())
    assert not (tmp_path / "data" / "interim" / "mute").exists() or not any(
        (tmp_path / "data" / "interim" / "mute").iterdir())


def _invoke(*args: str) -> tuple[int, list[str]]:
    from typer.testing import CliRunner

    from talkedit.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


def _listed(project: Path, clip: str) -> str:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["video_clips"] = [clip]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return (project / "params.yaml").read_text()


@pytest.mark.parametrize("command", [
    ("edit", "mute", "--replace", "window", "--with", "door", "--no-run"),
    ("lipsync", "mute", "text:Hello there.", "--no-run"),
])
def test_edit_by_text_refuses_a_clip_without_speech(project: Path, face_clip: Path,
                                                    command: tuple[str, ...]) -> None:
    shutil.copy(face_clip, project / "data" / "raw" / "mute.mp4")
    before = _listed(project, "mute")
    code, lines = _invoke(*command)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "without speech" in lines[0] and "video_clips" in lines[0]
    assert (project / "params.yaml").read_text() == before
    assert not (project / "data" / "edits").exists() and not (project / "data" / "lipsync").exists()


def test_the_plan_stages_refuse_a_clip_without_speech(project: Path, face_clip: Path) -> None:
    """Run directly (``talkedit plan EDIT``, ``talkedit lipplan JOB``), the edit-by-text
    stages read the spec first and refuse, before anything is written."""
    from stages.lipsync.spec import load_job
    from talkedit.edits import load_spec
    from talkedit.errors import TalkeditError

    shutil.copy(face_clip, project / "data" / "raw" / "mute.mp4")
    (project / "data" / "edits" / "e").mkdir(parents=True)
    (project / "data" / "edits" / "e" / "edit.yaml").write_text(
        "clip: mute\noperations:\n  - replace: window\n    with: door\n")
    (project / "data" / "lipsync" / "j").mkdir(parents=True)
    (project / "data" / "lipsync" / "j" / "job.yaml").write_text(
        "clip: mute\naudio: {text: Hello there.}\n")
    for load in (lambda: load_spec("e", project), lambda: load_job("j", project)):
        with pytest.raises(TalkeditError, match="a clip without speech") as caught:
            load()
        assert "talkedit reenact" in str(caught.value)
    assert not (project / "data" / "plans").exists()


def _pair(project: Path, face_clip: Path) -> dict:
    """tgt and src, both the silent face clip; params with a 20-frame target minimum."""
    for clip in ("tgt", "src"):
        shutil.copy(face_clip, project / "data" / "raw" / f"{clip}.mp4")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["reenact"]["min_target_frames"] = 20
    return params


def test_reenact_lists_clips_without_speech_under_video_clips(project: Path,
                                                              face_clip: Path) -> None:
    params = _pair(project, face_clip)
    clips_before = params["clips"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    code, lines = _invoke("reenact", "j", "--target", "tgt", "--source", "src", "--no-run")
    assert code == 0, lines
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["video_clips"] == ["tgt", "src"]
    assert params["clips"] == clips_before  # never aligned
    assert params["reenact_jobs"]["j"] == {"target": "tgt", "source": "src"}


@pytest.mark.parametrize("case", ["no_face", "frame_rate", "short_target"])
def test_the_reenactment_checks_hold_for_clips_without_speech(project: Path, face_clip: Path,
                                                              case: str) -> None:
    raw = project / "data" / "raw"
    params = _pair(project, face_clip)
    if case == "no_face":
        make_video(raw / "src.mp4", n_frames=50, size=(128, 96), audio=False)
    elif case == "frame_rate":
        make_video(raw / "src.mp4", n_frames=60, fps=30, size=(128, 96), audio=False)
    else:
        params["reenact"]["min_target_frames"] = 200  # the clip has about 60 frames
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = (project / "params.yaml").read_text()
    code, lines = _invoke("reenact", "j", "--target", "tgt", "--source", "src", "--no-run")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines
    assert {"no_face": "no face", "frame_rate": "fps", "short_target": "too short"}[case] in lines[0]
    assert not (project / "data" / "reenact").exists()
    assert (project / "params.yaml").read_text() == before


def test_a_reenactment_manifest_hashes_no_transcript(tmp_path: Path) -> None:
    from stages.composite.provenance import build_manifest, manifest_problems

    video, spec, source = (tmp_path / n for n in ("t.mp4", "job.yaml", "s.mp4"))
    for path in (video, spec, source):
        path.write_bytes(path.name.encode())
    manifest = build_manifest(source_video=video, transcript=None, edit_spec=spec,
                              extra_ingredients=(("source video", source),))
    roles = [i["role"] for i in manifest["ingredients"]]
    assert roles == ["source_video", "edit_spec", "source video"]
    assert manifest_problems(manifest, need_stream_hash=False) == []


def test_the_dag_gives_a_clip_without_speech_no_alignment(tmp_path: Path) -> None:
    """dvc's own expansion: a video clip gets videoextract/videofit/videotrain, nothing that
    reads a transcript or phones."""
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["video_clips"] = ["mute"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = str(Path(shutil.which("dvc") or REPO / ".venv" / "bin" / "dvc"))
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=tmp_path, check=True,
                            capture_output=True, text=True).stdout.split()
    assert sorted(s for s in listed if s.endswith("@mute")) == [
        "videoextract@mute", "videofit@mute", "videotrain@mute"]
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    for name in ("videoextract", "videofit", "videotrain"):
        deps = stages[name]["do"]["deps"]
        assert not any(d.endswith((".txt", "phones.parquet", "words.parquet")) for d in deps)
