"""Reading takes: their sound at a chosen rate, their frames in order (streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from talkedit.errors import TalkeditError
from talkedit.video import open_container


def read_audio(video: Path, rate: int) -> np.ndarray:
    """The take's sound as mono int16 at ``rate`` (takes are minutes at most: held whole)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks = []
    with open_container(video) as container:
        if not container.streams.audio:
            raise TalkeditError(video, "the take has no sound", "re-export it with its audio")
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


def video_info(video: Path) -> tuple[float, int, int, int]:
    """(fps, frames, width, height) of a take."""
    with open_container(video) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        n = stream.frames or int(round(float(stream.duration * stream.time_base) * fps))
        return fps, n, stream.codec_context.width, stream.codec_context.height


def iter_frames(video: Path, start: int = 0, stop: int | None = None,
                step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) for frames start, start+step, ... < stop, decoded in order."""
    with open_container(video) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if stop is not None and k >= stop:
                return
            if k >= start and (k - start) % step == 0:
                yield k, frame.to_ndarray(format="rgb24")
