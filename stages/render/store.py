"""The render stage's output: generated crops in safetensors chunks + a Parquet index.

Layout (``talkedit.artifacts.RenderPaths``; schema ``RENDER_INDEX``)::

    data/renders/<edit>/
      crops-00000.safetensors   crops (n, S, S, 3) uint8 RGB, alpha (n, S, S) uint8
      crops-00001.safetensors   ...  (``render.chunk_frames`` frames per chunk)
      index.parquet             frame -> chunk, row; source_frame; transform; edited
      render.json               clip, size, generator, device, timing

``crops`` is the whole render crop (the background frame's crop outside the
generated region); ``alpha`` (255 = generated) is the feathered mask the
generator's output was blended with. ``transform`` maps the source frame's
image px to render-crop px; the composite step warps crop and alpha back with
its inverse. Only rendered frames are listed (by default those the plan marks
``edited``; the others are the original footage). ``RenderStore`` reads it
frame by frame.

The folder is written under a temporary name and renamed into place, so an
interrupted render never leaves a mix of old and new chunks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from talkedit.artifacts import RENDER_INDEX, RenderPaths, read_parquet, write_parquet
from talkedit.atomic import UMASK, write_safetensors


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` that replaces it on success (deleted on failure)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700 folders; outputs get the usual mode
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class RenderWriter:
    """Collects rendered frames (in any order) into chunks; writes the index at the end."""

    def __init__(self, folder: Path, chunk_frames: int) -> None:
        self.folder, self.chunk_frames = folder, chunk_frames
        self._crops: list[np.ndarray] = []
        self._alpha: list[np.ndarray] = []
        self._rows: dict[str, list[Any]] = {k: [] for k in RENDER_INDEX.names}
        self._buffered = 0
        self.chunks = 0

    def add(self, frames: np.ndarray, crops: np.ndarray, alpha: np.ndarray,
            source_frames: np.ndarray, transforms: np.ndarray, edited: np.ndarray) -> None:
        for i in range(len(frames)):
            self._rows["frame"].append(int(frames[i]))
            self._rows["chunk"].append(self.chunks)
            self._rows["row"].append(self._buffered)
            self._rows["source_frame"].append(int(source_frames[i]))
            self._rows["transform"].append(np.asarray(transforms[i], np.float32))
            self._rows["edited"].append(bool(edited[i]))
            self._crops.append(crops[i])
            self._alpha.append(alpha[i])
            self._buffered += 1
            if self._buffered == self.chunk_frames:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        write_safetensors(self.folder / RenderPaths.chunk_name(self.chunks),
                          save({"crops": np.ascontiguousarray(np.stack(self._crops)),
                                "alpha": np.ascontiguousarray(np.stack(self._alpha))}))
        self._crops, self._alpha, self._buffered = [], [], 0
        self.chunks += 1

    def close(self, index_path: Path) -> int:
        """Write the last chunk and the index (sorted by frame); the number of frames."""
        self._flush()
        n = len(self._rows["frame"])
        order = np.argsort(np.asarray(self._rows["frame"], dtype=np.int64), kind="stable")
        columns = {
            "frame": np.asarray(self._rows["frame"], np.int32)[order],
            "chunk": np.asarray(self._rows["chunk"], np.int32)[order],
            "row": np.asarray(self._rows["row"], np.int32)[order],
            "source_frame": np.asarray(self._rows["source_frame"], np.int32)[order],
            "transform": (np.stack(self._rows["transform"])[order] if n
                          else np.zeros((0, 6), np.float32)),
            "edited": np.asarray(self._rows["edited"], bool)[order],
        }
        write_parquet(columns, RENDER_INDEX, index_path)
        return n


@dataclass
class RenderedCrop:
    crop: np.ndarray  # (S, S, 3) uint8 RGB render crop
    alpha: np.ndarray  # (S, S) uint8, 255 = generated pixel
    transform: np.ndarray  # (2, 3) source-frame image px -> render-crop px
    source_frame: int


class RenderStore:
    """An edit's rendered crops, by output frame."""

    def __init__(self, edit: str, root: Path | None = None) -> None:
        self.paths = RenderPaths.of(edit, root)
        self.index = read_parquet(self.paths.index, RENDER_INDEX, stage_hint=f"render@{edit}")
        self.summary = json.loads(self.paths.summary.read_text())
        self.size = int(self.summary["size"])
        self.frames = self.index["frame"].to_numpy()
        self._where = {int(f): i for i, f in enumerate(self.frames)}
        self._open: tuple[int, Any] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, frame: int) -> bool:
        return int(frame) in self._where

    def _chunk(self, k: int) -> Any:
        if self._open is None or self._open[0] != k:
            self._open = (k, safe_open(str(self.paths.chunk(k)), framework="np"))
        return self._open[1]

    def read(self, frame: int) -> RenderedCrop:
        """The rendered crop of output frame ``frame`` (KeyError if it was not rendered)."""
        i = self._where[int(frame)]
        row = self.index.iloc[i]
        f = self._chunk(int(row["chunk"]))
        r = int(row["row"])
        return RenderedCrop(f.get_slice("crops")[r:r + 1][0], f.get_slice("alpha")[r:r + 1][0],
                            np.asarray(row["transform"], np.float64).reshape(2, 3),
                            int(row["source_frame"]))

    def __iter__(self) -> Iterator[tuple[int, RenderedCrop]]:
        for frame in self.frames:
            yield int(frame), self.read(int(frame))
