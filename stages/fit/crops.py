"""Aligned face crops for training, and the lower-face mask of each frame.

Store (``data/interim/<clip>/crops/``): ``crops.mp4``, every frame of the clip
cropped to ``crop_size`` x ``crop_size`` around the face (H.264 yuv444p, a
keyframe every ``crop_gop`` frames so any range decodes after a short seek),
plus ``crops.json``. Crop frame k is clip frame k. The 2x3 image-to-crop
transform of each frame and its lower-face mask polygon (in crop pixels) are
columns of face.parquet; ``CropStore`` / ``read_crops`` give crops and masks
by frame range. A one-hour clip at 256 px is about 1-2 GB of video, where raw
tensors would be 18 GB.

Crops are framed during the landmark pass, streaming: a similarity fitted to
the skull's rigid points (so neither yaw nor a moving jaw changes the zoom)
gives centre, size and roll per frame, averaged over a centred window of
``crop_smooth_frames`` frames on each side; the writer holds only that many
frames back.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from stages.fit.geometry import canonicalize, procrustes
from stages.fit.topology import Topology
from talkedit.artifacts import FACE, N_MASK_POINTS, ClipPaths, column_array, read_parquet
from talkedit.errors import TalkeditError
from talkedit.video import FrameStore, open_container, x264_options


class CropFramer:
    """Per-frame crop frame (centre x, centre y, log side, roll) from a face's rigid points."""

    def __init__(self, topo: Topology, margin: float) -> None:
        self.topo = topo
        self.margin = margin
        self.template: np.ndarray | None = None

    def measure(self, points: np.ndarray) -> np.ndarray:
        rigid = list(self.topo.rigid)
        if self.template is None:
            # The first face, canonicalized (frontal, unit eye distance), is the template.
            self.template = canonicalize(points, self.topo)
            lo, hi = self.template.min(axis=0), self.template.max(axis=0)
            self._centre = (lo + hi) / 2
            self._extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
        s, r, t = procrustes(self.template[rigid], points[None, rigid])
        centre = s[0] * r[0] @ self._centre + t[0]
        roll = np.arctan2(r[0, 1, 0], r[0, 0, 0])
        return np.array([centre[0], centre[1], np.log(s[0] * self._extent * self.margin), roll])


def crop_matrix(frame: np.ndarray, size: int) -> np.ndarray:
    """2x3 image-to-crop similarity for a crop frame (cx, cy, log side, roll)."""
    cx, cy, log_side, roll = frame
    a = size / np.exp(log_side)
    c, s = np.cos(roll), np.sin(roll)
    m = a * np.array([[c, s], [-s, c]])
    return np.hstack([m, (np.array([size / 2, size / 2]) - m @ np.array([cx, cy]))[:, None]])


def to_crop(points_xy: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Image points (n, K, 2) into crop pixels with (n, 6) row-major 2x3 transforms."""
    m = np.asarray(transforms, dtype=np.float64).reshape(-1, 2, 3)
    return np.einsum("nij,nkj->nki", m[:, :, :2], points_xy) + m[:, None, :, 2]


def resample_polygon(poly: np.ndarray, n: int = N_MASK_POINTS) -> np.ndarray:
    """(..., K, 2) closed polygons resampled to n points evenly spaced along the outline."""
    closed = np.concatenate([poly, poly[..., :1, :]], axis=-2)
    seg = np.linalg.norm(np.diff(closed, axis=-2), axis=-1)
    cum = np.concatenate([np.zeros((*seg.shape[:-1], 1)), np.cumsum(seg, axis=-1)], axis=-1)
    flat_c, flat_p = cum.reshape(-1, cum.shape[-1]), closed.reshape(-1, *closed.shape[-2:])
    out = np.empty((len(flat_c), n, 2))
    for i, (c, p) in enumerate(zip(flat_c, flat_p, strict=True)):
        t = np.linspace(0.0, c[-1], n, endpoint=False)
        out[i] = np.stack([np.interp(t, c, p[:, 0]), np.interp(t, c, p[:, 1])], axis=-1)
    return out.reshape(*poly.shape[:-2], n, 2)


def lower_face_mask(polygon: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 mask, 1 inside one frame's lower-face polygon ((K, 2) crop px)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    pts = np.round(np.asarray(polygon).reshape(-1, 2) * 16).astype(np.int32)  # 4 bits subpixel
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask


class CropWriter:
    """Frames in, aligned crops out to an H.264 file, holding ``lookahead`` frames back.

    Encoding runs on a worker thread (libx264 releases the GIL) so it overlaps
    the landmarker.
    """

    def __init__(self, path: Path, size: int, fps: Fraction, frame_size: tuple[int, int],
                 lookahead: int = 4, crf: int = 14, gop: int = 25) -> None:
        self.size, self.lookahead = size, lookahead
        self.frame_w, self.frame_h = frame_size
        # The crop frame measured at each clip frame still within ``lookahead`` of the next
        # one to emit, and the transforms so far (rows of one array: a list of small
        # arrays costs ~300 B a frame, 14 MB for 31 min).
        self.frames: dict[int, np.ndarray | None] = {}
        self._pushed = 0
        self._transforms = np.empty((1024, 6))
        self._emitted = 0
        self._buffer: deque[tuple[int, np.ndarray]] = deque()
        self._last: np.ndarray | None = None
        self._container = av.open(str(path), "w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width = self._stream.height = size
        self._stream.pix_fmt = "yuv444p"  # no chroma subsampling: lip colour edges matter
        self._stream.options = x264_options(crf=crf, preset="veryfast", g=gop, keyint_min=gop,
                                            sc_threshold=0)
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._encode_loop, name="crop-encoder", daemon=True)
        self._worker.start()

    def _encode_loop(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                k, crop = item
                frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
                frame.pts = k
                self._container.mux(self._stream.encode(frame))
            self._container.mux(self._stream.encode(None))
        except BaseException as exc:  # surfaced on the main thread by push/close
            self._error = exc
            while self._queue.get() is not None:  # drain so the producer never blocks
                pass

    def push(self, k: int, image: np.ndarray, measured: np.ndarray | None) -> None:
        if self._error is not None:
            raise self._error
        self.frames[self._pushed] = measured
        self._pushed += 1
        self._buffer.append((k, image))
        if len(self._buffer) > self.lookahead:
            self._emit(*self._buffer.popleft())

    def _emit(self, k: int, image: np.ndarray) -> None:
        lo, hi = max(0, k - self.lookahead), min(self._pushed, k + self.lookahead + 1)
        self.frames.pop(lo - 1, None)  # out of every later frame's window
        near = [(j, f) for j in range(lo, hi) if (f := self.frames[j]) is not None]
        if near:
            w = np.array([np.exp(-0.5 * ((j - k) / (0.5 * self.lookahead + 0.5)) ** 2)
                          for j, _ in near])
            frame = (w[:, None] * np.stack([f for _, f in near])).sum(axis=0) / w.sum()
            self._last = frame
        elif self._last is not None:
            frame = self._last  # no face nearby: hold the last framing
        else:  # no face seen yet: the centred square of the frame
            side = min(self.frame_w, self.frame_h)
            frame = np.array([self.frame_w / 2, self.frame_h / 2, np.log(side), 0.0])
        matrix = crop_matrix(frame, self.size)
        if self._emitted == len(self._transforms):
            self._transforms = np.concatenate([self._transforms, np.empty_like(self._transforms)])
        self._transforms[self._emitted] = matrix.reshape(-1)
        self._emitted += 1
        crop = cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        self._queue.put((k, crop))

    def close(self) -> np.ndarray:
        """Flush, finish the file; (n, 6) image-to-crop transforms, one per pushed frame."""
        try:
            while self._buffer and self._error is None:
                self._emit(*self._buffer.popleft())
        finally:
            self._queue.put(None)
            self._worker.join()
            self._container.close()
        if self._error is not None:
            raise self._error
        return self._transforms[:self._emitted].copy()


class CropStore:
    """A clip's crops and lower-face masks, by frame range (for training)."""

    def __init__(self, clip: str, root: Path | None = None, masks: bool = True) -> None:
        """``masks`` false: ``read`` returns no masks (the renderer has its own outlines),
        and face.parquet's mask column is not read (15 MB at 31 minutes)."""
        paths = ClipPaths.of(clip, root)
        video = paths.crops / "crops.mp4"
        if not video.is_file():
            raise TalkeditError(video, "not found", f"run fit@{clip} first (dvc repro)")
        table = read_parquet(paths.face, FACE, arrow=True, stage_hint=f"fit@{clip}",
                             columns=["mask_polygon" if masks else "frame"])
        self.masks = (column_array(table, "mask_polygon").reshape(len(table), -1, 2) if masks
                      else None)
        pts, keys = [], []
        with open_container(video) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
            self.size = container.streams.video[0].codec_context.width
        if len(pts) != len(table):
            raise TalkeditError(video, f"holds {len(pts)} crops for {len(table)} frames",
                                f"re-run fit@{clip}")
        self._frames = FrameStore(video, np.sort(np.array(pts)), 0, np.array(keys))

    def __len__(self) -> int:
        return len(self._frames)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Crops (n, S, S, 3) uint8 RGB and masks (n, S, S) uint8 (1 = lower face; none
        without ``masks``)."""
        stop = min(stop, len(self))
        crops = [image for _, image in self._frames.iter_frames(start, stop)]
        masks = ([] if self.masks is None else
                 [lower_face_mask(self.masks[k], self.size) for k in range(start, stop)])
        empty = (0, self.size, self.size)
        return (np.stack(crops) if crops else np.zeros((*empty, 3), np.uint8),
                np.stack(masks) if masks else np.zeros(empty, np.uint8))


def read_crops(clip: str, start: int, stop: int, root: Path | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Crops and lower-face masks of frames [start, stop) of a fitted clip."""
    return CropStore(clip, root).read(start, stop)

