"""Reenactment (stages/reenact): expression transfer between two generated people, the plan
on the edit contracts, the truth clip of the demo generator's timing_from, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, make_video

TARGET_TEXT = ("We walked along the river in the early morning, talking about the plans for "
               "the garden and the long summer ahead of us. Then we sat down by the old stone bridge "
               "and watched the boats go by.")
SOURCE_TEXT = "Maybe we should open the window before the meeting starts."


@pytest.fixture(scope="module")
def pair_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short generated clips, extracted and fitted: ``tgt`` (the astronaut, seed 0)
    and ``src`` (LFW face 80, another voice), plus the truth clip: the astronaut saying
    the source's words with its timing, 2 s in."""
    import cv2

    from stages.demo import DemoParams, generate_demo
    from stages.demo.pairs import face_photo
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from talkedit.scale import ScaleParams

    root = tmp_path_factory.mktemp("reenact_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "tgt.txt").write_text(TARGET_TEXT)
    (root / "src.txt").write_text(SOURCE_TEXT)
    face = root / "face.png"
    cv2.imwrite(str(face), cv2.cvtColor(face_photo("lfw:80"), cv2.COLOR_RGB2BGR))
    generate_demo(root, DemoParams(name="tgt", text=str(root / "tgt.txt"), size=256))
    generate_demo(root, DemoParams(name="src", text=str(root / "src.txt"), face=str(face),
                                   voice="en-us+f3", rate_wpm=165, seed=3, size=256))
    generate_demo(root, DemoParams(name="truth", size=256,
                                   timing_from=str(root / "data" / "raw" / "src.mp4"),
                                   timing_at_s=2.0), out_dir=root / "truth")
    for clip in ("tgt", "src"):
        extract_clip(clip, root, ExtractParams())
        run_fit(clip, root, FitParams(), ScaleParams())
    return root


def test_the_truth_clip_says_the_source_s_words_with_its_timing(pair_root: Path) -> None:
    """Phones shifted by exactly timing_at_s; the mouth opens where the source's does; the
    head and light are the target's (same seed), frame for frame."""
    from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, read_parquet

    raw, truth = pair_root / "data" / "raw", pair_root / "truth"
    src = read_parquet(raw / "src.truth_phones.parquet", TRUTH_PHONES)
    got = read_parquet(truth / "truth.truth_phones.parquet", TRUTH_PHONES)
    spoken_src, spoken = src[src["word_index"] >= 0], got[got["word_index"] >= 0]
    assert list(spoken["phone"]) == list(spoken_src["phone"])
    np.testing.assert_allclose(spoken["start_s"].to_numpy(), spoken_src["start_s"].to_numpy() + 2.0)
    assert (truth / "truth.txt").read_text().strip() == SOURCE_TEXT
    jaw_src = read_parquet(raw / "src.truth_frames.parquet", TRUTH_FRAMES)["jaw_open"].to_numpy()
    frames = read_parquet(truth / "truth.truth_frames.parquet", TRUTH_FRAMES)
    tgt = read_parquet(raw / "tgt.truth_frames.parquet", TRUTH_FRAMES)
    n = min(len(jaw_src), len(frames) - 50)
    np.testing.assert_allclose(frames["jaw_open"].to_numpy()[50:50 + n], jaw_src[:n], atol=1e-6)
    m = min(len(frames), len(tgt))
    for col in ("head_yaw_deg", "head_tx_px", "light_gain"):
        np.testing.assert_array_equal(frames[col].to_numpy()[:m], tgt[col].to_numpy()[:m])


def test_transfer_onto_the_same_person_is_the_identity(pair_root: Path) -> None:
    from stages.fit import load_fit
    from stages.reenact.transfer import Transfer
    from talkedit.artifacts import column_array

    person, table = load_fit("tgt", pair_root)
    expr = column_array(table, "expression").astype(np.float64)
    usable = table.column("detected").to_numpy(zero_copy_only=False)
    transfer = Transfer.between(person, expr, usable, person, expr, usable, 0.2, True, 1e6)
    np.testing.assert_allclose(transfer.axis_scale, 1.0)
    np.testing.assert_allclose(transfer(expr), expr, atol=1e-4)


def test_the_source_s_mouth_drives_the_target_s(pair_root: Path) -> None:
    """Across two different people: the transferred mouth opening on the target's model
    follows the source's true jaw opening (r >= 0.9), the neutral is robust to a few
    wildly wrong frames, and the displacement scale is the mouths' size ratio."""
    from stages.fit import load_fit
    from stages.fit.model import mouth_opening
    from stages.reenact.transfer import Transfer, robust_neutral
    from talkedit.artifacts import TRUTH_FRAMES, column_array, read_parquet

    src, src_table = load_fit("src", pair_root)
    tgt, tgt_table = load_fit("tgt", pair_root)
    src_expr = column_array(src_table, "expression").astype(np.float64)
    tgt_expr = column_array(tgt_table, "expression").astype(np.float64)
    ok_s = src_table.column("detected").to_numpy(zero_copy_only=False)
    ok_t = tgt_table.column("detected").to_numpy(zero_copy_only=False)
    transfer = Transfer.between(src, src_expr, ok_s, tgt, tgt_expr, ok_t, 0.2, True, 3.0)
    jaw = read_parquet(pair_root / "data" / "raw" / "src.truth_frames.parquet",
                       TRUTH_FRAMES)["jaw_open"].to_numpy()
    n = len(src_expr)
    for own in (None, tgt_expr[:n]):  # the whole face; the lower face over the target's own
        opening = mouth_opening(tgt.shape(transfer(src_expr, own)), tgt.topo)
        r = np.corrcoef(opening, jaw[:n])[0, 1]
        assert r >= 0.9, r
    # The lower-face transfer keeps the target frame's own eyes and brows.
    moved = tgt.shape(transfer(src_expr, tgt_expr[:n]))
    upper = transfer.lower_face_weight() == 0
    assert np.abs(moved[:, upper] - tgt.shape(tgt_expr[:n])[:, upper]).max() < 0.05
    assert 0.5 < transfer.axis_scale[0] < 2.0 and transfer.axis_scale[0] != 1.0

    # 10 % of the frames replaced by a far-off expression move the neutral's mouth little.
    corrupt = src_expr.copy()
    bad = np.arange(0, len(corrupt), 10)
    corrupt[bad] = src.stddev * 6
    clean = robust_neutral(src, src_expr, ok_s, 0.2).shape
    dirty = robust_neutral(src, corrupt, ok_s, 0.2).shape
    assert np.abs(clean - dirty).max() < 0.02  # in eye distances


def _job(root: Path, name: str, spec: dict) -> Path:
    path = root / "data" / "reenact" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_job_plans_the_span_on_the_edit_contracts(pair_root: Path) -> None:
    from stages.fit import load_fit
    from stages.reenact import ReenactParams
    from stages.reenact.plan import run_reenact
    from talkedit.artifacts import PLAN, REENACT_TRACK, ReenactPaths, column_array, read_parquet

    _job(pair_root, "job1", {"target": "tgt", "source": "src", "source_span": [0.4, 2.4],
                             "target_start_s": 1.0})
    opts = ReenactParams(min_target_frames=50)
    report = run_reenact("job1", pair_root, opts)
    paths = ReenactPaths.of("job1", pair_root)
    plan = read_parquet(paths.outputs.plan, PLAN)
    _, tgt = load_fit("tgt", pair_root)
    assert len(plan) == len(tgt)  # keep_rest: the target's whole timeline
    edited = plan["edited"].to_numpy()
    assert np.flatnonzero(edited).tolist() == list(range(25, 75))
    np.testing.assert_array_equal(plan["source_frame"].to_numpy(), np.arange(len(tgt)))
    np.testing.assert_allclose(column_array(plan, "rotation"),
                               column_array(tgt, "rotation"), atol=1e-6)
    kept = ~edited
    np.testing.assert_allclose(column_array(plan, "expression")[kept],
                               column_array(tgt, "expression")[kept], atol=1e-6)
    track = read_parquet(paths.track, REENACT_TRACK)
    assert track["source_frame"].tolist() == list(range(10, 60))
    assert report["target_frames"] == [25, 75] and report["opening_r_source_vs_transferred"] > 0.9
    import wave

    with wave.open(str(paths.outputs.audio)) as wav:
        assert abs(wav.getnframes() / wav.getframerate() - len(plan) / 25) < 1 / 25


@pytest.mark.parametrize("spec, words", [
    ({"target": "tgt", "source": "src", "source_span": [0, 9.0], "target_start_s": 12.5},
     "only"),
    ({"target": "tgt", "source": "src", "mode": "pose"}, "not one of"),
    ({"target": "tgt", "source": "src", "source_span": [2, 1]}, "start < end"),
    ({"target": "tgt"}, "names no source"),
])
def test_a_bad_job_fails_naming_the_fix(pair_root: Path, spec: dict, words: str) -> None:
    from stages.reenact import ReenactParams
    from stages.reenact.plan import run_reenact
    from talkedit.errors import TalkeditError

    _job(pair_root, "bad", spec)
    with pytest.raises(TalkeditError) as caught:
        run_reenact("bad", pair_root, ReenactParams(min_target_frames=50))
    assert words in str(caught.value)
    assert not (pair_root / "data" / "plans" / "bad").exists()


def _cli(project: Path, pair_root: Path, *args: str) -> tuple[int, list[str]]:
    from typer.testing import CliRunner

    from talkedit.cli import app

    result = CliRunner().invoke(app, ["reenact", *args])
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


@pytest.mark.parametrize("case", ["no_face", "frame_rate", "short_target"])
def test_the_command_refuses_bad_clips_writing_nothing(project: Path, pair_root: Path,
                                                       case: str) -> None:
    raw = project / "data" / "raw"
    shutil.copy(pair_root / "data" / "raw" / "tgt.mp4", raw / "tgt.mp4")
    shutil.copy(pair_root / "data" / "raw" / "src.mp4", raw / "src.mp4")
    if case == "no_face":
        make_video(raw / "src.mp4", n_frames=50, size=(128, 96))
    elif case == "frame_rate":
        make_video(raw / "src.mp4", n_frames=60, fps=30, size=(128, 96))
    else:
        make_video(raw / "tgt.mp4", n_frames=60, size=(128, 96))
    before = (project / "params.yaml").read_text()
    code, lines = _cli(project, pair_root, "j", "--target", "tgt", "--source", "src", "--no-run")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines
    expected = {"no_face": "no face", "frame_rate": "fps", "short_target": "too short"}[case]
    assert expected in lines[0]
    assert not (project / "data" / "reenact").exists()
    assert (project / "params.yaml").read_text() == before


def test_the_command_writes_and_registers_a_job(project: Path, pair_root: Path) -> None:
    raw = project / "data" / "raw"
    for clip in ("tgt", "src"):  # with their transcripts: clips with speech (clips:)
        for ext in ("mp4", "txt"):
            shutil.copy(pair_root / "data" / "raw" / f"{clip}.{ext}", raw / f"{clip}.{ext}")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["reenact"]["min_target_frames"] = 50
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    code, lines = _cli(project, pair_root, "j2", "--target", "tgt", "--source", "src",
                       "--source-span", "0.5", "2.5", "--no-run")
    assert code == 0, lines
    spec = yaml.safe_load((project / "data" / "reenact" / "j2.yaml").read_text())
    assert spec["target"] == "tgt" and spec["source_span"] == [0.5, 2.5]
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["reenact_jobs"]["j2"] == {"target": "tgt", "source": "src"}
    assert {"tgt", "src"} <= set(params["clips"])


def test_gaze_moves_the_iris_and_its_truth_is_kept(tmp_path: Path) -> None:
    """demo.stress.gaze_deg: the iris (the eye's dark pixels) moves the way the gaze turns,
    nothing outside the eyes changes, and the truth table carries the angles."""
    from stages.demo import DemoParams, generate_demo
    from stages.demo.face_rig import FaceRig, HeadPose, load_face
    from stages.demo.stress import LEFT_IRIS, Picture, StressParams, gaze_track

    times = np.arange(250) / 25
    gaze = gaze_track(times, StressParams(gaze_deg=20, gaze_every_s=1.0))
    assert np.abs(gaze[:, 0]).max() <= 20 and np.abs(gaze[:, 1]).max() <= 10
    assert (np.abs(np.diff(gaze[:, 0])) > 1).sum() >= 4  # several saccades

    rig = FaceRig(load_face(None), 256)
    picture = Picture(rig, StressParams(gaze_deg=20), 25, np.random.default_rng(0))
    image = rig.render(0.0, 0.0, 0.0, HeadPose())
    views = {g: picture.frame(image, HeadPose(), 0.0, float("nan"), 0.0, (g, 0.0))[0]
             .astype(np.float64) for g in (-20.0, 0.0, 20.0)}
    x, y = rig.landmarks[LEFT_IRIS, :2].round().astype(int)
    half = int(0.12 * rig.eye_dist)

    def iris_x(img: np.ndarray) -> float:
        """Darkness-weighted mean column of the band through the iris centre."""
        band = img[y - 2:y + 3, x - half:x + half + 1].mean(axis=(0, 2))
        weight = np.clip(band.max() - band, 0, None) ** 2
        return float((weight * np.arange(len(band))).sum() / weight.sum())

    assert iris_x(views[20.0]) - iris_x(views[0.0]) > 1.0
    assert iris_x(views[-20.0]) - iris_x(views[0.0]) < -1.0
    changed = np.abs(views[20.0] - views[0.0]).sum(axis=2) > 0
    rows = np.nonzero(changed)[0]
    assert rows.min() > y - 3 * half and rows.max() < y + 3 * half  # the eyes' band only

    (tmp_path / "t.txt").write_text("Look over there.")
    generate_demo(tmp_path, DemoParams(name="eyes", text=str(tmp_path / "t.txt"), size=256,
                                       stress=StressParams(gaze_deg=20, gaze_every_s=0.5)),
                  out_dir=tmp_path)
    truth = pd.read_parquet(tmp_path / "eyes.truth_stress.parquet")
    assert truth["gaze_yaw_deg"].abs().max() > 5


def test_eye_state_reads_gaze_angles_and_blinks_from_landmarks() -> None:
    """Synthetic landmarks with known iris offsets and lid gaps, on a tilted head: the gaze
    is the calibrated map of the cues (iris along / across over the eyeball's radius, lid
    gap over the corner distance), a blink's frames (and their neighbours) take the open
    frames' cues around them, and rolling the head changes nothing."""
    from stages.reenact.eyes import (
        EYE_RADIUS,
        EYES,
        GAZE_WEIGHTS,
        direction_error_deg,
        eye_state,
        fit_gaze_weights,
    )

    yaw = np.array([-10.0, 0.0, 0.0, 10.0, 20.0, 0.0, 30.0, 0.0, 0.0])
    pitch = np.array([0.0, 0.0, 5.0, -5.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    gap = np.array([10.0, 10.0, 10.0, 10.0, 12.0, 2.0, 10.0, 10.0, 8.0])  # frame 5 blinks
    roll = np.radians(12.0)
    turn = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    lm = np.zeros((len(yaw), 478, 2))
    for left, eye in zip((100.0, 200.0), EYES, strict=True):
        outer, inner = (left, 100.0), (left + 40.0, 100.0)
        if eye["outer"] == 263:  # the image-right eye: outer corner on the right
            outer, inner = inner, outer
        centre = np.array([left + 20.0, 100.0])
        iris = centre + 40 * EYE_RADIUS * np.stack([np.sin(np.radians(yaw)),
                                                     np.sin(np.radians(pitch))], 1)
        for key, point in (("outer", outer), ("inner", inner)):
            lm[:, eye[key]] = point
        lm[:, eye["iris"]] = iris
        lm[:, eye["top"]] = centre - np.c_[np.zeros_like(gap), gap / 2]
        lm[:, eye["bottom"]] = centre + np.c_[np.zeros_like(gap), gap / 2]
    state = eye_state(lm @ turn.T)  # the head rolled: angles are along the eye line
    np.testing.assert_allclose(state.gaze_deg, eye_state(lm).gaze_deg, atol=1e-9)
    cues = np.c_[np.sin(np.radians(yaw)), np.sin(np.radians(pitch)), gap / 40.0]
    cues[4:7] = cues[3] + (cues[7] - cues[3]) * np.array([[0.25], [0.5], [0.75]])
    want = (cues - np.median(cues, axis=0)) @ GAZE_WEIGHTS
    np.testing.assert_allclose(state.gaze_deg, want - np.median(want, axis=0), atol=1e-9)
    assert state.gaze_deg[3, 0] - state.gaze_deg[1, 0] > 5  # looking right reads right
    np.testing.assert_allclose(state.closure, np.clip(1 - gap / 10.0, 0, 1), atol=1e-9)
    assert state.blinks.tolist() == [False] * 5 + [True] + [False] * 3
    # The calibration recovers a known map from cues relative to their median.
    rng = np.random.default_rng(0)
    known = rng.normal(size=(3, 2)) * 50
    some = rng.normal(size=(20, 3))
    some = np.concatenate([some, -some])  # symmetric: every cue's and truth's median is 0
    np.testing.assert_allclose(fit_gaze_weights(some, some @ known + 3.0, np.ones(40, bool)),
                               known, atol=0.3)
    assert direction_error_deg(np.array([[3.0, 4.0]]), np.zeros((1, 2)))[0] == pytest.approx(
        5.0, abs=0.05)


def test_a_job_renders_and_composites_signed_as_reenacted(pair_root: Path) -> None:
    """Through the edit path's renderer (a tiny generator, a few steps) and compositor:
    every span frame rendered, the output as long as the span, its manifest's action
    "Reenacted" with the source clip's video hashed in as an ingredient."""
    import hashlib

    from stages.composite.compose import CompositeParams
    from stages.composite.watermark import WatermarkParams
    from stages.reenact import ReenactParams
    from stages.reenact.composite import run_reenactcomposite
    from stages.reenact.plan import run_reenact
    from stages.reenact.render import run_reenactrender
    from stages.render.config import RenderParams, TrainParams
    from stages.render.interior import MouthParams
    from stages.render.train import run_train
    from talkedit.artifacts import ReenactPaths
    from talkedit.video import probe
    from tests.test_render import tiny

    run_train("tgt", pair_root, TrainParams.from_dict(tiny(steps=2)))
    _job(pair_root, "job3", {"target": "tgt", "source": "src", "source_span": [0.4, 1.6],
                             "target_start_s": 2.0, "keep_rest": False})
    run_reenact("job3", pair_root, ReenactParams(min_target_frames=50))
    rendered = run_reenactrender("job3", pair_root, RenderParams(threads=2), MouthParams())
    assert rendered["frames"] == 30
    summary = run_reenactcomposite("job3", pair_root, CompositeParams(preset="ultrafast"),
                                   WatermarkParams())
    out = ReenactPaths.of("job3", pair_root).outputs
    assert summary["frames"] == summary["edited_frames"] == 30
    assert abs(probe(out.output).duration_s - 30 / 25) < 0.1
    manifest = json.loads(out.provenance.read_text())
    assert manifest["actions"][0]["description"].startswith("Reenacted")
    src_video = pair_root / "data" / "raw" / "src.mp4"
    digest = hashlib.sha256(src_video.read_bytes()).hexdigest()
    assert digest in json.dumps(manifest["ingredients"])


def test_the_truth_clip_can_move_like_the_source(tmp_path: Path) -> None:
    """demo.motion_from: from timing_at_s on, the head, gaze and blinks are the other
    clip's (shifted), before it the clip's own."""
    from stages.demo import DemoParams, generate_demo
    from stages.demo.stress import StressParams
    from talkedit.artifacts import TRUTH_FRAMES, TRUTH_STRESS, read_parquet

    (tmp_path / "a.txt").write_text("Look over there, and then back here again.")
    (tmp_path / "b.txt").write_text("Hello there, my friend.")
    generate_demo(tmp_path, DemoParams(name="mover", text=str(tmp_path / "a.txt"), size=128,
                                       seed=4, stress=StressParams(gaze_deg=15, head_scale=3,
                                                                   blink_every_s=0.8)),
                  out_dir=tmp_path)
    generate_demo(tmp_path, DemoParams(name="still", text=str(tmp_path / "b.txt"), size=128),
                  out_dir=tmp_path)
    generate_demo(tmp_path, DemoParams(name="moved", text=str(tmp_path / "b.txt"), size=128,
                                       motion_from=str(tmp_path / "mover.mp4"), timing_at_s=0.4),
                  out_dir=tmp_path)
    head = ["head_yaw_deg", "head_pitch_deg", "head_roll_deg", "head_tx_px", "head_ty_px"]
    src = read_parquet(tmp_path / "mover.truth_frames.parquet", TRUTH_FRAMES)[head].to_numpy()
    own = read_parquet(tmp_path / "still.truth_frames.parquet", TRUTH_FRAMES)[head].to_numpy()
    got = read_parquet(tmp_path / "moved.truth_frames.parquet", TRUTH_FRAMES)[head].to_numpy()
    n = min(len(got), len(src) + 10)
    np.testing.assert_array_equal(got[:10], own[:10])
    np.testing.assert_allclose(got[10:n], src[:n - 10], atol=1e-4)
    assert np.abs(src[:, 0]).max() > 3  # the borrowed motion is not the own one
    eyes_src = read_parquet(tmp_path / "mover.truth_stress.parquet", TRUTH_STRESS)
    eyes = read_parquet(tmp_path / "moved.truth_stress.parquet", TRUTH_STRESS)
    for col in ("gaze_yaw_deg", "blink"):
        np.testing.assert_allclose(eyes[col].to_numpy()[10:n], eyes_src[col].to_numpy()[:n - 10],
                                   atol=1e-4)
    assert eyes["blink"].max() > 0.5 and eyes["gaze_yaw_deg"].abs().max() > 3


def test_head_deg_turns_the_head_in_place() -> None:
    """demo.stress.head_deg stretches the rig's motion to +-head_deg (roll half) and shifts
    the pan of the camera rotation back: the face centre stays where it was."""
    from stages.demo.face_rig import rig_rotation
    from stages.demo.stress import HEAD_AMPLITUDE_DEG, StressParams, head_track

    times = np.arange(500) / 25
    rng = np.random.default_rng(1)
    head = np.zeros((len(times), 5))
    head[:, :3] = rng.uniform(-1, 1, (len(times), 3)) * HEAD_AMPLITUDE_DEG
    moved = head_track(head, times, StressParams(head_deg=12), focal_px=1024)
    assert np.abs(moved[:, :2]).max() <= 12 + 1e-9 and np.abs(moved[:, :2]).max() > 10
    assert np.abs(moved[:, 2]).max() <= 6 + 1e-9
    k = np.array([[1024.0, 0, 256], [0, 1024.0, 256], [0, 0, 1]])
    for yaw, pitch, roll, tx, ty in moved[::50]:
        h = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]) @ k @ rig_rotation(yaw, pitch, roll) \
            @ np.linalg.inv(k)
        centre = h @ [256, 256, 1]
        np.testing.assert_allclose(centre[:2] / centre[2], [256, 256], atol=1e-6)
    plain = head_track(head, times, StressParams(), focal_px=1024)
    np.testing.assert_array_equal(plain, head)  # off by default: clips stay as they were


_NO_MESH = (np.zeros((1, 4, 2)), np.zeros((1, 4, 2)))  # no relief: the homography alone


def _picture(size: int = 200) -> np.ndarray:
    """A textured test picture (smooth gradients and a few discs)."""
    import cv2

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.stack([128 + 100 * np.sin(xs / 9), 128 + 100 * np.cos(ys / 13),
                      128 + 60 * np.sin((xs + ys) / 17)], -1)
    for x, y, r in ((60, 70, 12), (140, 90, 20), (100, 150, 15)):
        cv2.circle(image, (x, y), r, (20, 20, 20), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_repose_turns_the_head_region_and_agrees_on_crops() -> None:
    """Inside the head ellipse the picture moves by the warp; far outside it stays; and the
    same turn applied to a crop (as the renderer does) equals the crop of the turned frame
    (as the compositor does), so face and background line up."""
    import cv2

    from stages.reenact.repose import HEAD_FEATHER, Repose

    image = _picture()
    angle = np.radians(6.0)
    rot = cv2.getRotationMatrix2D((100, 100), np.degrees(angle), 1.0)
    warp = np.eye(3)
    warp[:2] = rot
    warp[:2, 2] += [4.0, -3.0]
    repose = Repose(warp[None], np.array([[100, 100, 40, 50, 0.3]]), *_NO_MESH, np.zeros((1, 2, 4, 2)),
                    np.zeros((1, 2, 2)), np.zeros(1))
    out = repose.apply(image, 0).astype(np.float64)
    expected = cv2.warpPerspective(image, warp, (200, 200)).astype(np.float64)
    np.testing.assert_allclose(out[85:115, 85:115], expected[85:115, 85:115], atol=2)
    reach = 1 + HEAD_FEATHER
    far = np.hypot((np.arange(200)[None] - 100) / (50 * reach), (np.arange(200)[:, None] - 100)
                   / (50 * reach)) > 1.05
    np.testing.assert_array_equal(out[far], image[far].astype(np.float64))

    # A crop: scaled by 0.8 and shifted (image -> crop px), 128 px.
    crop_of = np.array([[0.8, 0, -20], [0, 0.8, -16]])
    crop = cv2.warpAffine(image, crop_of, (128, 128), flags=cv2.INTER_LINEAR)
    turned_crop = repose.apply(crop, 0, crop_of).astype(np.float64)
    crop_of_turned = cv2.warpAffine(repose.apply(image, 0), crop_of, (128, 128),
                                    flags=cv2.INTER_LINEAR).astype(np.float64)
    inner = (slice(30, 100), slice(30, 100))
    assert np.abs(turned_crop[inner] - crop_of_turned[inner]).mean() < 4


def test_the_relief_moves_a_point_beyond_the_homography() -> None:
    """Landmarks that move more than the head's homography (a nose in a turn): the picture
    around such a point comes from where it was; far from the face the homography alone."""
    from stages.reenact.repose import Repose

    image = _picture()
    ys, xs = np.mgrid[60:141:10, 60:141:10]
    before = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    after = before.copy()
    nose = np.argmin(np.linalg.norm(before - [100, 100], axis=1))
    after[nose] += [6.0, 0.0]  # the nose tip moves 6 px right, the rest stays
    repose = Repose(np.eye(3)[None], np.array([[100, 100, 60, 60, 0.0]]), before[None],
                    after[None], np.zeros((1, 2, 4, 2)), np.zeros((1, 2, 2)), np.zeros(1))
    out = repose.apply(image, 0).astype(np.float64)
    np.testing.assert_allclose(out[100, 106], image[100, 100], atol=3)
    np.testing.assert_allclose(out[100, 103], image[100, 97], atol=12)  # half-way: in between
    np.testing.assert_array_equal(out[:50], image[:50].astype(np.float64))


def test_lids_close_and_the_iris_slides() -> None:
    """One synthetic eye (white with a dark iris under skin-coloured lids): a shift moves
    the iris's dark centroid by about that much; closing fills the opening with skin."""
    import cv2

    from stages.reenact.repose import Repose

    skin, white, iris = np.array([190, 150, 130]), np.array([240, 240, 240]), np.array([40, 30, 20])
    image = np.tile(skin, (120, 160, 1)).astype(np.uint8)
    cv2.ellipse(image, (80, 60), (30, 12), 0, 0, 360, white.tolist(), -1)
    cv2.circle(image, (80, 60), 9, iris.tolist(), -1)
    points = np.array([[[50.0, 60], [110, 60], [80, 48], [80, 72]],
                       [[0.0, 0], [0, 0], [0, 0], [0, 0]]])  # the second eye: none

    def dark_x(img: np.ndarray) -> float:
        dark = (img.astype(float).sum(axis=2) < 200)
        return float(np.nonzero(dark)[1].mean())

    shifted = Repose(np.eye(3)[None], np.zeros((1, 5)), *_NO_MESH, points[None],
                     np.array([[[6.0, 0.0], [0.0, 0.0]]]), np.zeros(1)).apply(image, 0)
    assert dark_x(shifted) - dark_x(image) == pytest.approx(6.0, abs=1.5)
    shut = Repose(np.eye(3)[None], np.zeros((1, 5)), *_NO_MESH, points[None], np.zeros((1, 2, 2)),
                  np.ones(1)).apply(image, 0).astype(float)
    opening = np.zeros(image.shape[:2], np.uint8)
    cv2.ellipse(opening, (80, 60), (24, 9), 0, 0, 360, 1, -1)
    assert np.abs(shut[opening > 0] - skin).mean() < 25  # skin over the eye
    assert np.abs(image.astype(float)[opening > 0] - skin).mean() > 60
    half = Repose(np.eye(3)[None], np.zeros((1, 5)), *_NO_MESH, points[None], np.zeros((1, 2, 2)),
                  np.full(1, 0.5)).apply(image, 0)
    visible = (np.abs(half.astype(float) - skin).sum(axis=2) > 60).sum()
    assert 0.2 < visible / (np.abs(image.astype(float) - skin).sum(axis=2) > 60).sum() < 0.8


def test_a_portrait_job_carries_the_source_s_head_and_eyes(pair_root: Path) -> None:
    """mode portrait: the head pose carried over is the source's, relative to its median,
    around the target's (the track holds it); the picture is turned from each target
    frame's own pose that far x PICTURE_TURN_GAIN (drawn_angles), each frame's warp moving
    the target model's landmarks there, while the plan keeps the frame's own pose (the
    renderer draws there; the compositor turns the pasted frame); a tight
    max_pose_offset_deg clamps and flags frames."""
    from stages.fit import head_angles_deg, load_fit, rebuild_landmarks
    from stages.fit.model import Pose
    from stages.reenact import ReenactParams
    from stages.reenact.plan import run_reenact
    from stages.reenact.portrait import (
        PICTURE_PITCH_PER_ABS_YAW,
        PICTURE_TURN_GAIN,
        drawn_angles,
        portrait_transfer,
    )
    from talkedit.artifacts import PLAN, REENACT_TRACK, ReenactPaths, column_array, read_parquet

    _job(pair_root, "pjob", {"target": "tgt", "source": "src", "mode": "portrait",
                             "source_span": [0.4, 2.4], "target_start_s": 1.0})
    run_reenact("pjob", pair_root, ReenactParams(min_target_frames=50))
    paths = ReenactPaths.of("pjob", pair_root)
    plan, track = read_parquet(paths.outputs.plan, PLAN), read_parquet(paths.track, REENACT_TRACK)
    src_model, src = load_fit("src", pair_root)
    tgt_model, tgt = load_fit("tgt", pair_root)
    own = {name: head_angles_deg(column_array(t, "rotation").astype(np.float64))
           for name, t in (("src", src), ("tgt", tgt))}
    usable = {name: t.column("detected").to_numpy(zero_copy_only=False)
              for name, t in (("src", src), ("tgt", tgt))}
    relative = own["src"][10:60] - np.median(own["src"][usable["src"]], axis=0)
    head = np.stack(track["head_deg"].to_numpy())
    np.testing.assert_allclose(head, relative, atol=1e-4)
    edited = plan["edited"].to_numpy()
    np.testing.assert_allclose(column_array(plan, "rotation")[edited],
                               column_array(tgt, "rotation")[25:75], atol=1e-6)
    assert not track["pose_flagged"].any()
    got = portrait_transfer(src_model, src, usable["src"], tgt_model, tgt, usable["tgt"],
                            np.arange(10, 60), np.arange(25, 75),
                            ReenactParams().max_pose_offset_deg)
    neutral = np.median(own["tgt"][usable["tgt"]], axis=0)
    np.testing.assert_allclose(head_angles_deg(got.pose.rotation),
                               drawn_angles(own["tgt"][25:75], relative + neutral, neutral),
                               atol=1e-3)
    # Drawn: the turn from the frame's own pose x the gain, the pitch less its |yaw| share.
    gy, gp, gr = PICTURE_TURN_GAIN
    np.testing.assert_allclose(
        drawn_angles(np.zeros((1, 3)), np.array([[10.0, 2.0, 1.0]]), np.zeros(3)),
        [[10 * gy, 2 * gp + PICTURE_PITCH_PER_ABS_YAW * 10 * gy, gr]], atol=1e-9)
    assert gy > 1.2 and PICTURE_PITCH_PER_ABS_YAW < 0
    # The warp carries the target frame's model landmarks to the drawn pose.
    k = 20
    pose_t = Pose(*(np.atleast_2d(v) for v in (column_array(tgt, "rotation")[25 + k],
                                               column_array(tgt, "translation")[25 + k])),
                  np.atleast_1d(tgt.column("scale").to_numpy()[25 + k]))
    expr = column_array(tgt, "expression")[25 + k][None]
    before = rebuild_landmarks(tgt_model, pose_t, expr)[0, :, :2]
    after = rebuild_landmarks(tgt_model, got.pose[k:k + 1], expr)[0, :, :2]
    warp = np.asarray(track["warp"].iloc[k], np.float64).reshape(3, 3)
    moved = np.c_[before, np.ones(len(before))] @ warp.T
    moved = moved[:, :2] / moved[:, 2:]
    eye_px = np.linalg.norm(after[33] - after[263])
    assert np.median(np.linalg.norm(moved - after, axis=1)) < 0.03 * eye_px
    assert np.median(np.linalg.norm(before - after, axis=1)) > 0.05 * eye_px  # it does turn

    # A target seen only in its first 5 frames has a narrow range: most frames go past it
    # (by more than 0.5 degrees) and are clamped to it and flagged.
    narrow = np.zeros(len(tgt), bool)
    narrow[:5] = True
    got = portrait_transfer(src_model, src, usable["src"], tgt_model, tgt, narrow,
                            np.arange(10, 60), np.arange(25, 75), max_pose_offset_deg=0.5)
    own_t = own["tgt"][narrow] - np.median(own["tgt"][narrow], axis=0)
    lo, hi = own_t.min(axis=0) - 0.5, own_t.max(axis=0) + 0.5
    outside = np.any((relative < lo) | (relative > hi), axis=1)
    assert 10 < outside.sum() < 50
    assert got.pose_flagged.tolist() == outside.tolist()
    np.testing.assert_allclose(got.head_deg, np.clip(relative, lo, hi), atol=1e-6)


def test_a_portrait_job_turns_the_head_in_the_output(pair_root: Path) -> None:
    """Render and composite a portrait job (a tiny generator): the output's eye corners, as
    MediaPipe finds them, sit where the track's turn puts the target frame's, not where
    they were; the manifest says the head motion was carried over."""
    from stages.composite.compose import CompositeParams
    from stages.composite.watermark import WatermarkParams
    from stages.demo.face_rig import detect_landmarks
    from stages.reenact import ReenactParams
    from stages.reenact.composite import run_reenactcomposite
    from stages.reenact.plan import run_reenact
    from stages.reenact.render import run_reenactrender
    from stages.render.config import RenderParams, TrainParams
    from stages.render.interior import MouthParams
    from stages.render.train import run_train
    from talkedit.artifacts import REENACT_TRACK, ModelPaths, ReenactPaths, read_parquet
    from talkedit.video import open_container

    if not ModelPaths.of("tgt", pair_root).generator.is_file():
        from tests.test_render import tiny

        run_train("tgt", pair_root, TrainParams.from_dict(tiny(steps=2)))
    _job(pair_root, "pjob2", {"target": "tgt", "source": "src", "mode": "portrait",
                              "source_span": [0.4, 1.2], "target_start_s": 2.0,
                              "keep_rest": False})
    run_reenact("pjob2", pair_root, ReenactParams(min_target_frames=50))
    assert run_reenactrender("pjob2", pair_root, RenderParams(threads=2), MouthParams()
                             )["frames"] == 20
    run_reenactcomposite("pjob2", pair_root, CompositeParams(preset="ultrafast"),
                         WatermarkParams())
    paths = ReenactPaths.of("pjob2", pair_root)
    track = read_parquet(paths.track, REENACT_TRACK)
    k = int(np.argmax(np.abs(np.stack(track["head_deg"].to_numpy())).sum(axis=1)))

    def frame(video: Path, index: int) -> np.ndarray:
        with open_container(video) as container:
            for i, image in enumerate(container.decode(video=0)):
                if i == index:
                    return image.to_ndarray(format="rgb24")
        raise AssertionError("frame not found")

    out = detect_landmarks(frame(paths.outputs.output, k))
    before = detect_landmarks(frame(pair_root / "data" / "raw" / "tgt.mp4",
                                    int(track["target_frame"].iloc[k])))
    assert out is not None and before is not None
    corners = [33, 133, 263, 362]
    warp = np.asarray(track["warp"].iloc[k], np.float64).reshape(3, 3)
    moved = np.c_[before[corners, :2], np.ones(4)] @ warp.T
    moved = moved[:, :2] / moved[:, 2:]
    err_moved = np.linalg.norm(out[corners, :2] - moved, axis=1).mean()
    err_still = np.linalg.norm(out[corners, :2] - before[corners, :2], axis=1).mean()
    shift = np.linalg.norm(moved - before[corners, :2], axis=1).mean()
    assert shift > 1.5  # the turn moves the eyes visibly...
    assert err_moved < 0.5 * err_still  # ...and the output follows it
    manifest = json.loads(paths.outputs.provenance.read_text())
    assert "head motion" in manifest["actions"][0]["description"]
