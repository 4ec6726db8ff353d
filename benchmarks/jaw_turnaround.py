"""What the chin warp (``mouth.jaw_warp``, stages/render/jaw.py) costs the render stage.

    .venv/bin/python benchmarks/jaw_turnaround.py [--edit demo] [--rounds 3] [--before main]

Renders the edit's plan (data/plans/<edit>, the clip's generator) in a scratch project
(inputs linked, nothing under data/ written) in one process, alternating three ways per
round so that load changes hit all of them alike: the chin warp off, the chin warp as
in git ref ``--before`` (its jaw.py loaded from git), and as in this checkout. Reports
the render's CPU seconds (process time: the machine is shared) per way, the jaw warp's
own share, and whether the before and now renders are byte-identical (every file of the
renders folder). Writes benchmarks/results/jaw_turnaround.{json,md} under ``--label``.

Any two versions of the warp compare this way: ``--before s7-issue13e`` measured 13e's
warp (a Delaunay triangulation per row, grid resampling) against the shared-mesh one
(label s7-13e2-*); there the bytes differ by design (``identical`` False).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"


def scratch_root(edit: str) -> Path:
    """A project root with the clip's inputs and models linked and the edit's plan copied."""
    root = Path(tempfile.mkdtemp(prefix="talkedit-jaw-bench-"))
    (root / "data").mkdir()
    for part in ("raw", "interim", "models"):
        os.symlink(REPO / "data" / part, root / "data" / part)
    shutil.copytree(REPO / "data" / "plans" / edit, root / "data" / "plans" / edit)
    return root


def jaw_module_at(ref: str) -> Any:
    """stages/render/jaw.py as it is at git ``ref``, loaded as a module of its own."""
    text = subprocess.run(["git", "show", f"{ref}:stages/render/jaw.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="talkedit-jaw-before-")) / "jaw_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("jaw_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_crop_rows(cls: Any) -> Any:
    """``cls`` taking the render's ``FrameCrops.rows`` as the current JawWarp does; a JawWarp
    from before s8-issue13t took whole crops (``crops_of``, ``FrameCrops.get``)."""
    if "crops_of" not in inspect.signature(cls.__init__).parameters:
        return cls

    class WholeCrops(cls):  # type: ignore[misc, valid-type]
        def __init__(self, model: Any, crop_rows: Any, *rest: Any) -> None:
            super().__init__(model, crop_rows.__self__.get, *rest)

    return WholeCrops


def renders_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edit", default="demo")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", default="main", help="git ref of the jaw.py to compare with")
    ap.add_argument("--label", default="current")
    args = ap.parse_args()

    import stages.render.render as render_module
    from stages.render.config import RenderParams
    from stages.render.interior import MouthParams
    from stages.render.jaw import JawWarp
    from talkedit.artifacts import EditPaths
    from talkedit.edits import load_spec
    from talkedit.params import load_section

    clip = load_spec(args.edit, REPO).clip
    render = load_section(RenderParams, REPO)
    mouth = load_section(MouthParams, REPO)
    before = with_crop_rows(jaw_module_at(args.before).JawWarp)
    root = scratch_root(args.edit)
    paths = EditPaths.of(args.edit, root)
    ways = {"off": (False, JawWarp), "before": (True, before), "now": (True, JawWarp)}
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    digests: dict[str, set[str]] = {k: set() for k in ways}
    frames = 0
    try:
        for _ in range(args.rounds):
            for way, (on, cls) in ways.items():
                render_module.JawWarp = cls
                c0 = time.process_time()
                summary = render_module.render_plan(
                    clip, paths, render, mouth=dataclasses.replace(mouth, jaw_warp=on))
                seconds[way].append(time.process_time() - c0)
                digests[way].add(renders_digest(paths.render_dir))
                frames = int(summary["frames"])
    finally:
        render_module.JawWarp = JawWarp
        shutil.rmtree(root, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    result = {
        "edit": args.edit, "frames": frames, "rounds": args.rounds, "before": args.before,
        "cpu_s": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "cpu_s_median": {k: round(v, 3) for k, v in median.items()},
        "jaw_ms_per_frame": {k: round(1000 * (median[k] - median["off"]) / max(frames, 1), 2)
                             for k in ("before", "now")},
        "identical_before_now": digests["before"] == digests["now"] and len(digests["now"]) == 1,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    store = RESULTS / "jaw_turnaround.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[args.label] = result
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    lines = ["# The chin warp's cost to the render stage (benchmarks/jaw_turnaround.py)", "",
             "Render CPU seconds (process time, median of alternating rounds) of the edit's "
             "plan with the chin warp off, as in the `before` git ref, and as now; the jaw "
             "warp's own cost per rendered frame; whether before and now give the same bytes.",
             "", "| label | edit | frames | off (s) | before (s) | now (s) | jaw ms/frame "
             "before | jaw ms/frame now | identical | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in runs.items():
        m = r["cpu_s_median"]
        lines.append(f"| {label} | {r['edit']} | {r['frames']} | {m['off']:.2f} | "
                     f"{m['before']:.2f} | {m['now']:.2f} | {r['jaw_ms_per_frame']['before']:.1f}"
                     f" | {r['jaw_ms_per_frame']['now']:.1f} | {r['identical_before_now']} | "
                     f"{r['load_average'][0]:.1f} |")
    (RESULTS / "jaw_turnaround.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
