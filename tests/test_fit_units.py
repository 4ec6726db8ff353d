"""fit stage: the pieces, on synthetic data with known answers (no video)."""

from __future__ import annotations

import itertools
import sys
import types
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.fit import FitParams, PersonModel, Pose, mouth_opening, rebuild_landmarks
from stages.fit.crops import crop_matrix, lower_face_mask, resample_polygon, to_crop
from stages.fit.geometry import from_rotvec, head_angles_deg, procrustes
from stages.fit.landmarks import LANDMARKERS, Face, make_landmarker, missing_fan_weights
from stages.fit.model import build_shape_model, fit_frames, lower_face_indices, mesh_for
from stages.fit.shading import camera_normals, fit_light, sh_basis
from stages.fit.smoothing import jitter, lag_frames, smooth, still_frames
from stages.fit.topology import ibug68_topology, mediapipe_topology, topology_for
from stages.fit.tracking import MainFaceTracker, fill_gaps, format_ranges, runs, short_gaps
from talkedit.errors import TalkeditError

RNG = np.random.default_rng(7)


# --- topology and mesh ------------------------------------------------------------------------


def test_mediapipe_mesh_is_the_canonical_852_triangles_and_manifold() -> None:
    topo = mediapipe_topology()
    assert topo.triangles.shape == (852, 3)
    uses = Counter(e for t in topo.triangles.tolist() for e in itertools.combinations(sorted(t), 2))
    assert max(uses.values()) == 2  # every edge borders at most two triangles
    assert set(np.unique(topo.triangles)) == set(range(468))  # irises carry no triangles
    assert topology_for(478) is topo and topology_for(68) is ibug68_topology()


def _sphere_face(topo_points: int = 478) -> np.ndarray:
    """A stand-in face: MediaPipe-like points on a sphere cap, in the canonical frame."""
    g = np.random.default_rng(0)
    xy = g.uniform(-1, 1, (topo_points, 2))
    z = -np.sqrt(np.clip(4.0 - (xy ** 2).sum(axis=1), 0, None))
    return np.column_stack([xy, z])


def _toy_model() -> PersonModel:
    """A person model with a random orthonormal basis over a sphere-cap mean shape."""
    topo = mediapipe_topology()
    mean = _sphere_face()
    q, _ = np.linalg.qr(RNG.normal(size=(mean.size, 64)))
    return PersonModel("mediapipe", mean, q.T.reshape(64, -1, 3), np.ones(64), np.full(64, 1 / 64),
                       np.full((478, 3), 0.5), mesh_for(mean, topo), lower_face_indices(mean, topo))


def test_model_round_trip_and_fit_recovers_pose_and_expression(tmp_path: Path) -> None:
    model = _toy_model()
    path = model.save(tmp_path / "face_model.safetensors")
    loaded = PersonModel.load(path)
    np.testing.assert_allclose(loaded.basis, model.basis, atol=1e-6)
    assert loaded.topology == "mediapipe" and "FACEMESH_TESSELATION" in loaded.meta["mesh"]

    n = 5
    # Expression that leaves the rigid points alone is what the fit can separate from pose.
    expr = RNG.normal(scale=0.02, size=(n, 64))
    rigid = list(model.topo.rigid)
    basis = model.basis.copy()
    basis[:, rigid] = 0.0
    q, _ = np.linalg.qr(basis.reshape(64, -1).T)
    loaded.basis = q.T.reshape(64, -1, 3).astype(np.float32)
    pose = Pose(RNG.normal(scale=0.2, size=(n, 3)), RNG.normal(scale=50, size=(n, 3)),
                RNG.uniform(80, 120, n))
    points = rebuild_landmarks(loaded, pose, expr)
    fitted, e = fit_frames(loaded, points)
    np.testing.assert_allclose(e, expr, atol=1e-4)
    np.testing.assert_allclose(from_rotvec(fitted.rotation), from_rotvec(pose.rotation), atol=1e-5)
    np.testing.assert_allclose(fitted.scale, pose.scale, rtol=1e-5)
    np.testing.assert_allclose(rebuild_landmarks(loaded, fitted, e), points, atol=1e-3)


def test_shape_model_from_68_point_frames_finds_the_deformation() -> None:
    """The generic (FAN / iBUG-68) path: posed frames of a 2-mode deformation."""
    topo = ibug68_topology()
    g = np.random.default_rng(3)
    mean = np.column_stack([g.uniform(-1, 1, (68, 2)), g.uniform(-0.2, 0.2, 68)])
    modes = np.zeros((2, 68, 3))
    modes[0, 48:68, 1] = 0.1  # mouth opens
    modes[1, 48:68, 0] = np.linspace(-0.1, 0.1, 20)  # mouth widens
    for n in (100, 400):  # fewer frames than dimensions (204), then more
        coeff = g.normal(size=(n, 2))
        shapes = mean + np.einsum("nk,kpc->npc", coeff, modes)
        pose = Pose(g.normal(scale=0.2, size=(n, 3)), g.normal(scale=20, size=(n, 3)),
                    g.uniform(50, 80, n))
        frames = np.einsum("nij,npj->npi", from_rotvec(pose.rotation), shapes) \
            * pose.scale[:, None, None] + pose.translation[:, None, :]
        m, basis, stddev, explained = build_shape_model(lambda f=frames: iter([f[:60], f[60:]]),
                                                        topo)
        assert basis.shape == (64, 68, 3) and explained[:2].sum() > 0.999
        assert np.all(stddev[2:] < 1e-6 * stddev[0])
        tris = mesh_for(m, topo)
        assert len(tris) > 100 and tris.max() == 67


def test_procrustes_recovers_a_similarity() -> None:
    src = RNG.normal(size=(30, 3))
    rot = from_rotvec(np.array([[0.3, -0.2, 0.5]]))
    dst = 2.5 * src @ rot[0].T + np.array([10.0, -4.0, 3.0])
    s, r, t = procrustes(src, dst[None])
    assert s[0] == pytest.approx(2.5)
    np.testing.assert_allclose(r[0], rot[0], atol=1e-9)
    np.testing.assert_allclose(t[0], [10.0, -4.0, 3.0], atol=1e-9)


def test_head_angles_read_yaw_pitch_roll() -> None:
    ang = head_angles_deg(np.array([[0.0, np.radians(30), 0.0], [0.0, 0.0, np.radians(-10)]]))
    np.testing.assert_allclose(ang, [[30, 0, 0], [0, 0, -10]], atol=1e-9)


def test_mouth_opening_is_inner_lip_gap_over_eye_distance() -> None:
    topo = mediapipe_topology()
    lm = np.zeros((478, 2))
    lm[topo.eye_outer[0]] = (100, 100)
    lm[topo.eye_outer[1]] = (200, 100)
    for k, (u, v) in enumerate(topo.inner_lip_pairs):
        lm[u] = (130 + 5 * k, 180)
        lm[v] = (130 + 5 * k, 180 + 20)
    assert mouth_opening(lm) == pytest.approx(0.2)
    assert mouth_opening(np.stack([lm, lm * 2])) == pytest.approx([0.2, 0.2])


def test_lower_face_outline_runs_along_the_jaw_below_the_nose() -> None:
    topo = mediapipe_topology()
    mean = _sphere_face()
    # A real layout: the oval ring as a circle, the nose bottom at its middle.
    ring = np.array(topo.face_oval)
    angles = np.linspace(-np.pi / 2, 1.5 * np.pi, len(ring), endpoint=False)
    mean[ring, 0], mean[ring, 1] = np.cos(angles), np.sin(angles)  # 10 on top (y = -1)
    mean[topo.nose_bottom, :2] = (0.0, 0.1)
    idx = lower_face_indices(mean, topo)
    assert idx[-1] == topo.nose_bottom and 152 in idx  # chin included, closed under the nose
    assert np.all(mean[idx[:-1], 1] > 0.1) and 10 not in idx


# --- smoothing -------------------------------------------------------------------------------


def test_savgol_has_no_lag_and_cuts_jitter_while_one_euro_lags() -> None:
    fps = 25.0
    t = np.arange(600) / fps
    # Fast speech (4 Hz syllables) in bursts, with still pauses between them.
    talking = np.sin(2 * np.pi * t / 6.0) > -0.3
    clean = np.where(talking, 0.3 + 0.25 * np.sin(2 * np.pi * 4.0 * t), 0.3)
    noisy = clean + RNG.normal(scale=0.03, size=t.shape)
    centred = smooth(noisy, "savgol", fps, window_ms=200, order=2)
    causal = smooth(noisy, "one_euro", fps)
    assert abs(lag_frames(centred, clean)) < 0.1
    assert lag_frames(causal, clean) > 0.3
    still = still_frames(clean)
    assert still.sum() > 100
    assert jitter(centred, still) < 0.6 * jitter(noisy, still)
    assert np.corrcoef(centred, clean)[0, 1] > np.corrcoef(noisy, clean)[0, 1]
    np.testing.assert_array_equal(smooth(noisy, "none", fps), noisy)
    with pytest.raises(TalkeditError, match="smoothing method"):
        smooth(noisy, "kalman", fps)


# --- tracking and gaps -----------------------------------------------------------------------


def _face_at(x: float, y: float, size: float) -> Face:
    pts = np.zeros((478, 3), np.float32)
    pts[:, 0] = np.linspace(x, x + size, 478)
    pts[:, 1] = np.linspace(y, y + size, 478)
    return Face(pts)


def test_tracker_keeps_the_main_speaker_when_faces_swap_order() -> None:
    tracker = MainFaceTracker(640, 360, min_face_px=40)
    main, other = _face_at(260, 100, 150), _face_at(20, 20, 80)
    chosen, _ = tracker.select(0, [other, main])
    assert chosen is main  # largest and most central
    for k in range(1, 6):
        moved = _face_at(260 + 4 * k, 100, 150)
        chosen, _ = tracker.select(k, [moved, other] if k % 2 else [other, moved])
        assert chosen is moved
    # The main face gone: the other one (much smaller) is not taken instead.
    chosen, reason = tracker.select(6, [other])
    assert chosen is None and reason == 3
    assert tracker.multi_face_frames == 6


def test_tracker_reacquires_a_face_of_the_same_size_and_rejects_small_ones() -> None:
    tracker = MainFaceTracker(640, 360, min_face_px=40)
    tracker.select(0, [_face_at(100, 100, 150)])
    chosen, _ = tracker.select(1, [_face_at(400, 100, 145)])  # jumped while unseen
    assert chosen is not None and tracker.switches == 1
    assert tracker.select(2, [_face_at(400, 100, 30)]) == (None, 2)  # too small


def test_gap_helpers() -> None:
    missing = np.array([0, 1, 1, 0, 0, 1, 1, 1, 1, 0], bool)
    assert runs(missing) == [(1, 3), (5, 9)]
    np.testing.assert_array_equal(short_gaps(missing, 2), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert format_ranges([(5, 9)], 25.0) == "frames 5-8 (0.20-0.36 s)"
    values = np.arange(10, dtype=float)[:, None] * 2
    filled = fill_gaps(np.where(missing[:, None], np.nan, values), ~missing)
    np.testing.assert_allclose(filled, values)


# --- shading ---------------------------------------------------------------------------------


def test_fit_light_recovers_spherical_harmonics() -> None:
    n_v = 400
    normals = RNG.normal(size=(2, n_v, 3))
    normals[..., 2] = np.abs(normals[..., 2])  # facing the camera
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    basis = sh_basis(normals)
    albedo = RNG.uniform(0.3, 0.9, (n_v, 3))
    truth = RNG.normal(scale=0.2, size=(2, 3, 9))
    truth[:, :, 0] = 3.0
    colours = albedo[None] * np.einsum("nvk,nck->nvc", basis, truth)
    light = fit_light(colours, basis, albedo, np.ones((2, n_v), bool), ridge=0.0)
    np.testing.assert_allclose(light, truth, atol=1e-3)
    assert np.isnan(fit_light(colours, basis, albedo, np.zeros((2, n_v), bool))).all()
    np.testing.assert_allclose(camera_normals(np.array([[0.0, 0.0, -1.0]])), [[0, 0, 1]])


# --- crops -----------------------------------------------------------------------------------


def test_crop_matrix_maps_the_face_frame_like_warp_affine() -> None:
    frame = np.array([320.0, 180.0, np.log(200.0), np.radians(10)])
    m = crop_matrix(frame, 256)
    assert to_crop(np.array([[[320.0, 180.0]]]), m.reshape(1, 6))[0, 0] == pytest.approx([128, 128])
    image = np.zeros((360, 640, 3), np.uint8)
    cv2.circle(image, (360, 180), 6, (255, 255, 255), -1)
    crop = cv2.warpAffine(image, m, (256, 256))
    ys, xs = np.nonzero(crop[..., 0] > 128)
    where = to_crop(np.array([[[360.0, 180.0]]]), m.reshape(1, 6))[0, 0]
    assert [xs.mean(), ys.mean()] == pytest.approx(where, abs=1.0)


def test_mask_polygon_resampling_keeps_the_area() -> None:
    square = np.array([[50.0, 50.0], [150.0, 50.0], [150.0, 150.0], [50.0, 150.0]])
    poly = resample_polygon(square[None], 40)[0]
    assert poly.shape == (40, 2)
    mask = lower_face_mask(poly, 256)
    assert mask.sum() == pytest.approx(100 * 100, rel=0.03)


# --- options and landmarkers ------------------------------------------------------------------


def test_options_reject_unknown_settings() -> None:
    with pytest.raises(TalkeditError, match="crop_sise"):
        FitParams.from_dict({"crop_sise": 128})
    with pytest.raises(TalkeditError, match="crop_size"):
        FitParams.from_dict({"crop_size": 255})
    assert FitParams.from_dict({"crop_size": 128}).crop_size == 128


def test_unknown_landmarker_lists_the_known_ones() -> None:
    with pytest.raises(TalkeditError, match="fan.*mediapipe"):
        make_landmarker({"landmarker": "dlib"})
    assert {"mediapipe", "fan"} <= set(LANDMARKERS)


def test_fan_without_the_package_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "face_alignment", None)  # import fails
    with pytest.raises(TalkeditError, match="face-alignment is not installed"):
        make_landmarker({"landmarker": "fan"})


def _fake_face_alignment(points: np.ndarray) -> types.ModuleType:
    module = types.ModuleType("face_alignment")

    class FaceAlignment:
        def __init__(self, kind: object, device: str, flip_input: bool) -> None:
            self.device = device

        def get_landmarks_from_image(self, image: np.ndarray) -> list[np.ndarray] | None:
            return [points] if image.mean() > 0 else None

    module.LandmarksType = types.SimpleNamespace(THREE_D="3D")  # type: ignore[attr-defined]
    module.FaceAlignment = FaceAlignment  # type: ignore[attr-defined]
    return module


def test_fan_never_downloads_missing_weights(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "face_alignment", _fake_face_alignment(np.zeros((68, 3))))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "s3fd-619a316812.pth").write_bytes(b"x")
    assert len(missing_fan_weights(tmp_path)) == 2
    with pytest.raises(TalkeditError, match="3DFAN4.*never downloads"):
        make_landmarker({"landmarker": "fan"})


def test_fan_output_becomes_faces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    fixture = RNG.uniform(50, 150, (68, 3)).astype(np.float32)
    monkeypatch.setitem(sys.modules, "face_alignment", _fake_face_alignment(fixture))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    for name in ("s3fd-619a316812.pth", "3DFAN4-4a694010b9.zip", "depth-6c4283c0e0.zip"):
        (tmp_path / "checkpoints" / name).write_bytes(b"x")
    with make_landmarker({"landmarker": "fan"}) as fan:
        assert fan.topology.n_points == 68
        faces = fan.detect(np.full((200, 200, 3), 90, np.uint8))
        assert fan.detect(np.zeros((200, 200, 3), np.uint8)) == []
    assert len(faces) == 1
    np.testing.assert_array_equal(faces[0].points, fixture)
    assert faces[0].height_px == pytest.approx(float(np.ptp(fixture[:, :2], axis=0).max()))
