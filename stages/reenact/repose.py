"""The picture side of portrait reenactment: a target frame turned to a new head pose and
its eyes moved (``Repose``), the same way on the renderer's crops and the compositor's full
frames (``TrackReposer``, read back from the job's track). stages/reenact/portrait.py
decides the turns; this module only applies them (no face model needed).

* the head: a homography applied inside an ellipse around it (face oval x ``HEAD_MARGIN``,
  so hair and ears go with it), fading to the unmoved frame over ``HEAD_FEATHER`` more;
  over the face, the relief's parallax on top (the face model's landmarks at the old and
  the new pose: the nose moves against the cheeks as in a real turn);
* each eye: the iris slides inside the opening (the shift fading to nothing at its rim),
  then the lids close by pulling the skin above the upper lid down over the opening,
  whose own content is squeezed towards the lower lid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stages.reenact.spec import ReenactSpec
from talkedit.artifacts import REENACT_MESH_POINTS as MESH_POINTS
from talkedit.artifacts import REENACT_TRACK, ReenactPaths, column_array, read_parquet

HEAD_MARGIN = 1.6  # the region turned with the head: the face oval's half-extents x this
HEAD_FEATHER = 0.8  # ...fading to the unmoved frame over this much more (x the half-extents)
LID_BAND = 0.5  # skin pulled down over a closing eye: this much above the lid (x eye width)
PARALLAX_RING = 1.3  # the relief's correction falls to 0 on the face outline x this
IRIS_FALLOFF = 0.45  # an iris shift fades to nothing over this share of the opening's rim
SLIDE_HEIGHT = 1.0  # the region the iris slides in: the opening's half-height x this

def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n, 3, 3) homographies applied to (n, K, 2) points."""
    p = np.concatenate([points, np.ones((*points.shape[:-1], 1))], axis=-1) @ np.swapaxes(h, 1, 2)
    return p[..., :2] / p[..., 2:3]


@dataclass(frozen=True)
class Repose:
    """Per output row, in full-frame px: how the target frame's picture is turned."""

    warp: np.ndarray  # (n, 3, 3) target frame px -> output px (the head's flat part)
    ellipse: np.ndarray  # (n, 5) centre x, y, half-axes a, b, angle (rad): the turned region
    mesh_from: np.ndarray  # (n, K, 2) the face's landmarks in the target frame (px)...
    mesh_to: np.ndarray  # ...and where they go: the relief's parallax beyond the homography
    eyes: np.ndarray  # (n, 2, 4, 2) per eye: outer, inner corner, upper, lower lid (output px)
    iris_shift: np.ndarray  # (n, 2, 2) px each iris slides
    lid_close: np.ndarray  # (n,) share of the lid gap to close (0 open as it is .. 1 shut)

    def moves(self, k: int) -> bool:
        return bool(not np.allclose(self.warp[k], np.eye(3)) or np.abs(self.iris_shift[k]).max()
                    > 0.05 or self.lid_close[k] > 0
                    or np.abs(self.mesh_to[k] - self.mesh_from[k]).max() > 0.05)

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
        mesh = (self.mesh_from[k] @ lin.T + a[:2, 2], self.mesh_to[k] @ lin.T + a[:2, 2]) \
            if np.abs(self.mesh_to[k]).max() > 0 else None
        out = _turn_head(image, warp, centre, ax * scale, ay * scale, angle, mesh)
        eyes = self.eyes[k] @ lin.T + a[:2, 2]
        for e in range(2):
            out = _eye(out, eyes[e], lin @ self.iris_shift[k, e], float(self.lid_close[k]))
        return out


def _parallax(mesh: tuple[np.ndarray, np.ndarray], back: np.ndarray, shape: tuple[int, int]
              ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """What the face's relief adds to the homography's backward map: the landmarks'
    residuals (where they come from minus where the homography says), interpolated
    piecewise-linearly over the face and falling to 0 on a ring around it."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import ConvexHull

    source, target = mesh
    residual = source - apply_homography(back[None], target[None])[0]
    hull = ConvexHull(target).vertices
    centre = target[hull].mean(axis=0)
    ring = centre + (target[hull] - centre) * PARALLAX_RING
    lo = np.clip(np.floor(ring.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(ring.max(axis=0)).astype(int) + 1, [shape[1], shape[0]])
    if np.any(hi <= lo):
        return None
    field = LinearNDInterpolator(np.concatenate([target, ring]),
                                 np.concatenate([residual, np.zeros_like(ring)]), fill_value=0.0)
    ys, xs = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)
    return (slice(lo[1], hi[1]), slice(lo[0], hi[0])), field(xs, ys)


def _turn_head(image: np.ndarray, warp: np.ndarray, centre: np.ndarray, ax: float, ay: float,
               angle: float, mesh: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
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
    extra = _parallax(mesh, back, (h, w)) if mesh is not None else None
    if extra is not None:
        box, field = extra
        sx[box] += field[..., 0]
        sy[box] += field[..., 1]
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
        # The region slid is centred on the eyeball (the corners' mid-point, where the
        # iris is read from), not on the opening: the lid margins inside it move along.
        half_h = max((v_bottom - v_top) / 2, 0.25 * half_w) * SLIDE_HEIGHT
        r = np.hypot(src_u / half_w, src_v / half_h)
        fall = _smoothstep((1.0 - r) / IRIS_FALLOFF)
        along, across = float(shift @ axis), float(shift @ normal)
        src_u, src_v = src_u - along * fall, src_v - across * fall
    map_x = (centre[0] + src_u * axis[0] + src_v * normal[0]).astype(np.float32)
    map_y = (centre[1] + src_u * axis[1] + src_v * normal[1]).astype(np.float32)
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
    return out


def repose_columns(repose: Repose) -> dict[str, np.ndarray]:
    """The track's columns (REENACT_TRACK) that hold a Repose."""
    n = len(repose.warp)
    return {"warp": repose.warp.reshape(n, 9), "head_ellipse": repose.ellipse,
            "mesh_from": repose.mesh_from.reshape(n, -1), "mesh_to": repose.mesh_to.reshape(n, -1),
            "eye_points": repose.eyes.reshape(n, 16), "iris_shift_px": repose.iris_shift.reshape(n, 4),
            "lid_close": repose.lid_close}


def still_repose(n: int) -> Repose:
    """Rows whose picture is left as it is (expression mode)."""
    return Repose(np.tile(np.eye(3), (n, 1, 1)), np.zeros((n, 5)), np.zeros((n, MESH_POINTS, 2)),
                  np.zeros((n, MESH_POINTS, 2)), np.zeros((n, 2, 4, 2)), np.zeros((n, 2, 2)),
                  np.zeros(n))


@dataclass(frozen=True)
class TrackReposer:
    """A portrait job's turns, read back from its track, for the compositor (it turns
    each composited frame: the renderer draws at the target frame's own pose)."""

    repose: Repose
    row_of_output: dict[int, int]  # plan row (output frame) -> track row

    @classmethod
    def from_track(cls, track: Any) -> TrackReposer:
        def vectors(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return column_array(track, name).astype(np.float64).reshape(-1, *shape)

        repose = Repose(vectors("warp", (3, 3)), vectors("head_ellipse", (5,)),
                        vectors("mesh_from", (MESH_POINTS, 2)), vectors("mesh_to", (MESH_POINTS, 2)),
                        vectors("eye_points", (2, 4, 2)), vectors("iris_shift_px", (2, 2)),
                        track.column("lid_close").to_numpy().astype(np.float64))
        outputs = track.column("frame").to_numpy().tolist()
        return cls(repose, {int(f): k for k, f in enumerate(outputs)})

    def frame(self, row: int, image: np.ndarray) -> np.ndarray:
        """Plan row ``row``'s full frame, turned."""
        k = self.row_of_output.get(int(row))
        return image if k is None else self.repose.apply(image, k)


def portrait_reposer(spec: ReenactSpec, paths: ReenactPaths) -> TrackReposer | None:
    """A portrait job's head and eye turns (its track); None for an expression job."""
    if spec.mode != "portrait":
        return None
    return TrackReposer.from_track(read_parquet(paths.track, REENACT_TRACK, arrow=True,
                                                stage_hint=f"reenactplan@{spec.job}"))

