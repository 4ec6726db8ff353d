"""evaluate stage: self-reenactment of held-out sentences, scored against two baselines.

``run_evaluate(clip, root, evaluate, <the sections the edit path reads>)``:

1. picks ``sentences`` of the clip's sentences (seeded) among those the renderer never
   trained on (the train stage holds out the clip's tail) and, for each, writes an edit
   spec that says it anew in place, its footage excluded from the search and the
   audio (``holdout.py``);
2. runs the normal edit path on it: ``run_plan``, ``run_audio``, ``run_render``,
   ``run_composite``; and the same plan and audio once more with the conditioning
   image in place of the network (``baselines.py``). All of it happens in a scratch
   project root (a temp folder, removed afterwards; the clip's inputs, fit and
   generator are linked in), so nothing under data/ but the metrics is written;
3. compares the composited videos, a naive cut and the real footage over the
   sentence (``measure.py``): mouth PSNR / SSIM, mouth landmark distance, mouth-
   opening correlation, mel-cepstral distortion, audio-visual sync offset and, where
   the clip has generator truth, the error against its ``jaw_open``. With truth, the
   opening is also read through the person model (``measure.ExpressionOpening``), its
   map fitted on the first half of the renderer's training footage and validated
   against truth on the second half (``opening_measure`` in the metrics) before it is
   used; on the generated frames it is checked against the opening the plan asked for;
4. writes data/metrics/<clip>/evaluate.json (means and ratios against the baselines,
   DVC metrics), evaluate.tsv (per sentence, DVC plots) and evaluate.md (summary).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.align.config import AlignParams
from stages.audio.config import AudioParams
from stages.audio.dsp import read_clip_audio
from stages.audio.metrics import mcd_db
from stages.audio.stage import run_audio
from stages.composite.compose import CompositeParams, composite_plan
from stages.composite.watermark import WatermarkParams
from stages.evaluate.baselines import copy_edit, naive_cut_start, render_conditioning
from stages.evaluate.holdout import (
    HeldOut,
    clip_phones,
    clip_sentences,
    pick_sentences,
    scratch_project,
    time_map,
    write_spec,
)
from stages.evaluate.measure import (
    VALIDATION_WINDOW_S,
    ExpressionOpening,
    Track,
    aligned_crop,
    at_positions,
    audio_envelope,
    detect_sequence,
    pearson,
    score_track,
    sync_offset_ms,
    validate_opening,
)
from stages.fit import FitParams, PersonModel, load_fit, make_landmarker, mouth_opening
from stages.fit.topology import topology_for
from stages.plan import PlanParams, run_plan
from stages.render.checkpoint import Stamp
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import render_plan
from talkedit.artifacts import (
    EVALUATE_INFO_COLUMNS,
    EVALUATE_METHODS,
    EVALUATE_SCORES,
    FACE,
    NEW_PHONES,
    PLAN,
    TRUTH_FRAMES,
    ClipPaths,
    EditPaths,
    ModelPaths,
    VideoMeta,
    column_array,
    evaluate_metrics_path,
    evaluate_scores_path,
    evaluate_summary_path,
    read_parquet,
)
from talkedit.atomic import write_json, write_text
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.video import FrameStore, open_container

__all__ = ["EditPathParams", "EvaluateParams", "run_evaluate"]

log = logging.getLogger(__name__)
BASELINES = ("naive_cut", "conditioning")
# Scores where lower is better (the rest: higher is better).
LOWER_IS_BETTER = {"lmd", "mcd_db", "sync_error_ms", "sync_error_model_ms", "jaw_error"}
SIGNED = {"sync_offset_ms", "sync_offset_model_ms"}  # offsets: compared through their errors


@dataclass(frozen=True)
class EvaluateParams(Section):
    """The ``evaluate:`` section of params.yaml (see the comments there)."""

    SECTION = "evaluate"

    sentences: int = 2
    seed: int = 0
    margin_s: float = 0.05
    max_sync_lag_ms: float = 200.0
    envelope_ms: float = 40.0
    composite: dict[str, Any] = field(default_factory=lambda: {"preset": "ultrafast",
                                                               "label": False})
    keep_scratch: str | None = None

    def check(self, where: str) -> None:
        if self.sentences < 1 or self.margin_s < 0 or self.max_sync_lag_ms <= 0:
            raise bad_param(where, "sentences", "needs sentences >= 1, margin_s >= 0 and "
                            "max_sync_lag_ms > 0")
        CompositeParams.from_dict(self.composite, f"{where}.composite")


@dataclass(frozen=True)
class EditPathParams:
    """The sections the edit path reads, as the evaluation runs it (composite overridden)."""

    plan: PlanParams
    align: AlignParams
    audio: AudioParams
    render: RenderParams
    composite: CompositeParams
    watermark: WatermarkParams
    mouth: MouthParams


@dataclass
class ClipContext:
    """What every held-out sentence's scoring reads of the clip."""

    clip: str
    root: Path | None
    fps: float
    n_frames: int
    crop_size: int
    transforms: np.ndarray  # (n, 6) image -> fit crop
    polygons: np.ndarray  # (n, K, 2) lower-face outline, fit-crop px
    landmarker: dict[str, Any]
    sentences: list[HeldOut]
    truth: pd.DataFrame | None
    jaw_fit: tuple[float, float] | None  # jaw_open ~ a * mouth_opening + b
    opening: ExpressionOpening | None = None  # the model's opening (calibrate_opening)
    opening_check: dict[str, float] = field(default_factory=dict)  # its validation


def _clip_context(clip: str, root: Path | None, fit: FitParams, margin_s: float
                  ) -> ClipContext:
    paths = ClipPaths.of(clip, root)
    meta = VideoMeta.read(paths)
    table = read_parquet(paths.face, FACE, arrow=True, stage_hint=f"fit@{clip}")
    crop_size = int(json.loads(paths.crops_meta.read_text())["size"])
    n = len(table)
    sentences = clip_sentences(clip, root, margin_s)
    truth, jaw_fit = None, None
    if paths.truth_frames.is_file():
        truth = read_parquet(paths.truth_frames, TRUTH_FRAMES)
        # Calibrate the landmarker's mouth opening to the generator's jaw_open on the
        # clip's own detected frames (the held-out ones would do as well: no tuning here).
        detected = table.column("detected").to_numpy()
        lm = column_array(table, "landmarks_2d").reshape(n, -1, 2)[detected]
        jaw = np.interp(np.flatnonzero(detected) / meta.fps, truth["time_s"],
                        truth["jaw_open"])
        a, b = np.polyfit(mouth_opening(lm), jaw, 1)
        jaw_fit = (float(a), float(b))
    return ClipContext(
        clip, root, meta.fps, meta.n_frames, crop_size,
        column_array(table, "crop_transform").astype(np.float64),
        column_array(table, "mask_polygon").reshape(n, -1, 2).astype(np.float64),
        fit.landmarker_params(), sentences, truth, jaw_fit)


def calibrate_opening(ctx: ClipContext, training_frames: int, model: PersonModel) -> None:
    """``ctx.opening``: the person-model opening measure, fitted and validated against the
    generator's truth on the footage the renderer trained on (frames before
    ``training_frames``; never the held-out sentences). Needs truth: without it the
    model's opening is not scored."""
    if ctx.truth is None:
        return
    store = FrameStore.for_clip(ctx.clip, ctx.root)
    with make_landmarker(ctx.landmarker) as landmarker:
        points = detect_sequence(landmarker, (im for _, im in
                                              store.iter_frames(0, training_frames)), dims=3)
    jaw = np.interp(np.arange(training_frames) / ctx.fps, ctx.truth["time_s"],
                    ctx.truth["jaw_open"])
    ctx.opening, ctx.opening_check = validate_opening(model, points, jaw, ctx.fps)


def _video_frames(path: Path, rows: np.ndarray) -> Iterator[np.ndarray]:
    """Frames ``rows`` (increasing) of an output video, in order."""
    wanted = iter(rows.tolist())
    want = next(wanted, None)
    with open_container(path) as container:
        for k, frame in enumerate(container.decode(container.streams.video[0])):
            while want is not None and want == k:
                yield frame.to_ndarray(format="rgb24")
                want = next(wanted, None)
            if want is None:
                return
    if want is not None:
        raise TalkeditError(path, f"has no frame {want}", "re-run the composite stage")


def _track(ctx: ClipContext, images: list[np.ndarray], crop_frames: np.ndarray,
           samples: np.ndarray, sr: int, times_s: np.ndarray, envelope_s: float) -> Track:
    """A track from full frames; ``crop_frames``: the clip frame whose fit crop framing
    each frame's face sits in (its background frame)."""
    crops = np.stack([aligned_crop(im, ctx.transforms[f], ctx.crop_size)
                      for im, f in zip(images, crop_frames, strict=True)])
    with make_landmarker(ctx.landmarker) as landmarker:
        points = detect_sequence(landmarker, images, dims=3)
    model_opening = (ctx.opening(points) if ctx.opening is not None
                     else np.full(len(points), np.nan))
    return Track(crops, points[..., :2], audio_envelope(samples, sr, times_s, envelope_s),
                 model_opening)


def _jaw_error(ctx: ClipContext, track: Track, real_times: np.ndarray) -> float:
    if ctx.truth is None or ctx.jaw_fit is None:
        return float("nan")
    truth = np.interp(real_times, ctx.truth["time_s"], ctx.truth["jaw_open"])
    a, b = ctx.jaw_fit
    err = np.abs(a * track.opening + b - truth)
    return float(np.nanmean(err)) if np.isfinite(err).any() else float("nan")


def _run_edit_path(name: str, scratch: Path, stage: EditPathParams) -> dict[str, Any]:
    """talkedit's normal path on one edit (in one process: no frame chunks), then the
    conditioning baseline's render of it."""
    plan = run_plan(name, scratch, stage.plan, stage.align, stage.audio)
    run_audio(name, scratch, stage.audio)
    clip = load_spec(name, scratch).clip
    render = render_plan(clip, EditPaths.of(name, scratch), stage.render, mouth=stage.mouth)
    copy_edit(name, f"{name}-conditioning", scratch)
    render_conditioning(f"{name}-conditioning", stage.render, scratch)
    for edit in (name, f"{name}-conditioning"):
        paths = EditPaths.of(edit, scratch)
        composite_plan(clip, paths, paths.spec, stage.composite, stage.watermark)
    return {"pieces": plan.get("pieces"), "render": render}


def evaluate_sentence(ctx: ClipContext, held: HeldOut, scratch: Path, stage: EditPathParams,
                      opts: EvaluateParams) -> dict[str, Any]:
    """Scores of talkedit, both baselines and the real footage on one held-out sentence."""
    name = write_spec(held, ctx.clip, scratch)
    info = _run_edit_path(name, scratch, stage)
    paths = EditPaths.of(name, scratch)
    fps, n = ctx.fps, ctx.n_frames
    plan = read_parquet(paths.plan, PLAN, arrow=True)
    background = plan.column("source_frame").to_numpy().astype(np.int64)
    t_out, t_real = time_map(held, read_parquet(paths.new_phones, NEW_PHONES),
                             clip_phones(ctx.clip, ctx.root))
    out_rows = np.arange(int(np.ceil(t_out[0] * fps)), int(np.floor(t_out[-1] * fps)) + 1)
    real_t = np.interp(out_rows / fps, t_out, t_real)
    real_rows = np.clip(np.round(real_t * fps).astype(np.int64), 0, n - 1)
    r0 = int(round(held.start_s * fps))
    r1 = min(n, int(round(held.end_s * fps)) + 1)
    lo, hi = min(r0, int(real_rows.min())), max(r1, int(real_rows.max()) + 1)

    clip_paths = ClipPaths.of(ctx.clip, ctx.root)
    clip_audio = read_clip_audio(clip_paths.audio)
    sr = clip_audio.sample_rate
    clip_samples = clip_audio.region(0, len(clip_audio))
    edit_audio = read_clip_audio(paths.audio)  # the same for talkedit and the conditioning
    edit_samples = edit_audio.region(0, len(edit_audio))
    env_s = opts.envelope_ms / 1000
    store = FrameStore.for_clip(ctx.clip, scratch)

    real_frames = np.arange(lo, hi)
    real = _track(ctx, [im for _, im in store.iter_frames(lo, hi)], real_frames, clip_samples,
                  sr, real_frames / fps, env_s)
    tracks = {}
    for method, edit in (("talkedit", name), ("conditioning", f"{name}-conditioning")):
        images = list(_video_frames(EditPaths.of(edit, scratch).output, out_rows))
        tracks[method] = _track(ctx, images, background[out_rows], edit_samples, sr,
                                out_rows / fps, env_s)
    d_start = naive_cut_start(held, ctx.sentences, n / fps)
    d0 = int(round(d_start * fps))
    donor = np.arange(d0, d0 + (r1 - r0))
    tracks["naive_cut"] = _track(ctx, [im for _, im in store.iter_frames(d0, d0 + (r1 - r0))],
                                 donor, clip_samples, sr, donor / fps, env_s)

    # Frames paired with the real footage: through the phone time map for the edit's
    # output, one for one for the naive cut (the same length of other footage).
    paired = {"talkedit": real_rows, "conditioning": real_rows, "naive_cut": np.arange(r0, r1)}
    # The same pairing before rounding to real frames (seconds): where the opening scores
    # read the real track between frames (_opening_at_time).
    paired_times = {"talkedit": real_t, "conditioning": real_t, "naive_cut": np.arange(r0, r1) / fps}
    a, b = int(round(held.start_s * sr)), int(round(held.end_s * sr))
    truth_audio = clip_samples[a:b]
    edit_audio_span = edit_samples[int(round(t_out[0] * sr)):int(round(t_out[-1] * sr))]
    audio = {"talkedit": edit_audio_span, "conditioning": edit_audio_span,
             "naive_cut": clip_samples[int(round(d_start * sr)):int(round(d_start * sr)) + b - a]}
    own = real.take(np.arange(r0, r1) - lo)
    topo = topology_for(real.landmarks.shape[1])
    real_offset = sync_offset_ms(own.opening, own.envelope, fps, opts.max_sync_lag_ms)
    real_offset_model = sync_offset_ms(own.model_opening, own.envelope, fps,
                                       opts.max_sync_lag_ms)
    scores: dict[str, dict[str, float]] = {
        "real": {"sync_offset_ms": real_offset, "sync_error_ms": 0.0,
                 "sync_offset_model_ms": real_offset_model, "sync_error_model_ms": 0.0,
                 "jaw_error": _jaw_error(ctx, own, np.arange(r0, r1) / fps)}}
    if ctx.truth is not None:  # what both measures' offsets try to read: the truth's own
        truth_jaw = np.interp(np.arange(r0, r1) / fps, ctx.truth["time_s"],
                              ctx.truth["jaw_open"])
        scores["real"]["sync_offset_truth_ms"] = sync_offset_ms(
            truth_jaw, own.envelope, fps, opts.max_sync_lag_ms)
        scores["real"]["opening_r_truth"] = pearson(truth_jaw, own.model_opening)
    for method, track in tracks.items():
        rows = paired[method]
        s = score_track(real.take(rows - lo), track, ctx.polygons[rows], topo, fps,
                        opts.max_sync_lag_ms)
        s["mcd_db"] = mcd_db(truth_audio, audio[method], sr)
        s["sync_error_ms"] = abs(s["sync_offset_ms"] - real_offset)
        s["sync_error_model_ms"] = abs(s["sync_offset_model_ms"] - real_offset_model)
        s["jaw_error"] = _jaw_error(ctx, track, rows / fps)
        s.update(_opening_at_time(ctx, real, track, paired_times[method], lo))
        scores[method] = s
    # The model's opening on the generated frames against the opening the plan asked
    # for (no truth involved): does the measure read the renderer's lower face?
    generated_r = float("nan")
    if ctx.opening is not None:
        asked = ctx.opening.from_coefficients(column_array(plan, "expression")[out_rows])
        generated_r = pearson(tracks["talkedit"].model_opening, asked)
    # The reference the edit is scored against, against the truth at the mapped times:
    # the real frames nearest to them, and the real track read at them.
    reference_truth: dict[str, float] = {}
    if ctx.truth is not None:
        truth_at = np.interp(real_t, ctx.truth["time_s"], ctx.truth["jaw_open"])
        reference_truth = {
            "nearest": round(pearson(truth_at, real.model_opening[real_rows - lo]), 4),
            "at_time": round(pearson(truth_at, at_positions(real.model_opening,
                                                            real_t * fps - lo)), 4)}
    return {"sentence": held.sentence, "text": held.text, "start_s": round(held.start_s, 3),
            "end_s": round(held.end_s, 3), "frames": r1 - r0, "out_frames": len(out_rows),
            "pieces": info["pieces"], "naive_cut_start_s": round(d_start, 3), "scores": scores,
            "model_opening_vs_plan_r": round(generated_r, 4),
            "reference_vs_truth_r": reference_truth}


def _opening_at_time(ctx: ClipContext, real: Track, track: Track, real_times: np.ndarray,
                     first: int) -> dict[str, float]:
    """The model opening's r with the real track read at the paired times (linear between
    real frames, ``first`` = the real track's first clip frame) and, where the generator's
    truth is known, with the truth's jaw_open at those times (no measure on the reference)."""
    reference = at_positions(real.model_opening, real_times * ctx.fps - first)
    out = {"opening_r_model_at_time": pearson(reference, track.model_opening)}
    if ctx.truth is not None:
        truth = np.interp(real_times, ctx.truth["time_s"], ctx.truth["jaw_open"])
        out["opening_r_truth"] = pearson(truth, track.model_opening)
    return out


# --- the stage ----------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return round(float(v.mean()), 4) if len(v) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or abs(b) < 1e-12:
        return None
    return round(a / b, 4)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per method, ratios talkedit / baseline, and whether talkedit beats each."""
    means = {m: {s: _mean([r["scores"][m].get(s, np.nan) for r in rows])
                 for s in (*EVALUATE_SCORES, "detected_share")} for m in EVALUATE_METHODS}
    means["real"] = {k: v for k, v in means["real"].items() if v is not None}
    ratios = {f"vs_{b}": {s: _ratio(means["talkedit"][s], means[b][s]) for s in EVALUATE_SCORES
                          if s not in SIGNED}
              for b in BASELINES}
    beats = {f"vs_{b}": {s: (None if means["talkedit"][s] is None or means[b][s] is None else
                             bool(means["talkedit"][s] < means[b][s]) if s in LOWER_IS_BETTER
                             else bool(means["talkedit"][s] > means[b][s]))
                         for s in ("lmd", "mouth_psnr_db")} for b in BASELINES}
    gains = {f"vs_{b}": _round_or_none(means["talkedit"]["mouth_psnr_db"],
                                       means[b]["mouth_psnr_db"]) for b in BASELINES}
    return {"means": means, "ratios": ratios, "psnr_gain_db": gains, "beats": beats}


def _round_or_none(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def score_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per sentence: EVALUATE_INFO_COLUMNS, then <method>_<score>."""
    out = []
    for r in rows:
        row = {c: r[c] for c in EVALUATE_INFO_COLUMNS}
        for m in EVALUATE_METHODS:
            for s in EVALUATE_SCORES:
                value = r["scores"][m].get(s)
                if value is not None:
                    row[f"{m}_{s}"] = round(float(value), 4)
        out.append(row)
    return pd.DataFrame(out)


def markdown(clip: str, metrics: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    means, ratios = metrics["means"], metrics["ratios"]
    lines = [f"# Self-reenactment of {clip}: {len(rows)} held-out sentence(s)", "",
             "Each sentence said anew through plan, audio, render and composite, its own "
             "footage excluded; compared with the real frames and audio.", "",
             "| score | talkedit | naive cut | conditioning | real | talkedit / naive | "
             "talkedit / conditioning |", "|---|---|---|---|---|---|---|"]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for s in EVALUATE_SCORES:
        better = ("ms, + = mouth after sound" if s in SIGNED else
                  "lower is better" if s in LOWER_IS_BETTER else "higher is better")
        lines.append(f"| {s} ({better}) | {fmt(means['talkedit'][s])} | "
                     f"{fmt(means['naive_cut'][s])} | {fmt(means['conditioning'][s])} | "
                     f"{fmt(means['real'].get(s))} | {fmt(ratios['vs_naive_cut'].get(s))} | "
                     f"{fmt(ratios['vs_conditioning'].get(s))} |")
    lines.append("")
    for b in BASELINES:
        won = metrics["beats"][f"vs_{b}"]
        verdict = ", ".join(f"{s}: {'yes' if v else 'NO' if v is not None else 'n/a'}"
                            for s, v in won.items())
        lines.append(f"- talkedit beats {b.replace('_', ' ')}: {verdict}")
    lines += ["", "Sentences: " + "; ".join(f"{r['sentence']} ({r['start_s']:.2f}-"
                                          f"{r['end_s']:.2f} s, {r['pieces']} pieces) "
                                          f"\"{r['text']}\"" for r in rows),
              "", f"Renderer: step {metrics['generator']['step']}, share of held-out frames "
              f"it was trained on {metrics['renderer_trained_share']:.2f}."]
    check = metrics.get("opening_measure")
    if check:
        lines += ["", "Opening measures against the generator's truth (jaw_open) on the "
                  f"renderer's training footage, before use: map fitted on its first "
                  f"{check['fit_frames']} frames, scored on the next "
                  f"{check['validation_frames']}: opening_r_model (the person model's lower "
                  f"face) r {check['expression_r']:.3f} (mean over "
                  f"{VALIDATION_WINDOW_S:g} s windows {check['expression_r_windows']:.3f}); "
                  f"opening_r (the landmarker's inner-lip gap) r {check['lips_r']:.3f} "
                  f"({check['lips_r_windows']:.3f}). On the re-created sentences' generated "
                  "frames the model's opening follows the plan's at r "
                  f"{fmt(check.get('generated_vs_plan_r'))}. The real footage's sync offset: "
                  f"{fmt(means['real'].get('sync_offset_ms'))} ms by the lip gap, "
                  f"{fmt(means['real'].get('sync_offset_model_ms'))} ms by the model's "
                  f"opening, {fmt(check.get('real_sync_offset_truth_ms'))} ms by the truth's "
                  "jaw_open itself."]
        paired = check.get("reference_vs_truth_r") or {}
        lines += ["", "The edit's output frames map to times between real frames: the real "
                  "frames nearest to those times follow the truth there at r "
                  f"{fmt(paired.get('nearest'))}, the real track read at them (linear between "
                  f"frames) at r {fmt(paired.get('at_time'))}. opening_r_model pairs with the "
                  "nearest frames, opening_r_model_at_time with the track read at the times; "
                  "opening_r_truth scores the output's model opening against the truth's "
                  "jaw_open at those times (no measure on the reference's side)."]
    return "\n".join(lines) + "\n"


def run_evaluate(clip: str, root: Path, evaluate: EvaluateParams, fit: FitParams,
                 align: AlignParams, plan: PlanParams, audio: AudioParams, render: RenderParams,
                 composite: CompositeParams, watermark: WatermarkParams, mouth: MouthParams
                 ) -> dict[str, Any]:
    """Evaluate ``clip`` by self-reenactment; write data/metrics/<clip>/evaluate.{json,tsv,md}.

    The edit path runs with the project's own sections (``evaluate.composite`` overrides
    a few composite settings). Returns the metrics (as written to evaluate.json) plus
    ``markdown``, the summary.
    """
    opts = evaluate
    overridden = CompositeParams.from_dict({**dataclasses.asdict(composite), **opts.composite})
    stage = EditPathParams(plan, align, audio, render, overridden, watermark, mouth)
    ctx = _clip_context(clip, root, fit, opts.margin_s)
    stamp, _ = Stamp.read(ModelPaths.of(clip, root).generator)
    first_heldout = stamp.config.holdout_start(ctx.n_frames)
    held = pick_sentences(ctx.sentences, opts.sentences, opts.seed, first_heldout / ctx.fps)
    calibrate_opening(ctx, first_heldout, load_fit(clip, root)[0])
    keep = Path(opts.keep_scratch) if opts.keep_scratch else None
    rows = []
    with scratch_project(clip, root, held, ctx.fps, keep) as scratch:
        for h in held:
            log.info("evaluate %s: sentence %d %r", clip, h.sentence, h.text)
            rows.append(evaluate_sentence(ctx, h, scratch, stage, opts))
    frames = np.concatenate([np.arange(int(round(h.start_s * ctx.fps)),
                                       int(round(h.end_s * ctx.fps)) + 1) for h in held])
    metrics = {
        "clip": clip, "sentences": [h.sentence for h in held],
        **summarize(rows),
        "generator": {"config_hash": stamp.config.config_hash, "step": stamp.step},
        # Held-out frames the renderer's network was trained on: 0 by construction (the
        # sentences lie in the tail train holds out); its exemplars never include them.
        "renderer_trained_share": round(float(np.mean(frames < first_heldout)), 4),
    }
    if ctx.opening_check:
        metrics["opening_measure"] = {
            **ctx.opening_check,
            "generated_vs_plan_r": _mean([r["model_opening_vs_plan_r"] for r in rows]),
            "real_sync_offset_truth_ms": _mean([r["scores"]["real"]["sync_offset_truth_ms"]
                                                for r in rows]),
            "reference_vs_truth_r": {k: _mean([r["reference_vs_truth_r"][k] for r in rows])
                                     for k in ("nearest", "at_time")}}
    paths = ClipPaths.of(clip, root)
    paths.metrics_dir.mkdir(parents=True, exist_ok=True)
    write_json(evaluate_metrics_path(paths), metrics)
    write_text(evaluate_scores_path(paths),
               score_table(rows).to_csv(sep="\t", index=False, na_rep="nan"))
    text = markdown(clip, metrics, rows)
    write_text(evaluate_summary_path(paths), text)
    log.info("evaluate %s: %s", clip, metrics["means"]["talkedit"])
    return {**metrics, "per_sentence": rows, "markdown": text}
