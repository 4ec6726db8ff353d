"""Where the plan's opening is lost on the way to the demo evaluate's rendered frames.

    .venv/bin/python benchmarks/render_opening.py --scratch DIR [--run] [--variants]
                                                  [--watermark-keys A,B,C] [--label NAME]

On an evaluate run's kept edits (``evaluate.keep_scratch``; ``--run`` makes one, as
benchmarks/evaluate_opening.py does), every held-out sentence's frames are read by the
evaluate's own model measure (``ExpressionOpening``, fitted on the first half of the
renderer's training footage) along the chain, per output frame:

* truth: the generator's jaw_open at the time the frame maps to (phone time map);
* real: the real frames, nearest to that time (as the evaluate pairs them) and read between
  frames at it (``measure.at_positions``);
* plan: the plan's expression; source: the background frame behind the row (real footage);
* base: the composited output; with ``--variants`` the same plan rendered again with the
  mouth painter off (nopaint), the chin warp off (nojaw) and both off (raw: the generator's
  own lower face), each composited as the evaluate does; with ``--watermark-keys`` the
  base render composited again under other watermark keys (the mark's noise on the measure).

For each: r with truth / real / plan, the slope on the plan (amplitude), the lag behind the
plan (frames), the mean at the truth's widest fifth, and how much of the output's departure
from the plan follows the background frame (r of output - plan with source - plan).
Writes benchmarks/results/render_opening.{json,md} under ``--label``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.evaluate_opening import run_evaluate_kept  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
VARIANTS = {"nopaint": {"exemplar": False}, "nojaw": {"jaw_warp": False},
            "raw": {"exemplar": False, "jaw_warp": False}}
MAX_LAG = 3  # frames searched for the output's lag behind the plan


def repo_sections() -> dict[str, Any]:
    from stages.evaluate import run_evaluate
    from talkedit.params import load_section

    hints = inspect.get_annotations(run_evaluate, eval_str=True)
    return {name: load_section(hints[name], REPO)
            for name in list(inspect.signature(run_evaluate).parameters)[2:]}


def remake(scratch: Path, names: list[str], variants: bool, keys: list[str]) -> list[str]:
    """Render/composite the variants beside each kept edit; returns the variant labels."""
    from stages.composite.compose import CompositeParams, composite_plan
    from stages.evaluate.baselines import copy_edit
    from stages.render.render import render_plan
    from talkedit.artifacts import EditPaths

    sections = repo_sections()
    composite = CompositeParams.from_dict({**dataclasses.asdict(sections["composite"]),
                                           **sections["evaluate"].composite})
    labels = [*(VARIANTS if variants else []), *(f"wm-{k}" for k in keys)]
    for name in names:
        src = EditPaths.of(name, scratch)
        for label in labels:
            copy_edit(name, f"{name}-{label}", scratch)
            dst = EditPaths.of(f"{name}-{label}", scratch)
            watermark = sections["watermark"]
            if label in VARIANTS:
                mouth = dataclasses.replace(sections["mouth"], **VARIANTS[label])
                render_plan("demo", dst, sections["render"], mouth=mouth)
            else:  # the same render under another mark
                shutil.rmtree(dst.render_dir, ignore_errors=True)
                shutil.copytree(src.render_dir, dst.render_dir)
                watermark = dataclasses.replace(watermark, key=f"salt-{label}")
            composite_plan("demo", dst, dst.spec, composite, watermark)
    return labels


def chain(clip: str, scratch: Path, labels: list[str]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from stages.evaluate import _video_frames
    from stages.evaluate.holdout import clip_phones, clip_sentences, time_map
    from stages.evaluate.measure import at_positions, detect_sequence, pearson, validate_opening
    from stages.fit import FitParams, load_fit, make_landmarker
    from stages.render.checkpoint import Stamp
    from talkedit.artifacts import (
        NEW_PHONES,
        TRUTH_FRAMES,
        ClipPaths,
        EditPaths,
        ModelPaths,
        VideoMeta,
        read_parquet,
    )
    from talkedit.video import FrameStore

    paths = ClipPaths.of(clip, REPO)
    fps = VideoMeta.read(paths).fps
    model, table = load_fit(clip, REPO)
    n = len(table)
    truth = read_parquet(paths.truth_frames, TRUTH_FRAMES)
    jaw = np.interp(np.arange(n) / fps, truth["time_s"], truth["jaw_open"])

    def detect(images: Any) -> np.ndarray:
        with make_landmarker(FitParams().landmarker_params()) as landmarker:
            return detect_sequence(landmarker, images, dims=3)
    real_3d = detect(im for _, im in FrameStore.for_clip(clip, REPO).iter_frames(0, n))
    training = Stamp.read(ModelPaths.of(clip, REPO).generator)[0].config.holdout_start(n)
    measure, _ = validate_opening(model, real_3d[:training], jaw[:training], fps)
    real_all = measure(real_3d)
    aligned = clip_phones(clip, REPO)
    out: dict[str, Any] = {}
    for held in clip_sentences(clip, REPO, 0.05):
        name = held.edit_name(clip)
        edit = EditPaths.of(name, scratch)
        if not edit.output.is_file():
            continue
        plan = pd.read_parquet(edit.plan)
        t_out, t_real = time_map(held, read_parquet(edit.new_phones, NEW_PHONES), aligned)
        rows = np.arange(int(np.ceil(t_out[0] * fps)), int(np.floor(t_out[-1] * fps)) + 1)
        real_t = np.interp(rows / fps, t_out, t_real)
        nearest = np.clip(np.round(real_t * fps).astype(np.int64), 0, n - 1)
        series = {
            "truth": np.interp(real_t, truth["time_s"], truth["jaw_open"]),
            "real": real_all[nearest], "real_at_time": at_positions(real_all, real_t * fps),
            "plan": measure.from_coefficients(np.stack(plan["expression"].to_numpy())[rows]),
            "source": real_all[plan["source_frame"].to_numpy().astype(np.int64)[rows]]}
        for label in ["base", *labels]:
            done = EditPaths.of(name if label == "base" else f"{name}-{label}", scratch)
            if done.output.is_file():
                series[label] = measure(detect(_video_frames(done.output, rows)))
        wide = series["truth"] >= np.quantile(series["truth"], 0.8)
        plan_m, source = series["plan"], series["source"]
        outputs = [k for k in series if k not in ("truth", "real", "real_at_time", "plan",
                                                  "source")]

        def lag(a: np.ndarray, b: np.ndarray) -> int:
            return max(range(-MAX_LAG, MAX_LAG + 1), key=lambda q: pearson(
                a[max(0, -q):len(a) - max(0, q)], b[max(0, q):len(b) - max(0, -q)]))
        out[str(held.sentence)] = {
            "frames": len(rows),
            "mean_offset_from_nearest_frame": round(float(np.mean(np.abs(real_t * fps
                                                                          - nearest))), 3),
            "r": {a: {b: round(pearson(series[a], series[b]), 4) for b in series if b != a}
                  for a in series},
            "widest_fifth_mean": {k: round(float(np.nanmean(v[wide])), 3)
                                  for k, v in series.items()},
            "outputs": {k: {"slope_on_plan": round(float(np.polyfit(plan_m, series[k], 1)[0]), 3),
                            "lag_behind_plan_frames": lag(plan_m, series[k]),
                            "departure_sd": round(float(np.std(series[k] - plan_m)), 4),
                            "departure_follows_source_r": round(pearson(series[k] - plan_m,
                                                                        source - plan_m), 3)}
                        for k in outputs},
            "measure_noise_on_real_sd": round(float(np.std(
                series["real_at_time"] - np.polyval(np.polyfit(series["truth"],
                                                               series["real_at_time"], 1),
                                                    series["truth"]))), 4)}
    return out


def markdown(runs: dict[str, Any]) -> str:
    lines = ["# Where the plan's opening is lost on the way to the rendered frames "
             "(benchmarks/render_opening.py)", "",
             "Per held-out sentence of the demo evaluate, every series read by the evaluate's "
             "model measure (jaw_open units): r with the truth (generator's jaw_open at the "
             "mapped time), the real frames nearest that time (the evaluate's reference), the "
             "real track read at that time, and the plan; the output's slope on the plan, lag "
             "behind it, departure from it (sd) and how much of that departure follows the "
             "background frame's own opening.", ""]
    for label, run in runs.items():
        lines += [f"## {label}", ""]
        for sentence, s in run.items():
            r = s["r"]
            lines += [f"Sentence {sentence} ({s['frames']} frames; mapped times "
                      f"{s['mean_offset_from_nearest_frame']:.2f} frame from the nearest on "
                      f"average; measure's noise on real frames, sd {s['measure_noise_on_real_sd']}):",
                      "", "| series | truth | real (nearest) | real at time | plan | slope on plan "
                      "| lag (frames) | departure sd | departure ~ source | widest fifth |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for k in r:
                if k == "truth":
                    continue
                o = s["outputs"].get(k, {})
                cells = [r[k].get(c, 1.0) if c != k else 1.0
                         for c in ("truth", "real", "real_at_time", "plan")]
                lines.append(f"| {k} | " + " | ".join(f"{v:.3f}" for v in cells) + " | "
                             + " | ".join(str(o.get(c, "")) for c in
                                          ("slope_on_plan", "lag_behind_plan_frames",
                                           "departure_sd", "departure_follows_source_r"))
                             + f" | {s['widest_fifth_mean'][k]:.3f} |")
            lines += ["", f"Truth's widest fifth: {s['widest_fifth_mean']['truth']:.3f}.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="demo")
    ap.add_argument("--scratch", type=Path, required=True)
    ap.add_argument("--run", action="store_true", help="run the evaluate stage first")
    ap.add_argument("--variants", action="store_true",
                    help="render again with the painter / chin warp off")
    ap.add_argument("--watermark-keys", default="", help="comma-separated extra marks")
    ap.add_argument("--label", default="current")
    args = ap.parse_args()
    if args.run:
        run_evaluate_kept(args.clip, args.scratch)
    from stages.evaluate.holdout import clip_sentences

    names = [h.edit_name(args.clip) for h in clip_sentences(args.clip, REPO, 0.05)]
    names = [n for n in names if (args.scratch / "data" / "outputs" / f"{n}.mp4").is_file()]
    keys = [k for k in args.watermark_keys.split(",") if k]
    labels = remake(args.scratch, names, args.variants, keys) if args.variants or keys else []
    result = chain(args.clip, args.scratch, labels)
    store = RESULTS / "render_opening.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[args.label] = result
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    text = markdown(runs)
    (RESULTS / "render_opening.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
