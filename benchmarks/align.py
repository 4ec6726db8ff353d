"""Benchmark of the align stage: boundary accuracy, speed (real-time factor) and memory.

    .venv/bin/python benchmarks/align.py [--lengths 60,600] [--workers 0]

1. Accuracy on the reference clips (stages.align.evaluate.REFERENCE_CLIPS: three
   voices, 135-185 wpm, different texts) against espeak-ng's own phone events.
   Boundaries into a voiceless stop are also shown apart: espeak starts those
   stops at the burst, the aligner at the closure (a convention, see
   stages.align.evaluate.CLOSURE_CONVENTION).
2. For each length, a synthetic recording is written as a 16 kHz WAV into a
   scratch project and aligned by ``run_align`` (the real stage: streaming
   reads, chunking, worker processes, artifacts) in a fresh process, which
   reports wall and CPU time and its peak memory (and its workers').
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.align.evaluate import SyntheticClip

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The stage's worker processes re-import this file (multiprocessing "spawn"), so the
# heavy imports live inside the functions: workers then show their own footprint.

VOICE, RATE_WPM = "en-us", 170


def accuracy() -> None:
    from stages.align import align_audio
    from stages.align.evaluate import (
        REFERENCE_CLIPS,
        BoundaryErrors,
        phone_boundary_errors,
        synthetic_clip,
        word_boundary_errors,
    )

    print("== Boundary accuracy vs espeak-ng truth (reference clips) ==")
    phones_all, words_all = [], []
    for text, voice, rate in REFERENCE_CLIPS:
        clip = synthetic_clip(text, voice, rate)
        words, phones = align_audio(clip.samples, text)
        pe, we = phone_boundary_errors(phones, clip.phones), word_boundary_errors(words, clip.words)
        phones_all.append(pe)
        words_all.append(we)
        print(f"{voice:11s} {rate} wpm {clip.duration_s:5.1f} s")
        print(f"  phones  {pe}")
        print(f"          excluding boundaries into voiceless stops: {pe.excluding()}")
        print(f"  words   {we}")
    pe, we = BoundaryErrors.concat(phones_all), BoundaryErrors.concat(words_all)
    print("all three")
    print(f"  phones  {pe}")
    print(f"          excluding boundaries into voiceless stops: {pe.excluding()}")
    print(f"  words   {we}")


def make_recording(seconds: float, root: Path, name: str) -> SyntheticClip:
    """A synthetic recording about ``seconds`` long, written as the stage's inputs."""
    import numpy as np

    from stages.align.evaluate import practice_text, synthetic_clip
    from talkedit.artifacts import ClipPaths
    from tests.test_align_io import write_wav

    words = int(seconds * RATE_WPM / 60)
    clip = synthetic_clip(practice_text(words, seed=int(seconds)), VOICE, RATE_WPM)
    # espeak's real rate differs from the nominal one: rescale the text once.
    words = int(words * seconds / clip.duration_s)
    clip = synthetic_clip(practice_text(words, seed=int(seconds)), VOICE, RATE_WPM)
    paths = ClipPaths.of(name, root)
    paths.transcript.parent.mkdir(parents=True, exist_ok=True)
    paths.transcript.write_text(clip.text)
    paths.interim.mkdir(parents=True, exist_ok=True)
    write_wav(paths.audio, clip.samples.astype(np.float64) / 32768, 16000)
    return clip


def _status_mb(pid: int | str, field: str) -> float:
    """A memory field of /proc/<pid>/status in MB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _WorkerWatch(threading.Thread):
    """Samples the resident memory of this process's children (the chunk workers).

    getrusage's ru_maxrss cannot be used for them: Linux carries a parent's peak
    over fork and exec, so a child would report its parent's size.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_one = self.peak_sum = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        me = str(os.getpid())
        while not self.done.wait(0.1):
            kids = [p.parent.name for p in Path("/proc").glob("[0-9]*/stat")
                    if p.read_text().split(") ", 1)[-1].split()[1] == me]
            sizes = [_status_mb(pid, "VmRSS") for pid in kids]
            self.peak_one = max([self.peak_one, *sizes])
            self.peak_sum = max(self.peak_sum, sum(sizes))


def measure(root: Path, name: str, workers: int) -> dict:
    """Run the stage in this process and report time and memory (called in a child)."""
    from stages.align import AlignParams, run_align

    watch = _WorkerWatch()
    watch.start()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run_align(name, root, AlignParams(on_mismatch="mark", workers=workers))
    wall = time.perf_counter() - t0
    watch.done.set()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": time.process_time() - c0 + kids.ru_utime + kids.ru_stime,
            "rss_mb": _status_mb("self", "VmHWM"), "worker_rss_mb": watch.peak_one,
            "workers_total_mb": watch.peak_sum, "summary": summary}


def speed(lengths: list[float], workers: int) -> None:
    from stages.align.config import AlignParams
    from stages.align.evaluate import phone_boundary_errors, word_boundary_errors
    from talkedit.artifacts import ClipPaths, read_parquet

    print(f"\n== Speed and memory (run_align on a WAV; voice {VOICE}, {RATE_WPM} wpm) ==")
    parallel_min_s = AlignParams().parallel_min_s
    for seconds in lengths:
        with tempfile.TemporaryDirectory(prefix="align-bench-") as tmp:
            root = Path(tmp)
            name = f"bench{int(seconds)}"
            clip = make_recording(seconds, root, name)
            # Long recordings run in worker processes; rerun them in one process too,
            # so memory can be compared like with like across lengths.
            runs = [workers] + ([1] if seconds >= parallel_min_s and workers != 1 else [])
            for n in runs:
                out = subprocess.run([sys.executable, __file__, "--measure", str(root), name,
                                      str(n)], capture_output=True, text=True, check=True)
                m = json.loads(out.stdout.strip().splitlines()[-1])
                paths = ClipPaths.of(name, root)
                pe = phone_boundary_errors(read_parquet(paths.phones), clip.phones)
                we = word_boundary_errors(read_parquet(paths.words), clip.words)
                _report(clip.duration_s, n, m, pe, we)


def _report(duration: float, workers: int, m: dict, pe: object, we: object) -> None:
    s = m["summary"]
    mode = "one process" if not m["workers_total_mb"] else f"workers={workers or 'per core'}"
    print(f"{duration:6.1f} s audio ({mode}), {s['words']} words, {s['chunks']} chunks: "
          f"wall {m['wall_s']:.1f} s  RTF {m['wall_s'] / duration:.3f}  "
          f"CPU {m['cpu_s']:.1f} s ({m['cpu_s'] / duration:.3f} CPU-s per audio-s)")
    print(f"        peak RSS: stage process {m['rss_mb']:.0f} MB, largest worker "
          f"{m['worker_rss_mb']:.0f} MB (all workers {m['workers_total_mb']:.0f} MB); "
          f"low-confidence words {s['low_confidence_words']}, retried chunks "
          f"{s['retried_chunks']}, failed {s['failed_chunks']}")
    print(f"        phones {pe}\n        words  {we}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="60,600", help="recording lengths in seconds")
    ap.add_argument("--workers", type=int, default=0, help="0 = one per CPU core")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--measure", nargs=3, metavar=("ROOT", "CLIP", "WORKERS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        root, name, workers = args.measure
        print(json.dumps(measure(Path(root), name, int(workers)), default=str))
        return
    if not args.skip_accuracy:
        accuracy()
    speed([float(x) for x in args.lengths.split(",")], args.workers)


if __name__ == "__main__":
    main()
