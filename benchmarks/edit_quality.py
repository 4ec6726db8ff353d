"""Edit with truth: how close the new words' lips come to the same person really saying them.

    .venv/bin/python benchmarks/edit_quality.py [--work DIR] [--steps N] [--label NAME]
        [--dev] [--cases NAME ...] [--set SECTION.KEY=VALUE ...]

The pipeline's own figures come from the pair stages (quality/dvc.yaml, `dvc repro
quality/dvc.yaml`: stages/pairs/, whose code this script runs too); this script
adds what a stage should not: labelled runs side by side, the development pairs (``--dev``),
diagnostics that rewrite the plan, other watermark payloads, re-scoring kept work folders.

For each fixed case of ``stages.demo.pairs.CASES`` (three faces, voices and texts, chosen
before any measurement): generate the clip and its truth clip (the same face and voice
saying the edited text), run extract, align, fit, index and train (the cpu profile, by
default with its own steps as params.yaml sets them, 1,200: the renderer a user gets;
``--steps`` trains fewer or more: a renderer trained on the clip's own frames, holding out
its last 10%; what ``--work`` already holds is kept, a trained renderer included, so a
run at other steps needs another ``--work``),
then the edit path (plan, audio, render, composite) on the case's edit: a phrase whose
words all occur elsewhere in the clip and a word never spoken in it. Scores per edit
(``stages.evaluate.edit_truth``; pictures against the truth drawn at the exact point of
the text each output frame shows, and by the truth's nearest frame beside it) next to the
same scores on the kept footage, and writes
them under ``--label`` into benchmarks/results/edit_quality.json, then renders every
label there into benchmarks/results/edit_quality.md (before/after side by side).
Targets (issue 13): opening r >= 0.9 in the edited words, median vowel-peak error
<= 40 ms, mouth PSNR within 3 dB of the kept footage's, 0 repeated background frames,
mouth sharpness >= 0.8x the source's. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"


@functools.cache
def clip_sections(steps: int | None = None) -> Any:
    """The project's sections as the pairclip stage runs them (params.yaml's pair: applied;
    ``steps``: the renderer's training steps instead of its)."""
    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.pairs.clip import ClipSections

    return ClipSections.of(**load_sections(ALL_BY_NAME["pairclip"], REPO,
                                           {"pair": {"steps": steps}} if steps else None))


# ``--set`` overrides of the edit's sections: {section: {key: value}} (main sets them once).
EDIT_OVERRIDES: dict[str, dict[str, Any]] = {}


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``section.key=value`` items (values read as YAML) as load_sections' overrides;
    ValueError names an item of another form."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or "." in name:
            raise ValueError(f"--set {item!r}: give section.key=value (a top-level key of a "
                             "params.yaml section, e.g. mouth.strength=0)")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


@functools.cache
def edit_sections() -> Any:
    """The project's sections as the pairedit stage runs them (pairedit: applied), with
    ``--set``'s overrides."""
    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.pairs.edit import EditSections

    return EditSections.of(**load_sections(ALL_BY_NAME["pairedit"], REPO,
                                           EDIT_OVERRIDES or None), project=REPO)


def profile_steps() -> int:
    """The renderer training steps a pair runs, as params.yaml sets them."""
    return clip_sections().train.steps


def prepare_clip(case: Any, root: Path, steps: int, train: bool = True) -> None:
    """The case's clip and truth, extracted, aligned, fitted, indexed, renderer trained
    (unless not ``train``); what ``root`` already holds is kept."""
    from stages.pairs.clip import prepare_clip as prepare

    prepare(case, root, clip_sections(steps), train=train, reuse=True)


ARTICULATION = ("jaw_open", "lip_width", "lip_closure")


def articulation_features(frames: Any) -> np.ndarray:
    """(n, 10) quadratic features of the generator's articulation (jaw, width, closure)."""
    j, w, c = (frames[name].to_numpy(np.float64) for name in ARTICULATION)
    return np.stack([np.ones_like(j), j, w, c, j * j, j * w, j * c, w * w, c * c, w * c], 1)


@dataclasses.dataclass
class OraclePlan:
    """The edit's plan next to the truth's own expressions (``oracle_plan``)."""

    table: Any  # the plan (pyarrow Table)
    planned: np.ndarray  # (n, d) the plan's expression
    oracle: np.ndarray  # (n, d) the truth's articulation at each row, as expressions
    edited: np.ndarray  # (n,) bool
    phones: Any  # the output's phones (stages.evaluate.edit_truth.output_phones)
    fps: float
    r2: float  # the regression's R^2 on the source


def fitted_truth(case: Any, root: Path) -> np.ndarray:
    """(n, d) the truth clip's frames' own expressions: their landmarks fitted by the
    SOURCE clip's person model and smoothed as the fit stage smooths (what the fit stage
    would have given the renderer for those frames, had the source said the edited text)."""
    from stages.evaluate.edit_truth import _filled, _frames
    from stages.fit import FitParams, load_fit, make_landmarker
    from stages.fit.model import fit_frames
    from stages.fit.smoothing import smooth
    from talkedit.artifacts import ClipPaths, VideoMeta

    fit = FitParams()
    model, _ = load_fit(case.name, root)
    fps = VideoMeta.read(ClipPaths.of(case.name, root)).fps
    images = _frames(root / "truth" / f"{case.name}.mp4")
    with make_landmarker(fit.landmarker_params()) as landmarker:
        found = [landmarker.detect(im) for im in images]
    n_pts = max((f[0].points.shape[0] for f in found if f), default=0)
    points = np.full((len(images), n_pts, 3), np.nan)
    for k, faces in enumerate(found):
        if faces:
            points[k] = max(faces, key=lambda f: f.height_px).points
    expression = np.full((len(images), model.basis.shape[0]), np.nan)
    ok = np.isfinite(points).all(axis=(1, 2))
    expression[ok] = fit_frames(model, points[ok])[1]
    return smooth(_filled(expression), fit.smoothing, fps, fit.expression_window_ms,
                  fit.smoothing_order)


def oracle_plan(case: Any, root: Path, truth_source: str = "articulation") -> OraclePlan:
    """The edit's plan, and for each of its rows the truth's own expression: the
    articulation the truth clip shows at the frame each output frame is scored against
    (the scorer's phone time map), turned into expression coefficients by a ridge
    regression fitted on the SOURCE clip (its fitted expressions against its generator
    truth); with ``truth_source`` "fitted", that frame's own expression (``fitted_truth``)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from stages.evaluate.edit_truth import output_phones, time_map
    from stages.fit import frame_parameters, load_fit
    from talkedit.artifacts import (
        NEW_PHONES,
        SEGMENTS,
        ClipPaths,
        EditPaths,
        VideoMeta,
        read_parquet,
    )

    paths, edit = ClipPaths.of(case.name, root), EditPaths.of(case.name, root)
    _, expression = frame_parameters(load_fit(case.name, root)[1])
    source = pd.read_parquet(paths.truth_frames)
    truth = pd.read_parquet(root / "truth" / f"{case.name}.truth_frames.parquet")
    n = min(len(expression), len(source))
    x, y = articulation_features(source.iloc[:n]), expression[:n]
    coef = np.linalg.solve(x.T @ x + 1e-3 * np.eye(x.shape[1]), x.T @ y)
    r2 = 1.0 - float(((y - x @ coef) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    plan = pq.read_table(edit.plan)
    phones = output_phones(read_parquet(edit.segments, SEGMENTS),
                           read_parquet(edit.new_phones, NEW_PHONES),
                           pd.read_parquet(paths.truth_phones))
    k_out, k_truth = time_map(phones, pd.read_parquet(root / "truth"
                                                      / f"{case.name}.truth_phones.parquet"))
    fps = VideoMeta.read(paths).fps
    t_truth = np.interp(np.arange(plan.num_rows) / fps, k_out, k_truth)
    truth_rows = np.clip(np.rint(t_truth * fps).astype(np.int64), 0, len(truth) - 1)
    oracle = (fitted_truth(case, root)[np.minimum(truth_rows, len(truth) - 1)]
              if truth_source == "fitted"
              else articulation_features(truth.iloc[truth_rows]) @ coef)
    return OraclePlan(plan, np.stack(plan.column("expression").to_pylist()).astype(np.float64),
                      oracle,
                      plan.column("edited").to_numpy(zero_copy_only=False).astype(bool),
                      phones, fps, r2)


def oracle_expressions(case: Any, root: Path, source: str = "articulation") -> float:
    """Rewrite the edit's plan so its edited rows carry the truth's own expressions
    (``oracle_plan``). A diagnostic: what the renderer and composite make of a perfect
    plan. Returns the regression's R^2 on the source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from talkedit.artifacts import EditPaths

    found = oracle_plan(case, root, source)
    planned = found.planned
    planned[found.edited] = found.oracle[found.edited]
    plan = found.table
    i = plan.schema.get_field_index("expression")
    field = plan.schema.field(i)
    column = pa.array(list(planned.astype(field.type.value_type.to_pandas_dtype())),
                      type=field.type)
    pq.write_table(plan.set_column(i, field, column), EditPaths.of(case.name, root).plan)
    return found.r2


def filter_plan(case: Any, root: Path, how: str) -> None:
    """Rewrite the edit's plan with its edited rows' expressions filtered (a diagnostic of
    what the renderer makes of them): ``smooth:S`` a Gaussian of S frames over time,
    ``sharpen:A`` x + A (x - a 1-frame Gaussian of x), ``rank:K`` projected on the source
    clip's K leading expression components (its fitted frames' PCA)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy.ndimage import gaussian_filter1d

    from stages.fit import frame_parameters, load_fit
    from talkedit.artifacts import EditPaths

    kind, value = how.split(":")
    path = EditPaths.of(case.name, root).plan
    plan = pq.read_table(path)
    e = np.stack(plan.column("expression").to_pylist()).astype(np.float64)
    edited = plan.column("edited").to_numpy(zero_copy_only=False).astype(bool)
    if kind == "smooth":
        out = gaussian_filter1d(e, float(value), axis=0, mode="nearest")
    elif kind == "sharpen":
        out = e + float(value) * (e - gaussian_filter1d(e, 1.0, axis=0, mode="nearest"))
    elif kind == "rank":
        _, src = frame_parameters(load_fit(case.name, root)[1])
        src = np.asarray(src, np.float64)
        src = src[np.isfinite(src).all(axis=1)]
        mean = src.mean(axis=0)
        basis = np.linalg.svd(src - mean, full_matrices=False)[2][:int(value)]
        out = mean + (e - mean) @ basis.T @ basis
    else:
        raise ValueError(f"--filter-plan {how!r}: smooth:S, sharpen:A or rank:K")
    e[edited] = out[edited]
    i = plan.schema.get_field_index("expression")
    field = plan.schema.field(i)
    column = pa.array(list(e.astype(field.type.value_type.to_pandas_dtype())), type=field.type)
    pq.write_table(plan.set_column(i, field, column), path)


# Phone classes of the plan-error table: what the lips do (stages/demo/mouth.py's targets).
LIP_CLASSES = {
    "rounded": ("OW", "UW", "UH", "AO", "OY", "AW", "ER", "W", "R", "SH", "ZH", "CH", "JH"),
    "spread": ("IY", "IH", "EY", "EH", "AE", "AY", "Y", "S", "Z"),
    "open": ("AA", "AH"),
    "p/b/m": ("P", "B", "M"),
    "f/v": ("F", "V"),
}


def plan_error(case: Any, root: Path) -> dict[str, Any]:
    """Where the plan's expression inside the new words is off the truth's
    (``oracle_plan``): squared error summed over coefficients, split into the opening
    (along ``retime.openness_direction``) and the rest (the lip shape), per lip class
    of the phone said, and per coefficient. Sums and counts, so cases add up."""
    from stages.fit import frame_parameters, load_fit
    from stages.index import VisemeIndex
    from stages.plan.retime import openness_direction

    found = oracle_plan(case, root)
    _, expression = frame_parameters(load_fit(case.name, root)[1])
    direction = openness_direction(VisemeIndex.load(case.name, root), expression, found.fps)
    t = np.arange(len(found.planned)) / found.fps
    new = found.phones[found.phones["new"]]
    rows = np.zeros(len(t), bool)
    said = np.full(len(t), "other", object)
    for ph in new.itertuples():
        inside = (t >= ph.start_s - 1e-9) & (t < ph.end_s)
        rows |= inside
        said[inside] = next((k for k, v in LIP_CLASSES.items() if ph.phone in v), "other")
    error = (found.planned - found.oracle)[rows]
    along = (error @ direction) ** 2
    total = (error ** 2).sum(1)
    out: dict[str, Any] = {"frames": int(rows.sum()), "total": float(total.sum()),
                           "opening": float(along.sum()),
                           "per_coefficient": (error ** 2).sum(0).tolist(), "classes": {}}
    for name in [*LIP_CLASSES, "other"]:
        k = said[rows] == name
        out["classes"][name] = {"frames": int(k.sum()), "total": float(total[k].sum()),
                                "opening": float(along[k].sum())}
    return out


def plan_error_markdown(parts: list[dict[str, Any]], label: str) -> str:
    """The cases' ``plan_error`` summed: mean squared error per frame, opening and shape."""
    def row(name: str, items: list[dict[str, Any]]) -> str:
        frames = sum(i["frames"] for i in items)
        total, opening = (sum(i[k] for i in items) / max(frames, 1) for k in ("total", "opening"))
        return f"| {name} | {frames} | {total:.4f} | {opening:.4f} | {total - opening:.4f} |"

    per = np.sum([p["per_coefficient"] for p in parts], 0) / max(sum(p["frames"] for p in parts), 1)
    top = np.argsort(-per)[:8]
    return "\n".join([
        f"## {label}: the plan's expression against the truth's, inside the new words", "",
        "| phones | frames | error per frame | opening | lip shape (rest) |", "|---|---|---|---|---|",
        row("all", parts),
        *(row(name, [p["classes"][name] for p in parts]) for name in [*LIP_CLASSES, "other"]),
        "", "Largest coefficients (index: error per frame): "
        + ", ".join(f"{i}: {per[i]:.4f}" for i in top), ""])


def same_watermark_per_case(salt: str = "") -> None:
    """Every run marks a case's output with the same watermark payload (a hash of ``salt``
    and the case's source video name) instead of one derived from its inputs' hashes. The mark is a keyed pattern over
    the whole frame (RMS 1.5 levels); derived from the plan's hash, any change of the plan
    changed it in the kept footage too, and moved the kept footage's PSNR by up to 0.4 dB
    between runs (the gap by up to 0.5 dB: the scorer's landmarks, and so its aligned
    crops, move with it): noise, not the edit. Another ``salt`` samples that noise. The
    edit path is otherwise the normal one; the payload still decodes to a valid id."""
    import hashlib

    from stages.composite import provenance

    def payload_of_case(manifest: dict[str, Any]) -> int:
        name = manifest["ingredients"][0]["title"]  # the source video: one per case
        return int.from_bytes(hashlib.sha256((salt + name).encode()).digest()[:4], "big")

    provenance.derive_payload_id = payload_of_case


def plan_errors(cases: Any, work: Path, label: str) -> None:
    """``--plan-error``: plan each case's edit (no renderer needed) and write where its
    expression is off the truth's (``plan_error``) under ``label`` into
    benchmarks/results/plan_error.{json,md}."""
    from stages.pairs.edit import write_spec
    from stages.plan import run_plan

    parts = {}
    plan_sections = edit_sections()
    for case in cases:
        prepare_clip(case, work, 0, train=False)
        write_spec(case, work)
        run_plan(case.name, work, plan_sections.plan, plan_sections.align, plan_sections.audio)
        parts[case.name] = plan_error(case, work)
    store = RESULTS / "plan_error.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[label] = parts
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    text = "\n".join(["# The plan's expressions for new words against the truth's "
                      "(benchmarks/edit_quality.py --plan-error)", "",
                      "Squared error per frame, summed over the 64 coefficients; the truth's "
                      "expression is its articulation mapped by a regression fitted on the "
                      "source clip (oracle_plan). Opening: along the clip's openness "
                      "direction; lip shape: the rest.", ""]
                     + [plan_error_markdown(list(runs[k].values()), f"{k} ({', '.join(runs[k])})")
                        for k in sorted(runs)])
    (RESULTS / "plan_error.md").write_text(text)
    print(plan_error_markdown(list(parts.values()), label))


def run_edit(case: Any, root: Path, oracle: str | None = None,
             plan_filter: str | None = None) -> dict[str, float]:
    """The normal edit path on the case's edit (``stages.pairs.edit.run_edit``);
    seconds per stage. ``oracle``: the plan's edited expressions replaced by the truth's
    (``oracle_expressions``) before rendering; ``plan_filter``: filtered (``filter_plan``)."""
    from stages.pairs.edit import run_edit as edit

    def after_plan(case: Any, root: Path) -> None:
        if oracle:
            print(f"{case.name}: oracle expressions (source regression R^2 "
                  f"{oracle_expressions(case, root, oracle):.3f})", flush=True)
        if plan_filter:
            filter_plan(case, root, plan_filter)

    return edit(case, root, edit_sections(), after_plan)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-edit-quality"))
    ap.add_argument("--steps", type=int, default=None,
                    help="renderer training steps per clip (default: the cpu profile's, "
                    "params.yaml; runs before session 12 trained 600)")
    ap.add_argument("--label", default="current", help="name of this run in the results")
    ap.add_argument("--cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--oracle-expressions", nargs="?", const="articulation", default=None,
                    choices=("articulation", "fitted"),
                    help="diagnostic: render the edited rows with the truth's own articulation "
                    "(mapped to expressions by a regression on the source) or, with 'fitted', "
                    "the truth frames' own landmarks fitted by the source's person model, "
                    "instead of the plan's (oracle_expressions): splits the gap between the "
                    "plan and the renderer; never a score of the project")
    ap.add_argument("--filter-plan", default=None, metavar="smooth:S|sharpen:A|rank:K",
                    help="diagnostic: filter the plan's edited expressions before rendering "
                    "(filter_plan); never a score of the project")
    ap.add_argument("--score-only", action="store_true",
                    help="re-score the edits already in --work (e.g. a copy kept from before "
                    "a change) with the current measures")
    ap.add_argument("--watermark-salt", default="",
                    help="another fixed watermark payload per case (same_watermark_per_case): "
                    "runs with several salts show how much of a difference is noise")
    ap.add_argument("--plan-error", action="store_true",
                    help="diagnostic: only plan each edit and write where its expression is "
                    "off the truth's (plan_error; benchmarks/results/plan_error.md)")
    ap.add_argument("--nearest-truth", action="store_true",
                    help="compare the pictures with the truth clip's nearest frame only (the "
                    "yardstick up to session 18) instead of the truth drawn again, losslessly, "
                    "at the exact point of the text each output frame shows, its head where "
                    "the output's background has it (stages.demo.pairs.truth_at; the nearest "
                    "frame's figures are reported beside it; benchmarks/results/"
                    "edit_quality_truth.md); stored under LABEL-nearest")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="the edit path's params.yaml values overridden for this run (e.g. "
                    "mouth.strength=0 plan.lip_shape=0.3); renderers are trained as "
                    "params.yaml sets them")
    ap.add_argument("--dev", action="store_true",
                    help="the development pairs (stages.demo.pairs.DEV_CASES) instead of the "
                    "scored ones: for choosing methods and settings")
    args = ap.parse_args()
    try:
        EDIT_OVERRIDES.update(parse_overrides(args.set))
    except ValueError as exc:
        ap.error(str(exc))  # one usage line and the error, exit 2
    if args.nearest_truth:
        args.label += "-nearest"

    from stages.demo.pairs import CASES, DEV_CASES
    from stages.evaluate.edit_truth import summarize_pairs
    from stages.pairs.edit import score_case

    cases = [c for c in (DEV_CASES if args.dev else CASES)
             if not args.cases or c.name in args.cases]
    if args.plan_error:
        plan_errors(cases, args.work, args.label)
        return 0

    same_watermark_per_case(args.watermark_salt)
    if args.steps is None:
        args.steps = profile_steps()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    rows, turnaround = [], {}
    for case in cases:
        if not args.score_only:
            prepare_clip(case, work, args.steps)
            turnaround[case.name] = run_edit(case, work, args.oracle_expressions,
                                             args.filter_plan)
        rows += score_case(case, work, "nearest" if args.nearest_truth else "exact")
        print(json.dumps(rows[-2:], indent=1), flush=True)
    summary = summarize_pairs(rows)
    store = RESULTS / "edit_quality.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    summary["turnaround_s"] = turnaround or runs.get(args.label, {}).get("summary", {}).get(
        "turnaround_s", {})
    summary["steps"] = args.steps
    if args.set:
        summary["overrides"] = " ".join(args.set)
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs[args.label] = {"summary": summary, "edits": rows}
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    text = results_markdown(runs)
    (RESULTS / "edit_quality.md").write_text(text)
    print(text)
    missed = [k for k, ok in summary["targets_met"].items() if not ok]
    if missed:
        print("targets missed:", ", ".join(missed))
        return 1
    return 0


def results_markdown(runs: dict[str, Any]) -> str:
    from stages.evaluate.edit_truth import SUMMARY_ROWS

    labels = sorted(runs, key=lambda label: (label != "before", label))  # before first
    lines = ["# Edit with truth (benchmarks/edit_quality.py)", "",
             "Generated pairs (stages/demo/pairs.py: 3 faces, voices, texts; each edited once "
             "with a phrase of words spoken elsewhere and once with a word never spoken), "
             "scored against the truth clip of the same face and voice saying the edited "
             "text (stages/evaluate/edit_truth.py). \"edited\" = frames inside the new words, "
             "\"kept\" = untouched frames of the same videos by the same measure.", "",
             "| measure | target | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for key, what, target in SUMMARY_ROWS:
        values = []
        for label in labels:
            v = runs[label]["summary"].get(key)
            values.append("n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append(f"| {what} | {target} | " + " | ".join(values) + " |")
    for label in labels:
        lines += ["", f"## {label}: per edit", "",
                  "| case | edit | words | opening r | plan's r | truth frames' r | "
                  "peak err ms (median abs) | amplitude err | PSNR dB | mouth / rest dB | SSIM | "
                  "sharpness x |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in runs[label]["edits"]:
            extra = " | ".join(f"{r.get(k, float('nan')):.3f}" for k in ("plan_opening_r",
                                                                           "ceiling_r"))
            lines.append(f"| {r['case']} | {r['segment']} | {r['words']} | {r['opening_r']:.3f} | "
                         f"{extra} | "
                         f"{r['peak_error_ms']:.0f} | {r['amplitude_error']:+.3f} | "
                         f"{r['psnr_db']:.2f} | {r.get('psnr_db_mouth', float('nan')):.2f} / "
                         f"{r.get('psnr_db_rest', float('nan')):.2f} | {r['ssim']:.3f} | {r['sharpness_ratio']:.2f} |")
        t = runs[label]["summary"].get("turnaround_s", {})
        lines += ["", "Edit turnaround (s: plan, audio, render, composite): "
                  + "; ".join(f"{c} {sum(v.values()):.1f} ({v})" for c, v in t.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
