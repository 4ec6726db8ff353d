"""Animate the lower face of a still photo: the demo clip's synthetic talking head.

A ``FaceRig`` is built once from a frontal face photo: MediaPipe FaceMesh
finds the lips, eyes, nose and chin, and the photo is framed around the face.
Each frame is then one backward warp (cv2.remap) computed analytically:

* jaw opening moves the lower lip and chin down (and the upper lip a little
  up) and opens a mouth cavity between the inner lip lines, drawn with teeth
  and a dark interior;
* lip width stretches or narrows the mouth horizontally (spread / rounded);
* lip closure presses the lips together;
* head motion is a small perspective rotation (yaw, pitch, roll) and shift of
  the whole picture; lighting is a slow gain and left-right gradient change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)

# MediaPipe FaceMesh indices (canonical face topology).
INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263
NOSE_TIP, CHIN = 1, 152
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
# The rig animates a closed, neutral mouth: lips apart by more than this share of the eye
# distance (inner-lip gap / outer eye corners) would be drawn over, giving a second mouth.
MAX_REST_OPENING = 0.12
WARN_REST_OPENING = 0.08  # ...and above this, parted lips may show through


def detect_landmarks(image_rgb: np.ndarray) -> np.ndarray | None:
    """478 FaceMesh landmarks in pixels (x, y, z), or None when no face is found."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1, min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(image_rgb))
    if not result.multi_face_landmarks:
        return None
    h, w = image_rgb.shape[:2]
    return np.array([(p.x * w, p.y * h, p.z * w) for p in result.multi_face_landmarks[0].landmark],
                    dtype=np.float64)


def rest_opening(landmarks: np.ndarray) -> float:
    """Mean inner-lip gap over the outer eye-corner distance of one face's landmarks."""
    gap = np.linalg.norm(landmarks[INNER_UPPER, :2] - landmarks[INNER_LOWER, :2], axis=1).mean()
    eyes = np.linalg.norm(landmarks[LEFT_EYE_OUTER, :2] - landmarks[RIGHT_EYE_OUTER, :2])
    return float(gap / max(eyes, 1e-9))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rig_rotations(yaw_deg: float, pitch_deg: float, roll_deg: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rig's rotation's factors Rz(roll), Rx(pitch), Ry(yaw), applied in that order
    from the left (kept apart so the flat rig multiplies them as it always has)."""
    ry, rx, rz = np.radians([yaw_deg, pitch_deg, roll_deg])
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return rot_z, rot_x, rot_y


def rig_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """The rig's rotation Rz(roll) Rx(pitch) Ry(yaw)."""
    rot_z, rot_x, rot_y = rig_rotations(yaw_deg, pitch_deg, roll_deg)
    return rot_z @ rot_x @ rot_y


@dataclass
class HeadPose:
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    tx_px: float = 0.0
    ty_px: float = 0.0


# A head turns about a point this far (x the eye-corner distance) behind the face's edge.
HEAD_PIVOT = 1.1
RELIEF_RING = 1.35  # the face's relief falls to the picture plane at this x its outline


class FaceRig:
    def __init__(self, image_rgb: np.ndarray, size: int, face_fraction: float = 0.42,
                 source: str = "face image", relief: bool = False) -> None:
        landmarks = detect_landmarks(image_rgb)
        if landmarks is None:
            raise TalkeditError(source, "no face found", "give a frontal photo of one face")
        self.image = self._frame_face(image_rgb, landmarks, size, face_fraction)
        lm = detect_landmarks(self.image)
        if lm is None:
            raise TalkeditError(source, "the face is lost after framing", "give a larger, frontal photo")
        opening = rest_opening(lm)
        if opening > MAX_REST_OPENING:
            raise TalkeditError(source, f"the mouth is open in the photo (lips apart by "
                                f"{opening:.2f} of the eye distance, at most "
                                f"{MAX_REST_OPENING} allowed): animating it would draw a "
                                "second mouth", "give a photo with the mouth closed and neutral")
        if opening > WARN_REST_OPENING:
            log.warning("%s: lips apart by %.2f of the eye distance; a closed, neutral mouth "
                        "animates best", source, opening)
        self.landmarks = lm
        self.size = size
        self.eye_dist = float(np.linalg.norm(lm[LEFT_EYE_OUTER, :2] - lm[RIGHT_EYE_OUTER, :2]))
        mid_x = (lm[INNER_UPPER, 0] + lm[INNER_LOWER, 0]) / 2
        mid_y = (lm[INNER_UPPER, 1] + lm[INNER_LOWER, 1]) / 2
        order = np.argsort(mid_x)
        self.line_x, self.line_y = mid_x[order], mid_y[order]
        self.cx = float((lm[MOUTH_LEFT, 0] + lm[MOUTH_RIGHT, 0]) / 2)
        self.mouth_half = float(abs(lm[MOUTH_RIGHT, 0] - lm[MOUTH_LEFT, 0]) / 2)
        cy = float(np.interp(self.cx, self.line_x, self.line_y))
        self.chin = float(lm[CHIN, 1] - cy)
        self.nose = float(cy - lm[NOSE_TIP, 1])
        self.center = np.array([self.cx, (lm[NOSE_TIP, 1] + lm[CHIN, 1]) / 2])
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self._grid = np.stack([xs.ravel(), ys.ravel(), np.ones(size * size, np.float32)])
        rng = np.random.default_rng(0)
        self._grain = rng.normal(0.0, 1.2, (size, size, 1)).astype(np.float32)
        # relief: the head turns as a 3-D relief (depth from the landmarks) about a pivot
        # behind the face, so the nose moves against the cheeks as in a real turn; without
        # it, the whole picture turns as a flat plane (a camera rotation: no parallax).
        self.depth = self._relief(lm, size) if relief else None

    @staticmethod
    def _relief(lm: np.ndarray, size: int) -> np.ndarray:
        """(size, size) depth in px (+ = farther): the landmarks' depth relative to the
        face's outline, spread over the face and falling to 0 around it."""
        from scipy.interpolate import griddata
        from scipy.spatial import ConvexHull

        hull = ConvexHull(lm[:, :2]).vertices
        centre = lm[hull, :2].mean(axis=0)
        ring = centre + (lm[hull, :2] - centre) * RELIEF_RING
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1.0]])
        points = np.concatenate([lm[:, :2], ring, corners])
        values = np.concatenate([lm[:, 2] - np.median(lm[hull, 2]), np.zeros(len(ring) + 4)])
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        depth = griddata(points, values, (xs, ys), method="linear", fill_value=0.0)
        return cv2.GaussianBlur(depth.astype(np.float32), (0, 0), 0.02 * size)

    def _turn(self, xy: np.ndarray, depth: np.ndarray, pose: HeadPose) -> np.ndarray:
        """Photo points (m, 2) at relief ``depth`` (m,) -> output frame: rotated about the
        head's pivot, seen through the rig's camera, shifted."""
        f = 2.0 * self.size
        pivot = f + HEAD_PIVOT * self.eye_dist
        p = np.stack([xy[:, 0] - self.center[0], xy[:, 1] - self.center[1], f + depth], axis=1)
        q = (p - [0, 0, pivot]) @ rig_rotation(pose.yaw_deg, pose.pitch_deg, pose.roll_deg).T
        q[:, 2] += pivot
        return self.center + f * q[:, :2] / q[:, 2:3] + [pose.tx_px, pose.ty_px]

    def _depth_at(self, xy: np.ndarray) -> np.ndarray:
        assert self.depth is not None
        m = len(xy)
        rows = -(-m // 1024)  # remap's maps are images: at most 32767 on a side
        pts = np.zeros((rows * 1024, 2), np.float32)
        pts[:m] = xy
        pts = pts.reshape(rows, 1024, 2)
        return cv2.remap(self.depth, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0).reshape(-1)[:m]

    def project(self, xy: np.ndarray, pose: HeadPose) -> np.ndarray:
        """Face-photo points (m, 2) -> where the frame rendered with ``pose`` shows them."""
        xy = np.asarray(xy, np.float64)
        if self.depth is None:
            p = np.c_[xy, np.ones(len(xy))] @ self._homography(pose).T
            return p[:, :2] / p[:, 2:3]
        return self._turn(xy, self._depth_at(xy), pose)

    def _photo_points(self, pose: HeadPose) -> tuple[np.ndarray, np.ndarray]:
        """For every output pixel, the face-photo point it shows (x, y, flattened)."""
        if self.depth is None:
            p = np.linalg.inv(self._homography(pose)).astype(np.float32) @ self._grid
            return p[0] / p[2], p[1] / p[2]
        # The relief's backward map: start from the flat face's (a homography), then
        # correct by each point's parallax (a few fixed-point steps; the turns are small).
        out = self._grid[:2].T.astype(np.float64)
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]]) * self.size
        flat = cv2.getPerspectiveTransform(corners.astype(np.float32),
                                           self._turn(corners, np.zeros(4), pose).astype(np.float32))
        p = np.c_[out, np.ones(len(out))] @ np.linalg.inv(flat).T
        p = p[:, :2] / p[:, 2:3]
        for _ in range(3):
            p -= self._turn(p, self._depth_at(p), pose) - out
        return p[:, 0].astype(np.float32), p[:, 1].astype(np.float32)

    @staticmethod
    def _frame_face(image: np.ndarray, lm: np.ndarray, size: int, fraction: float) -> np.ndarray:
        """Crop a square around the face so it spans ``fraction`` of the frame, then resize."""
        face_h = float(lm[CHIN, 1] - min(lm[:, 1]))
        side = face_h / fraction
        cx, cy = float(lm[NOSE_TIP, 0]), float((min(lm[:, 1]) + lm[CHIN, 1]) / 2)
        scale = size / side
        m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REFLECT101)

    def _homography(self, pose: HeadPose) -> np.ndarray:
        """Face-photo coordinates -> output frame: a small rotation of a plane in front of a camera."""
        f = 2.0 * self.size
        cx, cy = self.center
        k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        rot_z, rot_x, rot_y = rig_rotations(pose.yaw_deg, pose.pitch_deg, pose.roll_deg)
        h = k @ rot_z @ rot_x @ rot_y @ np.linalg.inv(k)
        shift = np.array([[1, 0, pose.tx_px], [0, 1, pose.ty_px], [0, 0, 1.0]])
        return shift @ h

    def render(self, jaw: float, width: float, closure: float, pose: HeadPose,
               light_gain: float = 1.0, light_tilt: float = 0.0) -> np.ndarray:
        n = self.size
        x, y = self._photo_points(pose)
        s = self.eye_dist
        u = x - self.cx
        v = y - np.interp(x, self.line_x, self.line_y).astype(np.float32)

        # Lip width: horizontal stretch near the mouth line.
        near = np.exp(-(v / (0.35 * s)) ** 2) * (1 - _smoothstep(np.abs(u) / (2.2 * self.mouth_half)))
        src_u = u / (1.0 + 0.16 * width * near)

        # Jaw: lower lip down by d_low, upper lip up by d_up; a cavity opens between them.
        prof = 0.5 * (1 + np.cos(np.pi * np.clip(np.abs(u) / (1.6 * self.mouth_half), 0, 1)))
        d_low = (0.42 * s * jaw) * prof
        d_up = 0.15 * d_low
        gap = 1 - _smoothstep((np.abs(u) - 0.8 * self.mouth_half) / (0.25 * self.mouth_half))
        eps = 0.4
        safe_low, safe_up = np.maximum(d_low, 1e-3), np.maximum(d_up, 1e-3)
        neck = 1 - _smoothstep((v - self.chin) / (0.9 * s))
        forehead = 1 - _smoothstep((-v - 0.6 * self.nose) / (0.6 * self.nose))
        below = np.where(v < d_low, eps * v / safe_low, v - d_low * neck)
        above = np.where(v > -d_up, eps * v / safe_up, v + d_up * forehead)
        with_gap = np.where(v >= 0, below, above)
        ramp = _smoothstep(np.abs(v) / (0.3 * s))
        no_gap = np.where(v >= 0, v - d_low * ramp * neck, v + d_up * ramp * forehead)
        src_v = gap * with_gap + (1 - gap) * no_gap
        # Pressed lips: compress the lips towards the line.
        src_v = src_v * (1 + 0.25 * closure * np.exp(-(v / (0.12 * s)) ** 2))

        map_x = (self.cx + src_u).reshape(n, n).astype(np.float32)
        map_y = (np.interp(self.cx + src_u, self.line_x, self.line_y) + src_v).reshape(n, n)
        frame = cv2.remap(self.image, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101).astype(np.float32)

        # Mouth cavity: teeth under the upper lip, a dark interior below.
        inside = (v > -d_up) & (v < d_low) & (d_low > 0.5)
        alpha = (gap * inside * np.clip(np.minimum(v + d_up, d_low - v), 0, 1)).reshape(n, n, 1)
        if alpha.any():
            q = ((v + d_up) / np.maximum(d_up + d_low, 1e-3)).reshape(n, n, 1)
            teeth = np.array([226, 220, 205], np.float32)
            dark = np.array([70, 22, 28], np.float32)
            tooth_band = 1 - _smoothstep((q - 0.25) / 0.15)
            cavity = tooth_band * teeth + (1 - tooth_band) * dark * (0.6 + 0.4 * q)
            frame = frame * (1 - alpha) + cavity * alpha

        xs = self._grid[0].reshape(n, n, 1)
        frame *= light_gain * (1 + light_tilt * (xs - n / 2) / n)
        frame += self._grain
        return np.clip(frame, 0, 255).astype(np.uint8)


def load_face(path: str | Path | None) -> np.ndarray:
    """The face photo as RGB; None means skimage's astronaut (a real photo shipped offline)."""
    if path is None:
        from skimage.data import astronaut

        return astronaut()
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TalkeditError(path, "is not a readable image", "give a JPEG or PNG face photo")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
