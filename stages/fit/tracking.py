"""Which face to follow, and what to do where there is none.

The main speaker is chosen once, as the largest and most central face, and
then followed by box overlap (IoU) from frame to frame, so a second person
entering the shot never takes over. Frames without the main face become gaps:
short ones are interpolated (and flagged), long ones are reported by frame
range, and the stage fails when too much of the clip has no face.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from stages.fit.landmarks import Face

log = logging.getLogger(__name__)

# Why a frame has no main face.
FOUND, NO_FACE, TOO_SMALL, OTHER_FACE, OCCLUDED = 0, 1, 2, 3, 4
REASONS = {NO_FACE: "no face", TOO_SMALL: "face smaller than min_face_px",
           OTHER_FACE: "only faces other than the main one",
           OCCLUDED: "mouth covered (fit.occlusion_share)"}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class MainFaceTracker:
    width: int
    height: int
    min_face_px: float = 60.0
    iou_min: float = 0.3
    box: np.ndarray | None = None  # the main face's last box
    size: float = 0.0  # its typical height, px (running average)
    reasons: Counter = field(default_factory=Counter)
    multi_face_frames: int = 0
    switches: int = 0

    def _score(self, face: Face) -> float:
        """Main-speaker score: area, discounted by distance from the frame centre."""
        x0, y0, x1, y1 = face.box
        centre = np.array([(x0 + x1) / 2 - self.width / 2, (y0 + y1) / 2 - self.height / 2])
        off = np.linalg.norm(centre) / (0.5 * np.hypot(self.width, self.height))
        return float((x1 - x0) * (y1 - y0) * (1.0 - 0.5 * off))

    def select(self, frame: int, faces: list[Face]) -> tuple[Face | None, int]:
        """The main face in this frame (or None) and the reason code."""
        usable = [f for f in faces if f.height_px >= self.min_face_px]
        if len(faces) > 1:
            if not self.multi_face_frames:
                log.info("frame %d: %d faces; following the main speaker (largest, most "
                         "central, then by box overlap)", frame, len(faces))
            self.multi_face_frames += 1
        if not usable:
            reason = TOO_SMALL if faces else NO_FACE
            self.reasons[reason] += 1
            return None, reason
        if self.box is None:
            chosen = max(usable, key=self._score)
            log.info("frame %d: main face at box %s (%.0f px)", frame,
                     np.round(chosen.box).astype(int).tolist(), chosen.height_px)
        else:
            overlaps = [iou(f.box, self.box) for f in usable]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= self.iou_min:
                chosen = usable[best]
            else:
                # The main face moved far while unseen: take a face of its size back, never
                # a much smaller (or larger) one, which would be somebody else.
                similar = [f for f in usable if 0.6 * self.size <= f.height_px <= 1.6 * self.size]
                if not similar:
                    self.reasons[OTHER_FACE] += 1
                    return None, OTHER_FACE
                chosen = max(similar, key=self._score)
                self.switches += 1
                log.warning("frame %d: main face re-acquired at box %s (no overlap with its "
                            "last box %s)", frame, np.round(chosen.box).astype(int).tolist(),
                            np.round(self.box).astype(int).tolist())
        self.box = chosen.box
        self.size = chosen.height_px if not self.size else 0.9 * self.size + 0.1 * chosen.height_px
        return chosen, FOUND


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges where ``mask`` is True."""
    m = np.r_[False, np.asarray(mask, dtype=bool), False]
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def format_ranges(ranges: list[tuple[int, int]], fps: float, limit: int = 8) -> str:
    """'frames 10-34 (0.40-1.36 s), ...' with inclusive frame numbers."""
    parts = [f"frames {a}-{b - 1} ({a / fps:.2f}-{b / fps:.2f} s)" for a, b in ranges[:limit]]
    more = f" and {len(ranges) - limit} more" if len(ranges) > limit else ""
    return ", ".join(parts) + more


def fill_gaps(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames where ``known`` is False; ends hold the nearest value."""
    values = np.asarray(values, dtype=np.float64)
    idx = np.flatnonzero(known)
    if len(idx) == 0 or len(idx) == len(values):
        return values.copy()
    flat = values.reshape(len(values), -1)
    t = np.arange(len(values))
    out = np.stack([np.interp(t, idx, flat[idx, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(values.shape)


def short_gaps(missing: np.ndarray, max_gap: int) -> np.ndarray:
    """Missing frames in runs of at most ``max_gap`` frames (these get interpolated)."""
    out = np.zeros(len(missing), dtype=bool)
    for a, b in runs(missing):
        if b - a <= max_gap:
            out[a:b] = True
    return out
