"""The edit-with-truth pairs as pipeline stages (stages/pairs/, quality/dvc.yaml):
a short pair built, edited and scored end to end; the summary pooling cases against the
targets of params.yaml. Their bad input: tests/test_cli_errors.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.demo.pairs import CASES, PairCase, find_case
from stages.pairs.edit import (
    PLOT_COLUMNS,
    PairTargets,
    pooled_cases,
    run_pair_summary,
)
from talkedit.artifacts import pair_paths
from talkedit.atomic import write_json
from talkedit.errors import TalkeditError
from tests.conftest import REPO


def _row(case: str, segment: int, psnr_db: float, kept_psnr_db: float,
         peaks: tuple[float, ...] = (10.0,), opening_r: float = 0.95,
         sharpness: float = 1.0, repeats: int = 0) -> dict:
    """One edit's scores as score_pair writes them (the keys summarize_pairs reads)."""
    kept = {"opening_r": 0.95, "peak_error_ms": 5.0, "amplitude_error": 0.0, "ssim": 0.9,
            "psnr_db": kept_psnr_db}
    return {"case": case, "segment": segment, "words": f"w{segment}", "measure": "expression",
            "peak_errors_ms": list(peaks), "plan_peak_errors_ms": list(peaks),
            "repeats": repeats, "kept": kept, "ssim": 0.85, "psnr_db": psnr_db,
            "opening_r": opening_r, "sharpness_ratio": sharpness,
            **{k: 0.9 for k in ("opening_validation_r", "expression_validation_r",
                                "lips_validation_r", "generated_validation_r_lips",
                                "generated_validation_r", "generated_validation_r_expression",
                                "ceiling_r", "opening_r_expression", "opening_r_lips",
                                "plan_opening_r", "peak_error_ms", "amplitude_error",
                                "head_jerk_p95", "kept_head_jerk_p95")}}


def _scored(root: Path, case: str, rows: list[dict]) -> None:
    path = pair_paths(case, root).edits
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"case": case, "edits": rows})


def test_the_summary_pools_every_case_and_applies_the_params_targets(tmp_path: Path) -> None:
    """Gaps and peak errors are pooled over the cases' edits (not averaged per case), and
    the targets come from the pair_targets section: a stricter one turns a pass into a miss."""
    _scored(tmp_path, "a", [_row("a", 1, 30.0, 32.0, peaks=(10.0, -50.0)),
                            _row("a", 2, 28.0, 32.0, peaks=(20.0,))])
    _scored(tmp_path, "b", [_row("b", 1, 29.0, 30.0, peaks=(30.0,), sharpness=0.7)])
    assert list(pooled_cases(pair_paths(None, tmp_path).folder)) == ["a", "b"]
    out = run_pair_summary(tmp_path, PairTargets())
    summary = json.loads(pair_paths(None, tmp_path).summary.read_text())
    assert summary["case_names"] == ["a", "b"] and summary["cases"] == 2
    assert summary["edits"] == 3
    # kept: mean over cases (32, 30) = 31; edited: mean over edits (30, 28, 29) = 29
    assert summary["psnr_gap_db"] == pytest.approx(2.0)
    assert summary["peak_error_ms_edited"] == pytest.approx(25.0)  # median of 10 50 20 30
    assert summary["sharpness_ratio"] == pytest.approx(0.9)
    assert all(summary["targets_met"].values()) and "warnings" not in out
    strict = run_pair_summary(tmp_path, PairTargets(psnr_gap_db=1.5, peak_error_ms=20.0))
    met = json.loads(pair_paths(None, tmp_path).summary.read_text())["targets_met"]
    assert not met["psnr_gap_db"] and not met["peak_error_ms"] and met["opening_r"]
    assert "psnr_gap_db" in strict["warnings"][0] and "peak_error_ms" in strict["warnings"][0]
    text = pair_paths(None, tmp_path).summary_md.read_text()
    assert "| PSNR gap kept - edited (dB) | <= 1.5 | 2 |" in text
    assert "| b | 1 | w1 | 0.95 | 0.9 | 0.9 | 29 | 30 | 1 |" in text  # one line per edit


def test_a_summary_with_no_scored_pair_names_the_pipeline_to_run(tmp_path: Path) -> None:
    with pytest.raises(TalkeditError, match="no scored pair") as err:
        run_pair_summary(tmp_path, PairTargets())
    assert "dvc repro quality/dvc.yaml" in err.value.fix
    assert not pair_paths(None, tmp_path).summary.exists()


def test_the_pipeline_runs_a_pair_per_scored_case() -> None:
    """quality/dvc.yaml runs a pair per case of pair_cases: (the scored cases, never the
    development ones), reading the root's params.yaml."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["pair_cases"] == [c.name for c in CASES]
    assert [find_case(c).name for c in params["pair_cases"]] == params["pair_cases"]
    pipeline = yaml.safe_load((REPO / "quality" / "dvc.yaml").read_text())
    assert pipeline["stages"]["pairclip"]["foreach"] == "${pair_cases}"
    assert pipeline["stages"]["pairedit"]["foreach"] == "${pair_cases}"
    assert pipeline["vars"] == ["../params.yaml"]
    with pytest.raises(TalkeditError, match="not a case"):
        find_case("pair-nobody")


def test_a_short_pair_is_built_edited_and_scored(tmp_path: Path) -> None:
    """The pair stages' path on a short case (a 40-step renderer): every new segment is
    scored against the truth, the kept footage beside it, and written as metrics, plots
    and edits. The yardstick tells the half-trained renderer's new words from the kept
    footage: their mouth PSNR is lower by more than a decibel."""
    import dataclasses

    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.evaluate.edit_truth import summarize_pairs
    from stages.pairs.clip import ClipSections, prepare_clip
    from stages.pairs.edit import EditSections, plot_table, run_edit, score_case

    case = PairCase("pair-short", "astronaut", "en-us", 160, 4,
                    "The small boat sails across the lake every morning. Two birds sit on "
                    "the rope and watch the water move.",
                    (("sit on", "rest near"), ("water", "sunlight")))
    clip = ClipSections.of(**load_sections(ALL_BY_NAME["pairclip"], REPO,
                                           {"pair": {"steps": 40}}))
    clip = dataclasses.replace(clip, train=dataclasses.replace(
        clip.train, checkpoint_every=1000, eval_frames=50))
    # Signed by the project's credentials (here the test's own folder), never the pair's.
    project = tmp_path / "project"
    edit = EditSections.of(**load_sections(ALL_BY_NAME["pairedit"], REPO), project=project)
    assert Path(edit.watermark.c2pa_key).is_relative_to(project)
    prepare_clip(case, tmp_path, clip)
    assert clip.train.holdout_share == 0.1 and clip.align.on_mismatch == "mark"
    took = run_edit(case, tmp_path, edit)
    assert set(took) == {"plan", "audio", "render", "composite"}
    rows = score_case(case, tmp_path, "exact", tmp_path / "scoring" / "drawn.mp4")
    assert (tmp_path / "scoring" / "drawn.mp4").is_file()
    assert not (tmp_path / ".talkedit").exists()
    assert [r["words"] for r in rows] == ["rest near", "sunlight"]
    table = plot_table(rows)
    assert list(table.columns) == list(PLOT_COLUMNS) and len(table) == 2
    summary = summarize_pairs(rows)
    print({k: summary[k] for k in ("opening_r_edited", "psnr_db_edited", "psnr_db_kept",
                                   "psnr_gap_db", "repeats", "sharpness_ratio")})
    assert summary["repeats"] == 0
    assert 15.0 < summary["psnr_db_edited"] < summary["psnr_db_kept"] - 1.0 < 60.0
    assert pd.notna(table["opening_r"]).all()


def test_the_benchmark_overrides_the_edit_sections_it_is_given() -> None:
    """benchmarks/edit_quality.py --set: typed overrides of the edit path's sections, the
    rest as params.yaml sets them; a key that is not section.key is refused."""
    from benchmarks import edit_quality

    overrides = edit_quality.parse_overrides(["mouth.strength=0", "plan.lip_shape=0.25"])
    assert overrides == {"mouth": {"strength": 0}, "plan": {"lip_shape": 0.25}}
    with pytest.raises(ValueError, match="section.key=value"):
        edit_quality.parse_overrides(["plan.search.viseme=1"])
    base = edit_quality.edit_sections()
    edit_quality.edit_sections.cache_clear()
    edit_quality.EDIT_OVERRIDES.update(overrides)
    try:
        changed = edit_quality.edit_sections()
    finally:
        edit_quality.EDIT_OVERRIDES.clear()
        edit_quality.edit_sections.cache_clear()
    assert changed.mouth.strength == 0 and changed.plan.lip_shape == 0.25
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert base.mouth.strength == params["mouth"]["strength"] != 0
    assert base.plan.lip_shape == params["plan"]["lip_shape"] != 0.25
    assert changed.plan.articulation == base.plan.articulation
