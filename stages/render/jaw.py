"""The chin's outline around the generated lower face: the frame behind the row, warped.

The generator draws the lower face inside the fit's lower-face mask, which ends on the
chin; the chin's outline and what lies under it (neck, collar) stay the background
frame's, where the background's own jaw put them, and the composite feathers the two
together across the chin. Against the truth (the edit-with-truth pairs, issue 13) that was
the largest loss outside the mouth: on the astronaut's chin over a dark collar, the
lower face outside the mouth area scored 23-24 dB in the new words against 35 dB on kept
footage, and the same with the truth's own articulation in the plan (so not the plan).

So the frame behind an edited row is warped, piecewise-affinely, from its own fitted face
to the planned one (its fitted pose kept: only the expression moves; points above the
nose tip and the crop's border held still), and the crop is the generator's pixels where
it drew (its alpha) over that warped frame: the chin's outline lands where the plan puts
the jaw, with the footage's own edges and texture. The crop's alpha grows to cover every
pixel the warp moved (and a margin the composite's feather needs), so the composite
never blends a moved chin into the unmoved one. Tried and dropped: the warped frame for
the whole lower face outside the mouth (the person model moves cheeks and the skin under
the lips less well than the generator draws them: -0.6 dB on the same pairs).

Cost (issue 13, the edit's turnaround): one triangulation is shared by the rows (``mesh``),
the piecewise-affine map is used as the source map directly, the frame is sampled only
where it shows and moves, only the crop rows the row reads are cut from the decoded frame
(``FrameCrops.rows``), a row the plan leaves at the frame's own expression builds no map,
and the crop is blended in float only in the alpha's feather. What is left is mostly the
background frame's decoding; the composite then blends the larger region the crop covers
(about twice the blend box: its colour offset and paste are computed in the mask's own box
only, the pyramid and the warp back still cover the whole; benchmarks/jaw_edit_turnaround.py
measures the whole edit, warp off against on).

Deterministic (no randomness; rows come in the plan's order, so the same plan and clip
give the same bytes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np
from scipy.spatial import Delaunay

from stages.fit import PersonModel, Pose
from stages.render.interior import crop_points, source_map
from talkedit.colour import match_colour

MOVED_PX = 0.25  # a pixel the warp moves by more than this must come from the crop...
# ...and so must a margin around them, in shares of the crop side: the composite erodes
# its mask by 3 and feathers it over ~2 x 6 generator px (composite.blend at 128 px:
# 15 / 128), and inside this margin the warped frame equals the background anyway.
COMPOSITE_MARGIN = 0.12
# A reused triangle must keep at least this (doubled) area in px^2: else re-triangulated.
MIN_AREA_PX = 1e-3
SAMPLED_PX = 1 / 128  # a pixel moved less (both axes) is the frame's own (see build)
# The generator's colour matched to the warped frame (``colour``): the composite's band and
# scale (params.yaml composite.blend's 6 and 12 px in its generator's 128 px), as shares
# of the crop side.
COLOUR_BAND = 6 / 128
COLOUR_SIGMA = 12 / 128


@functools.lru_cache(maxsize=4)
def border_points(size: int, per_side: int = 8) -> np.ndarray:
    """(4 * per_side, 2) points along the crop's border (they stay put: the warp fades out
    towards it); read-only, shared by every row."""
    t = np.linspace(0.0, size - 1.0, per_side, endpoint=False)
    far = float(size - 1)
    points = np.concatenate([np.stack([t, np.zeros_like(t)], 1),
                             np.stack([np.full_like(t, far), t], 1),
                             np.stack([far - t, np.full_like(t, far)], 1),
                             np.stack([np.zeros_like(t), far - t], 1)])
    points.flags.writeable = False
    return points


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) twice the signed area of each triangle of ``points``."""
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


@functools.lru_cache(maxsize=4)
def pixel_grid(size: int) -> np.ndarray:
    """(size, size, 2) float32 x, y of every crop pixel (read-only: shared by every row)."""
    grid = np.mgrid[0:size, 0:size][::-1].transpose(1, 2, 0).astype(np.float32)
    grid.flags.writeable = False
    return grid


class JawWarp:
    """Builds an edited row's crop from the generated lower face over its background frame
    warped to the planned face (see the module doc)."""

    def __init__(self, model: PersonModel, crop_rows: Callable[[int, int, int], np.ndarray],
                 fitted_pose: Pose, fitted_expression: np.ndarray, transforms: np.ndarray,
                 colour: bool = False) -> None:
        """``crop_rows``: (clip frame, top, bottom) -> rows [top, bottom) of that frame's
        crop ((bottom - top, S, 3) uint8, e.g. ``FrameCrops.rows``) in the px ``transforms``
        (image -> crop, per clip frame) map to; ``fitted_*``: the fit of every clip frame;
        ``colour``: the generator's pixels colour-matched to the warped frame around them."""
        self.model, self.crop_rows, self.colour = model, crop_rows, colour
        self.fitted_pose, self.fitted_expression = fitted_pose, fitted_expression
        self.transforms = transforms
        # Points below the nose tip follow the expression; the rest are held where the
        # background frame has them (eyes and brows are the background's, as composited).
        nose_tip_y = float(model.mean[model.topo.nose_bottom, 1].min())
        self.lower = model.mean[:, 1] > nose_tip_y
        # The triangulation rows share (``mesh``): all triangles, the moving ones, n points.
        self._mesh: tuple[np.ndarray, np.ndarray, int] | None = None

    def points(self, frames: np.ndarray, pose: Pose, expression: np.ndarray) -> np.ndarray:
        """(n, n_points, 2) model points in the crops of clip frames ``frames``."""
        index = np.arange(self.model.mean.shape[0])
        return crop_points(self.model, pose, expression, self.transforms[frames], index)

    def mesh(self, target_points: np.ndarray) -> np.ndarray:
        """(T, 3) point indices of the triangles that move (a lower-face corner) for this
        row's ``target_points`` (model points, then the crop's border points).

        One triangulation serves every row: the Delaunay triangulation of the first row
        this warp builds, reused while all its triangles keep their orientation, so that it
        still tiles the crop without folds (the points move little from row to row; rows
        come in the plan's order, so the same plan gives the same triangles). Where one
        would flip or collapse, the row is triangulated afresh and that mesh kept."""
        mesh = self._mesh
        if mesh is None or mesh[2] != len(target_points) \
                or not (signed_areas(target_points, mesh[0]) > MIN_AREA_PX).all():
            simplices = Delaunay(target_points).simplices.astype(np.int64)
            # Every triangle positively oriented, as the reuse test above asks.
            flip = signed_areas(target_points, simplices) < 0
            simplices[flip] = simplices[flip][:, ::-1]
            follows = np.concatenate([self.lower, np.zeros(len(target_points)
                                                           - len(self.lower), bool)])
            self._mesh = (simplices, simplices[follows[simplices].any(axis=1)],
                          len(target_points))
        return self._mesh[1]

    def build(self, generated: np.ndarray, alpha: np.ndarray, background: int,
              planned: np.ndarray, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row's crop and alpha: ``generated`` (S, S, 3 uint8) and its ``alpha`` (S, S
        uint8); ``planned`` / ``fitted`` (n_points, 2): the model's points in this crop for
        the plan's expression and for the background frame's own."""
        size = generated.shape[0]
        target = np.where(self.lower[:, None], planned, fitted)
        fixed = border_points(size)
        source_points = np.concatenate([fitted, fixed])
        target_points = np.concatenate([target, fixed])
        # Triangles with no lower-face corner do not move: only the others are drawn, inside
        # their bounding box (the rest of the crop is the frame as it is).
        triangles = self.mesh(target_points)
        corners = target_points[np.unique(triangles)]
        x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, size)
        x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, size)
        # Only the box the warp touched, grown by the composite's margin, changes.
        r = int(round(COMPOSITE_MARGIN * size))
        bx0, by0, bx1, by1 = max(x0 - r, 0), max(y0 - r, 0), min(x1 + r, size), min(y1 + r, size)
        crop, out_alpha = generated.copy(), alpha.copy()
        if bx1 <= bx0 or by1 <= by0:
            return crop, out_alpha
        box = (slice(by0, by1), slice(bx0, bx1))
        moved = np.zeros((by1 - by0, bx1 - bx0), bool)
        top, bottom = by0, by1  # the frame's crop rows this row reads
        ys = xs = np.empty(0, np.intp)
        # A row whose plan is the frame's own expression (the edit's kept rows) moves no
        # pixel: the map would be the identity, so it is not built.
        if x1 > x0 and y1 > y0 and not np.array_equal(target, fitted):
            # Where each pixel comes from in the frame's crop (the piecewise-affine map
            # itself; outside the triangles, from where it is), then the frame sampled there.
            map_x, map_y, valid = source_map(source_points, target_points, triangles,
                                             (x0, y0, x1 - x0, y1 - y0))
            here = pixel_grid(size)[y0:y1, x0:x1]
            map_x = np.where(valid, map_x, here[..., 0])
            map_y = np.where(valid, map_y, here[..., 1])
            # Sampled only where the generator's alpha lets the frame show (under a full
            # alpha the crop is the generator's whatever lies behind) and the map moves the
            # pixel: remap reads its map at 1/32 px, so a pixel moved by less than half of
            # that would be sampled at itself, i.e. be the frame's pixel as it is.
            dx, dy = map_x - here[..., 0], map_y - here[..., 1]
            shifted = np.maximum(np.abs(dx), np.abs(dy)) > SAMPLED_PX
            ys, xs = np.nonzero((alpha[y0:y1, x0:x1] < 255) & shifted)
            src_x, src_y = map_x[ys, xs], map_y[ys, xs]
            if len(ys):
                # Bicubic reads rows floor(y) - 1 .. floor(y) + 2: those rows are cut too.
                top = min(top, max(int(np.floor(src_y.min())) - 2, 0))
                bottom = max(bottom, min(int(np.floor(src_y.max())) + 4, size))
            moved[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] = np.hypot(dx, dy) > MOVED_PX
        # Only the rows of the frame's crop this row reads are cut (the rest never shows).
        rows = self.crop_rows(background, top, bottom)
        behind = rows[by0 - top:by1 - top, bx0:bx1].copy()
        if len(ys):
            # (src_y - top is exact in float32: the same 1/32 px the whole crop would give.)
            behind[y0 - by0 + ys, x0 - bx0 + xs] = cv2.remap(
                rows, src_x[None], (src_y - np.float32(top))[None], cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REPLICATE)[0]

        # The generator's pixels where it drew (its alpha, feathered): the lower face of the
        # planned expression; the warped frame around them, where the chin's outline and
        # what lies under it are the background frame's, moved as the plan moves the jaw.
        # Blended in float only in the feather (0 < alpha < 255); elsewhere one or the other.
        box_alpha = alpha[box]
        drawn = generated[box]
        if self.colour:
            drawn = self.matched(drawn, behind, box_alpha, size)
        crop[box] = np.where((box_alpha == 255)[..., None], drawn, behind)
        fy, fx = np.nonzero((box_alpha > 0) & (box_alpha < 255))
        weight = (box_alpha[fy, fx] / 255.0).astype(np.float32)[:, None]
        crop[by0 + fy, bx0 + fx] = np.clip(weight * drawn[fy, fx] + (1.0 - weight)
                                           * behind[fy, fx].astype(np.float32) + 0.5,
                                           0, 255).astype(np.uint8)
        if moved.any():
            # Every pixel the warp moved comes from this crop: the composite then never
            # feathers a moved chin into the background's unmoved one.
            near = cv2.distanceTransform((~moved).astype(np.uint8), cv2.DIST_L2, 3) <= r
            out_alpha[box] = np.maximum(box_alpha, near.astype(np.uint8) * 255)
        return crop, out_alpha

    @staticmethod
    def matched(drawn: np.ndarray, behind: np.ndarray, alpha: np.ndarray, size: int
                ) -> np.ndarray:
        """``drawn`` (the generator's pixels, uint8) with the low-frequency colour offset
        to ``behind`` (the warped frame) that the band just inside the generator's full
        ``alpha`` shows, added where the generator drew.

        Why: the composite matches colour on the band inside the crop's alpha; with the
        warp, that alpha grows over the warped frame, so the band lies on the frame itself
        and the generator's own colour, which drifts from frame to frame, went unmatched
        (issue 13: edited frames' lower face 2.0 grey levels off the truth's mean per frame
        against 0.5 on kept footage and 0.8-1.4 for the frame behind)."""
        full = (alpha == 255).astype(np.uint8)
        band_px = max(1, int(round(COLOUR_BAND * size)))
        inner = cv2.erode(full, np.ones((2 * band_px + 1,) * 2, np.uint8),
                          borderType=cv2.BORDER_CONSTANT, borderValue=1)
        band = (full > 0) & (inner == 0)
        if not band.any():
            return drawn
        matched = match_colour(drawn.astype(np.float32), behind.astype(np.float32),
                               band.astype(np.float32), (alpha > 0).astype(np.float32),
                               COLOUR_SIGMA * size)
        return np.clip(matched + 0.5, 0, 255).astype(np.uint8)

    def build_rows(self, crops: np.ndarray, alpha: np.ndarray, backgrounds: np.ndarray,
                   planned: np.ndarray, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``build`` over rows: crops (n, S, S, 3), alpha (n, S, S), their background clip
        frames (n,), planned / fitted points (n, n_points, 2)."""
        out_c, out_a = crops.copy(), alpha.copy()
        for i, bg in enumerate(backgrounds.tolist()):
            out_c[i], out_a[i] = self.build(crops[i], alpha[i], bg, planned[i], fitted[i])
        return out_c, out_a
