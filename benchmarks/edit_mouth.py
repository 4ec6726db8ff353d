"""The new words' mouth from viseme search or from the clip's audio model, on the same edits.

    .venv/bin/python benchmarks/edit_mouth.py [--work DIR] [--from DIR] [--steps N] [--cases ...]

The edit-with-truth yardstick of issue 13 (benchmarks/edit_quality.py,
stages/evaluate/edit_truth.py) on its fixed pair cases, each edit planned twice: with the
edit spec's ``mouth_motion: search`` (the default: pieces of the clip's footage) and
``mouth_motion: audio`` (the clip's lipmodel, trained here on the case clip as the
lipmodel stage does, holding out its last 35%, driven by the edit's own new sound).
Everything else (background, audio, renderer) is the same. Scores inside the new
words against the truth clip (the same face and voice saying the edited text):
mouth-opening r, vowel-peak timing error, opening amplitude, mouth PSNR; also those of
the plan's own expression (before rendering). ``--from`` copies the prepared clips
(generated, fitted, renderer trained) of another edit_quality work folder instead of
preparing them again.

``--demo-lip-work DIR`` adds the demo's held-out sentences (those wholly in the tail no
model trained on) said anew from the rest of the clip, as the evaluate stage re-creates
them, planned both ways: the plan's mouth opening (before rendering) against the true
jaw through the phones (in the scratch project of benchmarks/lipsync.py: DIR, whose lip
model is reused or trained). Writes benchmarks/results/edit_mouth.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.edit_quality import prepare_clip, results_markdown, run_edit  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MODES = ("search", "audio")


@dataclasses.dataclass(frozen=True)
class ModeCase:
    """A pair case whose edit spec asks for ``mouth`` (run_edit reads name and edit_spec)."""

    case: Any
    mouth: str

    @property
    def name(self) -> str:
        return self.case.name

    def edit_spec(self) -> dict[str, object]:
        return {**self.case.edit_spec(), "mouth_motion": self.mouth}


def copy_prepared(case: str, source: Path, work: Path) -> None:
    """The case's generated, fitted and trained clip from another work folder, if there."""
    parts = [Path("data/interim") / case, Path("data/models") / case, Path("pairs") / case]
    parts += [p.relative_to(source) for p in (source / "data" / "raw").glob(f"{case}.*")]
    parts += [p.relative_to(source) for p in (source / "truth").glob(f"{case}.*")]
    if not (source / "data" / "models" / case / "generator.safetensors").is_file():
        return
    for part in parts:
        src, dst = source / part, work / part
        if dst.exists() or not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)


def train_lipmodel(case: str, work: Path) -> tuple[dict[str, Any], bool]:
    """The case clip's lipmodel metrics, and whether it was trained now (not reused)."""
    from stages.lipsync import LipModelParams
    from stages.lipsync.train import run_lipmodel
    from talkedit.artifacts import LipModelPaths
    from talkedit.params import load_section

    paths = LipModelPaths.of(case, work)
    if paths.model.is_file():
        return json.loads(paths.metrics.read_text()), False
    run_lipmodel(case, work, load_section(LipModelParams, REPO))
    return json.loads(paths.metrics.read_text()), True


def demo_sentences(lip_work: Path) -> list[dict[str, Any]]:
    """Held-out demo sentences re-created with each mouth_motion: plan opening r vs truth."""
    import numpy as np
    import pandas as pd
    import yaml

    from benchmarks.lipsync import heldout_sentences, scratch_project
    from benchmarks.lipsync import train as train_demo_lipmodel
    from stages.align import AlignParams
    from stages.audio.config import AudioParams
    from stages.evaluate.holdout import time_map, write_spec
    from stages.fit import load_fit
    from stages.lipsync.model import openings
    from stages.plan import PlanParams, plan_edit
    from stages.plan.report import new_phone_rows
    from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, ClipPaths, EditPaths, read_parquet
    from talkedit.params import load_section

    root = scratch_project(lip_work)
    train_demo_lipmodel(root, reuse=True)
    person, _ = load_fit("demo", root)
    clip = ClipPaths.of("demo", root)
    truth_phones = read_parquet(clip.truth_phones, TRUTH_PHONES)
    truth = read_parquet(clip.truth_frames, TRUTH_FRAMES)
    out = []
    for held in heldout_sentences(root):
        name = write_spec(held, "demo", root)
        spec_path = EditPaths.of(name, root).spec
        spec = yaml.safe_load(spec_path.read_text())
        row: dict[str, Any] = {"sentence": held.sentence, "text": held.text}
        for mode in MODES:
            spec_path.write_text(yaml.safe_dump({**spec, "mouth_motion": mode}, sort_keys=False))
            t0 = time.perf_counter()
            result = plan_edit(name, root, load_section(PlanParams, REPO),
                               load_section(AlignParams, REPO), load_section(AudioParams, REPO))
            seconds = time.perf_counter() - t0
            t_new, t_clip = time_map(held, pd.DataFrame(new_phone_rows(result)), truth_phones)
            t = result.frames.time_s
            inside = (t >= t_new[0]) & (t <= t_new[-1])
            jaw = np.interp(np.interp(t[inside], t_new, t_clip), truth["time_s"], truth["jaw_open"])
            planned = result.frames.rows(0, len(result.frames)).expression  # a short clip's
            opening = openings(person, planned[inside].astype(np.float64))
            row[mode] = {"plan_opening_vs_truth_jaw_r": round(float(np.corrcoef(opening, jaw)[0, 1]),
                                                              4),
                         "frames": int(inside.sum()), "plan_seconds": round(seconds, 1)}
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-edit-mouth"))
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="an edit_quality work folder whose prepared clips to copy")
    ap.add_argument("--steps", type=int, default=600, help="renderer training steps per clip")
    ap.add_argument("--cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--demo-lip-work", type=Path, default=None,
                    help="also the demo's held-out sentences, in this lipsync bench folder")
    args = ap.parse_args()

    from stages.demo.pairs import CASES
    from stages.evaluate.edit_truth import score_pair, summarize_pairs

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    demo = demo_sentences(args.demo_lip_work) if args.demo_lip_work else []
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    turnaround: dict[str, dict[str, Any]] = {m: {} for m in MODES}
    lipmodels = {}
    for case in CASES:
        if args.cases and case.name not in args.cases:
            continue
        if args.source:
            copy_prepared(case.name, args.source, work)
        prepare_clip(case, work, args.steps)
        t0 = time.perf_counter()
        metrics, trained = train_lipmodel(case.name, work)
        lipmodels[case.name] = {"training": f"{time.perf_counter() - t0:.0f} s" if trained
                                else "reused from an earlier run in --work",
                                "kept": metrics["kept"],
                                "heldout_truth_jaw_r": metrics[metrics["kept"]].get("truth_jaw_r"),
                                "frames": metrics["frames"]}
        for mode in MODES:
            turnaround[mode][case.name] = run_edit(ModeCase(case, mode), work)
            rows[mode] += score_pair(case.name, work, work / "truth")
            print(mode, json.dumps(rows[mode][-2:], indent=1, default=str), flush=True)
    runs = {}
    for mode in MODES:
        summary = summarize_pairs(rows[mode])
        summary["turnaround_s"], summary["steps"] = turnaround[mode], args.steps
        runs[f"mouth_motion: {mode}"] = {"summary": summary, "edits": rows[mode]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edit_mouth.json").write_text(json.dumps(
        {"lipmodels": lipmodels, "runs": runs, "demo_heldout_sentences": demo}, indent=1, sort_keys=True, default=str) + "\n")
    text = results_markdown(runs).replace(
        "# Edit with truth (benchmarks/edit_quality.py)",
        "# The new words' mouth: viseme search vs the clip's audio model "
        "(benchmarks/edit_mouth.py)", 1)
    text += "\nLip models (trained on each case clip's first 55%, held-out tail 35%): " + \
        "; ".join(f"{c}: {m['kept']}, held-out r vs true jaw {m['heldout_truth_jaw_r']}, "
                  f"{m['frames']['train']} training frames, training {m['training']}"
                  for c, m in lipmodels.items()) + "\n"
    if demo:
        text += ("\n## Demo held-out sentences re-created (plan's opening vs true jaw, r)\n\n"
                 "| sentence | frames | search | audio |\n|---|---|---|---|\n")
        text += "".join(f"| {d['sentence']}: {d['text']} | {d['audio']['frames']} | "
                        f"{d['search']['plan_opening_vs_truth_jaw_r']:.3f} | "
                        f"{d['audio']['plan_opening_vs_truth_jaw_r']:.3f} |\n" for d in demo)
    (RESULTS / "edit_mouth.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
