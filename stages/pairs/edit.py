"""The pairedit and pair-summary stages: an edit-with-truth case edited and scored; the
cases pooled against the targets (see stages/pairs/__init__.py)."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.audio.stage import run_audio
from stages.composite.compose import CompositeParams, run_composite
from stages.composite.credentials import SigningSettings
from stages.composite.watermark import WatermarkParams
from stages.demo.pairs import PairCase, find_case, truth_at
from stages.evaluate.edit_truth import TARGETS, score_pair, summarize_pairs
from stages.plan import PlanParams, run_plan
from stages.render.checkpoint import Stamp
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import run_render
from talkedit.artifacts import EditPaths, ModelPaths, pair_paths
from talkedit.atomic import write_json, write_text
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.scale import ScaleParams

TRUTH_LOOKUPS = ("exact", "nearest")


@dataclass(frozen=True)
class PairEditParams(Section):
    """The ``pairedit:`` section of params.yaml: how each case's edit is made and scored
    (the pairedit stage)."""

    SECTION = "pairedit"

    truth: str = "exact"  # exact | nearest (stages.evaluate.edit_truth.score_pair)
    # The edit path's composite as the evaluate stage runs it: no visible label over the
    # frames the pictures are scored on; the fastest encoder preset.
    composite: dict[str, Any] = field(default_factory=lambda: {"preset": "ultrafast",
                                                               "label": False})

    def check(self, where: str) -> None:
        if self.truth not in TRUTH_LOOKUPS:
            raise bad_param(where, "truth", f"is {self.truth!r}",
                            f"use one of {', '.join(TRUTH_LOOKUPS)}")
        CompositeParams.from_dict(self.composite, f"{where}.composite")


@dataclass(frozen=True)
class PairTargets(Section):
    """The ``pair_targets:`` section: issue 13's targets over every scored edit."""

    SECTION = "pair_targets"

    opening_r: float = TARGETS["opening_r"]  # mouth-opening r in the new words (mean), at least
    peak_error_ms: float = TARGETS["peak_error_ms"]  # vowel-peak timing error (median abs), at most
    psnr_gap_db: float = TARGETS["psnr_gap_db"]  # mouth PSNR kept - edited, at most
    repeats: int = int(TARGETS["repeats"])  # repeated background frames, at most
    sharpness_ratio: float = TARGETS["sharpness_ratio"]  # mouth sharpness edited / source, at least

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class EditSections:
    """What a pair's edit path reads, as a pair runs it."""

    plan: PlanParams
    align: AlignParams
    audio: AudioParams
    render: RenderParams
    mouth: MouthParams
    composite: CompositeParams
    watermark: WatermarkParams
    scale: ScaleParams

    @classmethod
    def of(cls, pairedit: PairEditParams, plan: PlanParams, align: AlignParams,
           audio: AudioParams, render: RenderParams, mouth: MouthParams,
           composite: CompositeParams, watermark: WatermarkParams, scale: ScaleParams,
           project: Path) -> EditSections:
        """``pairedit.composite`` overrides the composite; the output is signed by
        ``project``'s own Content Credentials (never a key made inside a pair's root, which
        DVC would cache with the pair's outputs)."""
        return cls(plan, align, audio, render, mouth,
                   CompositeParams.from_dict({**dataclasses.asdict(composite),
                                              **pairedit.composite}),
                   project_signer(watermark, project), scale)


def project_signer(watermark: WatermarkParams, project: Path) -> WatermarkParams:
    """``watermark`` with its Content Credentials resolved against ``project`` (absolute
    paths): its configured signer and trust, or its local CA and signer (made on first use)."""
    settings = SigningSettings.of(watermark, Path(project).resolve())
    creds = settings.credentials()
    return dataclasses.replace(watermark, c2pa_cert=str(creds.chain), c2pa_key=str(creds.key),
                               c2pa_trust=tuple(str(t) for t in settings.trust_anchors()))


def write_spec(case: PairCase, root: Path) -> None:
    """The case's edit spec, data/edits/<case>/edit.yaml."""
    import yaml

    spec = EditPaths.of(case.name, root).spec
    spec.parent.mkdir(parents=True, exist_ok=True)
    write_text(spec, yaml.safe_dump(case.edit_spec(), sort_keys=False))


def run_edit(case: PairCase, root: Path, sections: EditSections,
             after_plan: Any = None) -> dict[str, float]:
    """The normal edit path on the case's edit; seconds per stage. ``after_plan(case,
    root)``: a diagnostic's rewrite of the plan before rendering (benchmarks only)."""
    write_spec(case, root)
    s = sections
    took = {}
    for name, call in (
        ("plan", lambda: run_plan(case.name, root, s.plan, s.align, s.audio)),
        ("audio", lambda: run_audio(case.name, root, s.audio)),
        ("render", lambda: run_render(case.name, root, s.render, s.mouth, s.scale)),
        ("composite", lambda: run_composite(case.name, root, s.composite, s.watermark,
                                            s.scale)),
    ):
        t0 = time.perf_counter()
        call()
        took[name] = round(time.perf_counter() - t0, 2)
        if name == "plan" and after_plan is not None:
            after_plan(case, root)
    return took


def score_case(case: PairCase, root: Path, truth: str = "exact",
               drawn: Path | None = None) -> list[dict[str, Any]]:
    """Every new segment of the case's edit scored against its truth (``score_pair``);
    with the exact truth, the truth drawn again is written to ``drawn`` (default
    ``root``/truth/<case>.at.mp4)."""
    return score_pair(case.name, root, root / "truth", truth_at=(
        functools.partial(truth_at, case, root, out=drawn) if truth == "exact" else None))


# One row per edit of the plots table: what the targets read, and the kept footage's picture.
PLOT_COLUMNS = ("segment", "words", "opening_r", "peak_error_ms", "amplitude_error", "psnr_db",
                "psnr_db_kept", "psnr_gap_db", "ssim", "sharpness_ratio", "repeats")


def plot_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The case's edits, one row each (data/metrics/pairs/<case>.tsv)."""
    table = pd.DataFrame([{**r, "psnr_db_kept": r["kept"]["psnr_db"]} for r in rows])
    table["psnr_gap_db"] = table["psnr_db_kept"] - table["psnr_db"]
    return table[list(PLOT_COLUMNS)].round(4)


def _metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's figures DVC shows as metrics: numbers and the targets' verdicts."""
    return {k: v for k, v in summary.items() if isinstance(v, int | float | bool | dict)}


def run_pairedit(case: str, root: Path, pairedit: PairEditParams, plan: PlanParams,
                 align: AlignParams, audio: AudioParams, render: RenderParams,
                 mouth: MouthParams, composite: CompositeParams, watermark: WatermarkParams,
                 scale: ScaleParams) -> dict[str, Any]:
    """Edit one built pair and score it (see the module); return the case's summary. The
    targets are the summary's (pair-summary): a changed target never re-scores a pair."""
    found = find_case(case)
    out = pair_paths(case, root)
    if not ModelPaths.of(case, out.root).generator.is_file():
        raise TalkeditError(out.root, "holds no built pair (its renderer is missing)",
                            f"run `dvc repro quality/dvc.yaml:pairclip@{case}` first")
    sections = EditSections.of(pairedit, plan, align, audio, render, mouth, composite,
                               watermark, scale, root)
    turnaround = run_edit(found, out.root, sections)
    rows = score_case(found, out.root, pairedit.truth, out.drawn_truth)
    summary = summarize_pairs(rows)
    summary.pop("targets_met")
    out.metrics.parent.mkdir(parents=True, exist_ok=True)
    stamp, _ = Stamp.read(ModelPaths.of(case, out.root).generator)
    write_json(out.metrics, {"case": case, "renderer_step": stamp.step, **_metrics(summary)})
    write_text(out.plots, plot_table(rows).to_csv(sep="\t", index=False, na_rep="nan"))
    write_json(out.edits, {"case": case, "edits": rows})
    return {"case": case, "edits": len(rows), "opening_r_edited": summary["opening_r_edited"],
            "psnr_gap_db": summary["psnr_gap_db"], "edit_turnaround_s": turnaround}


def pooled_cases(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every case's edits scored under ``folder`` (data/metrics/pairs/), by case name."""
    import json

    found = {}
    for path in sorted(folder.glob("*.edits.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        found[doc["case"]] = doc["edits"]
    return found


def summary_markdown(summary: dict[str, Any], targets: PairTargets,
                     cases: dict[str, list[dict[str, Any]]]) -> str:
    """The pooled figures against the targets, then one line per edit of ``cases``."""
    from stages.evaluate.edit_truth import SUMMARY_ROWS

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)

    goals = {"opening_r_edited": f">= {targets.opening_r}",
             "peak_error_ms_edited": f"<= {targets.peak_error_ms}",
             "psnr_gap_db": f"<= {targets.psnr_gap_db}", "repeats": f"<= {targets.repeats}",
             "sharpness_ratio": f">= {targets.sharpness_ratio}"}
    met = summary["targets_met"]
    lines = ["# Edit with truth: the pairs pooled (quality/dvc.yaml, pair-summary)", "",
             f"Cases: {', '.join(cases)}; {summary['edits']} edits. Targets met: "
             f"{', '.join(k for k, ok in met.items() if ok) or 'none'}; missed: "
             f"{', '.join(k for k, ok in met.items() if not ok) or 'none'}.",
             "", "| measure | target | value |", "|---|---|---|"]
    lines += [f"| {what} | {goals.get(key, target)} | {fmt(summary.get(key))} |"
              for key, what, target in SUMMARY_ROWS if key in summary]
    lines += ["", "## Per edit", "", "| case | " + " | ".join(PLOT_COLUMNS) + " |",
              "|---|" + "---|" * len(PLOT_COLUMNS)]
    for case, rows in cases.items():
        for row in plot_table(rows).itertuples(index=False):
            lines.append(f"| {case} | " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def run_pair_summary(root: Path, pair_targets: PairTargets) -> dict[str, Any]:
    """Pool every case under data/metrics/pairs/ against the targets; write
    data/metrics/pair_summary.{json,md}. No case scored: an error naming the stage to run."""
    paths = pair_paths(None, root)
    cases = pooled_cases(paths.folder)
    if not cases:
        raise TalkeditError(paths.folder, "holds no scored pair (<case>.edits.json)",
                            "run `dvc repro quality/dvc.yaml` (the pair stages first)")
    rows = [r for edits in cases.values() for r in edits]
    summary = summarize_pairs(rows, pair_targets.as_dict())
    text = summary_markdown(summary, pair_targets, cases)
    write_json(paths.summary, {"case_names": list(cases), **_metrics(summary)})
    write_text(paths.summary_md, text)
    missed = [k for k, ok in summary["targets_met"].items() if not ok]
    return {"cases": ", ".join(cases), "edits": len(rows),
            "opening_r_edited": summary["opening_r_edited"],
            "peak_error_ms_edited": summary["peak_error_ms_edited"],
            "psnr_gap_db": summary["psnr_gap_db"], "sharpness_ratio": summary["sharpness_ratio"],
            "repeats": summary["repeats"],
            **({"warnings": [f"targets missed: {', '.join(missed)} (data/metrics/"
                             "pair_summary.md)"]} if missed else {})}
