"""Running DVC from talkedit: ``dvc repro`` / ``dvc status`` for one target, as a child
process of this interpreter (so its stages' ``talkedit`` command is this installation's),
its whole output kept in a log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the stages' cmd is `talkedit <stage> <item>`: run this interpreter's talkedit
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def repro(root: Path, target: str, log_path: Path,
          on_line: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """``dvc repro <target>`` in ``root``; every output line goes to ``log_path`` (and to
    ``on_line``). Returns dvc's exit status and the error lines it and the stages printed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", target], cwd=root,
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if on_line is not None:
                on_line(line.rstrip("\n"))
            if line.startswith(("error:", "ERROR:")):
                errors.append(line.rstrip())
        code = proc.wait()
    return code, errors


def first_cause(errors: list[str], code: int) -> str:
    """The line that says what went wrong: a stage's own ``error:`` line, else DVC's."""
    ours = [e for e in errors if e.startswith("error:")]
    cause = (ours or errors or [f"dvc repro exited with {code}"])[-1]
    return cause.removeprefix("error:").removeprefix("ERROR:").strip()


def up_to_date(root: Path, target: str) -> bool:
    """Whether ``dvc status <target>`` finds nothing to do (the target and its upstream)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", target], cwd=root,
                          env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return False  # e.g. a stage never run: repro will say what is wrong
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]) == {}
    except (ValueError, IndexError):
        return False


def track(root: Path, path: Path) -> None:
    """``dvc add`` a raw input, so a shared remote carries it to other machines (a no-op
    outside a DVC repository)."""
    if not (Path(root) / ".dvc").is_dir():
        return
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(path)], cwd=root,
                          env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        from talkedit.errors import TalkeditError

        why = (proc.stderr.strip().splitlines() or ["dvc add failed"])[-1]
        raise TalkeditError(path, f"could not be tracked by DVC ({why})",
                            f"run `dvc add {path}` by hand to see why")
