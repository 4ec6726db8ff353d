"""The robustness table's verdict on the edit's model opening r (benchmarks/stress.py)."""

import pytest

from benchmarks import stress
from benchmarks.common import REPO
from benchmarks.stress import EDIT_R_TARGET, _cell, _model_verdict


def test_model_verdict_names_reached_short_warned_and_refused_rows() -> None:
    rows = {
        "clean": {"edit_opening_r_model": 0.76, "truth_r_edit_model": 0.79,
                  "edit_warned": False, "refused": ""},
        "noise_white_10db": {"edit_opening_r_model": 0.70, "truth_r_edit_model": 0.77,
                             "edit_warned": True, "refused": ""},
        "music_10db": {"edit_opening_r_model": 0.62, "truth_r_edit_model": 0.74,
                       "edit_warned": False, "refused": "align: x.wav: does not match"},
        "phone_aac32k_8khz": {"edit_opening_r_model": 0.74,
                              "truth_r_edit_model": EDIT_R_TARGET, "edit_warned": False},
        "camera_noise_blur_crf32": {"edit_opening_r_model": 0.84, "truth_r_edit_model": 0.81},
        "blinks": {"edit_opening_r": 0.7},  # measured before the model columns: left out
    }
    line = _model_verdict(rows)[1]
    assert "clean falls short (no warning)" in line
    assert "noise_white_10db falls short (warns)" in line
    assert "music_10db falls short (refused at align)" in line
    assert "phone_aac32k_8khz reaches it vs truth (no warning)" in line
    assert "camera_noise_blur_crf32 reaches it vs real frames and vs truth" in line
    assert "blinks" not in line
    assert _model_verdict({"blinks": rows["blinks"]}) == []


def test_validation_cell_shows_model_r_and_lip_gap_r() -> None:
    row = {"opening_check": {"expression_r": 0.99587, "lips_r": 0.98521}}
    assert _cell(row, "check") == "0.996 (0.985)"
    assert _cell({}, "check") == "-"
    assert _cell({"code": "abc1234", "rescored_at": "def5678"}, "code") == \
        "abc1234 (re-scored def5678)"


@pytest.mark.parametrize("full_script", [False, True])
def test_committed_rows_are_read_back_as_the_table_shows_them(full_script: bool) -> None:
    """A run of some conditions rewrites the table with the others as committed: every
    committed row read back renders the same cells and stage times."""
    table = stress.FULL_SCRIPT_RESULTS if full_script else REPO / "benchmarks/results/stress.md"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stress, "RESULTS", table)
        rows = stress.committed_rows()
    lines = table.read_text().split("\n")
    shown = [ln for ln in lines if ln.startswith("| ") and "not run" not in ln
             and ln.split(" | ")[0][2:] in stress.CONDITIONS]
    assert len(rows) == len(shown) >= 10
    for line in shown:
        name = line.split(" | ")[0][2:]
        assert "| " + " | ".join(_cell(rows[name], k) for k, _ in stress.COLUMNS) + " |" == line
        times = ", ".join(f"{k} {v}" for k, v in rows[name]["timings_s"].items())
        assert f"- {name}: {times}" in lines
    assert rows["clean"]["recreated_warned"] is (not full_script)
    assert rows["clean"]["refused"] == "" and rows["music_10db"]["refused"].startswith("align:")


def test_accounting_names_each_rows_standing_against_the_bounds() -> None:
    rows = {
        "clean": {"detected_share_clear": 1.0, "edit_opening_r_model": 0.91, "code": "abc"},
        "noise_white_10db": {"phone_mae_ms": 31.0, "edit_opening_r_model": 0.85,
                             "edit_warned": True, "code": "abc"},
        "music_5db": {"phone_mae_ms": 22.0, "edit_opening_r_model": 0.6, "code": "abc",
                      "refused": "align: x.wav: does not match its transcript"},
        "reverb_rt60_0.8s": {"edit_opening_r_model": 0.72, "recreated_warned": True,
                             "code": "abc"},
        "phone_aac32k_8khz": {"edit_opening_r_model": 0.79, "recreated_warned": False,
                              "code": "abc"},
        "occluded_mouth_0.5s": {"detected_share_clear": 0.99, "occluded_frames": 6,
                                "occluded_flagged": 5, "code": "abc", "through": "fit"},
        "blinks": {"detected_share_clear": 0.975},
    }
    said = {ln.split(":")[0][2:]: ln for ln in stress._accounting(rows) if ln.startswith("- ")}
    assert said["clean"] == ("- clean: within: fit detected 1.0 within, edit model opening r "
                             "0.91 within.")
    assert said["noise_white_10db"].startswith("- noise_white_10db: short, the plan warns:")
    assert "align MAE 31.0 ms under" in said["noise_white_10db"]
    assert "refused at align (asserted by tests/test_stress_align.py::" in said["music_5db"]
    assert "short, the plan warns" in said["reverb_rt60_0.8s"]
    assert "SHORT, with no refusal or warning" in said["phone_aac32k_8khz"]
    assert "through fit" in said["occluded_mouth_0.5s"]
    assert "occluded flagged 5/6 under" in said["occluded_mouth_0.5s"]
    assert said["blinks"].startswith("- blinks: SHORT") and "measured before s7" in said["blinks"]
    assert said["small_face_1280x720"] == "- small_face_1280x720: not run."
    # every refusal the table can show names a test that exists
    for test in stress.REFUSAL_TESTS.values():
        path, name = test.split("::")
        assert f"def {name}(" in (REPO / path).read_text()
