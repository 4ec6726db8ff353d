"""Held-out quality of the neural face renderer on the demo clip, against two baselines.

    .venv/bin/python benchmarks/render_quality.py [--work DIR] [--profile cpu] [--steps N]

Extracts and fits the demo clip into --work (data/raw/demo.* copied from the
repo, or generated), trains the renderer with the chosen profile of
params.yaml (the train stage, run_train; rerunning resumes or, when finished,
only re-scores), and prints what its metrics.json says about the held-out last
10% of the clip: mouth-region PSNR and SSIM of

* the network (rendered recurrently over the held-out span),
* baseline a: the conditioning image itself (synthetic face over the masked background),
* baseline b: the training frame with the nearest expression, pasted into the mask,

and the frame-to-frame change of the mouth region against the real footage's.
Targets: the network beats both baselines' PSNR by >= 1 dB; its temporal
change is within 1.5x the real footage's. Exits 1 when a target is missed.
Training time is reported as wall time and as CPU time / threads (on a busy
shared machine the wall time says more about the neighbours than the code).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIP = "demo"
MIN_GAIN_DB = 1.0
MAX_TEMPORAL_RATIO = 1.5


def fitted_demo(work: Path) -> Path:
    """A project root in ``work`` holding the demo clip, extracted and fitted (cached)."""
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from talkedit.artifacts import ClipPaths
    from talkedit.params import load_section
    from talkedit.scale import ScaleParams

    paths = ClipPaths.of(CLIP, work)
    if paths.face.is_file() and paths.face_model.is_file():
        return work
    raw = work / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    names = [f"{CLIP}.mp4", f"{CLIP}.txt"]
    if all((REPO / "data" / "raw" / n).is_file() for n in names):
        for n in names:
            shutil.copy2(REPO / "data" / "raw" / n, raw / n)
    else:
        from stages.demo import DemoParams, generate_demo

        generate_demo(work, DemoParams())
    extract_clip(CLIP, work, load_section(ExtractParams, REPO))
    run_fit(CLIP, work, load_section(FitParams, REPO), ScaleParams())
    return work


def train_params(profile: str, steps: int | None) -> dict:
    from talkedit.params import raw_section

    params = raw_section("train", REPO) | {"profile": profile}
    if steps is not None:
        params[profile] = {**(params.get(profile) or {}), "steps": steps}
    return params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-render"))
    ap.add_argument("--profile", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--steps", type=int, default=None, help="override the profile's steps")
    args = ap.parse_args()

    import torch

    from stages.render.config import TrainParams
    from stages.render.train import run_train
    from talkedit.artifacts import ModelPaths

    root = fitted_demo(args.work)
    params = train_params(args.profile, args.steps)
    cfg = TrainParams.from_dict(params)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run_train(CLIP, root, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = json.loads(ModelPaths.of(CLIP, root).metrics.read_text())
    threads = torch.get_num_threads()

    print(f"\nrender quality: clip {CLIP}, profile {cfg.profile} ({cfg.size} px, "
          f"{metrics['steps']} steps, config {cfg.config_hash}), device {summary['device']}")
    print(f"held out: {metrics['heldout_frames']} frames (the last {cfg.holdout_share:.0%}); "
          f"trained on {metrics['train_frames']}")
    print(f"{'':24}{'PSNR dB':>9}{'SSIM':>8}{'change':>9}")
    names = {"network": "network", "conditioning": "a: conditioning image",
             "nearest_frame": "b: nearest-expr. frame"}
    for key, label in names.items():
        print(f"{label:24}{metrics['psnr_db'][key]:9.2f}{metrics['ssim'][key]:8.3f}"
              f"{metrics['temporal_change'][key]:9.2f}")
    print(f"{'real footage':24}{'':17}{metrics['temporal_change']['real']:9.2f}")
    gains = metrics["psnr_gain_db"]
    ratio = metrics["temporal_change"]["ratio"]
    print(f"PSNR gain: {gains['vs_conditioning']:+.2f} dB vs a, {gains['vs_nearest_frame']:+.2f} "
          f"dB vs b (target >= +{MIN_GAIN_DB} dB); temporal change ratio {ratio:.2f} "
          f"(target <= {MAX_TEMPORAL_RATIO})")
    if summary.get("resumed_from") is not None:
        print(f"(resumed from step {summary['resumed_from']}: times below cover this run only)")
    print(f"training: {summary['train_seconds']:.0f} s wall in the loop; this run "
          f"{wall:.0f} s wall, {cpu:.0f} s CPU on {threads} threads "
          f"= {cpu / threads / 60:.1f} min of {threads} dedicated cores")
    ok = (min(gains.values()) >= MIN_GAIN_DB) and ratio <= MAX_TEMPORAL_RATIO
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
