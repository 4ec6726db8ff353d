"""A user's input mistake, whichever stage meets it: one `error:` line on stderr, exit 2.

Runs the real command (``python -m talkedit <stage> <item>``) in a scratch project
against a Prefect server of the test's own, as DVC would; Prefect's log and any native
library chatter go to .prefect/logs/talkedit.log, not the terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, make_video, use_prefect_server, write_edit


def talkedit(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(project / ".prefect")}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "talkedit", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def project(prefect_server: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose commands run against a Prefect server (conftest's, one per session;
    stages then start in about a second)."""
    root = tmp_path_factory.mktemp("cli_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    use_prefect_server(root, prefect_server)
    return root


def one_error_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_missing_clip(project: Path) -> None:
    one_error_line(talkedit(project, "extract", "ghost"), "ghost.mp4", "Fix:")
    assert not (project / "data" / "interim" / "ghost").exists()


def test_edit_with_truth_stages_refuse_an_unknown_case_and_an_empty_summary(
        project: Path) -> None:
    """``talkedit pairclip`` / ``pairedit`` name the known cases before any flow runs;
    ``pairedit`` of a pair not built, and ``pair-summary`` with no scored pair, name the
    stage to run first; nothing is written."""
    for stage in ("pairclip", "pairedit"):
        one_error_line(talkedit(project, stage, "pair-nobody"), "pair-nobody", "pair_cases")
    one_error_line(talkedit(project, "pairedit", "pair-lfw"), "holds no built pair",
                   "quality/dvc.yaml:pairclip@pair-lfw")
    one_error_line(talkedit(project, "pair-summary"), "no scored pair",
                   "dvc repro quality/dvc.yaml")
    assert not (project / "data" / "metrics" / "pair_summary.json").exists()
    assert not (project / "data" / "pairs").exists()


def test_a_photo_named_mp4_is_not_a_video(project: Path) -> None:
    import cv2

    raw = project / "data" / "raw"
    cv2.imwrite(str(raw / "photo.png"), np.zeros((32, 32, 3), np.uint8))
    (raw / "photo.png").rename(raw / "photo.mp4")
    (raw / "photo.txt").write_text("hello there\n")
    one_error_line(talkedit(project, "extract", "photo"), "still image", "not a video")


def test_no_audio(project: Path) -> None:
    raw = project / "data" / "raw"
    make_video(raw / "silent.mp4", n_frames=30, audio=False)
    (raw / "silent.txt").write_text("hello there\n")
    one_error_line(talkedit(project, "extract", "silent"), "no audio track")
    assert not (project / "data" / "interim" / "silent" / "audio.wav").exists()


def test_no_face(project: Path) -> None:
    raw = project / "data" / "raw"
    make_video(raw / "wall.mp4", n_frames=40)
    (raw / "wall.txt").write_text("hello there\n")
    assert talkedit(project, "extract", "wall").returncode == 0
    one_error_line(talkedit(project, "fit", "wall"), "no usable face", "Fix:")
    assert not (project / "data" / "interim" / "wall" / "crops").exists()  # nothing left behind


def test_wrong_transcript(project: Path, short_demo_root: Path) -> None:
    raw = project / "data" / "raw"
    shutil.copy(short_demo_root / "data" / "raw" / "demo.mp4", raw / "talk.mp4")
    (raw / "talk.txt").write_text("The quarterly figures were read aloud by a different "
                                  "person entirely, with no words in common.\n")
    assert talkedit(project, "extract", "talk").returncode == 0
    one_error_line(talkedit(project, "align", "talk"), "transcript", "Fix:")
    assert not (project / "data" / "interim" / "talk" / "words.parquet").exists()


def test_malformed_edit_spec(project: Path) -> None:
    write_edit(project, "broken", "clip: talk\noperations: [replace: {unclosed\n")
    one_error_line(talkedit(project, "plan", "broken"), "broken/edit.yaml", "not valid YAML")
    assert not (project / "data" / "plans" / "broken").exists()


def test_verbose_shows_prefects_log(project: Path) -> None:
    proc = talkedit(project, "--verbose", "extract", "silent")
    assert proc.returncode == 2 and "Finished in state Failed" in proc.stderr
    assert "'extract-silent'" in proc.stderr  # the run is named after its stage and clip
    log = (project / ".prefect" / "logs" / "talkedit.log").read_text()
    assert "Finished in state Failed('error: " in log  # the UI shows the message, not a trace
