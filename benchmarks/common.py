"""Helpers shared by the benchmark scripts: test clips and peak memory in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_clip(path: Path, seconds: float, width: int = 1280, height: int = 720, fps: int = 25,
              audio: bool = True) -> Path:
    """A textured, moving H.264 + AAC clip (decode cost like real footage, not flat colour)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), np.uint8))
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23", "g": "50"}
        if audio:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        n = int(seconds * fps)
        for k in range(n):
            image = np.roll(base, (k * 3) % width, axis=1)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if audio:
            total = int(seconds * 16000)
            t = np.arange(total) / 16000
            pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
            for s in range(0, total, 1024):
                af = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="s16", layout="mono")
                af.sample_rate, af.pts = 16000, s
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    tmp.rename(path)
    return path


def peak_rss_mb(code: str) -> tuple[float, dict]:
    """Run ``code`` in a fresh interpreter; return its peak RSS (MB) and the JSON it prints last."""
    wrapper = (code + "\nimport resource, json as _j\n"
               "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                          cwd=REPO, check=True)
    lines = proc.stdout.strip().splitlines()
    peak = float(lines[-1].split()[1]) / 1024
    payload = json.loads(lines[-2]) if len(lines) > 1 and lines[-2].startswith("{") else {}
    return peak, payload


def lip_clip(clip: str, root: Path, opts: Any) -> SimpleNamespace:
    """A generated clip as the lipmodel stage reads it, for scoring its networks on the
    held-out tail (``stages.lipsync.train.scores``): person, expression, fps, samples,
    features, the (train, val, held) split, the true jaw, the jaw measure (mapped on the
    training frames), the fitted opening and the components' weights."""
    from stages.fit import load_fit
    from stages.lipsync.features import frame_features, read_clip_wav
    from stages.lipsync.model import openings
    from stages.lipsync.train import feature_config, jaw_measure, split
    from talkedit.artifacts import TRUTH_FRAMES, ClipPaths, VideoMeta, column_array, read_parquet

    paths = ClipPaths.of(clip, root)
    person, table = load_fit(clip, root)
    expression = column_array(table, "expression").astype(np.float64)
    n, fps = len(expression), VideoMeta.read(paths).fps
    samples = read_clip_wav(paths.audio)
    train, val, held = split(n, opts, clip)
    jaw = read_parquet(paths.truth_frames, TRUTH_FRAMES)["jaw_open"].to_numpy()[:n]
    k = opts.components
    return SimpleNamespace(
        person=person, expression=expression, fps=fps, samples=samples,
        feats=frame_features(samples, n, fps, feature_config(opts)), train=train, val=val,
        held=held, jaw=jaw, measure=jaw_measure(person, expression, jaw, train),
        fitted_open=openings(person, expression),
        weights=person.explained[:k] / person.explained[:k].sum())


def store_run(name: str, label: str, result: Any) -> Path:
    """Add ``result`` under ``label`` to benchmarks/results/``name`` (a JSON of labelled runs)."""
    store = REPO / "benchmarks" / "results" / name
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[label] = result
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    return store
