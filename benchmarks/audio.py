"""Audio stage speed: build the audio of a 5-word edit on a 10-minute clip (target <= 2 s).

    .venv/bin/python benchmarks/audio.py [--minutes 10] [--repeat 3] [--work DIR]

The clip (built once, cached in --work) is espeak-ng speaking random sentences over a
few thousand CMUdict words (Zipf-distributed, as word use is), with espeak's own
phone timings as the aligned phones and the index stage's viseme table built from
them. The edit replaces five words in the middle of the clip with five others; its
plan (segments, new phones timed by espeak-ng, the frame count) is written directly,
as the plan stage would. Timed: ``run_audio`` end to end, in this process (the first
run pays the imports and espeak-ng's start), for the speaker and synthetic sources.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.align.lexicon import _cmudict  # noqa: E402
from stages.audio.config import AudioParams  # noqa: E402
from stages.audio.dsp import resample, to_int16, write_wav  # noqa: E402
from stages.audio.stage import run_audio  # noqa: E402
from stages.index import build_viseme_table  # noqa: E402
from talkedit.artifacts import (  # noqa: E402
    NEW_PHONES,
    SEGMENTS,
    VISEMES,
    ClipPaths,
    EditPaths,
    write_parquet,
)
from talkedit.atomic import write_json, write_text  # noqa: E402
from talkedit.espeak import synthesize  # noqa: E402
from talkedit.phonemes import SILENCE  # noqa: E402

SR, FPS, CLIP, EDIT = 16000, 25.0, "bench", "bench_edit"
LEAD_S = 0.5


def sentences(rng: np.random.Generator) -> Iterator[str]:
    """Random sentences of 6-13 words, forever."""
    words = sorted(w for w in _cmudict() if w.isalpha() and 2 <= len(w) <= 9)
    vocab = list(rng.choice(words, size=3000, replace=False))
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    while True:
        picked = [vocab[i] for i in rng.choice(len(vocab), size=int(rng.integers(6, 14)), p=zipf)]
        yield " ".join(picked).capitalize() + "."


def build_clip(root: Path, minutes: float, seed: int) -> None:
    """The clip's audio.wav, transcript, video.json and visemes.parquet (cached)."""
    paths = ClipPaths.of(CLIP, root)
    if paths.visemes.is_file():
        return
    rng = np.random.default_rng(seed)
    chunks, rows, texts = [np.zeros(int(LEAD_S * SR))], [], []
    t, word = LEAD_S, 0
    rows.append((-1, SILENCE, -1, 0.0, LEAD_S))
    for sentence in sentences(rng):
        if t >= minutes * 60:
            break
        s = synthesize(sentence, voice="en-us", rate_wpm=150)
        chunks.append(resample(s.samples / 32768.0, s.sample_rate, SR))
        for p in s.phones:
            w = word + p.word_index if p.word_index >= 0 else -1
            rows.append((w, p.phone, p.stress, t + p.start_s, t + p.end_s))
        t += len(chunks[-1]) / SR
        word += len(s.words)
        texts.append(sentence)
    audio = np.concatenate(chunks)
    n_frames = int(np.ceil(len(audio) / SR * FPS))
    audio = np.r_[audio, np.zeros(int(n_frames / FPS * SR) - len(audio))]
    phones = pd.DataFrame(rows, columns=["word_index", "phone", "stress", "start_s", "end_s"])
    phones = phones[phones["end_s"] > phones["start_s"]]
    write_text(paths.transcript, " ".join(texts) + "\n")
    write_wav(paths.audio, to_int16(audio), SR)
    write_json(paths.video_meta, {"fps": FPS, "n_frames": n_frames})
    write_parquet(build_viseme_table(phones, None, FPS), VISEMES, paths.visemes)


def build_plan(root: Path, seed: int) -> dict:
    """An edit replacing five words mid-clip, and the plan's audio-facing artifacts."""
    rng = np.random.default_rng(seed + 1)
    paths, edit = ClipPaths.of(CLIP, root), EditPaths.of(EDIT, root)
    tokens = paths.transcript.read_text().split()
    table = pq.read_table(paths.visemes).to_pandas()
    first = len(tokens) // 2
    while not tokens[first - 1].endswith(".") or tokens[first + 5].endswith("."):
        first += 1  # a sentence's first five words, not across a sentence end
    new = [tokens[int(i)].strip(".").lower() for i in rng.choice(len(tokens), 5)]
    spec = {"clip": CLIP, "operations": [{"replace": [first, first + 4], "with": " ".join(new)}]}
    write_text(edit.spec, yaml.safe_dump(spec))
    said = table[(table["word_index"] >= first) & (table["word_index"] < first + 5)]
    cut_a, cut_b = float(said["start_s"].min()), float(said["end_s"].max())
    s = synthesize(" ".join(new), voice="en-us", rate_wpm=150)
    ph = [p for p in s.phones if p.word_index >= 0]
    t0 = ph[0].start_s
    starts = cut_a + np.array([p.start_s - t0 for p in ph])
    ends = cut_a + np.array([p.end_s - t0 for p in ph])
    d = ends[-1] - cut_a
    clip_s = json.loads(paths.video_meta.read_text())["n_frames"] / FPS
    segs = {"segment": [0, 1, 2], "kind": ["kept", "new", "kept"], "span": [-1, 0, -1],
            "source_start_s": [0.0, np.nan, cut_b], "source_end_s": [cut_a, np.nan, clip_s],
            "out_start_s": [0.0, cut_a, cut_a + d], "out_end_s": [cut_a, cut_a + d,
                                                                  cut_a + d + clip_s - cut_b],
            "words": ["", " ".join(new), ""], "text": ["", " ".join(new), ""]}
    write_parquet(segs, SEGMENTS, edit.segments)
    n = len(ph)
    write_parquet({
        "segment": [1] * n, "word_position": [first + p.word_index for p in ph],
        "word": [new[p.word_index] for p in ph], "phone": [p.phone for p in ph],
        "stress": [p.stress for p in ph], "out_start_s": starts, "out_end_s": ends,
        "tts_duration_s": ends - starts, "piece": [0] * n, "source_phone": [0] * n,
        "source_start_s": [0.0] * n, "source_end_s": [0.0] * n, "viseme": [""] * n,
        "source_viseme": [""] * n, "source_phone_label": [p.phone for p in ph]},
        NEW_PHONES, edit.new_phones)
    frames = int(round(segs["out_end_s"][-1] * FPS))
    pq.write_table(pa.table({"frame": pa.array(np.arange(frames), pa.int32())}), edit.plan)
    return {"replaced": " ".join(tokens[first:first + 5]), "with": " ".join(new),
            "new_phones": n, "clip_s": round(clip_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "talkedit-bench-audio")
    args = ap.parse_args()
    root = args.work / f"{args.minutes:g}min"
    (root / "data").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_clip(root, args.minutes, args.seed)
    info = build_plan(root, args.seed)
    print(f"clip: {info['clip_s']} s, {len(pq.read_table(ClipPaths.of(CLIP, root).visemes))} "
          f"phone rows (setup {time.perf_counter() - t0:.1f} s); edit: {info['replaced']!r} -> "
          f"{info['with']!r} ({info['new_phones']} phones)")
    for source in ("speaker", "synthetic"):
        times, summary = [], {}
        for _ in range(args.repeat):
            t = time.perf_counter()
            summary = run_audio(EDIT, root, AudioParams(source=source))
            times.append(time.perf_counter() - t)
        print(f"run_audio {source:9s}: first {times[0]:.2f} s, then median "
              f"{statistics.median(times[1:] or times):.2f} s  (speaker share "
              f"{summary['speaker_share']}, loudness diff {summary['loudness_diff_lu']} LU, "
              f"max border {summary['max_border_discontinuity_db']} dB)")


if __name__ == "__main__":
    main()
