"""Portrait mode (after Kim et al. 2018, Deep Video Portraits): the source's head motion,
gaze and blinks carried over too, not only its expressions.

Transfer (``portrait_transfer``), per output frame, on the fits of both clips:

* **head**: the source frame's yaw, pitch and roll relative to the source's neutral (its
  median pose over its usable frames) added to the target's neutral; its shift and size
  relative to the source's median, scaled by the two heads' sizes, around the target's.
  Relative angles beyond the target's own range by more than ``max_pose_offset_deg`` (the
  renderer and the picture warp below never saw such a pose) are clamped there and the
  frame is **flagged** (``pose_flagged`` in the track, counted in the report);
* **gaze**: the source's iris offsets (stages/reenact/eyes.py) as angles relative to its
  resting gaze, re-applied around the target's resting iris position;
* **blinks**: the source's lid closure (relative to its usual opening) mapped to a share
  of the lid gap to close; a target frame whose own eyes are shut cannot be opened (no
  eye pixels to show) and is flagged (``eyes_flagged``).

Picture (``Repose``): the target frame behind each output frame is turned to the new head
pose by the homography that best carries the target model's landmarks from the frame's
fitted pose to the new one, applied inside an ellipse around the head (face oval x
``HEAD_MARGIN``, so hair and ears go with it) and fading to the unmoved frame beyond it;
then each iris slides within its eye opening and the lids close by pulling the skin above
them down. The renderer then draws the lower face at the new pose and expression on that
picture (the conditioning images are built on the turned crops), and the compositor
turns the full frame the same way before pasting the generated face.

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
from talkedit.artifacts import column_array

HEAD_MARGIN = 1.6  # the region turned with the head: the face oval's half-extents x this
HEAD_FEATHER = 0.8  # ...fading to the unmoved frame over this much more (x the half-extents)
LID_BAND = 0.5  # skin pulled down over a closing eye: this much above the lid (x eye width)
IRIS_FALLOFF = 0.45  # an iris shift fades to nothing over this share of the opening's rim
# Measured closure (eyes.eye_state) of open and of shut eyes on the generated clip "eyes"
# (benchmarks/reenact.py --eyes): open eyes stay below ~0.14, a shut eye reads ~0.45
# (MediaPipe's lids close only part way). Between them, the share of the gap to close.
OPEN_CLOSURE, SHUT_CLOSURE = 0.14, 0.45
IRIS_SMOOTH_FRAMES = 5  # the target's own iris positions, median-filtered over this many


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _apply_h(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n, 3, 3) homographies applied to (n, K, 2) points."""
    p = np.concatenate([points, np.ones((*points.shape[:-1], 1))], axis=-1) @ np.swapaxes(h, 1, 2)
    return p[..., :2] / p[..., 2:3]


@dataclass(frozen=True)
class Repose:
    """Per output row, in full-frame px: how the target frame's picture is turned."""

    warp: np.ndarray  # (n, 3, 3) target frame px -> output px
    ellipse: np.ndarray  # (n, 5) centre x, y, half-axes a, b, angle (rad): the turned region
    eyes: np.ndarray  # (n, 2, 4, 2) per eye: outer, inner corner, upper, lower lid (output px)
    iris_shift: np.ndarray  # (n, 2, 2) px each iris slides
    lid_close: np.ndarray  # (n,) share of the lid gap to close (0 open as it is .. 1 shut)

    def moves(self, k: int) -> bool:
        return bool(not np.allclose(self.warp[k], np.eye(3)) or np.abs(self.iris_shift[k]).max()
                    > 0.05 or self.lid_close[k] > 0)

    def apply(self, image: np.ndarray, k: int, to_image: np.ndarray | None = None) -> np.ndarray:
        """Row ``k``'s turn of ``image``: a full frame, or (``to_image``: the (2, 3) or (6,)
        affine from full-frame px to its px) a crop of one."""
        if not self.moves(k):
            return image
        a = np.eye(3)
        if to_image is not None:
            a[:2] = np.asarray(to_image, np.float64).reshape(2, 3)
        lin = a[:2, :2]
        scale = float(np.sqrt(abs(np.linalg.det(lin))))
        warp = a @ self.warp[k] @ np.linalg.inv(a)
        cx, cy, ax, ay, angle = self.ellipse[k]
        centre = lin @ [cx, cy] + a[:2, 2]
        angle += float(np.arctan2(lin[1, 0], lin[0, 0]))
        out = _turn_head(image, warp, centre, ax * scale, ay * scale, angle)
        eyes = self.eyes[k] @ lin.T + a[:2, 2]
        for e in range(2):
            out = _eye(out, eyes[e], lin @ self.iris_shift[k, e], float(self.lid_close[k]))
        return out


def _turn_head(image: np.ndarray, warp: np.ndarray, centre: np.ndarray, ax: float, ay: float,
               angle: float) -> np.ndarray:
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xs - centre[0], ys - centre[1]
    r = np.hypot((c * dx + s * dy) / max(ax, 1e-6), (-s * dx + c * dy) / max(ay, 1e-6))
    weight = _smoothstep(1.0 - (r - 1.0) / HEAD_FEATHER)
    back = np.linalg.inv(warp)
    z = back[2, 0] * xs + back[2, 1] * ys + back[2, 2]
    sx = (back[0, 0] * xs + back[0, 1] * ys + back[0, 2]) / z
    sy = (back[1, 0] * xs + back[1, 1] * ys + back[1, 2]) / z
    map_x = (weight * sx + (1 - weight) * xs).astype(np.float32)
    map_y = (weight * sy + (1 - weight) * ys).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _eye(image: np.ndarray, points: np.ndarray, shift: np.ndarray, close: float) -> np.ndarray:
    """One eye (outer, inner, upper lid, lower lid in image px): the iris slides by
    ``shift`` inside the opening, then the lids close by ``close`` of their gap."""
    outer, inner, top, bottom = points
    width = float(np.linalg.norm(inner - outer))
    if width < 2 or (np.abs(shift).max() < 0.05 and close <= 0):
        return image
    axis = (inner - outer) / width
    axis *= np.sign(axis[0] + 1e-12)
    normal = np.array([-axis[1], axis[0]])
    centre = (outer + inner) / 2
    half_w = width / 2
    v_top, v_bottom = float((top - centre) @ normal), float((bottom - centre) @ normal)
    h, w = image.shape[:2]
    reach = width * (1.0 + LID_BAND)
    x0, y0 = (np.floor(centre - reach)).astype(int).clip(0)
    x1, y1 = min(int(np.ceil(centre[0] + reach)) + 1, w), min(int(np.ceil(centre[1] + reach)) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return image
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    u = (xs - centre[0]) * axis[0] + (ys - centre[1]) * axis[1]
    v = (xs - centre[0]) * normal[0] + (ys - centre[1]) * normal[1]
    # Lids as arcs through the corners and the lid middles.
    arc = np.sqrt(np.clip(1.0 - (u / half_w) ** 2, 0.0, 1.0))
    top_v, bottom_v = v_top * arc, v_bottom * arc
    src_u, src_v = u.copy(), v.copy()
    if close > 0:
        new_top = top_v + close * (bottom_v - top_v)
        band = top_v - LID_BAND * width
        skin = (v > band) & (v <= new_top)
        src_v = np.where(skin, band + (v - band) * (top_v - band) / np.maximum(new_top - band, 1e-6),
                         src_v)
        opening = (v > new_top) & (v < bottom_v)
        src_v = np.where(opening, top_v + (v - new_top) * (bottom_v - top_v)
                         / np.maximum(bottom_v - new_top, 1e-6), src_v)
    if np.abs(shift).max() >= 0.05:
        half_h = max((v_bottom - v_top) / 2, 0.25 * half_w)
        mid = (v_top + v_bottom) / 2
        r = np.hypot(src_u / half_w, (src_v - mid) / half_h)
        fall = _smoothstep((1.0 - r) / IRIS_FALLOFF)
        along, across = float(shift @ axis), float(shift @ normal)
        src_u, src_v = src_u - along * fall, src_v - across * fall
    map_x = (centre[0] + src_u * axis[0] + src_v * normal[0]).astype(np.float32)
    map_y = (centre[1] + src_u * axis[1] + src_v * normal[1]).astype(np.float32)
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
    return out


@dataclass(frozen=True)
class PortraitTransfer:
    pose: Pose  # (n,) the output frames' head pose
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
    pose = Pose(Rotation.from_euler("YXZ", clamped + t_angles0, degrees=True).as_rotvec(),
                t_shift0 + (s_pose.translation[source_rows] - s_shift0) * size,
                s_pose.scale[source_rows] * size)

    # The picture: the target frame's head carried from its fitted pose to the new one.
    expr = t_expr[target_rows]
    old = rebuild_landmarks(target, t_pose[target_rows], expr)[..., :2]
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
    ellipse = np.c_[centre, half * HEAD_MARGIN + travel[:, None], angle]

    # Eyes: the target frame's measured landmarks, carried by the same warp.
    t_marks = column_array(target_table, "landmarks_2d").astype(np.float64)
    t_marks = t_marks.reshape(len(target_table), -1, 2)
    s_marks = column_array(source_table, "landmarks_2d").astype(np.float64)
    s_marks = s_marks.reshape(len(source_table), -1, 2)
    t_eyes = eye_frames(t_marks)
    t_iris = median_filter(t_eyes.iris, size=(IRIS_SMOOTH_FRAMES, 1, 1), mode="nearest")
    rest = np.median(np.arcsin(np.clip(t_eyes.iris[target_usable], -1, 1)), axis=0)  # (2, 2)
    s_eyes = eye_frames(s_marks)
    s_angles = np.arcsin(np.clip(s_eyes.iris, -1, 1))
    s_gaze = (s_angles - np.median(s_angles[source_usable], axis=0)).mean(axis=1)  # (n, 2) rad
    s_gaze = np.where(source_usable[:, None], s_gaze, 0.0)[source_rows]
    moved = _apply_h(warp, t_marks[target_rows])
    out_eyes = eye_frames(moved)
    want = np.sin(rest[None] + s_gaze[:, None])  # (n, 2 eyes, 2)
    delta = (want - t_iris[target_rows]) * out_eyes.radius[..., None]
    iris_shift = delta[..., :1] * out_eyes.axis + delta[..., 1:] * out_eyes.normal
    points = np.stack([moved[:, [33, 133, 159, 145]], moved[:, [263, 362, 386, 374]]], axis=1)
    source_closure = eye_state(s_marks).closure
    source_closure = np.where(source_usable, source_closure, 0.0)[source_rows]
    target_closure = eye_state(t_marks).closure[target_rows]
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
    repose = Repose(warp, ellipse, points, iris_shift, lid_close)
    return PortraitTransfer(pose, clamped, gaze_deg, pose_flagged, eyes_flagged, repose, facts)


def repose_columns(repose: Repose) -> dict[str, np.ndarray]:
    """The track's columns (REENACT_TRACK) that hold a Repose."""
    n = len(repose.warp)
    return {"warp": repose.warp.reshape(n, 9), "head_ellipse": repose.ellipse,
            "eye_points": repose.eyes.reshape(n, 16), "iris_shift_px": repose.iris_shift.reshape(n, 4),
            "lid_close": repose.lid_close}


def still_repose(n: int) -> Repose:
    """Rows whose picture is left as it is (expression mode)."""
    return Repose(np.tile(np.eye(3), (n, 1, 1)), np.zeros((n, 5)), np.zeros((n, 2, 4, 2)),
                  np.zeros((n, 2, 2)), np.zeros(n))


@dataclass(frozen=True)
class TrackReposer:
    """A portrait job's turns, read back from its track: for the renderer (crops and
    outlines of the target frames behind the rows) and the compositor (full frames)."""

    repose: Repose
    row_of_frame: dict[int, int]  # target frame -> track row
    row_of_output: dict[int, int]  # plan row (output frame) -> track row

    @classmethod
    def from_track(cls, track: Any) -> TrackReposer:
        def vectors(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return column_array(track, name).astype(np.float64).reshape(-1, *shape)

        repose = Repose(vectors("warp", (3, 3)), vectors("head_ellipse", (5,)),
                        vectors("eye_points", (2, 4, 2)), vectors("iris_shift_px", (2, 2)),
                        track.column("lid_close").to_numpy().astype(np.float64))
        frames = track.column("target_frame").to_numpy().tolist()
        outputs = track.column("frame").to_numpy().tolist()
        return cls(repose, {int(f): k for k, f in enumerate(frames)},
                   {int(f): k for k, f in enumerate(outputs)})

    def crops(self, frames: np.ndarray, crops: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """Render crops (n, S, S, 3) of target ``frames`` (image -> crop ``transforms``), turned."""
        out = crops.copy()
        for i, f in enumerate(np.asarray(frames).tolist()):
            k = self.row_of_frame.get(int(f))
            if k is not None:
                out[i] = self.repose.apply(crops[i], k, transforms[i])
        return out

    def outlines(self, outlines: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """(n_clip, K, 2) crop-px lower-face outlines, those of the turned frames moved."""
        out = outlines.copy()
        for f, k in self.row_of_frame.items():
            a = np.eye(3)
            a[:2] = transforms[f].reshape(2, 3)
            warp = a @ self.repose.warp[k] @ np.linalg.inv(a)
            out[f] = _apply_h(warp[None], outlines[f][None])[0]
        return out

    def frame(self, row: int, image: np.ndarray) -> np.ndarray:
        """Plan row ``row``'s full frame, turned."""
        k = self.row_of_output.get(int(row))
        return image if k is None else self.repose.apply(image, k)
