"""Benchmark the fit stage on Dask: frames/s with 1 and 2 workers against one process.

    .venv/bin/python benchmarks/scale.py [--work DIR] [--seconds 20] [--chunk 100]

Builds (once, cached in --work) a 1280x720 demo clip of --seconds (benchmarks/fit.py's),
then runs the fit stage's flow three times on it, each into a fresh copy of the
extracted clip, all with the same chunking (``scale.chunk_frames``), so all three
write the same bytes (checked):
* baseline: the local runner (the chunks one after another, in this process);
* Dask, 1 worker and 2 workers (prefect-dask's local cluster; worker start-up included).
Prints the whole stage's frames/s and each run's ratio to the baseline. Only the
landmark detection is spread over workers; the crops, the model and the files are
made in the flow's own process after it, which bounds the gain (Amdahl).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.fit import make_clip  # noqa: E402

OUTPUTS = ("face.parquet", "face_model.safetensors", "crops/crops.mp4")


def digest(interim: Path) -> str:
    h = hashlib.sha256()
    for name in OUTPUTS:
        h.update((interim / name).read_bytes())
    return h.hexdigest()[:16]


def fit_once(work: Path, clip: str, scale: dict) -> tuple[float, int, str]:
    """Seconds, frames and output digest of one fit flow run in a fresh copy of the clip."""
    from flows.registry import BY_NAME
    from flows.stage import run_stage_flow

    root = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for part in ("raw", "interim"):
        (root / "data" / part).mkdir(parents=True)
    shutil.copy(work / "data" / "raw" / f"{clip}.mp4", root / "data" / "raw" / f"{clip}.mp4")
    src = work / "data" / "interim" / clip
    dst = root / "data" / "interim" / clip
    dst.mkdir()
    for name in ("frames.parquet", "video.json"):
        shutil.copy(src / name, dst / name)
    t0 = time.perf_counter()
    summary = run_stage_flow(BY_NAME["fit"], clip, root, {"scale": scale})
    seconds = time.perf_counter() - t0
    out = digest(dst)
    shutil.rmtree(root)
    return seconds, int(summary["frames"]), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / ".tmp" / "bench_scale")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=100)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.work, args.seconds)
    runs = {"local (1 process)": {"task_runner": "local"},
            "dask, 1 worker": {"task_runner": "dask", "dask_workers": 1},
            "dask, 2 workers": {"task_runner": "dask", "dask_workers": 2}}
    results = {}
    for label, scale in runs.items():
        results[label] = fit_once(args.work, clip, {**scale, "chunk_frames": args.chunk})
    base_s, frames, base_digest = results["local (1 process)"]
    print(f"fit stage, {frames} frames at 1280x720, chunks of {args.chunk}, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'run':<20} {'seconds':>8} {'frames/s':>9} {'vs local':>9}  same bytes")
    for label, (seconds, _, out) in results.items():
        print(f"{label:<20} {seconds:8.1f} {frames / seconds:9.1f} {base_s / seconds:8.2f}x"
              f"  {out == base_digest}")


if __name__ == "__main__":
    main()
