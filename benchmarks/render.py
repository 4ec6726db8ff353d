"""Speed of the neural face renderer: training steps/s and rendering frames/s.

    .venv/bin/python benchmarks/render.py [--work DIR] [--steps 20] [--frames 250]

On the demo clip (extracted and fitted into --work once, shared with
benchmarks/render_quality.py), for the CPU (the ``cpu`` profile) and, when torch
sees one, a GPU (the ``gpu`` profile, named in the output):

* training: ``--steps`` optimizer steps of the train stage's Trainer after 3
  warm-up steps (steps/s and frames/s = steps x batch x seq_len);
* rendering: the render stage (run_render) on a plan that re-renders
  ``--frames`` clip frames with other frames' expressions, every frame edited
  (frames/s of the generation loop: conditioning, generator, writing).

The generator is the trained one in --work when its config matches, else one
trained for a single step (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.render_quality import CLIP, fitted_demo, train_params  # noqa: E402


def bench_training(root: Path, params: dict, steps: int) -> dict:
    import torch

    from stages.render.conditioning import Box, FaceRenderer
    from stages.render.config import TrainParams, pick_device, set_threads
    from stages.render.data import load_clip
    from stages.render.train import Trainer, split_frames

    cfg = TrainParams.from_dict(params)
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    model, data = load_clip(CLIP, root, cfg.size)
    split = split_frames(data, cfg)
    pad = FaceRenderer(model, cfg.size, cfg.mask_dilate, cfg.mask_feather).dilate_px
    box = Box.around(data.outlines[split.train], cfg.size, pad + cfg.box_margin * cfg.size,
                     2 ** cfg.gen_depth)
    trainer = Trainer(cfg, model, data, split, box, device)
    for _ in range(3):
        trainer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.step()
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"device": device, "size": cfg.size, "box": (box.height, box.width),
            "steps_per_s": steps / wall, "frames_per_s": steps * cfg.batch * cfg.seq_len / wall,
            "cpu_s_per_step": cpu / steps, "threads": torch.get_num_threads()}


def bench_render(root: Path, params: dict, frames: int, device: str) -> dict:
    import numpy as np

    from stages.render.checkpoint import Stamp
    from stages.render.config import RenderParams, TrainParams
    from stages.render.interior import MouthParams
    from stages.render.render import reenactment_plan, run_render
    from stages.render.train import run_train
    from talkedit.artifacts import PLAN, EditPaths, ModelPaths, write_parquet
    from talkedit.scale import ScaleParams

    cfg = TrainParams.from_dict(params)
    generator = ModelPaths.of(CLIP, root).generator
    if not generator.is_file() or Stamp.read(generator)[0].config.config_hash != cfg.config_hash:
        profile = params["profile"]
        run_train(CLIP, root, TrainParams.from_dict(
            params | {profile: {**params.get(profile, {}), "steps": 1}, "resume": False}))
    edit = f"bench_{params['profile']}"
    EditPaths.of(edit, root).spec.parent.mkdir(parents=True, exist_ok=True)  # data/edits/<edit>/
    EditPaths.of(edit, root).spec.write_text(f"clip: {CLIP}\ntext: benchmark\n")
    bg = np.arange(100, 100 + frames)  # expressions from the same span, played backwards
    plan = reenactment_plan(CLIP, root, bg, bg[::-1].copy(), np.ones(frames, bool))
    write_parquet(plan, PLAN, EditPaths.of(edit, root).plan)
    summary = run_render(edit, root, RenderParams(device=device, threads=cfg.threads),
                         MouthParams(), ScaleParams())
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-render"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--frames", type=int, default=250)
    args = ap.parse_args()

    import torch

    root = fitted_demo(args.work)
    runs = [("cpu", "cpu")]
    if torch.cuda.is_available():
        runs.append(("gpu", "cuda"))
    for profile, device in runs:
        params = train_params(profile, None) | {"device": device}
        name = torch.cuda.get_device_name() if device == "cuda" else \
            f"CPU ({os.cpu_count()} cores visible)"
        tr = bench_training(root, params, args.steps)
        print(f"[{profile} profile on {name}] training: {tr['steps_per_s']:.2f} steps/s = "
              f"{tr['frames_per_s']:.1f} frames/s at {tr['size']} px (generator box "
              f"{tr['box'][0]}x{tr['box'][1]}), {tr['cpu_s_per_step']:.2f} CPU s/step on "
              f"{tr['threads']} threads", flush=True)
        rd = bench_render(root, params, args.frames, device)
        print(f"[{profile} profile on {name}] rendering: {rd['frames_per_s']:.1f} frames/s "
              f"({rd['frames']} frames, {rd['streams']} stream(s), {rd['seconds']:.1f} s; "
              f"{rd['total_seconds']:.1f} s with loading)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
