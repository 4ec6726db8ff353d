"""A covered mouth is found from colour, flagged as undetected, and kept out of the search."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.extract import ExtractParams, extract_clip
from stages.fit import FitParams, run_fit
from stages.fit.occlusion import FOREHEAD, LIP_REGION, LOWER_LIP, occlusion_scores
from stages.plan import footage_masks
from stages.plan.retime import FaceParams
from talkedit.params import load_section
from talkedit.scale import ScaleParams

REPO = Path(__file__).resolve().parents[1]


def test_scores_count_straying_lip_colours_not_lighting() -> None:
    n, n_points = 60, 478
    rng = np.random.default_rng(0)
    colours = np.full((n, n_points, 3), 150.0) + rng.normal(0, 1.0, (n, n_points, 3))
    colours[:, list(LIP_REGION)] = [170, 90, 90] + rng.normal(0, 1.0, (n, len(LIP_REGION), 3))
    colours *= np.linspace(0.7, 1.3, n)[:, None, None]  # a lighting change: must not count
    colours[30:35, list(LIP_REGION)[::2]] = [205, 150, 120]  # an object over both lips
    colours[40:45, list(LOWER_LIP)] = [60, 20, 25]  # a wide-open mouth: only the lower lip
    detected = np.ones(n, bool)
    detected[50] = False
    flat = np.clip(colours, 0, 255).astype(np.uint8).reshape(n, -1)
    scores = occlusion_scores(detected, lambda a, b: flat[a:b], n_points, 16, 6.0)
    assert np.isnan(scores[50])
    assert (scores[30:35] > 0.4).all()
    clear = np.r_[0:30, 35:50, 51:60]  # the open mouth included
    assert scores[clear].max() < 0.1
    assert max(FOREHEAD) < n_points


def test_search_reads_only_measured_frames() -> None:
    class Index:  # the two fields footage_masks reads
        start_s = np.array([0.0, 0.4, 0.8])
        end_s = np.array([0.4, 0.8, 1.2])
        usable = np.ones(3, bool)

    n = 30
    measured = np.ones(n, bool)
    measured[12:15] = False  # interpolated over a covered mouth
    face = FaceParams(np.zeros((n, 3)), np.zeros((n, 3)), np.ones(n), np.zeros((n, 64)),
                      np.zeros((n, 27)), np.ones(n, bool), measured)
    blocked, allowed = footage_masks(Index(), face, (), 25.0)
    assert blocked.tolist() == [False, True, False]
    assert not allowed[12:15].any() and allowed[:12].all()


@pytest.fixture(scope="module")
def occluded_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stages.demo import DemoParams, generate_demo
    from stages.demo.stress import StressParams

    root = tmp_path_factory.mktemp("occluded")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "t.txt").write_text("We measured every step, from the sound of each word to the "
                                "shape of the mouth.\n")
    generate_demo(root, DemoParams(name="occ", text=str(root / "t.txt"), size=256,
                                   stress=StressParams(occlude_at_s=1.5, occlude_s=0.5,
                                                       flicker=0.2, blink_every_s=1.5)))
    extract_clip("occ", root, load_section(ExtractParams, root))
    return root


def test_fit_flags_the_frames_an_object_covers(occluded_clip: Path) -> None:
    root = occluded_clip
    summary = run_fit("occ", root, load_section(FitParams, root), ScaleParams())
    face = pd.read_parquet(root / "data" / "interim" / "occ" / "face.parquet",
                           columns=["detected", "interpolated"])
    truth = pd.read_parquet(root / "data" / "raw" / "occ.truth_stress.parquet")
    covered = truth["occluded_share"].to_numpy() > 0.4
    clear = truth["occluded_share"].to_numpy() == 0
    assert covered.sum() >= 3
    # Every mostly-covered frame is flagged (interpolated, not detected); no clear frame is,
    # through a flicker of +-20 % and blinks.
    assert not face["detected"].to_numpy()[covered].any()
    assert face["interpolated"].to_numpy()[covered].all()
    assert face["detected"].to_numpy()[clear].all()
    assert summary["occluded_frames"] >= covered.sum()
    assert "1." in summary["occluded_ranges"]
