"""Audio-driven lip sync on the demo: training time, inference speed, held-out sentences.

    .venv/bin/python benchmarks/lipsync.py [--work DIR] [--no-render] [--reuse-model]
                                           [--no-jaw-warp] [--sentences N,N]
                                           [--background-shift FRAMES] [--viseme-path]
                                           [--set NAME=VALUE ...] [--workers-ratio]
                                           [--retrieval [KEY=VALUE,...]] [--dev]
                                           [--phone-shares S,S,... [--search-shares S,...]]
                                           [--transcript [KEY=VALUE,...]]
                                           [--viseme-path-recording] [--project DIR]

Runs in a scratch project (--work, default a temp folder) holding links to the
repository's built demo (data/raw, data/interim, the trained renderer), so nothing
under data/ changes:

* training: the lipmodel stage (both networks) on the demo, seconds on this machine's
  CPU (goal: at most 5 min on 2 cores), with its CPU seconds (the networks train on one
  thread: the wall time on an idle core) and the load average; the held-out scores it writes;
* inference: audio features + the kept network over the clip's whole soundtrack,
  times real time (goal: at least 100x, before rendering);
* held-out sentences (those wholly inside the tail no model trained on, as the
  evaluate stage picks them), each driven through a lip-sync job over its own span:
  - by its own audio: the predicted mouth opening vs the generator's true jaw_open
    (r, goal >= 0.85); rendered and composited, the output's landmark distance and
    mouth PSNR vs the real frames against a baseline whose mouth keeps the training
    frames' mean expression ("closed-average"), the viseme path's scores on the same
    sentences (data/metrics/demo/evaluate.json), and the A/V sync offset;
  - by the same audio with its words as the job's ``transcript:`` (aligned; the mouth
    moves ``lipsync.phone_share`` of the way to the clip's co-articulation model of the
    phones, then ``search_share`` of the way to the edit path's searched plan of them):
    ``own_audio_transcript``, rendered as ``lipsync_transcript``; --transcript (repeatable)
    also renders it with other lipsync settings (``lipsync_transcript_<i>``);
  - by another voice (espeak-ng en-us+f3, 130 wpm): predicted opening vs the true
    jaw_open mapped onto that audio's timing through its phones (goal r >= 0.75); a
    text job knows its phones (``other_voice``), and ``other_voice_audio_only`` is the
    lip model alone (phone_share 0).
--no-jaw-warp renders without the chin warp (``mouth.jaw_warp``); --sentences scores the
clip's sentences given instead of the held-out ones (a sentence inside the training share
is marked ``"heldout": false``: its scores are in-sample). --background-shift N puts the
clip frame N later behind each new frame (its pose and light with it): footage of other
speech, as in a real dub; by default the footage behind is the sentence's own, whose chin
is already the truth's. --viseme-path also re-runs the viseme path (the evaluate stage)
here with the same shift behind its new frames (``viseme_path_here``);
--viseme-path-recording does so with each sentence's own sound as the edit's recording, so
that the plan times the new words by it (``viseme_path_recording``).
--workers-ratio only trains the model twice, its networks one after another and two at a
time (``lipmodel.workers`` 1 and 2): seconds, speed-up, and the two files' md5 (equal).
--retrieval (repeatable) also renders the own-audio job with ``lipsync.retrieval`` on and the
given lipsync settings (``lipsync_retrieval_<i>``; "lipsync" stays the prediction itself).
--fitted-ceiling also renders the real frames' own fitted expressions (``fitted_expression``).
--dev scores instead a span of footage the lip model did not train on and that is not held
out: its validation frames (which only picked its steps); retrieval then searches the
clip's other frames (the span is never searched). No other-voice reading there.
--phone-shares 0,0.25,0.5,0.75,1 only scores those ``lipsync.phone_share`` values on the
same validation frames (``phone_shares_on_validation``; how 0.5 was chosen), each
rendered over the span's own footage unless --no-render; with --search-shares every pair
of the two shares (how ``search_share`` 0.5 was chosen); --recognized takes the phones
pocketsphinx hears instead of the clip's alignment (a job without words).
--project DIR takes the clip from another built project (its params.yaml too): e.g. a copy
of this repository whose ``demo:`` section names another face, voice and text, built with
``dvc repro evaluate@demo lipmodel@demo``; the viseme path's scores are then its own.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

if TYPE_CHECKING:
    from stages.opening import ExpressionOpening

CLIP = "demo"
OTHER_VOICE, OTHER_RATE = "en-us+f3", 130


# What a scratch project links from a built one (paths below a project root).
LINKED = (f"data/raw/{CLIP}.mp4", f"data/raw/{CLIP}.txt", f"data/raw/{CLIP}.truth_phones.parquet",
          f"data/raw/{CLIP}.truth_frames.parquet", f"data/interim/{CLIP}",
          f"data/models/{CLIP}/generator.safetensors",
          f"data/models/{CLIP}/references.safetensors")


def missing_inputs(project: Path) -> list[str]:
    """What ``scratch_project`` needs from ``project`` and it lacks (its params.yaml too)."""
    return [name for name in ("params.yaml", *LINKED) if not (project / name).exists()]


def scratch_project(work: Path, project: Path = REPO) -> Path:
    """A project root whose inputs link to ``project``'s built demo (default: this repository's)."""
    import shutil

    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(project / "params.yaml", work / "params.yaml")
    for name in LINKED:
        link = work / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(project / name)
    return work


def lipmodel_params(settings: list[str], where: str):
    """params.yaml's lipmodel defaults with ``NAME=VALUE`` overrides (YAML values)."""
    from stages.lipsync import LipModelParams

    overrides = {}
    for item in settings:
        name, _, value = item.partition("=")
        overrides[name] = yaml.safe_load(value)
        if isinstance(overrides[name], list):
            overrides[name] = tuple(overrides[name])
    opts = dataclasses.replace(LipModelParams(), **overrides)
    opts.check(where)
    return opts, overrides


def train(root: Path, reuse: bool, settings: list[str] | None = None) -> dict:
    from stages.lipsync.train import run_lipmodel
    from talkedit.artifacts import LipModelPaths

    paths = LipModelPaths.of(CLIP, root)
    if reuse and paths.model.is_file():
        return {"reused": True, **json.loads(paths.metrics.read_text())}
    load_before = os.getloadavg()[0]
    t0, cpu0 = time.perf_counter(), time.process_time()
    opts, overrides = lipmodel_params(settings or [], "lipsync --set")
    summary = run_lipmodel(CLIP, root, opts)
    # The networks train on one thread: its CPU seconds are the wall time an idle core
    # would take, whatever else the machine runs (wall seconds grow with the load).
    return {"seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(time.process_time() - cpu0, 1), "cpu_count": os.cpu_count(),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "settings": overrides, "summary": summary,
            "metrics": json.loads(paths.metrics.read_text())}


def training_workers(work: Path, settings: list[str], project: Path = REPO) -> dict:
    """The lipmodel stage trained twice in this process, its networks one after another
    (workers 1) and two at a time in worker processes (workers 2): wall seconds, CPU
    seconds (workers' included), the speed-up, and whether the model files are the same
    bytes (they must be)."""
    import hashlib

    from stages.lipsync.train import run_lipmodel
    from talkedit.artifacts import LipModelPaths

    out: dict = {}
    for workers in (1, 2):
        root = scratch_project(work / f"workers{workers}", project)
        opts, _ = lipmodel_params([*settings, f"workers={workers}"], "lipsync --set")
        cpu0, t0, load0 = os.times(), time.perf_counter(), os.getloadavg()[0]
        run_lipmodel(CLIP, root, opts)
        cpu1 = os.times()
        out[f"workers_{workers}"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(sum(cpu1[:4]) - sum(cpu0[:4]), 1),
            "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "model_md5": hashlib.md5(LipModelPaths.of(CLIP, root).model.read_bytes()).hexdigest()}
    out["speed_up"] = round(out["workers_1"]["seconds"] / out["workers_2"]["seconds"], 2)
    out["same_bytes"] = out["workers_1"]["model_md5"] == out["workers_2"]["model_md5"]
    return out


def inference_speed(root: Path) -> dict:
    from stages.lipsync.features import frame_features, read_clip_wav
    from stages.lipsync.model import LipModel
    from stages.lipsync.phones import forget_decodes
    from talkedit.artifacts import ClipPaths, LipModelPaths, VideoMeta

    model = LipModel.load(LipModelPaths.of(CLIP, root).model, "lipmodel")
    paths = ClipPaths.of(CLIP, root)
    samples, fps = read_clip_wav(paths.audio), VideoMeta.read(paths).fps
    n = int(len(samples) / 16000 * fps)
    best = float("inf")
    for _ in range(3):
        forget_decodes()  # with lipmodel.phones / phone_map_share: the decode is timed too
        t0 = time.perf_counter()
        model.expression(frame_features(samples, n, fps, model.features))
        best = min(best, time.perf_counter() - t0)
    audio_s = len(samples) / 16000
    return {"audio_s": round(audio_s, 2), "seconds": round(best, 3),
            "times_real_time": round(audio_s / best, 1)}


def heldout_from_s(root: Path) -> float:
    """Where the tail no model trained on starts, s."""
    from stages.lipsync import LipModelParams
    from talkedit.artifacts import ClipPaths, VideoMeta

    meta = VideoMeta.read(ClipPaths.of(CLIP, root))
    return meta.n_frames * (1 - LipModelParams().holdout_share) / meta.fps


def heldout_sentences(root: Path, chosen: list[int] | None = None) -> list:
    """The sentences wholly inside the held-out tail, or the clip's sentences ``chosen``."""
    from stages.evaluate.holdout import clip_sentences

    sentences = clip_sentences(CLIP, root, 0.05)
    if chosen is not None:
        return [h for h in sentences if h.sentence in chosen]
    return [h for h in sentences if h.exclude[0] >= heldout_from_s(root)]


def write_job(root: Path, name: str, spec: dict, wav: np.ndarray | None = None) -> str:
    from stages.audio.dsp import to_int16, write_wav
    from talkedit.artifacts import LipsyncPaths

    paths = LipsyncPaths.of(name, root)
    paths.inputs.mkdir(parents=True, exist_ok=True)
    if wav is not None:
        write_wav(paths.inputs / "speech.wav", to_int16(wav), 16000)
        spec = {**spec, "audio": "speech.wav"}
    paths.spec.write_text(yaml.safe_dump(spec, sort_keys=False))
    return name


def truth_jaw(root: Path, times_s: np.ndarray) -> np.ndarray:
    from talkedit.artifacts import TRUTH_FRAMES, ClipPaths, read_parquet

    truth = read_parquet(ClipPaths.of(CLIP, root).truth_frames, TRUTH_FRAMES)
    return np.interp(times_s, truth["time_s"], truth["jaw_open"])


def other_voice_time_map(root: Path, held, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Knots (new-audio s, clip s) through the phones of espeak's reading and the truth."""
    from stages.evaluate.holdout import time_map
    from talkedit.artifacts import TRUTH_PHONES, ClipPaths, read_parquet
    from talkedit.espeak import synthesize

    syn = synthesize(text, voice=OTHER_VOICE, rate_wpm=OTHER_RATE)
    new = pd.DataFrame([{"word_position": (held.first_word + p.word_index) if p.word_index >= 0
                         else -1, "phone": p.phone, "out_start_s": p.start_s,
                         "out_end_s": p.end_s} for p in syn.phones])
    truth = read_parquet(ClipPaths.of(CLIP, root).truth_phones, TRUTH_PHONES)
    return time_map(held, new, truth)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


def jaw_measure_on(root: Path, frames: list[slice]) -> tuple[ExpressionOpening, np.ndarray]:
    """The evaluate stage's person-model opening (``stages.opening.ExpressionOpening``), its
    map to the true jaw fitted on the clip's ``frames`` only (frames a lip model trained on),
    and the clip's fitted expressions: (measure, expression)."""
    from stages.fit import load_fit
    from stages.lipsync.train import jaw_measure
    from talkedit.artifacts import ClipPaths, VideoMeta, column_array

    person, table = load_fit(CLIP, root)
    expression = column_array(table, "expression").astype(np.float64)
    fps = VideoMeta.read(ClipPaths.of(CLIP, root)).fps
    jaw = truth_jaw(root, np.arange(len(expression)) / fps)
    rows = np.concatenate([np.arange(len(expression))[part] for part in frames])
    return jaw_measure(person, expression, jaw, rows), expression


def training_jaw_measure(root: Path) -> tuple[ExpressionOpening, np.ndarray]:
    """``jaw_measure_on`` the frames the stage's lip model trains on (before validation)."""
    from stages.lipsync import LipModelParams
    from stages.lipsync.train import split
    from talkedit.artifacts import ClipPaths, VideoMeta

    n = VideoMeta.read(ClipPaths.of(CLIP, root)).n_frames
    return jaw_measure_on(root, [split(n, LipModelParams(), CLIP)[0]])


def all_pairs(root: Path, track: pd.DataFrame) -> np.ndarray:
    """The opening as sessions before 5 measured it: the gap over all the inner-lip pairs
    (the track's own opening is the gap at the lips' middle, stages/lipsync/model.py)."""
    from stages.fit import load_fit
    from stages.fit.model import mouth_opening
    from talkedit.artifacts import column_array

    person, _ = load_fit(CLIP, root)
    expression = column_array(track, "expression").astype(np.float64)
    return mouth_opening(person.shape(expression), person.topo)


def shift_backgrounds(root: Path, plan_path: Path, shift: int) -> None:
    """The plan at ``plan_path`` (a lip-sync job's or an edit's) with each new row's
    background (and its pose and light) taken from the clip frame ``shift`` later; the
    planned expression is kept."""
    from talkedit.artifacts import (
        FACE,
        PLAN,
        ClipPaths,
        VideoMeta,
        column_array,
        read_parquet,
        write_parquet,
    )

    paths = ClipPaths.of(CLIP, root)
    face, fps = read_parquet(paths.face, FACE), VideoMeta.read(paths).fps
    plan = read_parquet(plan_path, PLAN)
    edited = plan["edited"].to_numpy()
    source = plan["source_frame"].to_numpy().copy()
    source[edited] = np.minimum(source[edited] + shift, len(face) - 1)
    plan["source_frame"] = plan["expression_source_frame"] = source
    plan["source_time_s"] = source / fps
    plan["scale"] = np.where(edited, face["scale"].to_numpy()[source], plan["scale"].to_numpy())
    for column in ("rotation", "translation", "illumination"):
        values = column_array(face, column)
        plan[column] = [values[i] if e else v
                        for e, v, i in zip(edited, plan[column], source, strict=True)]
    write_parquet(plan, PLAN, plan_path)


def lipsync_params(settings: dict) -> object:
    """The project's lipsync section with ``settings`` over it."""
    from stages.lipsync import LipsyncParams

    return LipsyncParams.from_dict({**dataclasses.asdict(LipsyncParams()), **settings})


def parse_settings(text: str) -> dict:
    """'a=1,b=0.5' -> {'a': 1, 'b': 0.5} (values read as YAML)."""
    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in text.split(",")
                                               if item)}


def own_job(root: Path, held, clip_audio: np.ndarray, fps: float, name: str, settings: dict,
            background_shift: int, transcript: bool = False) -> tuple[str, dict, pd.DataFrame]:
    """A lip-sync job over ``held``'s span driven by its own audio (with its words as the
    job's ``transcript:`` when ``transcript``), with these lipsync settings: (job, its
    report, its LIP_TRACK)."""
    from stages.lipsync.job import run_lipplan
    from talkedit.artifacts import LIP_TRACK, LipsyncPaths, read_parquet

    span = [round(held.start_s, 3), round(held.end_s, 3)]
    first = int(round(held.start_s * fps))
    spec = {"clip": CLIP, "span": span, **({"transcript": held.text} if transcript else {})}
    job = write_job(root, name, spec,
                    clip_audio[int(round(first / fps * 16000)):int(round(held.end_s * 16000))])
    report = run_lipplan(job, root, lipsync_params(settings))
    if background_shift:
        shift_backgrounds(root, LipsyncPaths.of(job, root).outputs.plan, background_shift)
    return job, report, read_parquet(LipsyncPaths.of(job, root).expression, LIP_TRACK)


def sentence_jobs(root: Path, held, render: bool, jaw_warp: bool = True,
                  background_shift: int = 0, retrieval: list[dict] | None = None,
                  other_voice: bool = True, fitted_ceiling: bool = False,
                  said_settings: list[dict] | None = None) -> dict:
    from stages.lipsync.features import read_clip_wav
    from stages.lipsync.job import run_lipplan
    from stages.lipsync.model import openings
    from talkedit.artifacts import (
        LIP_TRACK,
        ClipPaths,
        LipsyncPaths,
        VideoMeta,
        column_array,
        read_parquet,
    )

    paths = ClipPaths.of(CLIP, root)
    fps = VideoMeta.read(paths).fps
    clip_audio = read_clip_wav(paths.audio)
    span = [round(held.start_s, 3), round(held.end_s, 3)]
    first = int(round(held.start_s * fps))
    out: dict = {"sentence": held.sentence, "text": held.text, "span_s": span,
                 "heldout": held.exclude[0] >= heldout_from_s(root)}

    own, report, track = own_job(root, held, clip_audio, fps, f"bench-own-{held.sentence}",
                                 {"retrieval": False}, background_shift)
    jaw = truth_jaw(root, track["time_s"].to_numpy())
    measure, fitted = training_jaw_measure(root)

    def model_opening(table: pd.DataFrame) -> np.ndarray:
        return measure.from_coefficients(column_array(table, "expression"))

    out["own_audio"] = {"frames": len(track), "opening_vs_truth_jaw_r":
                        pearson(track["opening"].to_numpy(), jaw),
                        "model_opening_vs_truth_jaw_r": pearson(model_opening(track), jaw),
                        "all_inner_lip_pairs_vs_truth_jaw_r": pearson(all_pairs(root, track), jaw),
                        "repeated": report["repeated_frames"], "skipped": report["skipped_frames"]}
    # What a perfect prediction would score: the span's real frames' own fitted expressions.
    real = fitted[first:first + len(track)]
    out["fitted_expression"] = {
        "opening_vs_truth_jaw_r": pearson(openings(measure.model, real), jaw),
        "model_opening_vs_truth_jaw_r": pearson(measure.from_coefficients(real), jaw)}
    # The same audio with its words known (``transcript:``, aligned): lipsync.phone_share.
    said, said_report, said_track = own_job(root, held, clip_audio, fps,
                                            f"bench-said-{held.sentence}", {"retrieval": False},
                                            background_shift, transcript=True)
    out["own_audio_transcript"] = {"phones": said_report["phones"], "opening_vs_truth_jaw_r":
                                   pearson(said_track["opening"].to_numpy(), jaw),
                                   "model_opening_vs_truth_jaw_r":
                                   pearson(model_opening(said_track), jaw)}
    variants = {"lipsync_transcript": said}
    for i, settings in enumerate(said_settings or []):
        name, rep, rtrack = own_job(root, held, clip_audio, fps,
                                    f"bench-said-{held.sentence}-{i}",
                                    {"retrieval": False, **settings}, background_shift,
                                    transcript=True)
        variants[f"lipsync_transcript_{i}"] = name
        out[f"own_audio_transcript_{i}"] = {
            "settings": settings, "phones": rep["phones"],
            "opening_vs_truth_jaw_r": pearson(rtrack["opening"].to_numpy(), jaw),
            "model_opening_vs_truth_jaw_r": pearson(model_opening(rtrack), jaw)}
    for i, settings in enumerate(retrieval or []):
        settings = {**settings, "retrieval": True}
        name, rep, rtrack = own_job(root, held, clip_audio, fps,
                                    f"bench-own-{held.sentence}-ret{i}", settings,
                                    background_shift)
        variants[f"lipsync_retrieval_{i}"] = name
        out[f"own_audio_retrieval_{i}"] = {
            "settings": settings, "retrieval": rep["retrieval"],
            "opening_vs_truth_jaw_r": pearson(rtrack["opening"].to_numpy(), jaw),
            "all_inner_lip_pairs_vs_truth_jaw_r": pearson(all_pairs(root, rtrack), jaw)}

    if other_voice:
        voice = write_job(root, f"bench-voice-{held.sentence}", {
            "clip": CLIP, "span": span,
            "audio": {"text": held.text, "voice": OTHER_VOICE, "rate_wpm": OTHER_RATE}})
        t_new, t_clip = other_voice_time_map(root, held, held.text)
        # A text job knows its phones (espeak-ng's): as a user runs it, and with the lip
        # model alone (phone_share and search_share 0) as before session 13.
        for key, settings in (("other_voice", {"retrieval": False}),
                              ("other_voice_audio_only", {"retrieval": False, "phone_share": 0,
                                                          "search_share": 0})):
            report_v = run_lipplan(voice, root, lipsync_params(settings))
            vtrack = read_parquet(LipsyncPaths.of(voice, root).expression, LIP_TRACK)
            local = (vtrack["frame"].to_numpy() - first) / fps
            inside = (local >= t_new[0]) & (local <= t_new[-1])
            jaw_v = truth_jaw(root, np.interp(local[inside], t_new, t_clip))
            out[key] = {"voice": OTHER_VOICE, "rate_wpm": OTHER_RATE,
                        "phones": report_v["phones"],
                        "frames": int(inside.sum()), "opening_vs_truth_jaw_r":
                        pearson(vtrack["opening"].to_numpy()[inside], jaw_v),
                        "model_opening_vs_truth_jaw_r":
                        pearson(model_opening(vtrack)[inside], jaw_v),
                        "all_inner_lip_pairs_vs_truth_jaw_r":
                        pearson(all_pairs(root, vtrack)[inside], jaw_v)}
    if render:
        out["rendered"] = render_and_score(root, own, held, first, len(track), jaw_warp,
                                           variants, fitted_ceiling)
    return out


def dev_span(root: Path):
    """The lip model's validation frames as a sentence-like span (not trained on, not held
    out): ``HeldOut``'s fields the benchmark reads."""
    from types import SimpleNamespace

    from stages.lipsync import LipModelParams
    from stages.lipsync.train import split
    from talkedit.artifacts import ClipPaths, VideoMeta

    meta = VideoMeta.read(ClipPaths.of(CLIP, root))
    val = split(meta.n_frames, LipModelParams(), CLIP)[1]
    start_s, end_s = val.start / meta.fps, val.stop / meta.fps
    return SimpleNamespace(sentence="dev", text="", start_s=start_s, end_s=end_s,
                           exclude=(start_s, end_s))


def phone_shares_on_validation(root: Path, shares: list[float],
                               search_shares: tuple[float, ...] = (0.0,),
                               render: bool = False, recognized: bool = False) -> dict:
    """``lipsync.phone_share`` (and ``search_share``) on the lip model's validation frames
    (never trained on, not held out): the span's own audio, its phones as the clip's
    alignment has them (the aligner's, as a transcript gives), the co-articulation model
    and the viseme search on the clip's footage less the span. Per share
    (pair): opening r vs the true jaw (person-model measure) and the expression's RMSE vs
    the real frames' fitted ones. ``recognized``: the phones pocketsphinx hears in the
    span's audio instead (what a job without words could know)."""
    from stages.fit import load_fit
    from stages.index import VisemeIndex
    from stages.lipsync.features import read_clip_wav
    from stages.lipsync.job import footage_frames
    from stages.lipsync.transcript import (
        covered,
        footage_model,
        phone_expression,
        searched_expression,
    )
    from stages.plan import PlanParams
    from stages.plan.prior import load_phone_prior
    from talkedit.artifacts import ClipPaths, VideoMeta, column_array

    paths = ClipPaths.of(CLIP, root)
    fps = VideoMeta.read(paths).fps
    span = dev_span(root)
    first, stop = int(round(span.start_s * fps)), int(round(span.end_s * fps))
    clip_audio = read_clip_wav(paths.audio)
    job, _, track = own_job(root, span, clip_audio, fps, "bench-validation",
                            {"phone_share": 0}, 0)
    audio = column_array(track, "expression").astype(np.float64)
    n = len(audio)
    index = VisemeIndex.load(CLIP, root)
    t0, t1 = first / fps, (first + n) / fps
    if recognized:  # no words: the phones pocketsphinx hears in the span's audio
        from stages.lipsync.phones import recognized_phones

        spoken = covered(recognized_phones(clip_audio[int(round(t0 * 16000)):
                                                      int(round(span.end_s * 16000))]),
                         "recognized")
    else:
        spoken = covered([(str(p), max(a - t0, 0.0), b - t0) for p, a, b in
                          zip(index.phones, index.start_s, index.end_s, strict=True)
                          if b > t0 and a < t1], "the clip's alignment")
    fitted = column_array(load_fit(CLIP, root)[1], "expression").astype(np.float64)
    models = footage_model(CLIP, root, fitted, fps,
                           footage_frames(len(fitted), first, stop),
                           load_phone_prior(PlanParams().phone_prior))
    by_phones = phone_expression(models, spoken, n, fps)
    searched = (searched_expression(CLIP, root, models, spoken, fps, first, stop, n,
                                    PlanParams())
                if any(search_shares) else by_phones)
    measure, _ = training_jaw_measure(root)
    jaw = truth_jaw(root, (first + np.arange(n)) / fps)
    out, variants = {}, {}
    for share in shares:
        for search_share in search_shares:
            x = (1 - share) * audio + share * by_phones
            x = (1 - search_share) * x + search_share * searched
            key = str(share) if search_shares == (0.0,) else f"{share}/{search_share}"
            out[key] = {
                "opening_r": round(pearson(measure.from_coefficients(x), jaw), 4),
                "expression_rmse": round(float(np.sqrt(((x - fitted[first:first + n]) ** 2)
                                                       .sum(1).mean())), 4)}
            if render:
                variants[key] = expression_job(root, job, f"mix{len(variants)}", x)
    if render:  # each mix rendered over the span's own footage, scored against its frames
        scores = render_and_score(root, job, span, first, n, variants=variants)
        for key in variants:
            out[key]["rendered"] = {k: scores[key][k] for k in ("mouth_psnr_db", "lmd")}
    return {"frames": n, "span_s": [round(span.start_s, 3), round(span.end_s, 3)],
            "shares": out}


def viseme_path(root: Path, background_shift: int, recording: bool = False) -> dict:
    """The viseme-search path re-run here: the evaluate stage (project sections) on its
    held-out sentences, each edit's new frames with the clip frame ``background_shift``
    later behind them, as ``shift_backgrounds`` does to the lip path, so both paths render
    over footage of other speech. With ``recording`` each edit's audio is the sentence's own
    sound as a user's recording (``audio: {source: recording}``): the plan times the new
    words by it (aligned) instead of espeak-ng's durations. Returns the stage's metrics."""
    import stages.evaluate as evaluate
    from stages.align.config import AlignParams
    from stages.audio.config import AudioParams
    from stages.composite.compose import CompositeParams
    from stages.composite.watermark import WatermarkParams
    from stages.fit import FitParams
    from stages.plan import PlanParams
    from stages.render.config import RenderParams
    from stages.render.interior import MouthParams
    from talkedit.artifacts import EditPaths

    plan_edit = evaluate.run_plan

    def plan_then_shift(edit: str, scratch: Path, *sections: object) -> dict:
        report = plan_edit(edit, scratch, *sections)
        if background_shift:
            shift_backgrounds(root, EditPaths.of(edit, scratch).plan, background_shift)
        return report

    write_spec = evaluate.write_spec

    def spec_with_recording(held, clip: str, scratch: Path) -> str:
        from stages.audio.dsp import to_int16, write_wav
        from stages.lipsync.features import read_clip_wav
        from talkedit.artifacts import ClipPaths

        name = write_spec(held, clip, scratch)
        spec_path = EditPaths.of(name, scratch).spec
        samples = read_clip_wav(ClipPaths.of(clip, scratch).audio)
        write_wav(spec_path.parent / "own.wav", to_int16(
            samples[int(round(held.start_s * 16000)):int(round(held.end_s * 16000))]), 16000)
        spec = yaml.safe_load(spec_path.read_text())
        spec["audio"] = {"source": "recording", "recording": "own.wav"}
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return name

    evaluate.run_plan = plan_then_shift  # the stage's own steps, the plan's footage moved
    if recording:
        evaluate.write_spec = spec_with_recording
    try:
        metrics = evaluate.run_evaluate(
            CLIP, root, evaluate.EvaluateParams(), FitParams(), AlignParams(), PlanParams(),
            AudioParams(), RenderParams(), CompositeParams(), WatermarkParams(), MouthParams())
    finally:
        evaluate.run_plan, evaluate.write_spec = plan_edit, write_spec
    return {"background_shift": background_shift, "recording": recording,
            "sentences": metrics["sentences"],
            "means": metrics["means"],
            "per_sentence": [{"sentence": r["sentence"], "talkedit": r["scores"]["talkedit"]}
                             for r in metrics["per_sentence"]]}


def expression_job(root: Path, job: str, suffix: str, expression: np.ndarray) -> str:
    """A copy of ``job`` whose new frames (in order) show ``expression`` (n_new, 64)."""
    import shutil

    from talkedit.artifacts import PLAN, LipsyncPaths, read_parquet, write_parquet

    base = f"{job}-{suffix}"
    src, dst = LipsyncPaths.of(job, root), LipsyncPaths.of(base, root)
    if dst.inputs.exists():
        shutil.rmtree(dst.inputs)
    shutil.copytree(src.inputs, dst.inputs)
    dst.outputs.plan_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.outputs.audio, dst.outputs.audio)
    plan = read_parquet(src.outputs.plan, PLAN)
    rows = iter(np.asarray(expression, np.float32))
    plan["expression"] = [next(rows) if e else x
                          for e, x in zip(plan["edited"], plan["expression"], strict=True)]
    write_parquet(plan, PLAN, dst.outputs.plan)
    return base


def closed_average_job(root: Path, job: str, n_new: int) -> str:
    """A copy of ``job`` whose new frames keep the training frames' mean expression."""
    from stages.lipsync.model import LipModel
    from talkedit.artifacts import LipModelPaths

    model = LipModel.load(LipModelPaths.of(CLIP, root).model, "lipmodel")
    mean = np.zeros(model.n_expression)
    mean[:len(model.mean)] = model.mean
    return expression_job(root, job, "closed", np.tile(mean, (n_new, 1)))


def fitted_expression_job(root: Path, job: str, first: int, n_new: int) -> str:
    """A copy of ``job`` whose new frames show the real frames' own fitted expressions: the
    ceiling of any expression planner on this footage (a diagnostic, no planner)."""
    from stages.fit import load_fit
    from talkedit.artifacts import column_array

    _, table = load_fit(CLIP, root)
    return expression_job(root, job, "fitted",
                          column_array(table, "expression")[first:first + n_new])


def render_and_score(root: Path, job: str, held, first: int, n_new: int,
                     jaw_warp: bool = True, variants: dict[str, str] | None = None,
                     fitted_ceiling: bool = False) -> dict:
    from stages.composite.compose import CompositeParams
    from stages.composite.watermark import WatermarkParams
    from stages.evaluate import EvaluateParams, _clip_context, _jaw_error, _track, _video_frames
    from stages.evaluate.measure import score_track, sync_offset_ms
    from stages.fit import FitParams
    from stages.fit.topology import topology_for
    from stages.lipsync.composite import run_lipcomposite
    from stages.lipsync.features import read_clip_wav
    from stages.lipsync.render import run_liprender
    from stages.render.config import RenderParams
    from stages.render.interior import MouthParams
    from talkedit.artifacts import PLAN, ClipPaths, LipsyncPaths, read_parquet
    from talkedit.video import FrameStore

    ev = EvaluateParams()
    ctx = _clip_context(CLIP, root, FitParams(), ev.margin_s)
    composite = CompositeParams.from_dict({**dataclasses.asdict(CompositeParams()),
                                           **ev.composite})
    fps, env_s = ctx.fps, ev.envelope_ms / 1000
    clip_samples = read_clip_wav(ClipPaths.of(CLIP, root).audio)
    rows = np.arange(first, first + n_new)
    store = FrameStore.for_clip(CLIP, root)
    real = _track(ctx, [im for _, im in store.iter_frames(first, first + n_new)], rows,
                  clip_samples, 16000, rows / fps, env_s)
    topo = topology_for(real.landmarks.shape[1])
    scores = {"real": {"sync_offset_ms": sync_offset_ms(real.opening, real.envelope, fps,
                                                        ev.max_sync_lag_ms)}}
    methods = {"lipsync": job, **(variants or {}),
               "closed_average": closed_average_job(root, job, n_new)}
    if fitted_ceiling:
        methods["fitted_expression"] = fitted_expression_job(root, job, first, n_new)
    for method, name in methods.items():
        t0 = time.perf_counter()
        run_liprender(name, root, RenderParams(), MouthParams(jaw_warp=jaw_warp))
        run_lipcomposite(name, root, composite, WatermarkParams())
        out = LipsyncPaths.of(name, root).outputs
        background = read_parquet(out.plan, PLAN)["source_frame"].to_numpy()
        images = list(_video_frames(out.output, rows))
        track = _track(ctx, images, background[rows], read_clip_wav(out.audio), 16000,
                       rows / fps, env_s)
        s = score_track(real, track, ctx.polygons[rows], topo, fps, ev.max_sync_lag_ms)
        s["jaw_error"] = _jaw_error(ctx, track, rows / fps)
        s["truth_jaw_r"] = pearson(track.opening, truth_jaw(root, rows / fps))
        s["render_composite_seconds"] = round(time.perf_counter() - t0, 1)
        s["sync_error_ms"] = abs(s["sync_offset_ms"] - scores["real"]["sync_offset_ms"])
        scores[method] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--project", type=Path, default=REPO,
                        help="a project root whose demo clip is built (data/raw, interim, "
                             "models, metrics): another generated face and text; default "
                             "this repository")
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--reuse-model", action="store_true")
    parser.add_argument("--workers-ratio", action="store_true",
                        help="only time the training with lipmodel.workers 1 and 2 here "
                             "(same bytes?) and print that")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="train with this lipmodel: setting instead of params.yaml's "
                             "(repeatable, YAML values)")
    parser.add_argument("--no-jaw-warp", action="store_true")
    parser.add_argument("--background-shift", type=int, default=0)
    parser.add_argument("--viseme-path", action="store_true",
                        help="also re-run the viseme path (evaluate stage) here, with the "
                             "same --background-shift")
    parser.add_argument("--viseme-path-recording", action="store_true",
                        help="also re-run the viseme path with each sentence's own sound as "
                             "the edit's recording (the new words timed by it)")
    parser.add_argument("--sentences", type=lambda v: [int(x) for x in v.split(",")],
                        default=None)
    parser.add_argument("--retrieval", type=parse_settings, action="append", nargs="?",
                        const={}, default=None,
                        help="also the own-audio job with lipsync.retrieval on and these "
                             "lipsync settings (KEY=VALUE,...); repeatable")
    parser.add_argument("--transcript", type=parse_settings, action="append", nargs="?",
                        const={}, default=None,
                        help="also the own-audio job with its transcript and these lipsync "
                             "settings (KEY=VALUE,...; lipsync_transcript_<i>); repeatable")
    parser.add_argument("--fitted-ceiling", action="store_true",
                        help="also render the real frames' own fitted expressions (the "
                             "ceiling of any expression planner)")
    parser.add_argument("--dev", action="store_true",
                        help="score the lip model's validation frames instead of held-out "
                             "sentences")
    parser.add_argument("--phone-shares", type=lambda v: [float(x) for x in v.split(",")],
                        default=None, help="only score these lipsync.phone_share values on "
                        "the lip model's validation frames (how 0.5 was chosen) and print that")
    parser.add_argument("--search-shares", type=lambda v: [float(x) for x in v.split(",")],
                        default=[0.0], help="with --phone-shares: also these "
                        "lipsync.search_share values (each pair scored)")
    parser.add_argument("--recognized", action="store_true",
                        help="with --phone-shares: the phones pocketsphinx recognizes in the "
                        "audio instead of the clip's alignment (no words known)")
    args = parser.parse_args()
    args.project = args.project.resolve()
    missing = missing_inputs(args.project)
    if missing:  # before anything is written under --work
        print(f"error: --project {args.project}: has no {missing[0]}. Fix: give a project "
              f"whose {CLIP} clip is built (dvc repro evaluate@{CLIP} lipmodel@{CLIP} there)",
              file=sys.stderr)
        sys.exit(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="talkedit-lipsync-bench-"))
    if args.workers_ratio:
        print(json.dumps(training_workers(work, args.set, args.project), indent=2))
        return
    if args.phone_shares:
        root = scratch_project(work, args.project)
        train(root, args.reuse_model, args.set)
        print(json.dumps(phone_shares_on_validation(root, args.phone_shares,
                                                    tuple(args.search_shares),
                                                    not args.no_render, args.recognized),
                         indent=2))
        return
    root = scratch_project(work, args.project)
    result: dict = {"work": str(work), "training": train(root, args.reuse_model, args.set),
                    "inference": inference_speed(root)}
    result["jaw_warp"], result["background_shift"] = not args.no_jaw_warp, args.background_shift
    spans = [dev_span(root)] if args.dev else heldout_sentences(root, args.sentences)
    result["sentences"] = [sentence_jobs(root, held, not args.no_render, not args.no_jaw_warp,
                                         args.background_shift, args.retrieval,
                                         other_voice=not args.dev,
                                         fitted_ceiling=args.fitted_ceiling,
                                         said_settings=args.transcript)
                           for held in spans]
    if args.viseme_path:
        result["viseme_path_here"] = viseme_path(root, args.background_shift)
    if args.viseme_path_recording:
        result["viseme_path_recording"] = viseme_path(root, args.background_shift, True)
    viseme = args.project / "data" / "metrics" / CLIP / "evaluate.json"
    if viseme.is_file():
        result["viseme_path_same_sentences"] = json.loads(viseme.read_text())
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
