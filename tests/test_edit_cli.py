"""``talkedit edit``: phrases checked against the transcript first, the edit written to
data/edits/<edit>/, params.yaml registration keeping comments and order, unique names,
and the progress lines it makes of ``dvc repro``'s output.

Runs in a scratch project holding a copy of params.yaml and the demo clip's transcript
(the bundled script); nothing here runs the DAG (see the README for the end-to-end run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from talkedit.cli import ReproProgress, app
from talkedit.edits import RECORDING, load_spec
from tests.conftest import REPO

TRANSCRIPT = " ".join((REPO / "stages" / "demo" / "script.txt").read_text().split())


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(REPO / "stages" / "demo" / "script.txt", raw / "demo.txt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["edit", "demo", *args, "--no-run"])
    return result.exit_code, result.output


def test_a_phrase_not_in_the_transcript_fails_fast_offering_the_nearest(project: Path) -> None:
    before = (project / "params.yaml").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # "fast" as behaviour, not a clock: the phrase is refused before any pipeline
    # machinery (DVC, Prefect, torch, OpenCV, the plan stage) is even imported
    heavy = ("torch", "dvc.repo", "prefect", "cv2", "stages.plan")
    run_cli = ("import runpy, sys\n"
               "sys.argv = ['talkedit', 'edit', 'demo', '--replace', 'promisng',"
               " '--with', 'remarkable']\n"
               "try:\n    runpy.run_module('talkedit', run_name='__main__')\n"
               f"finally:\n    print([m for m in {heavy!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", run_cli], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "--replace 'promisng'" in lines[0] and "nearest: 'promising'" in lines[0], lines[0]
    assert proc.stdout.strip() == "[]", proc.stdout
    assert (project / "params.yaml").read_bytes() == before
    assert not (project / "data" / "edits").exists()


def test_the_spec_is_written_and_registered_keeping_comments_and_order(project: Path) -> None:
    before = (project / "params.yaml").read_text()
    code, out = edit("--replace", "promising", "--with", "remarkable")
    assert code == 0, out
    spec = load_spec("demo-remarkable", project)
    assert spec.clip == "demo"
    assert spec.edited_text == TRANSCRIPT.replace("look promising,", "look remarkable,")
    # the one change to params.yaml: two lines under edits:, every other byte kept
    entry = "  demo:\n    clip: demo\n"
    assert before.count(entry) == 1
    after = (project / "params.yaml").read_text()
    assert after == before.replace(entry, entry + "  demo-remarkable:\n    clip: demo\n")
    comments = [ln for ln in before.splitlines() if "#" in ln]
    assert comments == [ln for ln in after.splitlines() if "#" in ln]
    # the same edit again changes nothing
    code, out = edit("--replace", "promising", "--with", "remarkable")
    assert code == 0 and (project / "params.yaml").read_text() == after


def test_replace_insert_and_delete_together(project: Path) -> None:
    code, out = edit("--replace", "small research team", "--with", "weekly video lab",
                     "--insert-after", "This week", "--text", "finally",
                     "--delete", "with more news from the lab", "--name", "combo")
    assert code == 0, out
    expected = (TRANSCRIPT.replace("small research team", "weekly video lab")
                .replace("This week we", "This week finally we")
                .replace("next week with more news from the lab.", "next week."))
    assert load_spec("combo", project).edited_text == expected


def test_names_are_unique_and_a_different_edit_is_not_overwritten(project: Path) -> None:
    assert edit("--replace", "promising", "--with", "great")[0] == 0
    code, out = edit("--replace", "small", "--with", "great")  # same default name, new edit
    assert code == 0 and "demo-great-2" in out, out
    result = CliRunner().invoke(app, ["edit", "demo", "--replace", "small", "--with", "big",
                                      "--name", "demo-great", "--no-run"])
    assert result.exit_code == 2 and "already holds a different edit" in result.output
    assert load_spec("demo-great", project).edited_text.count("great") == 1
    assert edit("--replace", "small", "--with", "big", "--name", "demo-great", "--force")[0] == 0
    assert "small" not in load_spec("demo-great", project).edited_text.split()


def test_a_recording_is_copied_into_the_edit(project: Path, tmp_path: Path) -> None:
    take = tmp_path / "take.wav"
    with wave.open(str(take), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)
    code, out = edit("--replace", "promising", "--with", "remarkable", "--audio", str(take),
                     "--name", "mine")
    assert code == 0, out
    spec = load_spec("mine", project)
    assert spec.audio.source == RECORDING
    assert spec.audio.recording.read_bytes() == take.read_bytes()
    assert spec.audio.recording.parent == project / "data" / "edits" / "mine"


def test_mouth_motion_option_is_written_to_the_spec(project: Path) -> None:
    code, out = edit("--replace", "promising", "--with", "remarkable", "--mouth-motion", "audio")
    assert code == 0, out
    spec_path = project / "data" / "edits" / "demo-remarkable" / "edit.yaml"
    assert "mouth_motion: audio" in spec_path.read_text()
    assert load_spec("demo-remarkable", project).mouth_motion == "audio"
    # the same words with the viseme search is a different edit: a new name, both kept
    code, out = edit("--replace", "promising", "--with", "remarkable", "--mouth-motion", "search")
    assert code == 0 and "demo-remarkable-2" in out, out
    assert load_spec("demo-remarkable-2", project).mouth_motion == "search"
    assert load_spec("demo-remarkable", project).mouth_motion == "audio"
    # without the option the spec leaves it out: the default, search
    assert edit("--replace", "small", "--with", "big", "--name", "plain")[0] == 0
    assert "mouth_motion" not in (project / "data" / "edits" / "plain" / "edit.yaml").read_text()
    assert load_spec("plain", project).mouth_motion == "search"


def test_option_mistakes_are_one_error_line(project: Path) -> None:
    for args in (["--replace", "promising"], [], ["--audio", "loud"],
                 ["--delete", "promising", "--text-file", "x.txt"],
                 ["--replace", "promising", "--with", "great", "--mouth-motion", "lips"]):
        result = CliRunner().invoke(app, ["edit", "demo", *args, "--no-run"])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: "), result.output
    assert not (project / "data" / "edits").exists()


def test_a_progress_line_per_stage() -> None:
    lines: list[str] = []
    progress = ReproProgress(Path("."), lambda text, final: final and lines.append(text))
    dvc_output = [
        (0.0, "Stage 'extract@demo' didn't change, skipping"),
        (0.1, "Running stage 'plan@demo-x':"),
        (0.1, "> talkedit plan demo-x"),
        (4.2, "Updating lock file 'dvc.lock'"),
        (4.3, "Running stage 'audio@demo-x':"),
        (9.0, "Running stage 'composite@demo-x':"),
    ]
    for now, line in dvc_output:
        progress.feed(line, now)
    progress.close(12.0, ok=True)
    assert [ln.split()[0] for ln in lines] == ["extract@demo", "plan@demo-x", "audio@demo-x",
                                               "composite@demo-x"]
    assert "up to date" in lines[0] and "4.2 s" in lines[1] and "3.0 s" in lines[3]


def test_loaders_read_the_documented_tables_when_first_used(project: Path) -> None:
    import pandas as pd

    from talkedit.errors import TalkeditError
    from talkedit.loaders import load, load_edit

    assert edit("--replace", "promising", "--with", "remarkable", "--name", "one")[0] == 0
    clip = load("demo", project)
    assert {"frames", "words", "phones", "face", "face_model", "visemes"} <= set(clip)
    assert clip.transcript.split() == TRANSCRIPT.split()
    with pytest.raises(TalkeditError, match="align@demo"):
        _ = clip.phones
    phones = pd.DataFrame({"phone": ["AH", "B"], "start_s": [0.0, 0.1]})
    clip.path("phones").parent.mkdir(parents=True)
    phones.to_parquet(clip.path("phones"))
    pd.testing.assert_frame_equal(clip.phones, phones)
    assert "phones" in clip.available() and "(words)" in repr(clip)
    one = load_edit("one", project)
    assert "look remarkable," in one.spec.edited_text
    assert one.clip.transcript == clip.transcript
    with pytest.raises(TalkeditError, match="plan@one"):
        _ = one.plan
