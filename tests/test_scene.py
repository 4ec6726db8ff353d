"""Dialogue scenes: takes aligned to the script, lines labelled, the cut chosen by idioms.

One small generated scene (3 lines, 3 takes at 320x240: a wide two-shot, a close-up of
ANNA that skips line 1, a close-up of BEN that ad-libs line 2) is made once per module
with exact truth, aligned and labelled by the real stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.align import AlignParams
from stages.composite.compose import CompositeParams
from stages.composite.watermark import WatermarkParams
from stages.scene.align import run_scenealign
from stages.scene.config import DialogueParams
from stages.scene.cut import SceneCutParams, choose_cut, run_scenecut
from stages.scene.idioms import Option, build_idioms
from stages.scene.label import run_scenelabel
from stages.scene.media import iter_frames
from stages.scene.render import run_scenerender
from stages.scene.spec import load_scene
from stages.scene.takes import Character, TakePlan, generate_takes
from talkedit.artifacts import ScenePaths
from talkedit.errors import TalkeditError

CHARACTERS = {"ANNA": Character("ANNA", None, 62), "BEN": Character("BEN", "carphone", 30)}
SCRIPT = [("ANNA", "Did you lock the front door?"), ("BEN", "I thought you had the keys."),
          ("ANNA", "They were on the kitchen table.")]
TAKES = [TakePlan("wide", "wide", (0, 1, 2), 160, seed=1),
         TakePlan("anna", "close_ANNA", (0, 2), 150, seed=2),
         TakePlan("ben", "close_BEN", (0, 1, 2), 175, {2: "Maybe I left them in the car."}, seed=3)]
SETUP_VISIBLE = {"wide": "ANNA,BEN", "anna": "ANNA", "ben": "BEN"}


def scene_file(root: Path, name: str = "s", idioms: dict | None = None, **changes: object) -> Path:
    data = {"characters": [{"name": "ANNA", "face": "builtin:astronaut"},
                           {"name": "BEN", "face": "builtin:carphone"}],
            "script": [list(line) for line in SCRIPT], "takes": [t.name for t in TAKES],
            "idioms": idioms or {"speaker_visible": 10, "start_wide": 4, "avoid_jump_cuts": 6}}
    data.update(changes)
    path = ScenePaths.of(name, root).spec
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def scene_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    # 12 fps: half the frames to render; the labels look at every one (sample_fps 12.5).
    generate_takes(TAKES, SCRIPT, CHARACTERS, ScenePaths.of("s", root).takes_dir, fps=12)
    scene_file(root)
    run_scenealign("s", root, AlignParams(), DialogueParams())
    run_scenelabel("s", root, DialogueParams())
    return root


def truth(root: Path, take: str, kind: str = "lines") -> pd.DataFrame:
    return pd.read_parquet(ScenePaths.of("s", root).takes_dir / f"{take}.truth_{kind}.parquet")


def test_alignment_reports_skipped_and_adlib_lines_and_word_times(scene_root: Path) -> None:
    paths = ScenePaths.of("s", scene_root)
    lines = pd.read_parquet(paths.lines)
    status = {(r.take, r.line): r.status for r in lines.itertuples()}
    assert status["anna", 1] == "skipped"  # the close-up of ANNA never says BEN's line
    assert status["ben", 2] == "skipped"  # BEN's take says an ad-lib instead of line 2...
    adlib = lines[(lines["take"] == "ben") & (lines["status"] == "adlib")]
    assert len(adlib) == 1 and "car" in adlib["text"].iloc[0].lower()  # ...reported as one
    assert sum(s == "said" for s in status.values()) == 3 + 2 + 2
    # Line times and word times against the generator's exact ones.
    words = pd.read_parquet(paths.words)
    errors = []
    for take in SETUP_VISIBLE:
        t_lines, t_words = truth(scene_root, take), truth(scene_root, take, "words")
        for row in t_lines[t_lines["line"] >= 0].itertuples():
            got = lines[(lines["take"] == take) & (lines["line"] == row.line)].iloc[0]
            assert abs(got.start_s - row.start_s) < 0.06 and abs(got.end_s - row.end_s) < 0.08
        mine = words[words["take"] == take]
        assert len(mine) == len(t_words)
        errors += list(np.abs(mine["start_s"].to_numpy() - t_words["start_s"].to_numpy()))
    assert np.median(errors) <= 0.040, np.median(errors)


def test_labels_match_truth(scene_root: Path) -> None:
    labels = pd.read_parquet(ScenePaths.of("s", scene_root).labels)
    assert len(labels) == 7  # the said lines
    for row in labels.itertuples():
        said = truth(scene_root, row.take)
        speaker = said[said["line"] == row.line]["character"].iloc[0]
        assert row.visible == SETUP_VISIBLE[row.take], row
        assert row.shot == ("wide" if row.take == "wide" else "close"), row
        assert row.speaker == speaker, row  # from mouth motion vs speech, or off screen
        assert row.speaker_visible == (speaker in SETUP_VISIBLE[row.take])
    assert labels[labels["take"] == "ben"]["tempo_wps"].mean() > \
        labels[labels["take"] == "anna"]["tempo_wps"].mean()  # 175 wpm vs 150 wpm


def option(take: str, line: int, setup: str, speaker: str, tempo: float = 0.5) -> Option:
    shot, _, visible = setup.partition(":")
    return Option(take, line, speaker, setup, shot, tuple(visible.split(",")), speaker, 3.0, tempo,
                  line / 3, 2.0 * line, 2.0 * line + 2.0)


def test_changing_an_idiom_weight_changes_the_cut_as_predicted() -> None:
    """Four lines, A B A B; takes: two wide takes and one close-up per character."""
    speakers = ["A", "B", "A", "B"]
    options = [[option("w1", k, "wide:A,B", s, 0.0), option("w2", k, "wide:A,B", s, 1.0),
                option("ca", k, "close:A", s), option("cb", k, "close:B", s)]
               for k, s in enumerate(speakers)]

    def cut(idioms: dict) -> list[str]:
        return [o.take for o in choose_cut(options, build_idioms(idioms, "test"))[0]]

    # Speaker visible alone: anything showing the speaker; with fewer cuts, one wide take.
    assert cut({"speaker_visible": 1, "fewer_cuts": 0.1}) in (["w1"] * 4, ["w2"] * 4)
    # Emphasize A outweighing everything: A's close-up throughout.
    assert cut({"speaker_visible": 1, "emphasize": {"weight": 5, "character": "A"}}) == ["ca"] * 4
    # Fast performances: the fast wide take (tempo rank 1).
    assert cut({"speaker_visible": 1, "performance": {"weight": 1, "prefer": "fast"}}) == ["w2"] * 4
    assert cut({"speaker_visible": 1, "performance": {"weight": 1, "prefer": "slow"}}) == ["w1"] * 4
    # Intensify (tightness should follow the position 0, 1/3, 2/3, 1): the first half wide
    # (one take: a second one would be a jump cut), then each speaker's close-up.
    got = cut({"speaker_visible": 1, "intensify": 2, "avoid_jump_cuts": 5})
    assert got[0] == got[1] in ("w1", "w2") and got[2:] == ["ca", "cb"]
    # Jump cuts: "performance" alone flips between the two wide takes per line when tempo
    # ranks alternate; avoid_jump_cuts stops it.
    flip = [[option("w1", k, "wide:A,B", s, k % 2), option("w2", k, "wide:A,B", s, 1 - k % 2)]
            for k, s in enumerate(speakers)]

    def flip_cut(idioms: dict) -> list[str]:
        return [o.take for o in choose_cut(flip, build_idioms(idioms, "test"))[0]]
    assert flip_cut({"performance": 1}) == ["w2", "w1", "w2", "w1"]
    assert len(set(flip_cut({"performance": 1, "avoid_jump_cuts": 2}))) == 1


def test_cut_otio_round_trips_and_the_render_matches_it(scene_root: Path) -> None:
    import opentimelineio as otio

    paths = ScenePaths.of("s", scene_root)
    summary = run_scenecut("s", scene_root, DialogueParams(), SceneCutParams())
    cut = pd.read_parquet(paths.cut)
    assert cut["take"].iloc[0] == "wide"  # start wide
    timeline = otio.adapters.read_from_file(str(paths.otio))
    assert otio.adapters.write_to_string(timeline, "otio_json") == paths.otio.read_text()
    for track in timeline.tracks:
        clips = list(track.find_clips())
        assert len(clips) == len(cut) == summary["shots"]
        for k, (clip, row) in enumerate(zip(clips, cut.itertuples(), strict=True)):
            assert clip.source_range.start_time.to_frames() == row.source_in
            assert clip.source_range.end_time_exclusive().to_frames() == row.source_out
            placed = track.range_of_child_at_index(k)
            assert (placed.start_time.to_frames(), placed.end_time_exclusive().to_frames()) == \
                (row.record_in, row.record_out)
            assert (paths.otio.parent / clip.media_reference.target_url).resolve() == \
                paths.take_video(row.take).resolve()
    rendered = run_scenerender("s", scene_root, CompositeParams(preset="ultrafast", label=False),
                               WatermarkParams())
    assert rendered["frames"] == cut["record_out"].iloc[-1]
    # Frame-exact: each shot's first and last rendered frames are its source frames
    # (the watermark and H.264 change them a little, a neighbouring frame more).
    out = dict(iter_frames(paths.video))
    for row in cut.itertuples():
        source = dict(iter_frames(paths.take_video(row.take), row.source_in - 2, row.source_out + 2))
        for record, src in ((row.record_in, row.source_in), (row.record_out - 1, row.source_out - 1)):
            diffs = {k: np.abs(out[record].astype(float) - img).mean() for k, img in source.items()}
            assert min(diffs, key=diffs.get) == src, (row, diffs)
    manifest = yaml.safe_load(paths.provenance.read_text())
    cuts = manifest["actions"][0]["parameters"]["edit_spec"]["cuts"]
    assert [c["source_frames"] for c in cuts] == cut[["source_in", "source_out"]].values.tolist()


def test_bad_scenes_fail_clearly_and_write_nothing(scene_root: Path, tmp_path: Path) -> None:
    spec = ScenePaths.of("s", scene_root).spec
    original = spec.read_text()
    try:
        chars = [{"name": "ANNA", "face": "builtin:astronaut"}, {"name": "anna", "face": "x.png"}]
        scene_file(scene_root, characters=chars)
        with pytest.raises(TalkeditError, match="two characters are named"):
            load_scene("s", scene_root)
        # A line no take says.
        scene_file(scene_root, script=[*map(list, SCRIPT), ["BEN", "Nobody says this."]])
        with pytest.raises(TalkeditError, match=r"script\[3\].*is said in no take"):
            run_scenecut("s", scene_root, DialogueParams(), SceneCutParams())
        # A take of another scene.
        scene_file(scene_root, script=[["ANNA", "Completely different words here."],
                                       ["BEN", "Nothing like the takes at all."]])
        out = ScenePaths.of("s", scene_root).lines
        before = out.stat().st_mtime_ns
        with pytest.raises(TalkeditError, match="take 'wide'.*another scene"):
            run_scenealign("s", scene_root, AlignParams(), DialogueParams())
        assert out.stat().st_mtime_ns == before
        scene_file(scene_root, idioms={"speaker_visibel": 1})
        with pytest.raises(TalkeditError, match="not a known idiom"):
            run_scenecut("s", scene_root, DialogueParams(), SceneCutParams())
    finally:
        spec.write_text(original)


def test_a_take_with_no_faces_is_flagged(scene_root: Path, tmp_path: Path) -> None:
    from stages.scene.label import label_take, sample_faces
    from talkedit.video import VideoWriter

    video = tmp_path / "black.mp4"
    with VideoWriter(video, 320, 240, 25) as out:
        for _ in range(50):
            out.write(np.zeros((240, 320, 3), np.uint8))
    faces = sample_faces(video, np.zeros((2, 50)), DialogueParams())
    assert faces.empty
    lines = pd.DataFrame({"take": ["black"], "line": [0], "start_s": [0.2], "end_s": [1.5]})
    row = label_take(load_scene("s", scene_root), "black", lines,
                     pd.DataFrame({"line": [], "start_s": [], "end_s": []}), faces,
                     np.zeros(32000, np.int16), DialogueParams()).iloc[0]
    assert row.faces == 0 and row.visible == "" and row.shot == "none"
    assert not row.speaker_visible


def test_idiom_weights_rerun_only_the_cut() -> None:
    """dvc.yaml: the scene stages read only their keys of the scene file; idioms reach
    scenecut and scenerender, never scenealign or scenelabel."""
    from tests.conftest import REPO

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]

    def scene_keys(stage: str) -> set[str]:
        params = stages[stage]["do"]["params"]
        return {key for p in params if isinstance(p, dict) for keys in p.values() for key in keys}

    assert "idioms" not in scene_keys("scenealign") | scene_keys("scenelabel")
    assert "idioms" in scene_keys("scenecut") & scene_keys("scenerender")
    assert all("data/scenes/${item}.yaml" not in stages[s]["do"]["deps"]
               for s in ("scenealign", "scenelabel", "scenecut", "scenerender"))


def test_cli_scene_names_an_unlisted_scene(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text("scenes:\n  - other\n")
    run = subprocess.run([sys.executable, "-m", "talkedit", "scene", "nosuch"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: scene 'nosuch': is not listed in params.yaml scenes: (other). "
                     "Fix: add it under scenes: in params.yaml"]


def test_j_cuts_move_the_sound_across_each_cut(scene_root: Path) -> None:
    import opentimelineio as otio

    paths = ScenePaths.of("s", scene_root)
    original = paths.spec.read_text()
    try:  # intensify: open wide, then close-ups, so there are cuts
        scene_file(scene_root, idioms={"speaker_visible": 10, "start_wide": 4, "intensify": 6})
        run_scenecut("s", scene_root, DialogueParams(), SceneCutParams(j_cut_s=0.25))
        cut = pd.read_parquet(paths.cut)
        assert len(cut) >= 2
        j = 3  # 0.25 s at 12 fps
        assert (cut["source_in"] - cut["audio_in"]).tolist() == [0] + [j] * (len(cut) - 1)
        assert (cut["source_out"] - cut["audio_out"]).tolist() == [j] * (len(cut) - 1) + [0]
        video, audio = otio.adapters.read_from_file(str(paths.otio)).tracks
        for k in range(1, len(cut)):  # the sound of each shot starts 3 frames before its picture
            assert audio.range_of_child_at_index(k).start_time.to_frames() == \
                video.range_of_child_at_index(k).start_time.to_frames() - j
        assert audio.duration() == video.duration()
        rendered = run_scenerender("s", scene_root, CompositeParams(preset="ultrafast"),
                                   WatermarkParams())
        from stages.scene.media import read_audio
        samples = len(read_audio(paths.video, 24000))
        assert abs(samples / 24000 - rendered["frames"] / 12) < 0.05  # AAC priming aside
    finally:
        paths.spec.write_text(original)


def test_the_demo_scene_file_matches_its_generation_plan() -> None:
    """data/scenes/demo_scene.yaml cuts what stages/scene/demo_scene.yaml generates."""
    from stages.scene.demo import demo_plan
    from tests.conftest import REPO

    characters, script, plans = demo_plan()
    scene = load_scene("demo_scene", REPO, need_takes=False)
    assert [(line.character, line.text) for line in scene.script] == script
    assert list(scene.takes) == [p.name for p in plans]
    assert scene.names == list(characters)
    assert len(script) >= 12 and len(plans) >= 6  # the scene size


def test_labels_and_cut_are_byte_identical_when_rerun(scene_root: Path) -> None:
    paths = ScenePaths.of("s", scene_root)
    files = (paths.lines, paths.words, paths.labels, paths.cut, paths.cut_markdown, paths.otio)
    run_scenecut("s", scene_root, DialogueParams(), SceneCutParams())
    before = {f: f.read_bytes() for f in files}
    run_scenealign("s", scene_root, AlignParams(), DialogueParams())
    run_scenelabel("s", scene_root, DialogueParams())
    run_scenecut("s", scene_root, DialogueParams(), SceneCutParams())
    assert all(f.read_bytes() == data for f, data in before.items())
