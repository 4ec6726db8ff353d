"""What limits the demo evaluate's opening r: the plan, the renderer or the measure?

    .venv/bin/python benchmarks/evaluate_opening.py --scratch DIR [--run] [--label NAME]

The evaluate stage scores a re-created sentence by Pearson r between the inner-lip gap
the landmarker reads on the output and on the real footage, frames paired through the
clip's *aligned* phones (stages/evaluate). On the generated demo the generator's own
jaw_open (truth) is known, so each link of that chain can be scored on its own, per
held-out sentence of an evaluate run kept with ``evaluate.keep_scratch`` (``--run`` runs
the evaluate stage first, keeping its edits in DIR; it rewrites
data/metrics/<clip>/evaluate.* as ``talkedit evaluate`` does):

* truth ~ real: the yardstick's reference (the real frames' lip gap) against truth;
* truth ~ plan: the plan's lip gap (its expression rebuilt into landmarks) against truth;
* plan ~ output: how closely the renderer follows the plan (output lip gap);
* real ~ output: the evaluate's score; the outer-lip gap (points 0 and 17) beside it;
* the same links by the person model's opening (``stages.evaluate.measure.ExpressionOpening``,
  fitted on the first half of the renderer's training footage as the evaluate does):
  ``*_model`` columns;
* sync offsets (ms, + = mouth after sound; ``stages.evaluate.measure.sync_offset_ms``) of
  the real frames by the lip gap, by the model's opening and by the truth's jaw_open
  itself against the clip's audio, and of the output by both measures against its own
  audio; and the lag of the output's model opening behind the truth at the same point of
  the text (through the phone time map): the sync error with no measure's bias in it.

Also the clip-wide facts behind them: the fit's opening at the truth's widest frames
(jaw_open > 0.8), and how far the aligner puts p/b/m onsets from the truth's. Writes
benchmarks/results/evaluate_opening.{json,md} under ``--label`` (earlier labels kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
WIDE_JAW = 0.8  # the truth's widest openings: where the landmarker was seen to fail


def run_evaluate_kept(clip: str, scratch: Path) -> None:
    import inspect

    from stages.evaluate import run_evaluate
    from talkedit.params import load_section

    hints = inspect.get_annotations(run_evaluate, eval_str=True)
    sections = {name: load_section(hints[name], REPO)
                for name in list(inspect.signature(run_evaluate).parameters)[2:]}
    sections["evaluate"] = dataclasses.replace(sections["evaluate"], keep_scratch=str(scratch))
    run_evaluate(clip, REPO, **sections)


def outer_gap(points: Any) -> Any:
    """Outer-lip gap (mediapipe points 0 and 17) over the outer eye corners' distance."""
    import numpy as np

    eyes = np.linalg.norm(points[:, 33] - points[:, 263], axis=1)
    return np.linalg.norm(points[:, 0] - points[:, 17], axis=1) / np.maximum(eyes, 1e-9)


def decompose(clip: str, scratch: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from stages.audio.dsp import read_clip_audio
    from stages.evaluate import _video_frames
    from stages.evaluate.holdout import clip_phones, clip_sentences, time_map
    from stages.evaluate.measure import (
        audio_envelope,
        detect_sequence,
        pearson,
        sync_offset_ms,
        validate_opening,
    )
    from stages.fit import (
        FitParams,
        Pose,
        load_fit,
        make_landmarker,
        mouth_opening,
        rebuild_landmarks,
    )
    from stages.render.checkpoint import Stamp
    from talkedit.artifacts import (
        NEW_PHONES,
        TRUTH_FRAMES,
        ClipPaths,
        EditPaths,
        ModelPaths,
        VideoMeta,
        column_array,
        read_parquet,
    )
    from talkedit.video import FrameStore

    paths = ClipPaths.of(clip, REPO)
    fps = VideoMeta.read(paths).fps
    model, table = load_fit(clip, REPO)
    n = len(table)
    real_points = column_array(table, "landmarks_2d").reshape(n, -1, 2).astype(np.float64)
    truth = read_parquet(paths.truth_frames, TRUTH_FRAMES)
    aligned = clip_phones(clip, REPO)
    store = FrameStore.for_clip(clip, REPO)
    training = Stamp.read(ModelPaths.of(clip, REPO).generator)[0].config.holdout_start(n)
    all_jaw = np.interp(np.arange(n) / fps, truth["time_s"], truth["jaw_open"])
    with make_landmarker(FitParams().landmarker_params()) as landmarker:
        real_3d = detect_sequence(landmarker, (im for _, im in store.iter_frames(0, n)), dims=3)
    measure, check = validate_opening(model, real_3d[:training], all_jaw[:training], fps)
    clip_audio = read_clip_audio(paths.audio)
    clip_samples, rate = clip_audio.region(0, len(clip_audio)), clip_audio.sample_rate

    def lag_ms(opening: np.ndarray, envelope: np.ndarray) -> float:
        return sync_offset_ms(opening, envelope, fps, 200.0)
    rows: list[dict[str, Any]] = []
    for held in clip_sentences(clip, REPO, 0.05):
        edit = EditPaths.of(held.edit_name(clip), scratch)
        if not edit.output.is_file():
            continue
        plan = pd.read_parquet(edit.plan)
        t_out, t_real = time_map(held, read_parquet(edit.new_phones, NEW_PHONES), aligned)
        out_rows = np.arange(int(np.ceil(t_out[0] * fps)), int(np.floor(t_out[-1] * fps)) + 1)
        real_rows = np.clip(np.round(np.interp(out_rows / fps, t_out, t_real) * fps)
                            .astype(np.int64), 0, n - 1)
        jaw = np.interp(real_rows / fps, truth["time_s"], truth["jaw_open"])
        part = plan.iloc[out_rows]

        def vec(column: str, frame: pd.DataFrame = part) -> np.ndarray:
            return np.stack(frame[column].to_numpy()).astype(np.float64)

        planned = rebuild_landmarks(model, Pose(vec("rotation"), vec("translation"),
                                                part["scale"].to_numpy(np.float64)),
                                    vec("expression"))[..., :2]
        with make_landmarker(FitParams().landmarker_params()) as landmarker:
            out_3d = detect_sequence(landmarker, _video_frames(edit.output, out_rows), dims=3)
        out_points = out_3d[..., :2]
        real = mouth_opening(real_points[real_rows])
        output = mouth_opening(out_points)
        real_m, out_m = measure(real_3d[real_rows]), measure(out_3d)
        plan_m = measure.from_coefficients(vec("expression"))
        own = np.arange(int(round(held.start_s * fps)), int(round(held.end_s * fps)) + 1)
        own_env = audio_envelope(clip_samples, rate, own / fps, 0.04)
        edit_audio = read_clip_audio(edit.audio)
        out_env = audio_envelope(edit_audio.region(0, len(edit_audio)), rate, out_rows / fps,
                                 0.04)
        truth_here = np.interp(np.interp(out_rows / fps, t_out, t_real), truth["time_s"],
                               truth["jaw_open"])
        rows.append({
            "sentence": held.sentence, "frames": len(out_rows),
            "truth~real": pearson(jaw, real), "truth~plan": pearson(jaw, mouth_opening(planned)),
            "plan~output": pearson(mouth_opening(planned), output),
            "real~output": pearson(real, output),
            "real~output_outer": pearson(outer_gap(real_points[real_rows]), outer_gap(out_points)),
            "truth~real_outer": pearson(jaw, outer_gap(real_points[real_rows])),
            "truth~real_model": pearson(jaw, real_m), "truth~plan_model": pearson(jaw, plan_m),
            "plan~output_model": pearson(plan_m, out_m),
            "real~output_model": pearson(real_m, out_m),
            "sync_real_lips_ms": lag_ms(mouth_opening(real_points[own]), own_env),
            "sync_real_model_ms": lag_ms(measure(real_3d[own]), own_env),
            "sync_truth_ms": lag_ms(all_jaw[own], own_env),
            "sync_output_lips_ms": lag_ms(output, out_env),
            "sync_output_model_ms": lag_ms(out_m, out_env),
            "output_behind_truth_ms": lag_ms(out_m, truth_here),
        })
    # Clip-wide: the fit's opening where the truth opens widest, and p/b/m onsets.
    pose = Pose(column_array(table, "rotation").astype(np.float64),
                column_array(table, "translation").astype(np.float64),
                table.column("scale").to_numpy().astype(np.float64))
    fitted = mouth_opening(rebuild_landmarks(model, pose, column_array(table, "expression")
                                             .astype(np.float64))[..., :2])
    wide = all_jaw > WIDE_JAW
    slope, icept = np.polyfit(fitted[~wide], all_jaw[~wide], 1)
    said = pd.read_parquet(paths.truth_phones)
    a = aligned[aligned["phone"] != "sil"].reset_index(drop=True)
    b = said[said["phone"] != "sil"].reset_index(drop=True)
    onsets = []
    for i, j, size in difflib.SequenceMatcher(None, list(a["phone"]), list(b["phone"]),
                                              autojunk=False).get_matching_blocks():
        onsets += [1000 * (a["start_s"][i + q] - b["start_s"][j + q]) for q in range(size)
                   if a["phone"][i + q] in ("P", "B", "M")]
    onsets_ms = np.asarray(onsets)
    return {
        "sentences": rows, "model_measure_validation": check,
        "wide_frames": int(wide.sum()),
        "fit_opening_at_wide_jaw": [round(float(v), 2) for v in slope * fitted[wide] + icept],
        "fit_r_without_wide": pearson(fitted[~wide], all_jaw[~wide]),
        "fit_r_all": pearson(fitted, all_jaw),
        "bilabial_onset_error_ms_median_abs": float(np.median(np.abs(onsets_ms))),
        "bilabial_onsets_over_30ms_early": int(np.sum(onsets_ms < -30)),
        "bilabials": len(onsets_ms),
    }


def markdown(runs: dict[str, Any]) -> str:
    keys = ["truth~real", "truth~plan", "plan~output", "real~output", "real~output_outer",
            "truth~real_outer"]
    model_keys = ["truth~real_model", "truth~plan_model", "plan~output_model",
                  "real~output_model"]
    sync_keys = ["sync_real_lips_ms", "sync_real_model_ms", "sync_truth_ms",
                 "sync_output_lips_ms", "sync_output_model_ms", "output_behind_truth_ms"]
    lines = ["# What limits the demo evaluate's opening r (benchmarks/evaluate_opening.py)", "",
             "Per held-out sentence: Pearson r of the inner-lip gap (outer where said) "
             "between truth (the generator's jaw_open), the real frames (the evaluate's "
             "reference), the plan (its expression rebuilt into landmarks) and the output. "
             "real~output is the evaluate's own score.", ""]
    for label, run in runs.items():
        lines += [f"## {label}", "", "| sentence | frames | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for r in run["sentences"]:
            lines.append(f"| {r['sentence']} | {r['frames']} | "
                         + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
        if "model_measure_validation" in run:  # runs from session 7 on
            v = run["model_measure_validation"]
            lines += ["", "By the person model's opening (map fitted on the training footage's "
                      f"first {v['fit_frames']} frames; r with truth on its next "
                      f"{v['validation_frames']}: {v['expression_r']:.3f}, lip gap "
                      f"{v['lips_r']:.3f}):", "",
                      "| sentence | " + " | ".join(model_keys) + " |",
                      "|---|" + "---|" * len(model_keys)]
            lines += [f"| {r['sentence']} | " + " | ".join(f"{r[k]:.3f}" for k in model_keys)
                      + " |" for r in run["sentences"]]
        if "sync_truth_ms" in run["sentences"][0]:
            lines += ["", "Sync offsets (ms, + = mouth after sound): the real frames by the lip "
                      "gap / by the model's opening / the truth's jaw_open; the output by the lip "
                      "gap / by the model's opening; the output's model opening behind the truth "
                      "(phone time map):", "",
                      "| sentence | " + " | ".join(sync_keys) + " |",
                      "|---|" + "---|" * len(sync_keys)]
            lines += [f"| {r['sentence']} | " + " | ".join(f"{r[k]:.1f}" for k in sync_keys)
                      + " |" for r in run["sentences"]]
        lines += ["", f"Fit's opening at the truth's {run['wide_frames']} widest frames "
                  f"(jaw_open > {WIDE_JAW}, in jaw units): {run['fit_opening_at_wide_jaw']}; "
                  f"fit r with truth {run['fit_r_all']:.3f} ({run['fit_r_without_wide']:.3f} "
                  "without them). Aligner's p/b/m onsets vs truth: median |error| "
                  f"{run['bilabial_onset_error_ms_median_abs']:.1f} ms, "
                  f"{run['bilabial_onsets_over_30ms_early']} of {run['bilabials']} more than "
                  "30 ms early.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="demo")
    ap.add_argument("--scratch", type=Path, required=True,
                    help="an evaluate run's kept edits (evaluate.keep_scratch)")
    ap.add_argument("--run", action="store_true", help="run the evaluate stage first")
    ap.add_argument("--label", default="current")
    args = ap.parse_args()
    if args.run:
        run_evaluate_kept(args.clip, args.scratch)
    result = decompose(args.clip, args.scratch)
    store = RESULTS / "evaluate_opening.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[args.label] = result
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    text = markdown(runs)
    (RESULTS / "evaluate_opening.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
