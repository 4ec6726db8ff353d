"""Exemplar mouths (stages/render/interior.py): the warp, the temporal path, and on a fitted
clip, held-out frames repainted from the other frames' mouths."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from stages.composite.blend import BlendParams
from stages.fit import frame_parameters, load_fit
from stages.render.config import RenderParams
from stages.render.data import (
    BackgroundCrops,
    FrameCrops,
    ReferencePool,
    face_geometry,
    load_clip,
    load_model,
)
from stages.render.interior import (
    ExemplarSources,
    MouthExemplars,
    MouthParams,
    MouthRegion,
    choose_exemplars,
    crop_points,
    paint_rows,
    warp_exemplar,
)
from stages.render.render import plan_frames, run_render
from stages.render.store import RenderStore
from talkedit.artifacts import PLAN, EditPaths, read_parquet
from talkedit.scale import ScaleParams
from tests.test_render import (  # noqa: F401  (fixtures: the fitted clip, its tiny generator)
    CLIP,
    fitted,
    trained,
    write_plan,
)

SIZE = 128


def textured(size: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size, 3)).astype(np.float32) * 255
    return cv2.GaussianBlur(noise, (0, 0), 2.0).astype(np.uint8)


def test_warp_moves_the_exemplar_with_its_points() -> None:
    image = textured(64)
    grid = np.stack(np.meshgrid(np.linspace(12, 52, 6), np.linspace(12, 52, 6)), -1).reshape(-1, 2)
    triangles = Delaunay(grid).simplices
    shift = np.array([3.0, -2.0])
    warped, valid = warp_exemplar(image, grid, grid + shift, triangles)
    expected = cv2.warpAffine(image.astype(np.float32), np.float32([[1, 0, 3], [0, 1, -2]]),
                              (64, 64))
    inside = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert 1300 < inside.sum() < 1700  # the shifted 40 x 40 px hull
    assert np.abs(warped[inside] - expected[inside]).max() < 1.0
    # A mouth opening: the lower half of the points moves down, the texture stretches with it.
    moved = grid + np.where(grid[:, 1:] > 32, [0.0, 6.0], [0.0, 0.0])
    stretched, ok = warp_exemplar(image, grid, moved, triangles)
    assert ok[55, 30] and not valid[55, 30]
    np.testing.assert_allclose(stretched[56, 20:40], image[50, 20:40].astype(np.float32), atol=1.0)


def test_the_path_plays_consecutive_frames_and_jumps_only_when_it_pays() -> None:
    # Pool: clip frames 0..99 whose 1-D "shape" rises steadily; the targets follow frames
    # 10..29's shapes with noise of about a frame's step, which alone picks scattered frames.
    frames = np.arange(100)
    pool = np.linspace(0, 1, 100)[:, None]
    target = pool[10:30] + np.random.default_rng(1).normal(0, 0.012, (20, 1))
    def jumps(played: np.ndarray) -> int:  # changes other than "the next frame" or "stay"
        return int((~np.isin(np.diff(played), (0, 1))).sum())

    greedy = frames[choose_exemplars(target, pool, frames, 1, 0.0)]
    played = frames[choose_exemplars(target, pool, frames, 8, 6.0)]
    assert jumps(greedy) >= 6 and jumps(played) <= 1  # real footage, frame after frame
    assert abs(int(played[0]) - 10) <= 3 and abs(int(played[-1]) - 29) <= 3
    # A target far from where the run is: the path jumps instead of drifting.
    jump = frames[choose_exemplars(np.r_[pool[10:15], pool[80:85]], pool, frames, 8, 6.0)]
    assert jump[4] < 20 and jump[5] > 70


def mouth_box(points: np.ndarray, pad: int = 3) -> tuple[slice, slice]:
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad
    return slice(y0, y1), slice(x0, x1)


def sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_held_out_mouths_repainted_from_other_frames_are_sharp_and_in_place(
        fitted: Path) -> None:  # noqa: F811
    """Self-reenactment: the clip's last third painted from exemplars of its first two
    thirds (never the frame itself), over a blurred copy of the truth (a soft renderer)."""
    model, _ = load_model(CLIP, fitted)
    _, data = load_clip(CLIP, fitted, SIZE)
    _, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(load_fit(CLIP, fitted)[1])
    n = len(data)
    train = np.arange(0, 2 * n // 3)
    held = np.arange(2 * n // 3 + 5, n)
    pool = ReferencePool.sample(data, train, 1000)
    painter = MouthExemplars(model, data.crops.__getitem__, pool.frames, pose[pool.frames],
                             pool.expression.astype(np.float64), transforms[pool.frames],
                             MouthParams(strength=1.0))  # the exemplar alone
    choice = painter.choose(expression[held])
    assert np.all(pool.frames[choice] < 2 * n // 3)
    targets = crop_points(model, pose[held], expression[held], transforms[held],
                          painter.region.anchors)
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    half = MouthExemplars(model, data.crops.__getitem__, pool.frames, pose[pool.frames],
                          pool.expression.astype(np.float64), transforms[pool.frames],
                          MouthParams(strength=0.5))
    scores = {"blurred": [], "painted": [], "unwarped": []}
    sharp = {"truth": [], "blurred": [], "painted": [], "half": []}
    coarse_off = {"mix": [], "painted": []}  # half's coarse band: mixed, not the exemplar's
    for k, frame in enumerate(held):
        truth = data.crops[frame]
        blurred = cv2.GaussianBlur(truth, (0, 0), 1.5)
        painted = painter.paint(blurred, alpha, int(choice[k]), targets[k])
        halved = half.paint(blurred, alpha, int(choice[k]), targets[k])
        unwarped = data.crops[pool.frames[choice[k]]]
        box = mouth_box(targets[k][painter.lip_slots])
        for name, image in (("blurred", blurred), ("painted", painted), ("unwarped", unwarped)):
            scores[name].append(psnr(image[box], truth[box]))
        for name, image in (("truth", truth), ("blurred", blurred), ("painted", painted),
                            ("half", halved)):
            sharp[name].append(sharpness(image[box]))
        low = {name: cv2.GaussianBlur(x.astype(np.float32), (0, 0), 4.0)[box]
               for name, x in (("half", halved), ("painted", painted), ("blurred", blurred))}
        coarse_off["mix"].append(np.abs(low["half"] - (low["painted"] + low["blurred"]) / 2).mean())
        coarse_off["painted"].append(np.abs(low["half"] - low["painted"]).mean())
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    ratio = {k: float(np.mean(v) / np.mean(sharp["truth"])) for k, v in sharp.items()}
    # Measured: PSNR blurred 23.2, unwarped exemplar 24.5, painted 27.7 dB; sharpness
    # 0.05x (blurred) -> 0.75x the truth's.
    assert ratio["painted"] > 0.6 and ratio["blurred"] < 0.2
    assert mean["painted"] > mean["unwarped"] + 2.0 and mean["painted"] > mean["blurred"] + 3.0
    # Half strength: the exemplar's fine band kept whole (as sharp as the full painting),
    # its coarse band halfway to the generated frame's.
    print(f"sharpness {ratio}, coarse band off the mix {np.mean(coarse_off['mix']):.2f}, "
          f"off the exemplar {np.mean(coarse_off['painted']):.2f}")
    assert ratio["half"] > 0.85 * ratio["painted"], ratio
    assert np.mean(coarse_off["mix"]) < 0.5 * np.mean(coarse_off["painted"]), coarse_off


def test_full_resolution_crops_carry_painted_mouths_at_the_fits_size(
        trained: tuple[Path, dict]) -> None:  # noqa: F811
    """The render stage with exemplar mouths stores crops at the fit's crop size (128 here,
    the generator's is 64), mapped by the fit's own transforms, with sharper mouths than
    the generator's crops upsampled."""
    root, _ = trained
    write_plan(root, "paint")
    summary = run_render("paint", root, RenderParams(warmup_frames=3),
                         MouthParams(strength=1.0), ScaleParams())
    write_plan(root, "plain")
    run_render("plain", root, RenderParams(warmup_frames=3), MouthParams(exemplar=False),
               ScaleParams())
    assert summary["mouth_exemplars"] and summary["crop_size"] == 128 and summary["size"] == 64
    _, _, fit_transforms, _ = face_geometry(CLIP, root, 128)
    model, _ = load_model(CLIP, root)
    painted, plain = RenderStore("paint", root), RenderStore("plain", root)
    region = MouthRegion.of(model, MouthParams().region)
    plan = read_parquet(EditPaths.of("paint", root).plan, PLAN, arrow=True)
    frames = plan_frames(plan, len(fit_transforms), EditPaths.of("paint", root).plan)
    gains = []
    for frame, out in painted:
        assert out.crop.shape == (128, 128, 3)
        np.testing.assert_allclose(out.transform.reshape(-1), fit_transforms[out.source_frame],
                                   rtol=1e-5, atol=1e-4)
        lips = crop_points(model, frames.pose[[frame]], frames.expression[[frame]],
                           fit_transforms[[out.source_frame]], region.lips)[0]
        box = mouth_box(lips)
        soft = cv2.resize(plain.read(frame).crop, (128, 128), interpolation=cv2.INTER_CUBIC)
        gains.append(sharpness(out.crop[box]) / sharpness(soft[box]))
    assert np.median(gains) > 1.5
    # The composite keeps its blend in the generator's crop px: twice the crop, twice the px.
    blend = BlendParams()
    assert blend.at_scale(1.0) is blend
    assert blend.at_scale(2.0).feather_px == 2 * blend.feather_px
    assert blend.at_scale(2.0).erode_px == 2 * blend.erode_px


def test_exemplars_cut_afresh_from_the_frames_are_the_fits_crops_only_sharper(
        fitted: Path) -> None:  # noqa: F811
    """FrameCrops (the exemplar mouths' source at full resolution) cuts the same crops as
    the fit stored, from the decoded frames by cubic interpolation instead of bilinear
    plus H.264: the same face in the same place, with more of the mouth's detail."""
    _, crop_size, transforms, _ = face_geometry(CLIP, fitted, 128)
    assert crop_size == 128  # the fit's own size: only the resampling differs
    model, _ = load_model(CLIP, fitted)
    pose, expression = frame_parameters(load_fit(CLIP, fitted)[1])
    frames = np.arange(0, len(transforms), 7)
    stored = BackgroundCrops(CLIP, fitted, 128).get(frames)
    fresh = FrameCrops(CLIP, fitted, transforms, 128).get(frames)
    region = MouthRegion.of(model, MouthParams().region)
    lips = crop_points(model, pose[frames], expression[frames], transforms[frames], region.lips)
    same, gain = [], []
    for k in range(len(frames)):
        box = mouth_box(lips[k])
        same.append(psnr(fresh[k][box], stored[k][box]))
        gain.append(sharpness(fresh[k][box]) / sharpness(stored[k][box]))
    print(f"PSNR fresh vs stored {np.mean(same):.1f} dB, sharpness x{np.median(gain):.2f}")
    assert np.mean(same) > 28.0
    assert np.median(gain) > 1.1


def test_exemplars_read_ahead_once_paint_the_same_bytes(fitted: Path) -> None:  # noqa: F811
    """``ExemplarSources``: batches of rows get their exemplars from one read of the next
    ``window`` rows' (each read asks ``crops_of`` for sorted, distinct frames), and paint the
    same bytes as reading each batch's own."""
    model, _ = load_model(CLIP, fitted)
    _, data = load_clip(CLIP, fitted, SIZE)
    _, _, transforms, _ = face_geometry(CLIP, fitted, SIZE)
    pose, expression = frame_parameters(load_fit(CLIP, fitted)[1])
    n = len(data)
    pool = ReferencePool.sample(data, np.arange(0, 2 * n // 3), 1000)
    asked: list[list[int]] = []

    def crops_of(frames: np.ndarray) -> np.ndarray:
        asked.append(np.asarray(frames).tolist())
        return data.crops[frames]

    painter = MouthExemplars(model, crops_of, pool.frames, pose[pool.frames],
                             pool.expression.astype(np.float64), transforms[pool.frames],
                             MouthParams())
    rows = np.arange(2 * n // 3, n)
    # Exemplars far apart (every 7th pool frame, reversed) so each batch asks for new ones.
    choice = dict(zip(rows.tolist(), ((len(pool.frames) - 1 - 7 * np.arange(len(rows)))
                                      % len(pool.frames)).tolist(), strict=True))
    targets = crop_points(model, pose[rows], expression[rows], transforms[rows],
                          painter.region.anchors)
    by_row = dict(zip(rows.tolist(), targets, strict=True))
    crops = np.stack([cv2.GaussianBlur(data.crops[f], (0, 0), 1.5) for f in rows])
    alpha = np.full((len(rows), SIZE, SIZE), 255, np.uint8)
    batches = [slice(k, k + 3) for k in range(0, len(rows), 3)]
    each = [paint_rows(painter, crops[b], alpha[b], rows[b], choice, by_row) for b in batches]
    assert len(asked) == len(batches)
    asked.clear()
    sources = ExemplarSources(painter, choice, window=8)
    ahead = [paint_rows(painter, crops[b], alpha[b], rows[b], choice, by_row, sources)
             for b in batches]
    for got, want in zip(ahead, each, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(each[0], crops[batches[0]])  # mouths were painted
    # A read covers 8 rows from its batch's first: the batches of 3 starting at rows 0, 6,
    # 12, ... (each reaching past the last read) read; 11 reads for 67 rows, not 23.
    assert len(rows) == 67 and len(asked) == len(range(0, 61, 6)) == 11, len(asked)
    assert all(frames == sorted(set(frames)) for frames in asked)
