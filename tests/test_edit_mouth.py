"""Edit spec ``mouth_motion: audio``: the new words' mouth from the clip's lip model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.plan import PlanParams
from talkedit.errors import TalkeditError
from tests.conftest import copy_project, repo_section, write_edit


def test_mouth_motion_defaults_to_search_and_is_checked(project: Path) -> None:
    from talkedit.edits import load_spec

    (project / "data" / "raw" / "demo.txt").write_text("Good morning, and welcome.\n")
    base = {"clip": "demo", "operations": [{"replace": "morning", "with": "evening"}]}
    write_edit(project, "plain", base)
    assert load_spec("plain", project).mouth_motion == "search"
    write_edit(project, "spoken", base | {"mouth_motion": "audio"})
    assert load_spec("spoken", project).mouth_motion == "audio"
    write_edit(project, "bad", base | {"mouth_motion": "lips"})
    with pytest.raises(TalkeditError, match="mouth_motion: 'lips' is not one of"):
        load_spec("bad", project)


def test_border_weights_cross_fade_over_blend_centred_on_each_border() -> None:
    from stages.lipsync.edit_mouth import border_weights

    t = np.arange(0, 2.01, 0.04)
    w = border_weights(t, 0.5, 1.5, 0.2)
    assert w[t < 0.39].max() == 0 and w[(t > 0.61) & (t < 1.39)].min() == 1
    assert w[t > 1.61].max() == 0
    assert np.allclose(w[np.isclose(t, 0.52)], 0.6) and np.allclose(w[np.isclose(t, 1.48)], 0.6)
    assert np.array_equal(border_weights(t, 0.5, 1.5, 0.0), ((t >= 0.5) & (t <= 1.5)) * 1.0)


@pytest.fixture(scope="module")
def mouth_root(lipmodel_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fitted demo with a (briefly trained: conftest's LIP_FAST) lip model, in a root of
    its own."""
    return copy_project(lipmodel_demo_root, tmp_path_factory.mktemp("edit_mouth_project"))


SECTIONS = (PlanParams, AlignParams, AudioParams)  # plan_edit's / run_plan's, in order


def _plan(root: Path, edit: str) -> object:
    from stages.plan import plan_edit

    return plan_edit(edit, root, *(repo_section(c) for c in SECTIONS))


def test_audio_mouth_follows_the_new_words_sound_and_changes_only_the_mouth(
        mouth_root: Path) -> None:
    """The last sentence (held out from the lip model) said anew from the rest of the clip:
    with mouth_motion: audio its plan's mouth opening follows the true jaw through the new
    words' timing; outside the new words (and their cross-fades) nothing changes; the sound
    the model heard is the audio stage's output, sample for sample."""
    from stages.audio.stage import run_audio
    from stages.evaluate.holdout import clip_sentences, time_map, write_spec
    from stages.fit import load_fit
    from stages.lipsync.edit_mouth import edit_samples
    from stages.lipsync.features import read_clip_wav
    from stages.lipsync.model import openings
    from stages.plan import run_plan
    from stages.plan.report import new_phone_rows
    from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, ClipPaths, EditPaths, read_parquet

    held = clip_sentences("demo", mouth_root, 0.05)[-1]
    name = write_spec(held, "demo", mouth_root)
    spec_path = EditPaths.of(name, mouth_root).spec
    spec = yaml.safe_load(spec_path.read_text())
    searched = _plan(mouth_root, name)
    spec_path.write_text(yaml.safe_dump(spec | {"mouth_motion": "audio"}))
    spoken = _plan(mouth_root, name)

    fs, fa = (r.frames.rows(0, len(r.frames)) for r in (searched, spoken))
    for column in ("source_frame", "rotation", "translation", "illumination", "piece"):
        assert np.array_equal(getattr(fs, column), getattr(fa, column)), column
    changed = np.abs(fa.expression - fs.expression).max(axis=1) > 1e-6
    new = [s for s in spoken.timeline.segments if s.kind == "new"]
    assert len(new) == 1 and spoken.mouth["segments"] == 1
    reach = 0.5 * repo_section(PlanParams).blend_ms / 1000 + 0.5 / spoken.fps
    near = (fa.time_s >= new[0].out_start_s - reach) & (fa.time_s <= new[0].out_end_s + reach)
    assert not changed[~near].any() and changed[near].mean() > 0.9
    assert spoken.mouth["frames"] == int(changed.sum())

    person, _ = load_fit("demo", mouth_root)
    clip = ClipPaths.of("demo", mouth_root)
    tn, tc = time_map(held, pd.DataFrame(new_phone_rows(spoken)),
                      read_parquet(clip.truth_phones, TRUTH_PHONES))
    truth = read_parquet(clip.truth_frames, TRUTH_FRAMES)
    inside = (fa.time_s >= tn[0]) & (fa.time_s <= tn[-1])
    jaw = np.interp(np.interp(fa.time_s[inside], tn, tc), truth["time_s"], truth["jaw_open"])
    r_audio = np.corrcoef(openings(person, fa.expression[inside].astype(float)), jaw)[0, 1]
    # measured (session 15): 117 frames; r 0.853 with a 300-step model, 0.850 with
    # conftest's 150-step one (the changed share near the new words: 0.992 with both)
    assert inside.sum() > 80 and r_audio > 0.7

    # The model heard what the audio stage writes for this plan.
    heard = edit_samples(spoken, mouth_root, repo_section(AudioParams))
    run_plan(name, mouth_root, *(repo_section(c) for c in SECTIONS))
    run_audio(name, mouth_root, repo_section(AudioParams))
    written = read_clip_wav(EditPaths.of(name, mouth_root).audio)
    assert len(written) == len(heard) and np.abs(written - heard).max() < 1e-9



def test_audio_share_moves_the_searched_mouth_that_share_of_the_way(mouth_root: Path) -> None:
    """plan.audio_share s: each frame's expression is the searched one moved s of the way to
    mouth_motion: audio's (the model's own cross-fade at the borders included), nothing else
    changes; an out-of-range share is refused."""
    from stages.evaluate.holdout import clip_sentences, write_spec
    from stages.plan import plan_edit
    from talkedit.artifacts import EditPaths

    held = clip_sentences("demo", mouth_root, 0.05)[-1]
    name = write_spec(held, "demo", mouth_root)
    spec_path = EditPaths.of(name, mouth_root).spec
    spec = yaml.safe_load(spec_path.read_text())
    searched = _plan(mouth_root, name)
    shared = plan_edit(name, mouth_root, dataclasses.replace(repo_section(PlanParams),
                                                             audio_share=0.3),
                       repo_section(AlignParams), repo_section(AudioParams))
    spec_path.write_text(yaml.safe_dump(spec | {"mouth_motion": "audio"}))
    spoken = _plan(mouth_root, name)
    spec_path.write_text(yaml.safe_dump(spec))

    fs, fh, fa = (r.frames.rows(0, len(r.frames)) for r in (searched, shared, spoken))
    assert np.array_equal(fs.source_frame, fh.source_frame)
    expected = fs.expression + 0.3 * (fa.expression.astype(np.float64) - fs.expression)
    assert np.abs(fh.expression - expected).max() < 1e-4  # float32 rows
    moved = np.abs(fh.expression - fs.expression).max(axis=1) > 1e-6
    assert moved.sum() == shared.mouth["frames"] > 80  # measured: 119 (300 or 150 steps)
    assert shared.mouth["mouth_motion"] == "search + audio x 0.3"
    with pytest.raises(TalkeditError, match="audio_share"):
        PlanParams.from_dict({"audio_share": 1.5})
