"""Scheduled runs (issue 20): the watched folder, one pass of the scheduled flow, a shared remote.

One scratch project (a git + DVC repository holding the pipeline's code, dvc.yaml and a
params.yaml with no clips) with a Prefect server (conftest's, one per session). ``talkedit watch`` is the
scheduled flow's pass, run as the deployment runs it. The passes go on in order:
a clip dropped in is taken in and processed (through ``index``), then an edit of it
(through ``plan``) — on conftest's short demo clip with a small lip model, to stay
short; a pass over the unchanged folder runs no stage; a broken clip dropped in fails alone, its
error line on the flow run; then the clip's fit outputs are pushed to a local DVC remote
and pulled into a fresh clone, where ``dvc status`` is clean.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from talkedit.inbox import WatchParams, take_in
from tests.conftest import REPO, use_prefect_server, write_edit

PY = Path(sys.executable)
TALKEDIT = PY.parent / "talkedit"


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300
         ) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _stage_runs(root: Path) -> list[str]:
    """Run reports the stages wrote (one per stage run), newest state of data/runs/."""
    return sorted(p.name for p in (root / "data" / "runs").glob("*.json"))


@pytest.fixture(scope="module")
def scratch(prefect_server: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("watched_project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("flows", "stages", "talkedit"):
        shutil.copytree(REPO / part, root / part, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(clips=[], edits={})
    params["watch"].update(clip_target="index", edit_target="plan")
    params["align"]["on_mismatch"] = "mark"  # the demo voice reads one "a" unusually
    # The plan reads the clip's lip model (dvc.yaml): a small one, so the pass stays short.
    params["lipmodel"].update(ensemble=1, steps=20, eval_every=10, speed_factors=[1.0])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("/inbox/\n/.prefect\n/data/runs/\n")
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect"), "OMP_WAIT_POLICY": "PASSIVE",
           "PATH": f"{PY.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["git", "init", "-q"], [str(PY), "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"], [*git, "commit", "-qm", "scratch project"]):
        assert _run(cmd, root, env).returncode == 0, cmd
    use_prefect_server(root, prefect_server)  # the session's server (its own start: ~20 s)
    return {"root": root, "env": env, "git": git}


def _pass(scratch: dict) -> subprocess.CompletedProcess:
    return _run([str(TALKEDIT), "watch"], scratch["root"], scratch["env"], timeout=600)


def _last_watch_run_message(root: Path) -> str:
    """The state message of the newest flow run named 'watch' on the scratch server."""
    url = json.loads((root / ".prefect" / "server.json").read_text())["api_url"]
    body = json.dumps({"sort": "START_TIME_DESC", "limit": 5,
                       "flow_runs": {"name": {"any_": ["watch"]}}}).encode()
    req = urllib.request.Request(f"{url}/flow_runs/filter", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        runs = json.loads(resp.read())
    return runs[0]["state"]["message"] or ""


def test_a_dropped_clip_is_processed_by_one_pass(scratch: dict, short_demo_root: Path) -> None:
    root = scratch["root"]
    inbox = root / "inbox"
    inbox.mkdir()
    for suffix in (".mp4", ".txt"):
        shutil.copy(short_demo_root / "data" / "raw" / f"demo{suffix}", inbox / f"talk{suffix}")

    done = _pass(scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = yaml.safe_load((root / "params.yaml").read_text())
    assert listed["clips"] == ["talk"] and not listed["edits"]
    assert (root / "data" / "raw" / "talk.mp4").read_bytes() == \
        (inbox / "talk.mp4").read_bytes()
    assert "new clip talk: taken in" in done.stdout and "index@talk: reproduced" in done.stdout
    assert _stage_runs(root) == ["align-talk.json", "extract-talk.json", "index-talk.json"]
    assert (inbox / "talk.mp4").is_file()  # the inbox is read, never changed


def test_a_dropped_edit_is_processed_by_the_next_pass_alone(scratch: dict) -> None:
    root = scratch["root"]
    clip_runs = {p: p.stat().st_mtime_ns for p in (root / "data" / "runs").glob("*-talk.json")}
    spec = write_edit(root, "placeholder", {"clip": "talk", "operations": [
        {"replace": "promising", "with": "remarkable"}]})
    (root / "inbox" / "edits").mkdir()
    shutil.move(spec.parent, root / "inbox" / "edits" / "better")
    shutil.rmtree(root / "data" / "edits")

    done = _pass(scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = yaml.safe_load((root / "params.yaml").read_text())
    assert listed["clips"] == ["talk"] and listed["edits"] == {"better": {"clip": "talk"}}
    assert "new edit better: taken in" in done.stdout and "new clip" not in done.stdout
    assert "index@talk: up to date" in done.stdout and "plan@better: reproduced" in done.stdout
    # The plan's upstream runs too (the face fit and the lip model); what ran before does not.
    assert {"fit-talk.json", "lipmodel-talk.json", "plan-better.json"} <= set(_stage_runs(root))
    assert {p: p.stat().st_mtime_ns for p in clip_runs} == clip_runs
    assert (root / "data" / "plans" / "better" / "plan.parquet").is_file()


def test_an_unchanged_folder_runs_no_stage(scratch: dict) -> None:
    root = scratch["root"]
    before = {p: p.stat().st_mtime_ns for p in (root / "data" / "runs").glob("*.json")}
    params_before = (root / "params.yaml").read_bytes()
    done = _pass(scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "index@talk: up to date" in done.stdout and "plan@better: up to date" in done.stdout
    assert {p: p.stat().st_mtime_ns for p in (root / "data" / "runs").glob("*.json")} == before
    assert (root / "params.yaml").read_bytes() == params_before


def test_a_broken_clip_fails_alone_with_its_error_on_the_flow_run(scratch: dict) -> None:
    root = scratch["root"]
    (root / "inbox" / "broken.mp4").write_bytes(b"this is not a video" * 100)
    (root / "inbox" / "broken.txt").write_text("hello world\n")
    done = _pass(scratch)
    assert done.returncode == 1
    assert "index@talk: up to date" in done.stdout  # the others still ran
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "index@broken" in error_lines[0], done.stderr
    message = _last_watch_run_message(root)
    assert "1 item(s) failed: index@broken" in message
    outcome = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "broken.mp4" in outcome["index@broken"]  # the stage's own error names the input


def test_fit_outputs_pushed_to_a_local_remote_pull_into_a_clean_clone(
        scratch: dict, tmp_path: Path) -> None:
    root, env, git = scratch["root"], scratch["env"], scratch["git"]
    remote = tmp_path / "remote"
    dvc = [str(PY), "-m", "dvc"]
    for cmd in ([*dvc, "remote", "add", "-d", "shared", str(remote)],
                ["git", "add", "-A"], [*git, "commit", "-qm", "talk processed"],
                [*dvc, "push", "--with-deps", "fit@talk"]):
        done = _run(cmd, root, env)
        assert done.returncode == 0, (cmd, done.stdout, done.stderr)
    assert any(remote.rglob("*")), "nothing was pushed"
    clone = tmp_path / "clone"
    assert _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env).returncode == 0
    for part in ("inbox",):  # raw inputs reach the clone through DVC, not the inbox
        assert not (clone / part).exists()
    pulled = _run([*dvc, "pull", "--with-deps", "fit@talk"], clone, env)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for name in ("face.parquet", "face_model.safetensors"):
        assert (clone / "data" / "interim" / "talk" / name).read_bytes() == \
            (root / "data" / "interim" / "talk" / name).read_bytes()
    status = _run([*dvc, "status", "fit@talk"], clone, env)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout


def test_take_in_takes_an_edit_with_the_clip_it_arrives_with(project: Path) -> None:
    inbox = project / "inbox"
    (inbox / "edits" / "e1").mkdir(parents=True)
    (inbox / "clip1.mp4").write_bytes(b"a video")
    (inbox / "clip1.txt").write_text("words\n")
    (inbox / "edits" / "e1" / "edit.yaml").write_text("clip: clip1\noperations: []\n")
    (inbox / "edits" / "e2").mkdir()
    (inbox / "edits" / "e2" / "edit.yaml").write_text("clip: elsewhere\noperations: []\n")
    found = take_in(project, WatchParams())
    assert (found.clips, found.edits) == (["clip1"], ["e1"])
    assert "edits clip 'elsewhere', which is not in the project" in found.refused["edit e2"]
    listed = yaml.safe_load((project / "params.yaml").read_text())
    assert "clip1" in listed["clips"] and listed["edits"]["e1"] == {"clip": "clip1"}
    assert (project / "data" / "edits" / "e1" / "edit.yaml").is_file()


def test_take_in_refuses_what_would_overwrite_an_input(project: Path) -> None:
    inbox = project / "inbox"
    inbox.mkdir()
    (inbox / "clip1.mp4").write_bytes(b"new video")
    (inbox / "clip1.txt").write_text("words\n")
    (project / "data" / "raw" / "clip1.mp4").write_bytes(b"an older, different video")
    (project / "data" / "raw" / "clip1.txt").write_text("words\n")
    (inbox / "lonely.mp4").write_bytes(b"no transcript")
    found = take_in(project, WatchParams())
    assert found.clips == []
    assert "differs from the clip 'clip1'" in found.refused["clip clip1"]
    assert "has no transcript lonely.txt" in found.refused["clip lonely"]
    assert (project / "data" / "raw" / "clip1.mp4").read_bytes() == b"an older, different video"
    assert not (project / "data" / "raw" / "lonely.mp4").exists()
