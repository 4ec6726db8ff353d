"""The plan's self-check (stages/plan/selfcheck.py): hidden stretches of the clip re-created
by the planner and scored against the clip's fitted opening; a low r warns (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.plan import PlanParams, run_plan
from stages.plan.quality import quality_estimate
from talkedit.artifacts import EditPaths
from tests.conftest import REPO, repo_section

SELF_CHECK_REASON = "re-creating stretches of the clip's own speech"


def test_a_low_self_check_scales_the_estimate_and_says_so() -> None:
    quality, reasons = quality_estimate([0.0], 0.5, 0.6, 0.0, self_check_r=0.6,
                                        min_self_check_r=0.8)
    assert abs(quality - 0.75) < 1e-9
    assert len(reasons) == 1 and SELF_CHECK_REASON in reasons[0] and "0.600" in reasons[0]
    assert quality_estimate([0.0], 0.5, 0.6, 0.0, self_check_r=0.85,
                            min_self_check_r=0.8) == (1.0, [])
    quality, (reason,) = quality_estimate([0.0], 0.5, 0.6, 0.0, self_check_room=False)
    assert quality == 0.5 and "no stretch as long as the new words" in reason


def test_short_footage_fails_the_self_check_and_the_demo_edit_passes(
        indexed_demo_root: Path, tmp_path: Path) -> None:
    """The bundled demo edit on the whole clip: its self-check r is at least
    plan.self_check.min_r and it warns about nothing. The demo's fifth sentence said anew
    from ~6 s of footage (the first sentence; benchmarks/footage.py: r 0.58 vs truth):
    the self-check's r is under min_r and the summary and report say so."""
    from stages.evaluate.holdout import clip_sentences

    root = tmp_path / "p"
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for part in ("raw", "interim"):
        shutil.copytree(indexed_demo_root / "data" / part, root / "data" / part)
    sections = (repo_section(PlanParams), repo_section(AlignParams), repo_section(AudioParams))
    min_r = PlanParams().self_check.min_r

    paths = EditPaths.of("demo", root)
    paths.spec.parent.mkdir(parents=True)
    shutil.copy(REPO / "data/edits/demo/edit.yaml", paths.spec)
    summary = run_plan("demo", root, *sections)
    assert summary["self_check"]["r"] >= min_r and len(summary["self_check"]["spans"]) == 3
    assert summary["warnings"] == []

    sentences = clip_sentences("demo", root, 0.1)
    held = sentences[4]  # "The results look promising, but we still have a lot of work to do."
    paths = EditPaths.of("short", root)
    paths.spec.parent.mkdir(parents=True)
    paths.spec.write_text(yaml.safe_dump({
        "clip": "demo", "text": (root / "data/raw/demo.txt").read_text(),
        "resynthesize": [[held.first_written, held.last_written]],
        "exclude_s": [[round(h.exclude[0], 3), round(h.exclude[1], 3)]
                      for h in sentences[1:]]}))
    summary = run_plan("short", root, *sections)
    assert summary["self_check"]["r"] < min_r - 0.02
    (message,) = [w for w in summary["warnings"] if SELF_CHECK_REASON in w]
    assert "Review the result" in message and SELF_CHECK_REASON in paths.summary.read_text()
