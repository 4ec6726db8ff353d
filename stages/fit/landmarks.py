"""Face landmarkers behind one small interface, chosen by name (param ``fit.landmarker``).

A landmarker is fed a clip's frames in order (video mode: it may track from
frame to frame) and returns every face it sees as 3-D points in pixels. Adding
one means subclassing ``Landmarker`` and decorating it with ``@register``.

* ``mediapipe`` (default): MediaPipe FaceMesh, legacy solution API, video mode,
  ``refine_landmarks=True``: 478 points with relative depth. Its tflite models
  ship in the mediapipe 0.10.21 wheel, so it runs offline.
* ``fan``: face-alignment's 3D FAN (68 iBUG points), only when the package is
  installed and its weights already sit in the torch hub cache. It is never
  allowed to download them: a clear error says what is missing instead.
"""

from __future__ import annotations

import abc
import importlib
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stages.fit.topology import Topology, ibug68_topology, mediapipe_topology
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)


@dataclass
class Face:
    """One detected face: (N, 3) float32 points in pixels; z is depth in the same scale as x."""

    points: np.ndarray
    score: float = 1.0

    @cached_property
    def box(self) -> np.ndarray:
        """(x0, y0, x1, y1) of the landmarks."""
        xy = self.points[:, :2]
        return np.concatenate([xy.min(axis=0), xy.max(axis=0)])

    @property
    def height_px(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))


class Landmarker(abc.ABC):
    """Finds faces in a clip's frames, fed in order. Use as a context manager."""

    name: ClassVar[str]

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    @property
    @abc.abstractmethod
    def topology(self) -> Topology: ...

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in one RGB uint8 frame (the next one of the clip)."""

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release the backend's resources."""

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LANDMARKERS: dict[str, type[Landmarker]] = {}


def register(cls: type[Landmarker]) -> type[Landmarker]:
    LANDMARKERS[cls.name] = cls
    return cls


def make_landmarker(params: dict[str, Any]) -> Landmarker:
    """The landmarker named by ``params['landmarker']`` (default ``mediapipe``)."""
    name = params.get("landmarker", "mediapipe")
    if name not in LANDMARKERS:
        raise TalkeditError(f"fit.landmarker {name!r}", "is not a known landmarker",
                            f"set fit.landmarker in params.yaml to one of {sorted(LANDMARKERS)}")
    return LANDMARKERS[name](params)


@register
class MediaPipeLandmarker(Landmarker):
    name = "mediapipe"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        import mediapipe as mp

        # Video mode: the face detector runs only while fewer than max_faces faces are
        # tracked; landmarks are otherwise tracked from the previous frame's face box.
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=int(params.get("max_faces", 2)),
            refine_landmarks=True,
            min_detection_confidence=float(params.get("min_detection_confidence", 0.5)),
            min_tracking_confidence=float(params.get("min_tracking_confidence", 0.5)))

    @property
    def topology(self) -> Topology:
        return mediapipe_topology()

    def detect(self, image: np.ndarray) -> list[Face]:
        result = self._mesh.process(np.ascontiguousarray(image))
        if not result.multi_face_landmarks:
            return []
        h, w = image.shape[:2]
        scale = np.array([w, h, w], dtype=np.float32)  # z comes normalized by the width
        return [Face(np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float32) * scale)
                for lms in result.multi_face_landmarks]

    def close(self) -> None:
        self._mesh.close()


# face-alignment 1.4 fetches these into <torch hub>/checkpoints on first use.
FAN_WEIGHTS = {"face detector (s3fd)": "s3fd*.pth", "3D landmarks (3DFAN4)": "3DFAN4*",
               "depth (depth)": "depth*"}


def missing_fan_weights(hub_dir: Path) -> list[str]:
    """The FAN weight files absent from ``hub_dir``/checkpoints, as readable names."""
    folder = hub_dir / "checkpoints"
    return [f"{what}: {pattern}" for what, pattern in FAN_WEIGHTS.items()
            if not any(folder.glob(pattern))]


@register
class FanLandmarker(Landmarker):
    """face-alignment's 3D FAN: 68 points per face, with depth."""

    name = "fan"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        try:
            fa = importlib.import_module("face_alignment")
        except ImportError as exc:
            raise TalkeditError("fit.landmarker 'fan'", "face-alignment is not installed",
                                "pip install 'talkedit[fan]' and put its weights in the torch hub "
                                "cache, or set fit.landmarker: mediapipe") from exc
        import torch

        hub = Path(torch.hub.get_dir())
        missing = missing_fan_weights(hub)
        if missing:
            raise TalkeditError(f"fit.landmarker 'fan' ({hub / 'checkpoints'})",
                                f"FAN weights are missing ({'; '.join(missing)}) and this "
                                "project never downloads models",
                                "copy face-alignment's weight files into that folder, or set "
                                "fit.landmarker: mediapipe")
        kind = getattr(fa.LandmarksType, "THREE_D", None) or fa.LandmarksType._3D
        self._fa = fa.FaceAlignment(kind, device=str(params.get("device", "cpu")),
                                    flip_input=False)

    @property
    def topology(self) -> Topology:
        return ibug68_topology()

    def detect(self, image: np.ndarray) -> list[Face]:
        found = self._fa.get_landmarks_from_image(np.ascontiguousarray(image))
        return [Face(np.asarray(p, dtype=np.float32)[:, :3]) for p in (found or [])]
