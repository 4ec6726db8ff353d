"""The plan's opening of new words against the truth, on development data only.

    .venv/bin/python benchmarks/plan_opening.py [--work DIR] [--label NAME]
        [--set articulation=0.6 ...] [--class-ridge SHARE]

Scores the plan's own expression (before rendering) inside the new words against the
generator's true jaw, as benchmarks/audio_prior.py does with its search plan, without a
lip model:

* the development pairs (stages.demo.pairs.DEV_CASES, never the scored ones), prepared in
  ``--work`` (no renderer); opening r per new segment by the yardstick's expression map;
* the demo's development sentences 0-3, each re-created as the evaluate stage does (its
  own frames excluded from the search and from the co-articulation model), scored by the
  expression map fitted on the frames before the held-out tail. Sentences 4-5 (the
  evaluate's held-out ones) are never planned or read.

Besides the mean r per set: the plan's bias at the truth's widest fifth of frames, its
RMSE (jaw units), and its mean bias per vowel said (``BIAS_VOWELS``; the truth's phones
for the pairs, the clip's aligned ones for the demo). ``--set`` overrides plan params (params.yaml ``plan:``); ``--class-ridge``
the co-articulation model's CLASS_RIDGE_SHARE (1e9: no pooling by viseme class, as before
session 9). Appends the run under ``--label`` to benchmarks/results/plan_opening.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.audio_prior import (  # noqa: E402
    DEV_SENTENCES,
    Demo,
    linked_root,
    pair_truth,
    pearson,
)

RESULTS = REPO / "benchmarks" / "results"


@dataclasses.dataclass
class Item:
    name: str
    plan: np.ndarray  # the plan's opening by the expression map (jaw units)
    truth: np.ndarray  # the generator's jaw_open at the same point of the text
    phones: np.ndarray  # the phone said there (the truth's, or the clip's aligned one)


# The vowels whose mean bias (plan minus truth, jaw units) the summary lists: the widest
# and the front ones, where the plan's opening was seen off (session 9, 13v).
BIAS_VOWELS = ("AA", "AE", "AH", "AW", "AY", "EH", "EY", "IH", "IY")


def phone_at(phones: Any, times: np.ndarray) -> np.ndarray:
    """The phone (``phones``: phone, start_s, end_s rows) said at each of ``times``."""
    rows = phones.sort_values("start_s")
    k = np.searchsorted(rows["start_s"].to_numpy(), times, "right") - 1
    inside = (k >= 0) & (times < rows["end_s"].to_numpy()[np.clip(k, 0, None)])
    return np.where(inside, rows["phone"].to_numpy()[np.clip(k, 0, None)], "")


def planned(edit: str, root: Path, opts: Any) -> tuple[Any, np.ndarray]:
    from stages.align import AlignParams
    from stages.audio.config import AudioParams
    from stages.plan import plan_edit
    from talkedit.params import load_section

    result = plan_edit(edit, root, opts, load_section(AlignParams, REPO),
                       load_section(AudioParams, REPO))
    n = len(result.frames)
    return result, result.frames.rows(0, n).expression.astype(np.float64)


def dev_pairs(work: Path, opts: Any) -> list[Item]:
    from benchmarks.edit_quality import prepare_clip, write_spec
    from stages.demo.pairs import DEV_CASES

    out = []
    for case in DEV_CASES:
        prepare_clip(case, work, 0, train=False)
        write_spec(case, work)
        result, expression = planned(case.name, work, opts)
        pair = pair_truth(case.name, work, result, len(expression))
        said = phone_at(pair.truth_phones, pair.t_truth)
        for words, rows in pair.new_segments():
            out.append(Item(f"{case.name}: {words}", pair.measure(expression[rows]),
                            pair.truth[rows], said[rows]))
    return out


def demo_sentences(work: Path, demo: Demo, opts: Any) -> list[Item]:
    import pandas as pd

    from stages.evaluate.holdout import clip_phones, clip_sentences, time_map, write_spec
    from stages.plan.report import new_phone_rows
    from talkedit.artifacts import TRUTH_FRAMES, ClipPaths, read_parquet

    sentences = {h.sentence: h for h in clip_sentences("demo", REPO, 0.05)}
    truth = read_parquet(ClipPaths.of("demo", REPO).truth_frames, TRUTH_FRAMES)
    phones = clip_phones("demo", REPO)
    out = []
    for k in DEV_SENTENCES:
        held = sentences[k]
        # (as audio_prior: sentence 3 ends a little inside the lip model's tail, before 4)
        assert held.exclude[0] * demo.fps < demo.share, "a development sentence in the tail"
        root = linked_root(work / f"sentence{k}")
        result, expression = planned(write_spec(held, "demo", root), root, opts)
        t_new, t_real = time_map(held, pd.DataFrame(new_phone_rows(result)), phones)
        t = np.arange(len(expression)) / demo.fps
        inside = (t >= t_new[0]) & (t <= t_new[-1])
        real = np.interp(t[inside], t_new, t_real)
        jaw = np.interp(real, truth["time_s"], truth["jaw_open"])
        out.append(Item(f"demo sentence {k}", demo.measure(expression[inside]), jaw,
                        phone_at(phones, real)))
    return out


def summary(items: list[Item]) -> dict[str, Any]:
    plan = np.concatenate([x.plan for x in items])
    truth = np.concatenate([x.truth for x in items])
    said = np.concatenate([x.phones for x in items])
    widest = truth >= np.quantile(truth, 0.8)
    return {"r": {x.name: round(pearson(x.plan, x.truth), 4) for x in items},
            "mean_r": round(float(np.mean([pearson(x.plan, x.truth) for x in items])), 4),
            "widest_fifth_bias": round(float(np.mean(plan[widest] - truth[widest])), 4),
            "rmse": round(float(np.sqrt(np.mean((plan - truth) ** 2))), 4),
            "vowel_bias": {p: round(float(np.mean(plan[said == p] - truth[said == p])), 3)
                           for p in BIAS_VOWELS if (said == p).any()}}


def markdown(runs: dict[str, Any]) -> str:
    labels = list(runs)
    lines = ["# The plan's opening of new words vs truth, development data "
             "(benchmarks/plan_opening.py)", "",
             "Plan opening r (before rendering) inside the new words against the generator's "
             "jaw; development pairs and demo sentences 0-3 only (see the script's docstring).",
             "", "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines.append("| settings | " + " | ".join(
        ", ".join(f"{k}={v}" for k, v in runs[x]["settings"].items()) or "defaults"
        for x in labels) + " |")
    for group in ("pairs", "demo"):
        for key, title in (("mean_r", "mean r"), ("widest_fifth_bias", "bias at the truth's "
                           "widest fifth"), ("rmse", "RMSE")):
            lines.append(f"| {group}: **{title}** | " + " | ".join(
                f"{runs[x][group][key]:+.4f}" if key == "widest_fifth_bias"
                else f"{runs[x][group][key]:.4f}" for x in labels) + " |")
        for name in runs[labels[-1]][group]["r"]:
            lines.append(f"| {name} | " + " | ".join(
                f"{runs[x][group]['r'].get(name, float('nan')):.3f}" for x in labels) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-plan-opening"))
    ap.add_argument("--label", default="current")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="plan params overridden (numbers)")
    ap.add_argument("--class-ridge", type=float, default=None,
                    help="articulation.CLASS_RIDGE_SHARE (1e9 = no pooling by viseme class)")
    ap.add_argument("--const", nargs="*", default=[], metavar="NAME=VALUE",
                    help="stages.plan.articulation constants overridden (a number, or "
                         "numbers joined by commas for a tuple; LAGS_S=0 = no lag)")
    args = ap.parse_args()

    import stages.plan.articulation as articulation
    from stages.plan import PlanParams
    from talkedit.params import load_section

    settings: dict[str, Any] = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    opts = dataclasses.replace(load_section(PlanParams, REPO), **settings)
    if args.class_ridge is not None:
        articulation.CLASS_RIDGE_SHARE = args.class_ridge
        settings["class_ridge"] = args.class_ridge
    for name, value in (c.split("=", 1) for c in args.const):
        module = articulation
        if not hasattr(module, name):
            ap.error(f"--const {name}: no such constant in stages/plan/articulation.py")
        numbers = tuple(float(v) for v in value.split(","))
        current = getattr(module, name)
        setattr(module, name, numbers if isinstance(current, tuple)
                else type(current)(numbers[0]))
        settings[name] = value
    args.work.mkdir(parents=True, exist_ok=True)
    record = {"settings": settings,
              "pairs": summary(dev_pairs(args.work / "pairs", opts)),
              "demo": summary(demo_sentences(args.work / "demo", Demo.load(), opts))}
    store = RESULTS / "plan_opening.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[args.label] = record
    RESULTS.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(runs, indent=1) + "\n")
    (RESULTS / "plan_opening.md").write_text(markdown(runs))
    print(args.label, json.dumps({g: {k: record[g][k] for k in ("mean_r", "widest_fifth_bias",
                                                                  "rmse", "vowel_bias")}
                                   for g in ("pairs", "demo")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
