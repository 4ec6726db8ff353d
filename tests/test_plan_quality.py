"""The plan's quality screen: a poor edit says why instead of looking finished."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stages.plan import PlanParams
from stages.plan.quality import quality_estimate


def test_a_clean_plan_scores_one() -> None:
    assert quality_estimate([0.0, 0.0, 0.0], 0.5, 0.6, 0.0) == (1.0, [])


def test_each_weakness_lowers_the_estimate_and_is_named() -> None:
    quality, reasons = quality_estimate([0.0, 0.4, 0.0, 0.7], 1.2, 0.6, 0.25)
    # half the pieces approximate, a join twice the clip's p99 change, a quarter of the
    # words low-confidence: 0.5 * 0.5 * 0.75
    assert quality == pytest.approx(0.1875)
    assert len(reasons) == 3 and "50% of the pieces" in reasons[0]
    assert "2.0x" in reasons[1] and "25% of the clip's words" in reasons[2]
    assert quality < PlanParams().min_quality


def test_a_noisy_clip_scales_the_estimate_and_is_named() -> None:
    quality, reasons = quality_estimate([0.0, 0.0], 0.5, 0.6, 0.0, snr_db=16.0, noisy_snr_db=20.0)
    assert quality == pytest.approx(0.8)
    assert len(reasons) == 1 and "noisy (speech 16 dB over the noise floor" in reasons[0]
    assert quality_estimate([0.0], 0.5, 0.6, 0.0, snr_db=35.0) == (1.0, [])


def test_an_edit_of_a_noisy_clip_says_so_in_its_summary_and_report(
        indexed_demo_root: Path, tmp_path: Path) -> None:
    """The demo clip with white noise at 10 dB (align measures ~16 dB over its floor): the
    edit's summary and its report carry the warning; the same edit of the clean clip does
    not (issue 15: a poor edit says so instead of looking finished)."""
    import dataclasses

    from stages.align import AlignParams, run_align
    from stages.audio.config import AudioParams
    from stages.audio.dsp import read_clip_audio, write_wav
    from stages.demo.stress import StressParams, degrade_audio
    from stages.plan import run_plan
    from talkedit.artifacts import ClipPaths, EditPaths
    from tests.conftest import REPO, repo_section, write_edit

    spec = {"clip": "demo", "operations": [{"replace": "small research team",
                                            "with": "weekly video lab"}]}
    align = dataclasses.replace(repo_section(AlignParams), on_mismatch="mark")
    warned = {}
    for label, snr_db in (("clean", None), ("noisy", 10.0)):
        root = tmp_path / label
        root.mkdir()
        shutil.copy(REPO / "params.yaml", root / "params.yaml")
        for part in ("raw", "interim"):
            shutil.copytree(indexed_demo_root / "data" / part, root / "data" / part)
        paths = ClipPaths.of("demo", root)
        if snr_db is not None:
            clip = read_clip_audio(paths.audio)
            samples = np.array(clip.samples)
            noisy, _ = degrade_audio(samples, clip.sample_rate, (0, len(samples)),
                                     StressParams(noise="white", snr_db=snr_db), "en-us",
                                     np.random.default_rng(0))
            write_wav(paths.audio, noisy, clip.sample_rate)
        run_align("demo", root, align)
        write_edit(root, "e", spec)
        summary = run_plan("e", root, repo_section(PlanParams), align,
                           repo_section(AudioParams))
        report = EditPaths.of("e", root).summary.read_text()
        warned[label] = ([w for w in summary["warnings"] if "sound is noisy" in w],
                         "sound is noisy" in report, summary["quality_estimate"])
    assert warned["clean"][0] == [] and not warned["clean"][1]
    (message,), in_report, quality = warned["noisy"]
    assert in_report and "Review the result" in message
    assert quality < warned["clean"][2] * 0.9  # ~16/20 of the clean clip's estimate
