"""Portrait mode (after Kim et al. 2018, Deep Video Portraits): the source's head motion,
gaze and blinks carried over too, not only its expressions.

Transfer (``portrait_transfer``), per output frame, on the fits of both clips:

* **head**: the source frame's yaw, pitch and roll relative to the source's neutral (its
  median pose over its usable frames) added to the target's neutral; its shift and size
  relative to the source's median, scaled by the two heads' sizes, around the target's.
  Relative angles beyond the target's own range by more than ``max_pose_offset_deg`` (the
  renderer and the picture warp below never saw such a pose) are clamped there and the
  frame is **flagged** (``pose_flagged`` in the track, counted in the report);
* **gaze**: the source's gaze (stages/reenact/eyes.py: iris offsets and lid gap) relative
  to its resting gaze, re-applied around the target's: each iris slides by the change of
  the angle's sine, the target's own (smoothed) gaze undone;
* **blinks**: the source's lid closure (relative to its usual opening) mapped to a share
  of the lid gap to close; a target frame whose own eyes are shut cannot be opened (no
  eye pixels to show) and is flagged (``eyes_flagged``).

Picture (``Repose``): the renderer draws the new expression on the target frame at the
frame's own pose (where it was trained) and the compositor pastes it; then the whole
frame is turned to the new head pose (further than asked, ``drawn_angles``: a face fit
reads a warped picture's turn ~0.7 as far, and a turn aside as a tip down; measured on the
target's training frames) by the homography that best carries the target model's
landmarks from the frame's fitted pose to the new one, with the model's relief parallax
on top, inside an ellipse around the head (face oval x ``HEAD_MARGIN``, so hair and ears
go with it) and fading to the unmoved frame beyond it; then each iris slides within the
eye (the region slid centred on the eyeball, so the lid margins move with it) and the lids
close by pulling the skin above them down. Face and head turn as one picture: no seam
between the rendered lower face and the rest.

What it cannot do: a flat warp turns the head as a picture, not a 3-D head (no new
profile, no occlusion change of the far cheek); the background right around the head is
dragged along with it within the feather band (nothing is inpainted); the renderer only
redraws the lower face, so eyes and upper face are the target frame's own pixels, moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import median_filter
from scipy.spatial.transform import Rotation

from stages.fit import PersonModel, Pose, frame_parameters, head_angles_deg, rebuild_landmarks
from stages.reenact.eyes import BLINK_CLOSURE, eye_frames, eye_state
from stages.reenact.repose import HEAD_MARGIN, Repose, apply_homography
from talkedit.artifacts import column_array

# Measured closure (eyes.eye_state) of open and of shut eyes on the generated clip "eyes"
# (benchmarks/reenact.py --eyes): open eyes read at most 0.14, shut ones 0.355 (median;
# MediaPipe's lids close only part way). Between them, the share of the gap to close.
OPEN_CLOSURE, SHUT_CLOSURE = 0.14, 0.36
IRIS_SMOOTH_FRAMES = 5  # the target's own iris positions, median-filtered over this many
# The fit reads a warped picture's turn short of the turn asked (the turn's geometry moves,
# its shading and occlusions do not): measured on the demo's training frames turned by
# known angles and fitted (benchmarks/reenact.py --turn, reenact_turn.md), the picture is
# turned by the inverse of that reading's gain (yaw, pitch, roll).
PICTURE_TURN_GAIN = np.array([1.40, 1.32, 1.0])
# ...and the same measurement's pitch read per degree of |yaw| (the fit reads a head turned
# aside as tipped down), taken off the picture's pitch (degrees per degree of |yaw| drawn).
PICTURE_PITCH_PER_ABS_YAW = -0.25


def drawn_angles(own: np.ndarray, wanted: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """(n, 3) yaw, pitch, roll (deg) to turn target frames whose own pose is ``own`` to,
    so that the fit reads ``wanted`` (``neutral``: the target's median pose)."""
    drawn = own + (wanted - own) * PICTURE_TURN_GAIN
    drawn[:, 1] += PICTURE_PITCH_PER_ABS_YAW * np.abs(drawn[:, 0] - neutral[0])
    return drawn


@dataclass(frozen=True)
class PortraitTransfer:
    pose: Pose  # (n,) the pose each target frame's picture is turned to
    head_deg: np.ndarray  # (n, 3) yaw, pitch, roll relative to the target's neutral
    gaze_deg: np.ndarray  # (n, 2) yaw, pitch relative to the target's resting gaze
    pose_flagged: np.ndarray  # (n,) bool: beyond the target's range (clamped)
    eyes_flagged: np.ndarray  # (n,) bool: the target's eyes shut where the source's are open
    repose: Repose
    facts: dict[str, Any]


def _median_pose(pose: Pose, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    angles = head_angles_deg(pose.rotation[usable])
    return (np.median(angles, axis=0), np.median(pose.translation[usable], axis=0),
            float(np.median(pose.scale[usable])))


def _lid_share(closure: np.ndarray) -> np.ndarray:
    return np.clip((closure - OPEN_CLOSURE) / (SHUT_CLOSURE - OPEN_CLOSURE), 0.0, 1.0)


def head_turn(target: PersonModel, was: Pose, pose: Pose, expr: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The picture side of a head turn, per frame: the homography that best carries the
    target model's landmarks from the frame's fitted pose ``was`` to ``pose``, the ellipse
    turned with the head, and the landmarks before and after (``Repose``'s fields)."""
    old = rebuild_landmarks(target, was, expr)[..., :2]
    new = rebuild_landmarks(target, pose, expr)[..., :2]
    warp = np.stack([cv2.findHomography(o, p, 0)[0] for o, p in zip(old, new, strict=True)])
    topo = target.topo
    oval = new[:, list(topo.face_oval)]
    centre = oval.mean(axis=1)
    eye_line = new[:, topo.eye_outer[1]] - new[:, topo.eye_outer[0]]
    angle = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    d = oval - centre[:, None]
    half = np.stack([np.abs(c * d[..., 0] + s * d[..., 1]).max(axis=1),
                     np.abs(-s * d[..., 0] + c * d[..., 1]).max(axis=1)], axis=1)
    travel = np.linalg.norm(centre - old[:, list(topo.face_oval)].mean(axis=1), axis=1)
    return warp, np.c_[centre, half * HEAD_MARGIN + travel[:, None], angle], old, new


def portrait_transfer(source: PersonModel, source_table: Any, source_usable: np.ndarray,
                      target: PersonModel, target_table: Any, target_usable: np.ndarray,
                      source_rows: np.ndarray, target_rows: np.ndarray,
                      max_pose_offset_deg: float) -> PortraitTransfer:
    """The source frames ``source_rows``' head, gaze and blinks carried onto the target
    frames ``target_rows`` (one each)."""
    del source  # the source's pose and landmarks are read from its fit table
    s_pose, _ = frame_parameters(source_table)
    t_pose, t_expr = frame_parameters(target_table)
    s_angles0, s_shift0, s_scale0 = _median_pose(s_pose, source_usable)
    t_angles0, t_shift0, t_scale0 = _median_pose(t_pose, target_usable)
    relative = head_angles_deg(s_pose.rotation[source_rows]) - s_angles0
    own = head_angles_deg(t_pose.rotation[target_usable]) - t_angles0
    lo, hi = own.min(axis=0) - max_pose_offset_deg, own.max(axis=0) + max_pose_offset_deg
    clamped = np.clip(relative, lo, hi)
    pose_flagged = np.any(np.abs(clamped - relative) > 1e-9, axis=1)
    size = t_scale0 / s_scale0
    # The picture's turn from each target frame's own pose, so the fit reads the turn
    # wanted (a picture turned by a warp is read short of it).
    drawn = drawn_angles(head_angles_deg(t_pose.rotation[target_rows]), clamped + t_angles0,
                         t_angles0)
    pose = Pose(Rotation.from_euler("YXZ", drawn, degrees=True).as_rotvec(),
                t_shift0 + (s_pose.translation[source_rows] - s_shift0) * size,
                s_pose.scale[source_rows] * size)
    expr = t_expr[target_rows]
    warp, ellipse, old, new = head_turn(target, t_pose[target_rows], pose, expr)

    # Eyes: the target frame's measured landmarks, carried by the same warp.
    t_marks = column_array(target_table, "landmarks_2d").astype(np.float64)
    t_marks = t_marks.reshape(len(target_table), -1, 2)
    s_marks = column_array(source_table, "landmarks_2d").astype(np.float64)
    s_marks = s_marks.reshape(len(source_table), -1, 2)
    # Gaze relative to each person's resting gaze (eyes.py), the target's own smoothed.
    source_eyes = eye_state(s_marks, source_usable)
    target_eyes = eye_state(t_marks, target_usable)
    s_gaze = np.radians(source_eyes.gaze_deg[source_rows])
    t_gaze = np.radians(median_filter(target_eyes.gaze_deg, size=(IRIS_SMOOTH_FRAMES, 1),
                                      mode="nearest")[target_rows])
    moved = apply_homography(warp, t_marks[target_rows])
    out_eyes = eye_frames(moved)
    # The iris slides by the eyeball's projected radius x the change of the angle's sine
    # (both eyes alike; the resting gaze taken as straight ahead).
    delta = (np.sin(s_gaze) - np.sin(t_gaze))[:, None] * out_eyes.radius[..., None]
    iris_shift = delta[..., :1] * out_eyes.axis + delta[..., 1:] * out_eyes.normal
    points = np.stack([moved[:, [33, 133, 159, 145]], moved[:, [263, 362, 386, 374]]], axis=1)
    source_closure = source_eyes.closure[source_rows]
    target_closure = target_eyes.closure[target_rows]
    lid_close = np.clip(_lid_share(source_closure) - _lid_share(target_closure), 0.0, 1.0)
    eyes_flagged = (target_closure > BLINK_CLOSURE) & (source_closure <= BLINK_CLOSURE)

    gaze_deg = np.degrees(s_gaze)
    facts = {
        "source_neutral_deg": np.round(s_angles0, 2).tolist(),
        "target_neutral_deg": np.round(t_angles0, 2).tolist(),
        "target_range_deg": [np.round(own.min(axis=0), 2).tolist(),
                             np.round(own.max(axis=0), 2).tolist()],
        "transferred_range_deg": [np.round(relative.min(axis=0), 2).tolist(),
                                  np.round(relative.max(axis=0), 2).tolist()],
        "pose_flagged_frames": int(pose_flagged.sum()),
        "eyes_flagged_frames": int(eyes_flagged.sum()),
        "blink_frames": int((lid_close > 0.5).sum()),
        "gaze_range_deg": [np.round(gaze_deg.min(axis=0), 2).tolist(),
                           np.round(gaze_deg.max(axis=0), 2).tolist()],
        "size_ratio": round(size, 4),
    }
    repose = Repose(warp, ellipse, old, new, points, iris_shift, lid_close)
    return PortraitTransfer(pose, clamped, gaze_deg, pose_flagged, eyes_flagged, repose, facts)

