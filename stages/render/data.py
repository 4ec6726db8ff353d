"""What the renderer reads of a fitted clip: render crops, per-frame parameters, exemplars.

* ``ClipData``: every frame's render crop (the fit's aligned crop resampled to
  the generator's size, held in memory or in a memory-mapped scratch file for
  long clips), pose / expression / illumination, image -> render-crop
  transforms and the fit's lower-face outline in render-crop px.
* ``ReferencePool``: appearance exemplars, an even sample of the training
  frames (crops + expressions), saved beside the generator so the render stage
  needs no second pass over the clip; ``nearest`` picks the exemplar whose
  expression is nearest, optionally at least ``gap`` frames from the target.
* ``BackgroundCrops``: render crops of arbitrary (mostly increasing) frames
  for the render stage, decoded block by block with a small cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
from safetensors.numpy import load_file, save

from stages.fit import CropStore, PersonModel, Pose, frame_pose
from stages.render.checkpoint import Stamp
from stages.render.conditioning import render_points, render_transforms, resize_crops
from talkedit.artifacts import (
    FACE,
    N_EXPRESSION,
    ClipPaths,
    RowGroupColumn,
    RowGroupRows,
    column_array,
    read_parquet,
    release_arrow_pages,
)
from talkedit.atomic import write_safetensors
from talkedit.errors import TalkeditError
from talkedit.video import FrameCursor, FrameStore

READ_CHUNK = 128  # crops decoded per read while caching a clip


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ClipData:
    clip: str
    size: int  # render crop side
    crop_size: int  # the fit's crop side
    crops: np.ndarray | CropFile  # (n, size, size, 3) uint8
    pose: Pose
    expression: np.ndarray | RowsAsFloat64  # (n, 64)
    illumination: np.ndarray | RowsAsFloat64  # (n, 27)
    transforms: np.ndarray  # (n, 6) image -> render crop
    outlines: np.ndarray | FrameOutlines  # (n, K, 2) the fit's lower-face polygon, render px
    usable: np.ndarray  # (n,) the face was measured (detected, not interpolated or occluded)
    face_model_sha: str

    def __len__(self) -> int:
        return len(self.crops)

    def pose_of(self, frames: np.ndarray) -> Pose:
        return Pose(self.pose.rotation[frames], self.pose.translation[frames],
                    self.pose.scale[frames])


def load_model(clip: str, root: Path | None) -> tuple[PersonModel, str]:
    """The clip's person model and the SHA-256 of its file (a generator is tied to it)."""
    path = ClipPaths.of(clip, root).face_model
    return PersonModel.load(path), file_sha256(path)


# What the renderer reads of face.parquet: not the landmarks, 85 % of a long clip's table
# (0.28 of 0.33 GB uncompressed at 31 minutes).
RENDER_COLUMNS = ["frame", "detected", "interpolated", "rotation", "translation", "scale",
                  "expression", "illumination", "crop_transform", "mask_polygon"]


# The pose and the image -> crop transforms, all some readers need (the mouth painter).
POSE_COLUMNS = ["rotation", "translation", "scale", "crop_transform"]


class RowsAsFloat64:
    """A float32 (n, ...) array whose rows read back as float64, as the array converted
    whole would give them (the conversion is exact): a long plan's expression and lighting
    are 34 MB as float64 at 31 minutes, and rendering reads the rows it renders. ``values``
    may be a file's column read by row group (``RowGroupColumn``)."""

    def __init__(self, values: np.ndarray | RowGroupColumn) -> None:
        self.values = values
        self.shape, self.dtype = values.shape, np.dtype(np.float64)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: int | slice | np.ndarray) -> np.ndarray:
        return np.asarray(self.values[rows], np.float64)


class FrameOutlines:
    """The fit's lower-face outlines of a clip's frames in render px, indexed like the
    (n_clip, K, 2) float64 array ``render_points`` makes of them, but computed for the
    frames asked for: that array is 30 MB at 31 minutes, and rendering an edit reads the
    few hundred frames behind its rows (``face_geometry`` reads their polygons from the
    file, a row group at a time: the fit's float32 column is 15 MB at 31 minutes)."""

    def __init__(self, polygons: np.ndarray | RowGroupColumn, crop_size: int, size: int
                 ) -> None:
        self.polygons = polygons  # (n_clip, 2K) float32, fit-crop px
        self.crop_size, self.size = crop_size, size

    def __len__(self) -> int:
        return len(self.polygons)

    def __getitem__(self, frames: int | np.ndarray) -> np.ndarray:
        rows = self.polygons[frames]
        return render_points(rows.reshape(*rows.shape[:-1], -1, 2), self.crop_size, self.size)


def face_geometry(clip: str, root: Path | None, size: int,
                  columns: list[str] = RENDER_COLUMNS, lazy_outlines: bool = False
                  ) -> tuple[pa.Table, int, np.ndarray, Any]:
    """face.parquet (``columns`` of it), the fit's crop size, transforms and outlines at the
    render size (an array; with ``lazy_outlines``, a ``FrameOutlines``)."""
    paths = ClipPaths.of(clip, root)
    lazy_outlines = lazy_outlines and "mask_polygon" in columns
    table = read_parquet(paths.face, FACE, arrow=True, stage_hint=f"fit@{clip}",
                         columns=[c for c in columns if not (lazy_outlines
                                                             and c == "mask_polygon")])
    meta_path = paths.crops / "crops.json"
    if not meta_path.is_file():
        raise TalkeditError(meta_path, "not found", f"run fit@{clip} first (dvc repro)")
    crop_size = int(json.loads(meta_path.read_text())["size"])
    transforms = render_transforms(column_array(table, "crop_transform"), crop_size, size)
    if lazy_outlines:  # read a row group at a time for the frames asked
        outlines: Any = FrameOutlines(RowGroupRows(paths.face, ["mask_polygon"],
                                                   stage_hint=f"fit@{clip}"
                                                   ).column("mask_polygon"), crop_size, size)
    elif "mask_polygon" not in table.column_names:  # not asked for
        outlines = np.zeros((len(table), 0, 2))
    else:
        outlines = render_points(column_array(table, "mask_polygon").reshape(len(table), -1, 2),
                                 crop_size, size)
    release_arrow_pages()  # the read's decoding buffers (render reads face.parquet thrice)
    return table, crop_size, transforms, outlines


class CropFile:
    """Render crops of every clip frame in a scratch file, written and read with plain
    reads and writes, not memory-mapped: a long clip's crops (2.3 GB at 31 minutes, 128 px)
    stay on disk and in the kernel's page cache, which the system may drop, instead of in
    the process's resident memory. Indexed like an (n, size, size, 3) uint8 array by a
    frame or an integer array of frames."""

    def __init__(self, path: Path, n: int, size: int) -> None:
        self.shape = (n, size, size, 3)
        self._frame_bytes = size * size * 3
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.close = weakref.finalize(self, os.close, self._fd)
        os.ftruncate(self._fd, n * self._frame_bytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, frames: slice, crops: np.ndarray) -> None:
        start, stop, step = frames.indices(len(self))
        if step != 1 or stop - start != len(crops):
            raise ValueError("CropFile is written in runs of consecutive frames")
        os.pwrite(self._fd, np.ascontiguousarray(crops, np.uint8).tobytes(),
                  start * self._frame_bytes)

    def __getitem__(self, frames: int | np.ndarray) -> np.ndarray:
        wanted = np.asarray(frames, np.int64)
        flat = wanted.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"frames {flat.min()}..{flat.max()} outside 0..{len(self) - 1}")
        out = np.empty((flat.size, *self.shape[1:]), np.uint8)
        for row, frame in zip(out, flat.tolist(), strict=True):
            os.preadv(self._fd, [row.reshape(-1)], frame * self._frame_bytes)
        return out.reshape(*wanted.shape, *self.shape[1:])


def load_clip(clip: str, root: Path | None, size: int, scratch: Path | None = None
              ) -> tuple[PersonModel, ClipData]:
    """The fitted clip at render size. With ``scratch`` the crops go to a file there
    (``CropFile``: a long clip's crops need not fit in RAM)."""
    model, sha = load_model(clip, root)
    # Outlines computed for the frames asked, their polygons read from face.parquet by row
    # group (FrameOutlines); expression and lighting kept as the fit's float32, read as
    # float64 per row (RowsAsFloat64): whole float64 copies are 64 MB at 31 minutes.
    table, crop_size, transforms, outlines = face_geometry(clip, root, size, lazy_outlines=True)
    pose = frame_pose(table)
    expression, illumination = (RowsAsFloat64(column_array(table, c))
                                for c in ("expression", "illumination"))
    n = len(table)
    shape = (n, size, size, 3)
    crops = (CropFile(scratch / "crops.u8", n, size) if scratch is not None
             else np.empty(shape, np.uint8))
    store = CropStore(clip, root, masks=False)
    for a in range(0, n, READ_CHUNK):
        images, _ = store.read(a, a + READ_CHUNK)
        crops[a:a + len(images)] = resize_crops(images, size)
    # Interpolated frames (detection gaps, a covered mouth) show no measured face: training
    # on them would teach the renderer parameters that do not match the picture.
    usable = table.column("detected").to_numpy()
    return model, ClipData(clip, size, crop_size, crops, pose, expression, illumination,
                           transforms, outlines, usable, sha)


@dataclass
class ReferencePool:
    frames: np.ndarray  # (m,) clip frames
    expression: np.ndarray  # (m, 64)
    crops: np.ndarray  # (m, S, S, 3) uint8 render crops

    @classmethod
    def sample(cls, data: ClipData, candidates: np.ndarray, size: int) -> ReferencePool:
        """At most ``size`` of the candidate frames, evenly spread over them."""
        pick = np.unique(np.linspace(0, len(candidates) - 1, min(size, len(candidates)))
                         .round().astype(int))
        frames = np.asarray(candidates)[pick]
        return cls(frames, data.expression[frames].astype(np.float32),
                   np.ascontiguousarray(data.crops[frames]))

    @classmethod
    def empty(cls, size: int) -> ReferencePool:
        return cls(np.zeros(0, np.int64), np.zeros((0, N_EXPRESSION), np.float32),
                   np.zeros((0, size, size, 3), np.uint8))

    def nearest(self, expression: np.ndarray, frames: np.ndarray | None = None, gap: int = 0,
                chunk: int = 1024) -> np.ndarray:
        """Pool index of the nearest expression for each row; with ``frames``, exemplars
        within ``gap`` frames of the row's own frame are skipped (when any other is left)."""
        pool = self.expression.astype(np.float64)
        norms = (pool ** 2).sum(1)
        out = np.empty(len(expression), np.int64)
        for a in range(0, len(expression), chunk):
            q = np.asarray(expression[a:a + chunk], np.float64)
            d2 = norms[None] - 2 * q @ pool.T  # + |q|^2, the same for every candidate
            if frames is not None:
                near = np.abs(self.frames[None] - np.asarray(frames[a:a + chunk])[:, None]) <= gap
                d2 = np.where(near & ~near.all(axis=1, keepdims=True), np.inf, d2)
            out[a:a + chunk] = np.argmin(d2, axis=1)
        return out

    def save(self, path: Path, metadata: dict[str, str]) -> None:
        write_safetensors(path, save({"frames": self.frames.astype(np.int32),
                                      "expression": self.expression.astype(np.float32),
                                      "crops": np.ascontiguousarray(self.crops)}, metadata=metadata))

    @classmethod
    def load(cls, path: Path, clip: str, config_hash: str, face_model_sha: str
             ) -> ReferencePool:
        """The pool saved with a generator, checked against the generator's clip and config."""
        Stamp.read(path)[0].check(path, clip, config_hash, face_model_sha)
        t = load_file(str(path))
        return cls(t["frames"].astype(np.int64), t["expression"], t["crops"])


class FrameCrops:
    """Crops of any clip frames cut afresh from the clip's decoded frames with cubic
    interpolation, by the fit's transforms at the render size (``transforms``, image ->
    crop). The exemplar mouths are painted from these: the fit's stored crops were
    resampled bilinearly and H.264-coded, and a bilinear-in, cubic-out round trip keeps
    only ~0.66 of the mouth's Laplacian variance (cubic both ways: ~0.95; session 5, on
    the edit-with-truth pairs). ``get`` decodes the frames it is asked for in one ascending
    pass, ``rows`` (one frame's, the chin warp's backgrounds in the plan's order) through a
    forward cursor; the last ``cached`` crops are kept."""

    def __init__(self, clip: str, root: Path | None, transforms: np.ndarray, size: int,
                 cached: int = 64) -> None:
        self.cursor = FrameCursor(FrameStore.for_clip(clip, root))
        self.transforms, self.size, self.cached = transforms, size, cached
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _keep(self, frame: int, image: np.ndarray) -> np.ndarray:
        """Cut clip frame ``frame``'s crop from its decoded ``image`` and cache it."""
        crop = cv2.warpAffine(image, self.transforms[frame].reshape(2, 3),
                              (self.size, self.size), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
        self._cache[frame] = crop
        while len(self._cache) > self.cached:
            self._cache.popitem(last=False)
        return crop

    def get(self, frames: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8 crops of clip frames ``frames`` (any order, repeats
        allowed). The frames not cached are decoded in one ascending pass
        (``FrameStore.iter_decoded_at``): scattered frames asked for in any order cost no
        re-decoding (the mouth painter's exemplars reopened the video ~40 times a render)."""
        frames = np.asarray(frames, dtype=np.int64)
        if not len(frames):
            return np.empty((0, self.size, self.size, 3), np.uint8)
        asked = frames.tolist()
        found: dict[int, np.ndarray] = {}
        for frame in asked:
            if frame in self._cache:
                self._cache.move_to_end(frame)
                found[frame] = self._cache[frame]
        for frame, decoded in self.cursor.store.iter_decoded_at(
                [f for f in asked if f not in found]):
            found[frame] = self._keep(frame, decoded.image())
        return np.stack([found[f] for f in asked])

    def rows(self, frame: int, top: int, bottom: int) -> np.ndarray:
        """(bottom - top, size, 3) uint8: rows [top, bottom) of clip frame ``frame``'s crop,
        cut alone (resampling only those rows: the chin warp reads the lower face), not
        kept; the same pixels as ``get``'s."""
        if frame in self._cache:
            return self._cache[frame][top:bottom]
        shifted = self.transforms[frame].reshape(2, 3).astype(np.float64)
        shifted[1, 2] -= top  # crop row top is row 0
        return cv2.warpAffine(self.cursor[frame], shifted, (self.size, bottom - top),
                              flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


class BackgroundCrops:
    """Render crops of any clip frames, decoded in aligned blocks kept in a small LRU."""

    def __init__(self, clip: str, root: Path | None, size: int, block: int = 64,
                 cached_blocks: int = 8) -> None:
        self.store = CropStore(clip, root, masks=False)
        self.size, self.block, self.cached_blocks = size, block, cached_blocks
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _block(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        images, _ = self.store.read(k * self.block, (k + 1) * self.block)
        self._cache[k] = resize_crops(images, self.size)
        while len(self._cache) > self.cached_blocks:
            self._cache.popitem(last=False)
        return self._cache[k]

    def get(self, frames: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8 crops of clip frames ``frames``."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and (frames.min() < 0 or frames.max() >= len(self.store)):
            raise TalkeditError(f"background frames {frames.min()}..{frames.max()}",
                                f"lie outside the clip's {len(self.store)} frames",
                                "re-run the plan stage against the current clip")
        out = np.empty((len(frames), self.size, self.size, 3), np.uint8)
        for k in np.unique(frames // self.block):
            rows = np.flatnonzero(frames // self.block == k)
            out[rows] = self._block(int(k))[frames[rows] - k * self.block]
        return out
