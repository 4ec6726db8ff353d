"""The lower face around the new mouth (stages/render/jaw.py): the frame behind an edited
row warped from its own fitted face to the planned one, on a fitted clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.fit import frame_parameters
from stages.render.data import FrameCrops, face_geometry, load_model
from stages.render.jaw import JawWarp
from tests.test_render import CLIP, fitted  # noqa: F401  (fixture: the fitted clip)

SIZE = 128


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x0, y0 = np.floor(xy).astype(int)
    fx, fy = xy - [x0, y0]
    patch = image[y0:y0 + 2, x0:x0 + 2].astype(np.float64)
    return ((1 - fy) * ((1 - fx) * patch[0, 0] + fx * patch[0, 1])
            + fy * ((1 - fx) * patch[1, 0] + fx * patch[1, 1]))


def test_the_chin_moves_with_the_planned_jaw_and_the_upper_face_stays(fitted: Path) -> None:  # noqa: F811
    model, _ = load_model(CLIP, fitted)
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(table)
    crops = FrameCrops(CLIP, fitted, transforms, SIZE)
    jaw = JawWarp(model, crops.rows, pose, expression, transforms)
    opening = np.ptp(jaw.points(np.arange(len(table)), pose, expression)[:, :, 1], axis=1)
    closed, opened = int(np.argmin(opening)), int(np.argmax(opening))
    bg = np.array([closed])
    planned = jaw.points(bg, pose[bg], expression[[opened]])[0]
    fitted_points = jaw.points(bg, pose[bg], expression[bg])[0]
    chin = 152  # the mediapipe chin
    assert planned[chin, 1] - fitted_points[chin, 1] > 1.0  # the plan opens the jaw
    nothing = np.zeros((SIZE, SIZE, 3), np.uint8)
    crop, alpha = jaw.build(nothing, np.zeros((SIZE, SIZE), np.uint8), closed, planned,
                            fitted_points)
    frame = crops.get(bg)[0]
    # The chin's pixel lands where the plan puts it (the warp's own resampling aside).
    moved = bilinear(crop, planned[chin])
    assert np.abs(moved - bilinear(frame, fitted_points[chin])).mean() < 4.0
    assert np.abs(moved - bilinear(frame, planned[chin])).mean() > \
        np.abs(moved - bilinear(frame, fitted_points[chin])).mean()
    # Eyes and brows never move: above the eyes every pixel is the frame's as it is, or,
    # outside what the warp touched, the generated crop left alone (alpha 0 there).
    eye_y = int(fitted_points[model.topo.eye_outer, 1].max())
    as_frame = (np.abs(crop[:eye_y].astype(int) - frame[:eye_y].astype(int)) <= 1).all(axis=2)
    untouched = (crop[:eye_y] == nothing[:eye_y]).all(axis=2) & (alpha[:eye_y] == 0)
    assert (as_frame | untouched).all()
    assert as_frame.any() or untouched.all()
    assert alpha[int(round(planned[chin, 1])), int(round(planned[chin, 0]))] == 255
    # Where the generator drew (alpha 255), its pixels are kept as they are.
    drawn = np.full((SIZE, SIZE, 3), 77, np.uint8)
    crop, _ = jaw.build(drawn, np.full((SIZE, SIZE), 255, np.uint8), closed, planned,
                        fitted_points)
    assert (crop == 77).all()


def test_the_frame_is_sampled_only_where_it_shows_and_alike(fitted: Path) -> None:  # noqa: F811
    """Under a full alpha the crop is the generator's, so the frame behind is sampled only
    where the alpha lets it show: those pixels are the same as when every pixel shows."""
    model, _ = load_model(CLIP, fitted)
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(table)
    jaw = JawWarp(model, FrameCrops(CLIP, fitted, transforms, SIZE).rows, pose, expression,
                  transforms)
    opening = np.ptp(jaw.points(np.arange(len(table)), pose, expression)[:, :, 1], axis=1)
    closed, opened = int(np.argmin(opening)), int(np.argmax(opening))
    bg = np.array([closed])
    planned = jaw.points(bg, pose[bg], expression[[opened]])[0]
    fitted_points = jaw.points(bg, pose[bg], expression[bg])[0]
    drawn = np.full((SIZE, SIZE, 3), 77, np.uint8)
    every, _ = jaw.build(drawn, np.zeros((SIZE, SIZE), np.uint8), closed, planned,
                         fitted_points)
    half = np.zeros((SIZE, SIZE), np.uint8)
    half[:, ::2] = 255  # every other column drawn: the rest sampled sparsely
    some, _ = jaw.build(drawn, half, closed, planned, fitted_points)
    assert (some[:, ::2] == 77).all()
    assert np.array_equal(some[:, 1::2], every[:, 1::2])
    assert (every != 77).any(axis=2).mean() > 0.5  # the frame shows where alpha is 0


def test_one_triangulation_serves_the_rows_until_a_triangle_would_flip(fitted: Path) -> None:  # noqa: F811
    """The mesh of the first row is reused while every triangle keeps its orientation (so
    it still tiles the crop); a row that would fold it gets a fresh triangulation."""
    from stages.render.jaw import border_points, signed_areas

    model, _ = load_model(CLIP, fitted)
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(table)
    jaw = JawWarp(model, FrameCrops(CLIP, fitted, transforms, SIZE).rows, pose, expression,
                  transforms)
    frames = np.arange(len(table))
    points = jaw.points(frames, pose, expression)
    fixed = border_points(SIZE)
    targets = [np.concatenate([p, fixed]) for p in points]
    follows = np.concatenate([jaw.lower, np.zeros(len(fixed), bool)])
    jaw.mesh(targets[0])
    reused = 0
    for target in targets[1:]:
        before = jaw._mesh
        triangles = jaw.mesh(target)
        reused += jaw._mesh is before
        assert jaw._mesh is not None
        assert (signed_areas(target, jaw._mesh[0]) > 0).all()  # no fold in the mesh used
        assert follows[triangles].any(axis=1).all()  # only triangles that move are drawn
    assert reused > 0
    # A lower-face point dragged across its neighbours flips triangles: triangulated afresh.
    assert jaw._mesh is not None
    kept = jaw._mesh[0].copy()
    folded = targets[0].copy()
    chin = 152
    folded[chin] = folded[chin] + [0.0, -0.6 * np.ptp(points[0][:, 1])]
    jaw.mesh(folded)
    assert jaw._mesh is not None
    assert not np.array_equal(jaw._mesh[0], kept)
    assert (signed_areas(folded, jaw._mesh[0]) > 0).all()


def test_the_rows_of_a_crop_are_cut_alone_with_the_same_pixels(fitted: Path) -> None:  # noqa: F811
    """The warp cuts only the crop rows it reads (``FrameCrops.rows``): the same pixels as
    those rows of the whole crop, cut or cached."""
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    frame = len(table) // 2
    whole = FrameCrops(CLIP, fitted, transforms, SIZE).get(np.array([frame]))[0]
    alone = FrameCrops(CLIP, fitted, transforms, SIZE)
    for top, bottom in ((0, SIZE), (SIZE // 3, SIZE // 2 + 7), (SIZE - 3, SIZE)):
        assert np.array_equal(alone.rows(frame, top, bottom), whole[top:bottom])
    alone.get(np.array([frame]))  # now cached: served from the whole crop
    assert np.array_equal(alone.rows(frame, 5, 9), whole[5:9])


def test_a_row_planned_as_its_frame_moves_nothing(fitted: Path) -> None:  # noqa: F811
    """A row whose plan is the background frame's own expression builds no map: its alpha
    is the generator's and behind it lies the frame's crop as it is."""
    model, _ = load_model(CLIP, fitted)
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(table)
    crops = FrameCrops(CLIP, fitted, transforms, SIZE)
    jaw = JawWarp(model, crops.rows, pose, expression, transforms)
    frame = len(table) // 2
    bg = np.array([frame])
    own = jaw.points(bg, pose[bg], expression[bg])[0]
    alpha = np.zeros((SIZE, SIZE), np.uint8)
    alpha[SIZE // 2:, SIZE // 4:3 * SIZE // 4] = 255
    alpha[SIZE // 2 - 4:SIZE // 2] = 128  # a feather above the drawn part
    drawn = np.full((SIZE, SIZE, 3), 77, np.uint8)
    crop, out_alpha = jaw.build(drawn, alpha, frame, own, own)
    assert np.array_equal(out_alpha, alpha)
    whole = crops.get(bg)[0]
    assert (crop[alpha == 255] == 77).all()
    # Where nothing is drawn: the frame as it is (or, outside what the warp would touch,
    # the generated crop left alone); below the middle (the jaw) always the frame.
    nothing_drawn = alpha == 0
    assert ((crop == whole).all(axis=2) | (crop == 77).all(axis=2))[nothing_drawn].all()
    nothing_drawn[:SIZE // 2] = False
    assert nothing_drawn.sum() > SIZE * SIZE // 8
    assert np.array_equal(crop[nothing_drawn], whole[nothing_drawn])
    half = np.floor(0.5 * 77 + 0.5 * whole[SIZE // 2 - 4:SIZE // 2].astype(np.float64) + 0.5)
    assert np.abs(crop[SIZE // 2 - 4:SIZE // 2].astype(np.float64) - half).max() <= 1.0


def test_the_generators_colour_is_matched_to_the_warped_frame(fitted: Path) -> None:  # noqa: F811
    """A generated lower face drawn a few grey levels off the frame's colour (the CPU
    generator's drift, issue 13) is brought back to the warped frame's colour by the band
    just inside its alpha; without ``colour`` it keeps its offset."""
    import cv2

    model, _ = load_model(CLIP, fitted)
    table, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(table)
    rows = FrameCrops(CLIP, fitted, transforms, SIZE).rows
    plain = JawWarp(model, rows, pose, expression, transforms)
    matched = JawWarp(model, rows, pose, expression, transforms, colour=True)
    opening = np.ptp(plain.points(np.arange(len(table)), pose, expression)[:, :, 1], axis=1)
    closed, opened = int(np.argmin(opening)), int(np.argmax(opening))
    bg = np.array([closed])
    planned = plain.points(bg, pose[bg], expression[[opened]])[0]
    fitted_points = plain.points(bg, pose[bg], expression[bg])[0]
    # The warped frame itself (alpha 0 everywhere): what a perfect generator would draw.
    warped, _ = plain.build(np.zeros((SIZE, SIZE, 3), np.uint8),
                            np.zeros((SIZE, SIZE), np.uint8), closed, planned, fitted_points)
    offset = np.array([9.0, -6.0, 5.0])
    drawn = np.clip(warped + offset, 0, 255).astype(np.uint8)
    # The generator's alpha: an ellipse over the lower face, feathered at its edge.
    mouth = planned[list(model.topo.inner_lip_pairs[0])].mean(axis=0)
    alpha = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(alpha, (int(mouth[0]), int(mouth[1])), (SIZE // 4, SIZE // 5), 0, 0, 360,
                255, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    core = cv2.erode((alpha == 255).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    errors = {}
    for name, jaw in (("plain", plain), ("matched", matched)):
        crop, _ = jaw.build(drawn, alpha, closed, planned, fitted_points)
        errors[name] = np.abs((crop[core].astype(float) - warped[core]).mean(axis=0))
    print(errors)
    assert (errors["plain"] > 0.8 * np.abs(offset)).all()
    assert (errors["matched"] < 0.2 * np.abs(offset)).all()
