"""The mouth from the clip's own frames: exemplar retrieval, as Face2Face does.

A small generator trained for minutes on a CPU paints lips, teeth and the mouth's cavity
soft and averaged (issue 13 measured 0.37x the source's sharpness inside edited words and
a late, flattened opening). The person's own frames hold sharp mouths of almost every
shape they make, so for each rendered frame:

1. **Retrieve** the exemplar (a training frame of the renderer's ``ReferencePool``: never a
   held-out frame) whose mouth shape is nearest the planned one. Shapes are compared as
   the person model's mouth-region points for the expression alone (``MouthRegion``:
   pose-free, canonical units), and the choice over a run of frames is a Viterbi path over
   each frame's ``candidates`` nearest exemplars, where moving on to the next clip frame
   (or staying) is free and any other jump costs ``switch_cost``: the mouth then plays
   real footage through a run instead of flickering between unrelated frames.
2. **Warp** the exemplar's mouth region onto the planned one: a piecewise-affine map (one
   triangulation of the mean shape's mouth-region points) between the exemplar's fitted
   points and the planned points (both in render-crop px),
   so lips land exactly where the plan puts them and the cavity/teeth stretch with them.
3. **Blend** it over the generated crop inside the mouth region's outline, feathered,
   with the colour offset of the skin ring around the lips taken from the generated frame
   (its lighting is the frame's; the exemplar's is another moment's). ``strength`` mixes
   the coarse band only: the exemplar and the generator are two guesses of a new
   performance, and their mean lies nearer the truth's shading (the demo's hidden-truth
   sentences); the fine band (lip and teeth edges) stays the exemplar's, so the mouth
   keeps the clip's sharpness.

Deterministic (no randomness; the same plan and pool give the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from stages.fit import PersonModel, Pose, rebuild_landmarks
from stages.fit.crops import to_crop
from talkedit.params import Section, bad_param

# The mouth region in the person model's mean shape is measured in units of the inner
# lips' width, with vertical distances counted 1.6x (the mouth is wider than tall): the
# lips lie within 0.72 of the inner lips' centre on the mediapipe layout.
VERTICAL_WEIGHT = 1.6
ANCHOR_MARGIN = 0.55  # the warp's support reaches this much beyond the painted region
DETAIL_SIGMA = 0.04  # the fine band kept whole: finer than this share of the mouth's width


@dataclass(frozen=True)
class MouthParams(Section):
    """The ``mouth:`` section of params.yaml (exemplar mouths over the generator's)."""

    SECTION = "mouth"

    exemplar: bool = True
    full_resolution: bool = True
    region: float = 0.78
    candidates: int = 12
    switch_cost: float = 0.5
    grow: float = 0.12
    feather: float = 0.1
    strength: float = 0.3
    jaw_warp: bool = True  # the chin's outline: the frame behind the row warped (jaw.py)
    jaw_colour: bool = False  # ...and the generator's colour matched to that frame (jaw.py; off: issue 13 session 10)

    def check(self, where: str) -> None:
        if self.region < 0.5:
            raise bad_param(where, "region", f"= {self.region} does not cover the lips (0.72)",
                            "use 0.78")
        if self.candidates < 1:
            raise bad_param(where, "candidates", f"= {self.candidates} must be >= 1", "use 12")
        if self.switch_cost < 0 or self.grow < 0 or self.feather < 0:
            raise bad_param(where, "switch_cost", "switch_cost, grow and feather must be >= 0",
                            "use switch_cost 0.5, grow 0.12, feather 0.1")
        if not 0 <= self.strength <= 1:
            raise bad_param(where, "strength", f"= {self.strength} must be in [0, 1]", "use 0.3")


@dataclass(frozen=True)
class MouthRegion:
    """Which of the person model's points make the mouth region and its warp's support."""

    lips: np.ndarray  # point indices of the lips and the skin right around them
    anchors: np.ndarray  # point indices the warp is pinned to (a superset of ``lips``)
    width: float  # the inner lips' width in the mean shape (canonical units)
    triangles: np.ndarray  # (T, 3) the warp's triangles, as indices into ``anchors``

    @classmethod
    def of(cls, model: PersonModel, radius: float) -> MouthRegion:
        """The points within ``radius`` inner-lip widths of the inner lips' centre."""
        inner = np.asarray(model.topo.inner_lip_pairs).ravel()
        centre = model.mean[inner, :2].mean(axis=0)
        width = float(np.ptp(model.mean[inner, 0]))
        reach = np.linalg.norm((model.mean[:, :2] - centre) * [1.0, VERTICAL_WEIGHT], axis=1)
        reach /= width
        anchors = np.flatnonzero(reach < radius + ANCHOR_MARGIN)
        # One triangulation of the mean shape for every frame: an opening mouth stretches
        # the triangles across the lips' gap, which carries the exemplar's cavity and teeth.
        triangles = Delaunay(model.mean[anchors, :2]).simplices.astype(np.int64)
        return cls(np.flatnonzero(reach < radius), anchors, width, triangles)

    def shape(self, model: PersonModel, expression: np.ndarray) -> np.ndarray:
        """(n, 2 * lips) pose-free mouth shape of expressions, in inner-lip widths."""
        points = model.shape(np.atleast_2d(expression))[:, self.lips, :2]
        return (points / self.width).reshape(len(points), -1)


def crop_points(model: PersonModel, pose: Pose, expression: np.ndarray, transforms: np.ndarray,
                index: np.ndarray) -> np.ndarray:
    """(n, len(index), 2) model points of frames in render-crop px."""
    image = rebuild_landmarks(model, pose, expression)[:, index, :2]
    return to_crop(image, transforms)


def choose_exemplars(target: np.ndarray, pool: np.ndarray, pool_frames: np.ndarray,
                     candidates: int, switch_cost: float) -> np.ndarray:
    """Pool index per target row: a Viterbi path over each row's nearest candidates.

    ``target`` (n, d) and ``pool`` (m, d) mouth shapes; the cost of a row is its shape
    distance over the median nearest distance of the run (so ``switch_cost`` is in units
    of a typical match); going from clip frame f to f or f + 1 costs nothing, any other
    change ``switch_cost``.
    """
    n, k = len(target), min(candidates, len(pool))
    d2 = ((target ** 2).sum(1)[:, None] - 2 * target @ pool.T + (pool ** 2).sum(1)[None])
    near = np.argsort(d2, axis=1, kind="stable")[:, :k]  # (n, k)
    cost = np.sqrt(np.maximum(np.take_along_axis(d2, near, axis=1), 0.0))
    cost /= max(float(np.median(cost[:, 0])), 1e-9)
    frames = pool_frames[near]  # (n, k)
    total = cost[0].copy()
    back = np.zeros((n, k), np.int64)
    for t in range(1, n):
        step = frames[t][None, :] - frames[t - 1][:, None]  # (k prev, k cur)
        jump = np.where((step == 0) | (step == 1), 0.0, switch_cost)
        through = total[:, None] + jump
        back[t] = np.argmin(through, axis=0)
        total = through[back[t], np.arange(k)] + cost[t]
    path = np.empty(n, np.int64)
    path[-1] = int(np.argmin(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return near[np.arange(n), path]


def runs_of(rows: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of sorted row numbers."""
    if not len(rows):
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return np.split(rows, cuts)


def mouth_mask(points: np.ndarray, shape: tuple[int, int], grow_px: float, feather_px: float
               ) -> np.ndarray:
    """(h, w) float blend weight: the hull of the mouth points, grown and feathered."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    r = int(round(grow_px))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    weight = mask.astype(np.float32)
    if feather_px > 0:
        # Feather inwards: the weight is 1 on the hull and fades to 0 at the grown edge.
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        weight = np.clip(inside / feather_px, 0.0, 1.0).astype(np.float32)
    return weight


def source_map(exemplar_points: np.ndarray, target_points: np.ndarray, triangles: np.ndarray,
               window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each output pixel of ``window`` (x0, y0, w, h) comes from in the exemplar, by
    one affine map per triangle of ``triangles`` (T, 3) point indices taking
    ``target_points`` to ``exemplar_points``: map_x, map_y (h, w) float32 (-1 outside the
    triangles) and where the map is defined (inside the target's triangles), as a bool image."""
    x0, y0, w, h = window
    # Which triangle covers each output pixel (0: none), rasterized at 1/16 px precision.
    ids = np.zeros((h, w), np.int32)
    corners = np.round((target_points[triangles] - [x0, y0]) * 16).astype(np.int32)  # (T, 3, 2)
    for k, tri in enumerate(corners, start=1):
        cv2.fillConvexPoly(ids, tri, k, cv2.LINE_8, 4)
    # Per triangle, the affine map target px -> exemplar px: [x y 1] @ A = [u v], by the
    # inverse of [x y 1] (its adjugate over its determinant, for every triangle at once).
    (ax, ay), (bx, by), (cx, cy) = (target_points[triangles[:, k]].T for k in range(3))
    det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    inverse = np.stack([np.stack([by - cy, cy - ay, ay - by], 1),
                        np.stack([cx - bx, ax - cx, bx - ax], 1),
                        np.stack([bx * cy - cx * by, cx * ay - ax * cy, ax * by - bx * ay], 1)],
                       1) / det[:, None, None]
    maps = inverse @ exemplar_points[triangles]  # (T, 3, 2)
    # Evaluated per pixel from per-triangle coefficient tables (row 0: no triangle).
    table = np.concatenate([np.zeros((1, 3, 2)), maps])[ids]  # (h, w, 3, 2)
    px = np.arange(x0, x0 + w, dtype=np.float64)[None, :]
    py = np.arange(y0, y0 + h, dtype=np.float64)[:, None]
    valid = ids > 0
    map_x = np.where(valid, px * table[..., 0, 0] + py * table[..., 1, 0] + table[..., 2, 0],
                     -1.0).astype(np.float32)
    map_y = np.where(valid, px * table[..., 0, 1] + py * table[..., 1, 1] + table[..., 2, 1],
                     -1.0).astype(np.float32)
    return map_x, map_y, valid


def warp_exemplar(exemplar: np.ndarray, exemplar_points: np.ndarray, target_points: np.ndarray,
                  triangles: np.ndarray, window: tuple[int, int, int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The exemplar crop warped so its points land on ``target_points`` (one affine map per
    triangle of ``triangles`` (T, 3) point indices); and where the warp is defined (inside
    the target's triangles), as a bool image. ``window`` (x0, y0, w, h): compute only that
    part of the output (default: all of it, the exemplar's size)."""
    map_x, map_y, valid = source_map(
        exemplar_points, target_points, triangles,
        window or (0, 0, exemplar.shape[1], exemplar.shape[0]))
    warped = cv2.remap(exemplar.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REPLICATE)
    return warped, valid


class MouthExemplars:
    """Paints the mouths of rendered crops from the clip's own frames (see the module doc)."""

    def __init__(self, model: PersonModel, crops_of: Callable[[np.ndarray], np.ndarray],
                 pool_frames: np.ndarray, pool_pose: Pose, pool_expression: np.ndarray,
                 pool_transforms: np.ndarray, params: MouthParams) -> None:
        """``crops_of``: clip frames -> their crops (n, S, S, 3) uint8, in the px that
        ``pool_transforms`` (image -> crop, one per pool frame) map to."""
        self.model, self.params = model, params
        self.region = MouthRegion.of(model, params.region)
        self.crops_of, self.frames = crops_of, pool_frames
        self.shapes = self.region.shape(model, pool_expression)
        self.points = crop_points(model, pool_pose, pool_expression, pool_transforms,
                                  self.region.anchors)
        self.lip_slots = np.searchsorted(self.region.anchors, self.region.lips)

    def choose(self, expression: np.ndarray) -> np.ndarray:
        """Pool index per row of one consecutive run of frames."""
        return choose_exemplars(self.region.shape(self.model, expression), self.shapes,
                                self.frames, self.params.candidates, self.params.switch_cost)

    def sources(self, exemplars: list[int]) -> dict[int, np.ndarray]:
        """Pool index -> its frame's crop, for ``exemplars`` (pool indices, read together:
        ``crops_of`` gets them at once, e.g. ``FrameCrops.get``'s one ascending pass)."""
        unique = sorted(set(exemplars))
        return dict(zip(unique, self.crops_of(self.frames[unique]), strict=True))

    def paint(self, crop: np.ndarray, alpha: np.ndarray, exemplar: int,
              target_points: np.ndarray, source: np.ndarray | None = None) -> np.ndarray:
        """``crop`` (S, S, 3 uint8, the generated frame) with the exemplar's mouth over it,
        never beyond the generated pixels (``alpha`` (S, S) uint8, 255 = generated).
        ``target_points`` (len(anchors), 2): the planned points in this crop's px;
        ``source``: the exemplar's crop where the caller has it (``sources``)."""
        p = self.params
        size = crop.shape[0]
        lips = target_points[self.lip_slots]
        mouth_px = float(np.ptp(lips[:, 0]))  # the mouth region's width here
        grow_px = p.grow * mouth_px
        # Only the window around the warp's support is touched (the weight is 0 elsewhere).
        pad = int(np.ceil(grow_px)) + 3
        x0, y0 = np.clip(np.floor(target_points.min(axis=0)).astype(int) - pad, 0, size)
        x1, y1 = np.clip(np.ceil(target_points.max(axis=0)).astype(int) + pad + 1, 0, size)
        if x1 <= x0 or y1 <= y0:
            return crop.copy()
        weight = mouth_mask(lips - [x0, y0], (y1 - y0, x1 - x0), grow_px, p.feather * mouth_px)
        if source is None:
            source = self.crops_of(self.frames[exemplar:exemplar + 1])[0]
        warped, valid = warp_exemplar(source, self.points[exemplar], target_points,
                                      self.region.triangles, (x0, y0, x1 - x0, y1 - y0))
        weight = np.minimum(weight * valid, alpha[y0:y1, x0:x1] / 255.0).astype(np.float32)
        generated = crop[y0:y1, x0:x1].astype(np.float32)
        # The colour offset of the skin ring just outside the lips' hull (the frame's light).
        ring = (weight > 0) & (weight < 1)
        if ring.sum() >= 8:
            warped = warped + (generated[ring] - warped[ring]).mean(axis=0)
        out = crop.copy()
        # ``strength`` mixes the coarse band only (shading and shape: averaging the two
        # guesses of a re-performance lowers its error against the truth); the fine band
        # (edges of lips and teeth, above DETAIL_SIGMA of the mouth's width) comes from the
        # exemplar at full weight, so the mouth stays as sharp as the clip's own frames.
        sigma = DETAIL_SIGMA * mouth_px
        coarse = weight[..., None] * p.strength
        blended = coarse * warped + (1.0 - coarse) * generated
        if p.strength < 1.0 and sigma > 0:
            fine = ((warped - cv2.GaussianBlur(warped, (0, 0), sigma))
                    - (generated - cv2.GaussianBlur(generated, (0, 0), sigma)))
            blended += (weight[..., None] - coarse) * fine
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


SOURCE_WINDOW_ROWS = 512  # rows whose exemplars are read together (bounds the crops held)


class ExemplarSources:
    """The exemplar crops of rendered rows, read ahead: when a batch of rows needs one not
    held, the exemplars of the next ``window`` chosen rows are read together (one pass over
    the clip, ``MouthExemplars.sources``) and held in place of the previous ones. Rows come
    in the plan's order, so an edit's exemplars are read once, not batch by batch (each
    batch's pass went through the same keyframe intervals again)."""

    def __init__(self, painter: MouthExemplars, choice: dict[int, int],
                 window: int = SOURCE_WINDOW_ROWS) -> None:
        self.painter, self.choice, self.window = painter, choice, window
        self.rows = np.array(sorted(choice), dtype=np.int64)
        self._held: dict[int, np.ndarray] = {}

    def of(self, rows: np.ndarray) -> dict[int, np.ndarray]:
        """Pool index -> crop for the exemplars chosen for plan ``rows``."""
        needed = {self.choice[row] for row in rows.tolist()}
        if not needed <= self._held.keys():
            ahead = self.rows[self.rows >= int(np.min(rows))][:self.window]
            self._held = self.painter.sources(sorted(needed | {self.choice[row]
                                                               for row in ahead.tolist()}))
        return {exemplar: self._held[exemplar] for exemplar in needed}


def paint_rows(painter: MouthExemplars, crops: np.ndarray, alpha: np.ndarray, rows: np.ndarray,
               choice: dict[int, int], target_points: Mapping[int, np.ndarray] | np.ndarray,
               sources: ExemplarSources | None = None) -> np.ndarray:
    """Rendered crops (n, S, S, 3) of plan ``rows`` with exemplar mouths (a new array);
    ``alpha`` (n, S, S) their generated share. ``choice``: plan row -> pool index;
    ``target_points``: plan row -> its (anchors, 2) points (a dict, or an (n_plan, anchors,
    2) array); ``sources``: where the exemplars' crops are read ahead (else these rows'
    are read together)."""
    out = crops.copy()
    # The rows' exemplars read at once (in one pass over the clip), not one by one.
    sources_of = (sources.of(rows) if sources is not None
                  else painter.sources([choice[row] for row in rows.tolist()]))
    for i, row in enumerate(rows.tolist()):
        out[i] = painter.paint(crops[i], alpha[i], choice[row], target_points[row],
                               sources_of[choice[row]])
    return out
