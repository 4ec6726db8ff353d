"""Audio-driven lip sync: features, the per-clip model (held-out scores, same bytes), jobs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from stages.lipsync import LipModelParams
from stages.lipsync.features import RATE, FeatureConfig, frame_features
from talkedit.artifacts import LipModelPaths
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize
from tests.conftest import REPO

FAST = dict(steps=200, eval_every=100)  # a short training: the test checks behaviour, not the best r


def _speech(text: str, rate_wpm: int = 150, voice: str = "en-us") -> np.ndarray:
    syn = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    x = syn.samples / 32768.0
    return resample_poly(x, RATE, syn.sample_rate) if syn.sample_rate != RATE else x


def test_telephone_band_audio_gives_the_same_features() -> None:
    """The mel bank stops at 4 kHz, so 8 kHz audio feeds the model what 16 kHz audio does."""
    x = _speech("The quick brown fox jumps over the lazy dog near the river bank.")
    narrow = resample_poly(resample_poly(x, 1, 2), 2, 1)
    cfg = FeatureConfig()
    n = int(len(x) / RATE * 25)
    wide_f, narrow_f = frame_features(x, n, 25.0, cfg), frame_features(narrow, n, 25.0, cfg)
    assert wide_f.shape == (n, cfg.dim) and np.isfinite(wide_f).all()
    r = np.corrcoef(wide_f[:, :cfg.n_mfcc].ravel(), narrow_f[:, :cfg.n_mfcc].ravel())[0, 1]
    assert r > 0.95
    silent = frame_features(np.zeros(RATE), 25, 25.0, cfg)
    assert np.isfinite(silent).all()


@pytest.fixture(scope="module")
def lip_root(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fitted demo in a root of its own (the lip model writes under data/models/)."""
    root = tmp_path_factory.mktemp("lipsync_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for sub in ("raw", "interim"):
        shutil.copytree(indexed_demo_root / "data" / sub, root / "data" / sub)
    return root


def test_lip_model_beats_the_level_baseline_on_held_out_frames_and_is_reproducible(
        lip_root: Path) -> None:
    from stages.lipsync.train import run_lipmodel

    opts = dataclasses.replace(LipModelParams(), **FAST)
    paths = LipModelPaths.of("demo", lip_root)
    run_lipmodel("demo", lip_root, opts)
    first = hashlib.sha256(paths.model.read_bytes()).hexdigest()
    metrics = json.loads(paths.metrics.read_text())
    run_lipmodel("demo", lip_root, opts)
    assert hashlib.sha256(paths.model.read_bytes()).hexdigest() == first
    assert paths.metrics.read_text() == json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    # Held out: the last 35% of the frames, never trained on.
    assert metrics["frames"]["heldout"] == round(0.35 * sum(metrics["frames"].values()))
    kept = metrics[metrics["kept"]]
    assert kept["validation_loss"] <= min(metrics[k]["validation_loss"] for k in ("lstm", "tcn"))
    assert kept["opening_r"] > metrics["baseline_level"]["opening_r"] + 0.1
    assert kept["opening_r"] > 0.7
    assert kept["expression_rmse_sd"] < metrics["baseline_mean"]["expression_rmse_sd"]
    assert kept["truth_jaw_r"] > 0.6
    losses = paths.losses.read_text().splitlines()
    assert losses[0].split("\t")[0] == "step" and len(losses) == 1 + 2


def test_a_clip_too_short_to_train_on_is_refused(lip_root: Path) -> None:
    from stages.lipsync.train import run_lipmodel

    opts = dataclasses.replace(LipModelParams(), min_train_frames=10_000, **FAST)
    with pytest.raises(TalkeditError, match="min_train_frames"):
        run_lipmodel("demo", lip_root, opts)
