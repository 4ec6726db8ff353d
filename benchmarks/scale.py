"""Benchmark the fit and composite stages on Dask: frames/s with 1 and 2 workers against
one process.

    .venv/bin/python benchmarks/scale.py [--work DIR] [--seconds 20] [--chunk 100]
                                         [--composite-edit demo] [--only fit|composite]

Builds (once, cached in --work) a 1280x720 demo clip of --seconds (benchmarks/fit.py's),
then runs the fit stage's flow three times on it, each into a fresh copy of the
extracted clip, all with the same chunking (``scale.chunk_frames``), so all three
write the same bytes (checked):
* baseline: the local runner (the chunks one after another, in this process);
* Dask, 1 worker and 2 workers (prefect-dask's local cluster; worker start-up included).
Prints the whole stage's frames/s and each run's ratio to the baseline. Only the
landmark detection is spread over workers; the crops, the model and the files are
made in the flow's own process after it, which bounds the gain (Amdahl).

Then the composite stage on the project's own edit (``--composite-edit``, built by
``make demo``; skipped when it is not there), copied into a scratch root: one pass
(the baseline), chunks in this process, and Dask with 1 and 2 workers; the painted frames
go back to the flow's process, which encodes them, so every run's video stream must
decode to the same frames (checked).
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


def composite_once(work: Path, edit: str, scale: dict) -> tuple[float, int, str]:
    """Seconds, frames and decoded-frames digest of one composite flow run (scratch root)."""
    import av

    from flows.registry import BY_NAME
    from flows.stage import run_stage_flow
    from talkedit.artifacts import EditPaths
    from talkedit.edits import load_spec

    clip = load_spec(edit, REPO).clip
    root = Path(tempfile.mkdtemp(dir=work, prefix="composite-"))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for part in (f"raw/{clip}.mp4", f"raw/{clip}.txt", f"interim/{clip}", f"models/{clip}",
                 f"edits/{edit}", f"plans/{edit}", f"renders/{edit}"):
        src, dst = REPO / "data" / part, root / "data" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    t0 = time.perf_counter()
    summary = run_stage_flow(BY_NAME["composite"], edit, root, {"scale": scale})
    seconds = time.perf_counter() - t0
    h = hashlib.sha256()
    with av.open(str(EditPaths.of(edit, root).output)) as container:
        for frame in container.decode(video=0):
            h.update(frame.to_ndarray(format="rgb24").tobytes())
    shutil.rmtree(root)
    return seconds, int(summary["frames"]), h.hexdigest()[:16]


def report(title: str, results: dict[str, tuple[float, int, str]], same: str) -> None:
    base = next(iter(results))
    base_s, frames, base_digest = results[base]
    print(title)
    print(f"{'run':<22} {'seconds':>8} {'frames/s':>9} {'vs base':>8}  {same}")
    for label, (seconds, _, out) in results.items():
        print(f"{label:<22} {seconds:8.1f} {frames / seconds:9.1f} {base_s / seconds:7.2f}x"
              f"  {out == base_digest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / ".tmp" / "bench_scale")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--composite-edit", default="demo")
    ap.add_argument("--only", choices=("fit", "composite"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.only != "composite":
        clip = make_clip(args.work, args.seconds)
        runs = {"local (1 process)": {"task_runner": "local"},
                "dask, 1 worker": {"task_runner": "dask", "dask_workers": 1},
                "dask, 2 workers": {"task_runner": "dask", "dask_workers": 2}}
        results = {}
        for label, scale in runs.items():
            results[label] = fit_once(args.work, clip, {**scale, "chunk_frames": args.chunk})
        frames = results["local (1 process)"][1]
        report(f"fit stage, {frames} frames at 1280x720, chunks of {args.chunk}, "
               f"{os.cpu_count()} CPU cores", results, "same bytes")
    if args.only == "fit":
        return
    edit = args.composite_edit
    if not (REPO / "data" / "renders" / edit).is_dir():
        print(f"composite: no data/renders/{edit} (run make demo first); skipped")
        return
    chunked = {"chunk_frames": args.chunk}
    painted = {
        "one pass": composite_once(args.work, edit, {"task_runner": "local"}),
        "local, chunks": composite_once(args.work, edit, {"task_runner": "local", **chunked}),
        "dask, 1 worker": composite_once(args.work, edit, {"task_runner": "dask",
                                                           "dask_workers": 1, **chunked}),
        "dask, 2 workers": composite_once(args.work, edit, {"task_runner": "dask",
                                                            "dask_workers": 2, **chunked}),
    }
    report(f"\ncomposite stage, edit {edit}, {painted['one pass'][1]} frames, chunks of "
           f"{args.chunk}", painted, "same frames")

if __name__ == "__main__":
    main()
