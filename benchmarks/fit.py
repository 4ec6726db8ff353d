"""Benchmark the fit stage at 1280x720: landmarks alone vs the whole stage, and peak memory.

    .venv/bin/python benchmarks/fit.py [--work DIR] [--seconds 10 60 120] [--repeat 2]

Builds (once, cached in --work) a 720x720 demo clip padded to 1280x720 and
looped to each length, runs extract, then measures in fresh subprocesses:
* landmarks alone: decode + the landmarker over every frame, nothing else;
* the whole stage: ``run_fit`` (landmarks, crops, model, parameters, files);
* peak resident memory (ru_maxrss) of each whole-stage run.
Targets: whole stage >= 0.5x landmarks-alone speed and >= 20 frames/s at
720p on a 2-core machine; memory flat in clip length.

    .venv/bin/python benchmarks/fit.py --smoothing

instead compares raw and smoothed parameters on a fast-speech demo clip:
lag and jitter of the mouth against the generator's truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEXT = ("Every frame of this clip gets a face model with pose, expression and light, "
        "so later steps can search, blend and render the mouth again.")
WIDTH, HEIGHT, FPS = 1280, 720, 25


def make_clip(work: Path, seconds: int) -> str:
    """data/raw/bench<seconds>.mp4: the 720 px demo face, padded to 1280x720, looped."""
    from stages.demo import DemoParams, generate_demo
    from stages.extract import ExtractParams, extract_clip

    name = f"bench{seconds}"
    raw = work / "data" / "raw"
    if (work / "data" / "interim" / name / "video.json").is_file():
        return name
    base = raw / "base720.mp4"
    if not base.is_file():
        raw.mkdir(parents=True, exist_ok=True)
        (work / "base.txt").write_text(TEXT + "\n")
        generate_demo(work, DemoParams(name="base720", text=str(work / "base.txt"), size=720),
                      out_dir=raw)
    with av.open(str(base)) as src:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in src.decode(audio=0)])
        rate = src.streams.audio[0].rate
    n = seconds * FPS
    with av.open(str(raw / f"{name}.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(FPS))
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = {"crf": "20", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "mono"
        k = 0
        while k < n:  # loop the base clip, streaming (a small jump at each loop)
            with av.open(str(base)) as src:
                for frame in src.decode(video=0):
                    if k >= n:
                        break
                    image = frame.to_ndarray(format="rgb24")
                    pad = (WIDTH - image.shape[1]) // 2
                    image = np.pad(image, ((0, 0), (pad, pad), (0, 0)), mode="edge")
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    frame.pts = k
                    out.mux(vs.encode(frame))
                    k += 1
        out.mux(vs.encode(None))
        loops = int(np.ceil(seconds * rate / len(audio)))
        pcm = np.tile(audio, loops)[: seconds * rate].astype(np.float32)
        for a in range(0, len(pcm), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm[None, a:a + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = rate, a
            out.mux(aus.encode(chunk))
        out.mux(aus.encode(None))
    (raw / f"{name}.txt").write_text(TEXT + "\n")
    extract_clip(name, work, ExtractParams())
    return name


def smoothing_report(work: Path, rate_wpm: int = 230) -> None:
    """Raw vs smoothed parameters on fast speech: lag and jitter of the mouth, against truth."""
    from stages.demo import DemoParams, generate_demo
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import (
        FitParams,
        frame_parameters,
        load_fit,
        mouth_opening,
        rebuild_landmarks,
        run_fit,
    )
    from stages.fit.model import Pose
    from stages.fit.smoothing import jitter, lag_frames, smooth, still_frames
    from talkedit.params import load_section
    from talkedit.scale import ScaleParams

    name = f"fast{rate_wpm}"
    raw = work / "data" / "raw"
    if not (raw / f"{name}.mp4").is_file():
        generate_demo(work, DemoParams(name=name, rate_wpm=rate_wpm, seed=3), out_dir=raw)
    extract_clip(name, work, ExtractParams())
    opts = load_section(FitParams, REPO)
    run_fit(name, work, dataclasses.replace(opts, smoothing="none"), ScaleParams())
    model, table = load_fit(name, work)
    pose, expr = frame_parameters(table)
    import pandas as pd

    jaw = pd.read_parquet(raw / f"{name}.truth_frames.parquet")["jaw_open"].to_numpy()
    still = still_frames(jaw)
    fps = float(FPS)
    pose7 = np.column_stack([pose.rotation, pose.translation, np.log(pose.scale)])
    print(f"smoothing on fast speech ({rate_wpm} wpm demo, {len(jaw)} frames, {still.sum()} "
          f"frames with a still mouth); lag vs truth jaw_open (+ = late), jitter = RMS "
          f"frame-to-frame change where the truth is still")
    for method in ("none", "savgol", "one_euro"):
        e = smooth(expr, method, fps, opts.expression_window_ms, opts.smoothing_order)
        p7 = smooth(pose7, method, fps, opts.pose_window_ms, opts.smoothing_order)
        p = Pose(p7[:, :3], p7[:, 3:6], np.exp(p7[:, 6]))
        mouth = mouth_opening(rebuild_landmarks(model, p, e)[..., :2])
        roughness = float(np.sqrt(np.mean(np.diff(p7[:, 3:5], n=2, axis=0) ** 2)))
        lag = lag_frames(mouth, jaw)
        print(f"  {method:9s} mouth: lag {lag:+.2f} frames ({lag / fps * 1000:+.0f} ms), jitter "
              f"{jitter(mouth, still):.5f}, corr with truth {np.corrcoef(mouth, jaw)[0, 1]:.3f};"
              f" head position roughness {roughness:.3f} px/frame^2")


def child(mode: str, clip: str, work: Path) -> dict:
    """Run in a subprocess: one measurement, printed as JSON."""
    from stages.fit import FitParams, prefetch
    from stages.fit.landmarks import make_landmarker
    from talkedit.params import load_section
    from talkedit.video import FrameStore

    params = load_section(FitParams, REPO)
    t0 = time.perf_counter()
    if mode == "landmarks":
        store = FrameStore.for_clip(clip, work)
        n = 0
        with make_landmarker(params.landmarker_params()) as lm:
            for _, image in prefetch(store.iter_frames()):
                lm.detect(image)
                n += 1
        out = {"frames": n}
    else:
        from stages.fit import run_fit
        from talkedit.scale import ScaleParams

        out = run_fit(clip, work, params, ScaleParams())
    out["seconds"] = time.perf_counter() - t0
    out["fps"] = out["frames"] / out["seconds"]
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(mode: str, clip: str, work: Path, repeat: int) -> dict:
    """The fastest of ``repeat`` fresh-process runs (the machine may be shared)."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, clip, "--work",
                               str(work)], capture_output=True, text=True, check=True, cwd=REPO)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = max(runs, key=lambda r: r["fps"])
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-fit"))
    ap.add_argument("--seconds", type=int, nargs="+", default=[10, 60, 120])
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts")
    ap.add_argument("--smoothing", action="store_true",
                    help="instead: raw vs smoothed parameters on a fast-speech demo clip")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "CLIP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        os.environ.setdefault("GLOG_minloglevel", "2")
        print(json.dumps(child(*args.child, args.work), default=float))
        return
    if args.smoothing:
        smoothing_report(args.work)
        return
    print(f"fit benchmark, {WIDTH}x{HEIGHT} @ {FPS} fps, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, best of {args.repeat}")
    clips = {s: make_clip(args.work, s) for s in args.seconds}
    lm = measure("landmarks", clips[args.seconds[0]], args.work, args.repeat)
    print(f"landmarks alone ({args.seconds[0]} s clip, {lm['frames']} frames): "
          f"{lm['fps']:.1f} frames/s, peak {lm['peak_rss_mb']:.0f} MB")
    for s, clip in clips.items():
        r = measure("stage", clip, args.work, args.repeat)
        print(f"whole stage ({s} s clip, {r['frames']} frames): {r['fps']:.1f} frames/s "
              f"({r['fps'] / lm['fps']:.2f}x landmarks alone; landmark pass "
              f"{r['landmark_pass_fps']:.1f} frames/s), peak {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
