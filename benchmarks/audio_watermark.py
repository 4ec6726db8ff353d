"""Audio watermark robustness: detection after AAC 64 kbps, resampling and trims on
synthetic speech (espeak-ng, the kind of audio talkedit inserts), and false positives on
unmarked speech.

    python -m benchmarks.audio_watermark       # about a minute
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stages.composite import audio_watermark as aw
from stages.composite.watermark import DEFAULT_KEY
from talkedit.espeak import synthesize

SENTENCES = [
    "The quick brown fox jumps over the lazy dog, and the dog does not seem to mind at all.",
    "We met at the station at nine and took the slow train to the coast, where the wind was cold.",
    "Please remember to bring the blue folder to the meeting on Thursday afternoon.",
    "The numbers inside it changed again last week and nobody has checked them yet.",
    "Our new product line will reach the shops in spring, a little later than planned.",
    "She said the results were promising, but the team wanted another month of testing.",
]
# (voice, words per minute, pitch): the voices the bundled espeak-ng data has here
VOICES = [("en-us", 160, 50), ("en-us+f3", 175, 50), ("en-us", 150, 30), ("en-us", 190, 70),
          ("en-us+f3", 165, 35)]


def mux(pcm: np.ndarray, rate: int, frames: list[np.ndarray] | None = None,
        path: Path | None = None, kbps: int = 64) -> bytes:
    """AAC at ``kbps`` in an MP4 (with H.264 frames if given); bytes, or written to path."""
    target: str | io.BytesIO = str(path) if path else io.BytesIO()
    with av.open(target, "w", format="mp4") as out:
        video = None
        if frames:
            video = out.add_stream("libx264", rate=Fraction(25))
            video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
            video.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        audio = out.add_stream("aac", rate=rate)
        audio.layout, audio.bit_rate = "mono", kbps * 1000
        for image in frames or []:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        if video is not None:
            out.mux(video.encode(None))
        for start in range(0, len(pcm), 1024):
            chunk = np.ascontiguousarray(pcm[None, start:start + 1024].astype(np.int16))
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return b"" if path else target.getvalue()


def aac_round_trip(pcm: np.ndarray, rate: int, out_rate: int = aw.ANALYSIS_RATE,
                   kbps: int = 64) -> np.ndarray:
    """Encode to AAC at ``kbps``, decode, resample to ``out_rate`` (int16)."""
    with av.open(io.BytesIO(mux(pcm, rate, kbps=kbps))) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
        chunks = []
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks)


Attack = Callable[[np.ndarray, int], tuple[np.ndarray, int]]
ATTACKS: list[tuple[str, Attack]] = [
    ("none", lambda x, r: (x, r)),
    ("AAC 64 kbps", lambda x, r: (aac_round_trip(x, r), aw.ANALYSIS_RATE)),
    ("AAC 64 kbps, decoded at 44.1 kHz", lambda x, r: (aac_round_trip(x, r, 44100), 44100)),
    ("resample to 8 kHz", lambda x, r: (aw.resample(x, r, 8000), 8000)),
    ("resample 48 kHz, AAC 64 kbps", lambda x, r: (aac_round_trip(
        aw.resample(x, r, 48000).astype(np.int16), 48000), aw.ANALYSIS_RATE)),
    ("trim 1.7 s, AAC 64 kbps", lambda x, r: (aac_round_trip(x[int(1.7 * r):], r),
                                              aw.ANALYSIS_RATE)),
]


def speech_clips(count: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """``count`` soundtracks of 3 sentences (10-15 s), voices and sentences varied."""
    rng = np.random.default_rng(seed)
    clips = []
    for k in range(count):
        voice, wpm, pitch = VOICES[k % len(VOICES)]
        text = " ".join(rng.choice(SENTENCES, 3, replace=False))
        spoken = synthesize(text, voice=voice, rate_wpm=wpm, pitch=pitch)
        clips.append((spoken.samples, spoken.sample_rate))
    return clips


def main() -> None:
    began = time.perf_counter()
    marked_clips = speech_clips(10, seed=1)
    print(f"10 marked soundtracks ({min(len(p) / r for p, r in marked_clips):.1f}-"
          f"{max(len(p) / r for p, r in marked_clips):.1f} s of espeak-ng speech), depth "
          f"{aw.DEFAULT_AUDIO_DEPTH}, key {DEFAULT_KEY!r}")
    marked = [(aw.embed_audio(p, r, DEFAULT_KEY), r) for p, r in marked_clips]
    change = [10 * np.log10(np.sum(p.astype(float) ** 2) / np.sum((m.astype(float) - p) ** 2))
              for (p, _), (m, _) in zip(marked_clips, marked, strict=True)]
    print(f"change under the speech: {min(change):.1f}-{max(change):.1f} dB")
    print(f"{'attack':34s} {'clips':>5s} {'found':>5s} {'rate':>6s} {'z min':>6s} {'z med':>6s}")
    needed = 0.0
    for name, attack in ATTACKS:
        found = [aw.detect_audio(*attack(m, r), DEFAULT_KEY) for m, r in marked]
        needed = found[0].z_needed
        zs = [f.z for f in found]
        hits = sum(f.detected for f in found)
        print(f"{name:34s} {len(found):5d} {hits:5d} {100 * hits / len(found):5.0f}% "
              f"{min(zs):6.1f} {float(np.median(zs)):6.1f}")
    clean = speech_clips(30, seed=2)
    nulls = [aw.detect_audio(aac_round_trip(p, r), aw.ANALYSIS_RATE, DEFAULT_KEY) for p, r in clean]
    print(f"unmarked soundtracks (AAC 64 kbps): {sum(n.detected for n in nulls)}/{len(nulls)} "
          f"detections (target 0), z max {max(n.z for n in nulls):.2f}; found needs z >= "
          f"{needed:.2f} (union bound over {nulls[0].hypotheses} alignments)")
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
