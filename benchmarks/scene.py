"""Benchmark of dialogue-scene cutting (stages/scene): speed of re-choosing the cut, and
the issue's figures on the generated scene against its exact truth.

    .venv/bin/python benchmarks/scene.py [--lines 20] [--takes 10] [--root .]

1. Speed: a synthetic scene of ``--lines`` lines x ``--takes`` takes (random setups and
   tempi, two characters) is cut by ``choose_cut`` with the default idioms, then again
   after each weight change (as an editor trying idioms would); the median time per
   cut is the figure (target <= 1 s for 20 lines x 10 takes). Baseline in the same
   process: the same search with RUN_CAP = 1 (no shot-length state, so no short-shot
   idiom), to show what the shot-length state costs.
2. If ``--root`` holds the generated scene aligned and labelled (``dvc repro
   scenelabel@demo_scene``), the cut is chosen again (``run_scenecut`` end to end, in a
   scratch copy; ``--idioms`` replaces the scene file's) and scored against the
   generator's truth: share of spoken time the speaker is on screen, jump cuts, the
   opening shot; plus speaker labels and line-alignment word error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stages.scene import cut as cutmod
from stages.scene.config import DialogueParams
from stages.scene.demo import demo_plan
from stages.scene.idioms import Option, build_idioms
from talkedit.artifacts import ScenePaths

DEFAULT_IDIOMS = {"speaker_visible": 10, "start_wide": 4, "avoid_jump_cuts": 6,
                  "performance": {"weight": 1, "prefer": "fast"},
                  "short_shots": {"weight": 2, "min_s": 1.5}, "fewer_cuts": 0.5}
TRIALS = [{}, {"performance": {"weight": 3, "prefer": "slow"}},
          {"emphasize": {"weight": 4, "character": "A"}}, {"intensify": 2}, {"avoid_jump_cuts": 0}]


def synthetic_options(n_lines: int, n_takes: int, seed: int = 0) -> list[list[Option]]:
    rng = np.random.default_rng(seed)
    setups = ["wide:A,B", "close:A", "close:B", "medium:A,B"]
    take_setup = [setups[k % len(setups)] for k in range(n_takes)]
    out = []
    for line in range(n_lines):
        speaker = "AB"[line % 2]
        tempi = rng.uniform(2.0, 4.0, n_takes)
        opts = []
        for k in range(n_takes):
            shot, _, visible = take_setup[k].partition(":")
            start = 2.5 * line + rng.uniform(0, 0.3)
            opts.append(Option(f"t{k}", line, speaker, take_setup[k], shot,
                               tuple(visible.split(",")), speaker, float(tempi[k]),
                               float((tempi[k] - tempi.min()) / np.ptp(tempi)),
                               line / max(n_lines - 1, 1), start, start + rng.uniform(0.8, 2.6)))
        out.append(opts)
    return out


def time_cuts(options: list[list[Option]], run_cap: int | None = None) -> list[float]:
    saved = cutmod.RUN_CAP
    if run_cap is not None:
        cutmod.RUN_CAP = run_cap
    try:
        times = []
        for change in TRIALS:
            idioms = build_idioms({**DEFAULT_IDIOMS, **change}, "benchmark")
            start = time.perf_counter()
            cutmod.choose_cut(options, idioms)
            times.append(time.perf_counter() - start)
        return times
    finally:
        cutmod.RUN_CAP = saved


def scratch_project(root: Path, scene: str, idioms: dict[str, Any] | None) -> Path:
    """A scratch project with the scene's file (idioms overridden), takes and labels, so
    timing run_scenecut never rewrites the project's own outputs."""
    paths = ScenePaths.of(scene, root)
    scratch = Path(tempfile.mkdtemp(prefix="scene-bench-"))
    mine = ScenePaths.of(scene, scratch)
    mine.interim.mkdir(parents=True)
    mine.spec.parent.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(paths.spec.read_text())
    if idioms is not None:
        data["idioms"] = idioms
    mine.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    mine.takes_dir.symlink_to(paths.takes_dir.resolve())
    for file in (paths.lines, paths.words, paths.labels):
        shutil.copy(file, mine.interim / file.name)
    return scratch


def scene_figures(root: Path, scene: str = "demo_scene", idioms: dict[str, Any] | None = None
                  ) -> dict[str, Any] | None:
    paths = ScenePaths.of(scene, root)
    if not paths.labels.is_file():
        return None
    scratch = scratch_project(root, scene, idioms)
    start = time.perf_counter()
    summary = cutmod.run_scenecut(scene, scratch, DialogueParams(), cutmod.SceneCutParams())
    recut_s = time.perf_counter() - start
    cut = pd.read_parquet(ScenePaths.of(scene, scratch).cut)
    shutil.rmtree(scratch)
    _, _, plans = demo_plan()
    setup_of = {p.name: p.setup for p in plans}
    visible_of = {p.name: (["ANNA", "BEN"] if p.setup == "wide" else [p.setup.split("_", 1)[1]])
                  for p in plans}
    truth = {p.name: pd.read_parquet(paths.takes_dir / f"{p.name}.truth_lines.parquet")
             for p in plans}
    truth_words = {p.name: pd.read_parquet(paths.takes_dir / f"{p.name}.truth_words.parquet")
                   for p in plans}
    spoken = shown = 0.0
    for row in cut.itertuples():
        t = truth[row.take]
        for line in range(row.first_line, row.last_line + 1):
            said = t[t["line"] == line].iloc[0]
            duration = said.end_s - said.start_s
            spoken += duration
            shown += duration * (said.character in visible_of[row.take])
    setups = [setup_of[t] for t in cut["take"]]
    jump_cuts = sum(a == b for a, b in zip(setups, setups[1:], strict=False))
    labels = pd.read_parquet(paths.labels)
    agree = [row.speaker == truth[row.take].set_index("line").loc[row.line, "character"]
             for row in labels.itertuples()]
    words = pd.read_parquet(paths.words)
    errors = []
    for take, t in truth_words.items():
        mine = words[words["take"] == take]
        if len(mine) == len(t):
            errors += list(np.abs(mine["start_s"].to_numpy() - t["start_s"].to_numpy()))
    return {"scene": scene, "lines": int(labels["line"].nunique()), "takes": len(plans),
            "idioms": summary["idioms"], "shots": len(cut),
            "shot_takes": cut["take"].tolist(),
            "speaker_on_screen_share": round(shown / spoken, 4),
            "jump_cuts": jump_cuts, "opening_setup": setups[0],
            "speaker_label_agreement": round(float(np.mean(agree)), 4),
            "labelled_lines": len(labels),
            "word_start_error_ms_median": round(1000 * float(np.median(errors)), 1),
            "word_start_error_ms_p90": round(1000 * float(np.percentile(errors, 90)), 1),
            "words_compared": len(errors), "run_scenecut_s": round(recut_s, 3),
            "cut_cost": summary["cost"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--takes", type=int, default=10)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--idioms", type=json.loads, default=None,
                        help='JSON idioms replacing the scene file\'s, e.g. \'{"speaker_visible": 1}\'')
    args = parser.parse_args()
    options = synthetic_options(args.lines, args.takes)
    full = time_cuts(options)
    baseline = time_cuts(options, run_cap=1)
    report = {"speed": {"lines": args.lines, "takes": args.takes, "cuts": len(full),
                        "median_s": round(statistics.median(full), 4),
                        "max_s": round(max(full), 4),
                        "baseline_no_shot_length_median_s": round(statistics.median(baseline), 4),
                        "ratio_to_baseline": round(statistics.median(full)
                                                   / statistics.median(baseline), 2),
                        "target_s": 1.0},
              "scene": scene_figures(args.root, idioms=args.idioms)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
