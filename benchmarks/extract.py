"""Extraction speed against plain PyAV decode, and peak memory for 10 s vs 60 s clips.

Targets (issue 2): extraction at >= 0.7x the frames/s of a plain decode of
the same file, in the same process; peak memory for 10 s and 60 s clips the
same within 100 MB (streaming).

    python benchmarks/extract.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import av

from benchmarks.common import REPO, make_clip, peak_rss_mb
from stages.extract import ExtractParams, extract_clip

CACHE = REPO / ".tmp" / "bench"


def plain_decode_fps(path: Path) -> float:
    start = time.perf_counter()
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
    return n / (time.perf_counter() - start)


def extract_fps(path: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data" / "raw").mkdir(parents=True)
        shutil.copy(path, root / "data" / "raw" / "clip.mp4")
        (root / "data" / "raw" / "clip.txt").write_text("benchmark")
        start = time.perf_counter()
        meta = extract_clip("clip", root, ExtractParams())
        return meta["n_frames"] / (time.perf_counter() - start), meta["n_frames"]


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    clips = {s: make_clip(CACHE / f"clip_{s}s_720p.mp4", s) for s in (10, 60)}
    clip60 = clips[60]
    plain_decode_fps(clip60)  # warm the page cache
    decode = plain_decode_fps(clip60)
    extract, n = extract_fps(clip60)
    print(f"60 s 1280x720 clip, {n} frames")
    print(f"  plain PyAV decode : {decode:7.1f} frames/s")
    print(f"  extract stage     : {extract:7.1f} frames/s  ({extract / decode:.2f}x plain decode;"
          f" target >= 0.70x)")
    peaks = {}
    for seconds, path in clips.items():
        code = (f"from benchmarks.extract import extract_fps; from pathlib import Path; "
                f"extract_fps(Path({str(path)!r}))")
        peaks[seconds], _ = peak_rss_mb(code)
    print(f"  peak memory       : 10 s clip {peaks[10]:.0f} MB, 60 s clip {peaks[60]:.0f} MB"
          f" (difference {peaks[60] - peaks[10]:+.0f} MB; target within 100 MB)")


if __name__ == "__main__":
    main()
