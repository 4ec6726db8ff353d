"""A second person in the frame: the speaker is followed, never swapped; frames where the
other person reaches the speaker's mouth, or where it cannot be told who the speaker is,
are flagged; a clip where that lasts too long is refused, naming the frames."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.extract import ExtractParams, extract_clip
from stages.fit import FitParams, run_fit
from stages.fit.landmarks import Face
from stages.fit.tracking import (
    AMBIGUOUS,
    FOUND,
    OTHER_OVER_MOUTH,
    MainFaceTracker,
    settle_other_people,
)
from talkedit.errors import TalkeditError
from talkedit.params import load_section
from talkedit.scale import ScaleParams

REPO = Path(__file__).resolve().parents[1]
TEXT = "We measured every step, from the sound of each word to the shape of the mouth.\n"


def _face(x: float, y: float, size: float) -> Face:
    """A square 'face': its box corners and a mouth point pair at 3/4 of its height."""
    pts = np.array([[x, y, 0], [x + size, y + size, 0], [x + 0.4 * size, y + 0.75 * size, 0],
                    [x + 0.6 * size, y + 0.8 * size, 0]], np.float32)
    return Face(pts)


def test_tracker_follows_the_speaker_and_flags_ambiguous_frames() -> None:
    tracker = MainFaceTracker(1280, 720, min_face_px=40, mouth_points=(2, 3))
    speaker, far_right = _face(540, 200, 200), _face(1050, 400, 120)
    assert tracker.select(0, [far_right, speaker]) == (speaker, FOUND)
    # Somebody small far away: followed speaker, nothing flagged.
    assert tracker.select(1, [_face(545, 200, 200), far_right])[1] == FOUND
    # Their head beside the speaker's chin: the frame is flagged, the speaker still followed.
    near = _face(720, 330, 120)
    assert tracker.select(2, [_face(548, 200, 200), near])[1] == OTHER_OVER_MOUTH
    # The speaker's face found twice (boxes a few px apart, IoU 0.87): one face, not two.
    twice = [_face(550, 200, 200), _face(553, 206, 194)]
    assert tracker.select(3, twice) == (twice[0], FOUND)
    assert MainFaceTracker(1280, 720, min_face_px=40).select(0, twice)[1] == FOUND
    assert tracker.box[0] == pytest.approx(550)
    # The speaker lost, then two faces of its size come back: neither is taken.
    assert tracker.select(4, [])[1] != FOUND
    twins = [_face(100, 200, 200), _face(900, 200, 200)]
    assert tracker.select(5, twins) == (None, AMBIGUOUS)
    # One of them: re-acquired.
    assert tracker.select(6, twins[1:])[1] == FOUND
    # Two people alike from the first frame: who speaks is unknown, none is taken.
    fresh = MainFaceTracker(1280, 720, min_face_px=40)
    assert fresh.select(0, [_face(300, 200, 200), _face(780, 200, 200)]) == (None, AMBIGUOUS)


def test_a_face_that_comes_and_goes_for_a_few_frames_is_a_phantom_not_a_person() -> None:
    # MediaPipe finds "faces" in clothes for 1-3 frames at a time (a space suit's folds
    # under the astronaut's chin: 26 of 105 frames of a clean generated clip); a second
    # person stays in view. At 25 fps, runs under 0.2 s (5 frames) are phantoms.
    reason = np.full(40, FOUND, np.uint8)
    reason[[3, 4, 7, 15, 16, 17]] = OTHER_OVER_MOUTH
    reason[20:32] = OTHER_OVER_MOUTH
    kept = settle_other_people(reason, 25.0)
    assert np.flatnonzero(kept).tolist() == list(range(20, 32))
    assert (reason[:20] == FOUND).all() and (reason[20:32] == OTHER_OVER_MOUTH).all()
    assert settle_other_people(reason.copy(), 50.0).sum() == 12  # 12 frames = 0.24 s at 50 fps
    assert settle_other_people(reason.copy(), 100.0).sum() == 0  # 0.12 s: too brief


def _clip(root: Path, **stress: float) -> Path:
    from stages.demo import DemoParams, generate_demo
    from stages.demo.stress import StressParams

    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "t.txt").write_text(TEXT)
    generate_demo(root, DemoParams(name="two", text=str(root / "t.txt"), size=256,
                                   stress=StressParams(**stress)))
    extract_clip("two", root, load_section(ExtractParams, root))
    return root


def _eye_error(root: Path) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    face = pd.read_parquet(root / "data" / "interim" / "two" / "face.parquet",
                           columns=["detected", "landmarks_2d", "n_faces"])
    truth = pd.read_parquet(root / "data" / "raw" / "two.truth_stress.parquet")
    lm = np.stack(face["landmarks_2d"].to_numpy()).reshape(len(face), -1, 2)
    err = (np.linalg.norm(lm[:, 33] - truth[["eye_left_x", "eye_left_y"]].to_numpy(), axis=1)
           + np.linalg.norm(lm[:, 263] - truth[["eye_right_x", "eye_right_y"]].to_numpy(),
                            axis=1)) / 2 / truth["eye_px"].to_numpy()
    return err, face, truth


def test_a_second_person_over_the_mouth_is_flagged_and_a_long_one_refused(
        tmp_path: Path) -> None:
    root = _clip(tmp_path, second_person_at_s=1.0)
    opts = load_section(FitParams, root)
    with pytest.raises(TalkeditError, match=r"another person over the speaker's mouth") as exc:
        run_fit("two", root, opts, ScaleParams())
    assert "frames " in str(exc.value) and not (root / "data/interim/two/face.parquet").exists()
    assert len(str(exc.value).splitlines()) == 1 and "Fix: " in str(exc.value)
    summary = run_fit("two", root, replace(opts, max_missing_share=1.0), ScaleParams())
    err, face, truth = _eye_error(root)
    covered = truth["occluded_share"].to_numpy()
    detected = face["detected"].to_numpy()
    assert (covered > 0.2).sum() >= 20
    assert not detected[covered > 0.2].any()  # every frame it covers a fifth of the mouth
    alone = truth["second_person"].to_numpy() == 0
    assert detected[alone].all()  # before it comes, nothing flagged
    assert summary["other_person_over_mouth_frames"] == int((~detected).sum())
    assert "frames " in summary["other_person_over_mouth_ranges"]
    # The frames kept are the speaker's, not the other person's.
    assert np.nanmax(err[detected]) < 0.05


def test_a_second_person_away_from_the_speaker_is_tracked_past(tmp_path: Path) -> None:
    root = _clip(tmp_path, second_person_at_s=0.5, width=768, height=512)
    summary = run_fit("two", root, load_section(FitParams, root), ScaleParams())
    err, face, truth = _eye_error(root)
    both = (truth["second_person"].to_numpy() >= 1) & (face["n_faces"].to_numpy() == 2)
    assert both.sum() >= 30  # the landmarker saw both people for over a second
    assert face["detected"].all() and summary["other_person_over_mouth_frames"] == 0
    assert summary["speaker_ambiguous_frames"] == 0
    assert np.max(err[both]) < 0.05  # eye corners within 5 % of the eye distance: the speaker
