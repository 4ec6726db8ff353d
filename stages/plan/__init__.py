"""plan stage: from an edit spec to the per-frame plan of the edited video (Fried et al. 3-4).

``run_plan(edit, root, plan, align, audio)``:

1. read data/edits/<edit>/edit.yaml (talkedit/edits.py) and diff the clip's spoken words
   with the edited ones (``diff.py``);
2. time each edited span's new phones with espeak-ng, rescaled to the speaker
   (``timing.py``), or by the user's recording, aligned here once (stages/recording.py);
3. cover each span's phones with pieces of the clip (``search.py``, on the clip's
   visemes.parquet from the index stage);
4. lay out the output timeline, retime background and pieces, blend the face
   parameters (``retime.py``), and move the new words' mouth opening part of the way to
   the speaker's co-articulation model of the new phone sequence (``articulation.py``);
5. write plan.parquet, segments.parquet, new_phones.parquet, summary.md and the aligned
   recording (``report.py``), all computed before the first is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from stages.align import AlignParams, SpokenWord, normalize_text
from stages.align.pipeline import prepare_words
from stages.audio.config import AudioParams
from stages.index import VisemeIndex
from stages.plan.articulation import (
    ArticulationModel,
    borrowed_weight,
    closure_weight,
    correct,
    reshape,
    shut_target,
)
from stages.plan.diff import EditedSpan, edited_spans
from stages.plan.prior import load_phone_prior
from stages.plan.quality import quality_estimate, rare_phone_share
from stages.plan.report import write_outputs
from stages.plan.retime import (
    PLAN_ROWS,
    FaceParams,
    FramePlan,
    SpanPlan,
    Timeline,
    build_timeline,
    frame_plan,
    openness_direction,
)
from stages.plan.search import PHONE_CODES, Piece, Query, SearchWeights, search
from stages.plan.selfcheck import SelfCheck, SelfCheckParams, self_check
from stages.plan.timing import RateModel, recorded_phones, time_words
from stages.recording import Recording, RecordingTimer, load_recording, recorded_text
from talkedit.artifacts import (
    SPEAKER_RATE,
    WORDS,
    ClipPaths,
    EditPaths,
    RowGroupColumn,
    RowGroupRows,
    VideoMeta,
    align_metrics_path,
    column_array,
    read_parquet,
    release_arrow_pages,
)
from talkedit.edits import MOUTH_AUDIO, EditSpec, load_spec
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.phonemes import SILENCE

__all__ = ["PlanParams", "PlanResult", "run_plan", "plan_edit", "load_face_params", "EditSpec",
           "EditedSpan", "Piece", "Query", "SearchWeights", "search", "load_spec"]

log = logging.getLogger(__name__)
ON_LARGE_EDIT = ("error", "warn")
ON_NO_CHANGE = ("warn", "error")


@dataclass(frozen=True)
class PlanParams(Section):
    """The ``plan:`` section of params.yaml (see the comments there)."""

    SECTION = "plan"

    voice: str = "en-us"
    rate_wpm: int = 150
    rate_prior: float = 20.0
    reference_words: int = 600
    context_words: int = 12
    min_pause_s: float = 0.1
    search: SearchWeights = field(default_factory=SearchWeights)
    background_margin_s: float = 0.5
    max_edge_speed: float = 1.25
    blend_ms: float = 67.0
    blend_max_ms: float = 300.0
    articulation: float = 0.7
    articulation_borrowed: float = 0.9  # the same share where the piece says another phone
    lip_shape: float = 0.5
    lip_shape_borrowed: float = 0.9  # the same share where the piece says another phone
    phone_prior: float = 30.0  # frames of a clip's own phone the pooled phone openings weigh as
    audio_share: float = 0.0  # share of the way the new words' expression moves to lipmodel@<clip>'s
    max_changed_share: float = 0.5
    on_large_edit: str = "error"
    on_no_change: str = "warn"
    min_quality: float = 0.5  # a plan whose quality estimate is lower warns (summary + log)
    # A new phone the usable footage says fewer than min_phone_examples times is "rare";
    # an edit with at least max_rare_share of them says so (stages/plan/quality.py).
    min_phone_examples: int = 3
    max_rare_share: float = 0.25
    # Usable footage under this many seconds always says so (stages/plan/quality.py).
    min_footage_s: float = 16.4
    # Hidden stretches of the clip re-created and scored (stages/plan/selfcheck.py).
    self_check: SelfCheckParams = field(default_factory=SelfCheckParams)

    def check(self, where: str) -> None:
        if self.on_large_edit not in ON_LARGE_EDIT:
            raise bad_param(where, "on_large_edit", f"is {self.on_large_edit!r}, not one of "
                            f"{ON_LARGE_EDIT}")
        if self.on_no_change not in ON_NO_CHANGE:
            raise bad_param(where, "on_no_change", f"is {self.on_no_change!r}, not one of "
                            f"{ON_NO_CHANGE}")
        if not 0 < self.max_changed_share <= 1:
            raise bad_param(where, "max_changed_share", "must be a share in (0, 1]")
        if self.blend_ms < 0 or self.blend_max_ms < self.blend_ms:
            raise bad_param(where, "blend_max_ms", "must be at least blend_ms, and blend_ms >= 0")
        if not 0 <= self.articulation <= 1:
            raise bad_param(where, "articulation", "must be a share in [0, 1] (0 = off)")
        if not 0 <= self.articulation_borrowed <= 1:
            raise bad_param(where, "articulation_borrowed", "must be a share in [0, 1]")
        if not 0 <= self.lip_shape_borrowed <= 1:
            raise bad_param(where, "lip_shape_borrowed", "must be a share in [0, 1]")
        if not 0 <= self.lip_shape <= 1:
            raise bad_param(where, "lip_shape", "must be a share in [0, 1] (0 = off)")
        if not 0 <= self.audio_share <= 1:
            raise bad_param(where, "audio_share", "must be a share in [0, 1] (0 = off)")
        if not self.phone_prior >= 0:
            raise bad_param(where, "phone_prior", "must be frames >= 0 (0 = off)")
        if not self.max_edge_speed >= 1:
            raise bad_param(where, "max_edge_speed",
                            "must be >= 1 (1 = edge phones at the clip's speed)")
        if self.min_footage_s < 0:
            raise bad_param(where, "min_footage_s", "must be >= 0 seconds (0 = off)")
        if self.min_phone_examples < 1 or not 0 < self.max_rare_share <= 1:
            raise bad_param(where, "max_rare_share", "needs min_phone_examples >= 1 and "
                            "max_rare_share in (0, 1]")
        if self.background_margin_s < 0 or self.rate_wpm <= 0:
            raise bad_param(where, "background_margin_s", "margin must be >= 0 and rate_wpm > 0")


@dataclass
class PlanResult:
    spec: EditSpec
    spans: list[EditedSpan]
    span_plans: list[SpanPlan]
    timeline: Timeline
    frames: FramePlan
    fps: float
    index: VisemeIndex
    warnings: list[str]
    recording: Recording | None = None  # the user's recording, aligned (source: recording)
    quality: float = 1.0  # stages/plan/quality.py: a screen, 1 = nothing the plan sees is wrong
    mouth: dict[str, Any] | None = None  # spec mouth_motion: audio: stages/lipsync/edit_mouth.py
    rare_phone_share: float = 0.0  # new phones the usable footage has few examples of
    self_check: SelfCheck | None = None  # stages/plan/selfcheck.py (None: plan.self_check off)
    footage_s: float = 0.0  # seconds of usable footage the pieces are drawn from
    # new phone -> (frames of it the co-articulation model fitted, the phone prior's weight)
    prior_weights: dict[str, tuple[float, float]] = field(default_factory=dict)


# --- inputs ----------------------------------------------------------------------------------

FACE_COLUMNS = ["detected", "interpolated", "rotation", "translation", "scale", "expression",
                "illumination"]  # the first five read whole (a few bytes a frame)


def load_face_params(paths: ClipPaths) -> FaceParams:
    """The per-frame parameters the plan needs (not the landmarks: they are most of the file);
    expression and illumination read a row group at a time where the plan looks."""
    if not paths.face.is_file():
        raise TalkeditError(paths.face, "not found", f"run fit@{paths.clip} first (dvc repro)")
    table = pq.read_table(paths.face, columns=FACE_COLUMNS[:5], use_threads=False)
    rows = RowGroupRows(paths.face, ["expression", "illumination"])
    face = FaceParams(
        column_array(table, "rotation"), column_array(table, "translation"),
        table.column("scale").to_numpy().astype(np.float32), rows.column("expression"),
        rows.column("illumination"),
        table.column("detected").to_numpy() | table.column("interpolated").to_numpy(),
        table.column("detected").to_numpy())
    del table
    release_arrow_pages()  # the decoding buffers of 185 row groups at 31 minutes: 10 MB
    return face


def clip_openness(expression: np.ndarray | RowGroupColumn, direction: np.ndarray,
                  block: int = PLAN_ROWS) -> np.ndarray:
    """Each clip frame's openness (``retime.openness_proxy``), ``block`` frames at a time."""
    out = np.empty(len(expression))
    for a in range(0, len(out), block):
        out[a:a + block] = expression[a:a + block].astype(np.float64) @ direction
    return out


def footage_masks(index: VisemeIndex, face: FaceParams,
                  exclude_s: tuple[tuple[float, float], ...], fps: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Clip phones the search may not use, and the frames pieces may read."""
    n = len(face)
    t = np.arange(n) / fps
    # Interpolated frames hold made-up mouth motion: never a source for the search.
    allowed = (face.usable if face.measured is None else face.measured).copy()
    for a, b in exclude_s:
        allowed &= ~((t >= a - 0.5 / fps) & (t < b + 0.5 / fps))
    return blocked_phones(index, allowed, fps), allowed


def blocked_phones(index: VisemeIndex, allowed: np.ndarray, fps: float) -> np.ndarray:
    """The clip phones the search may not use: unusable ones and any touching a frame
    pieces may not read (``allowed`` false)."""
    n = len(allowed)
    bad = np.r_[0, np.cumsum(~allowed)]
    first = np.clip(np.floor(index.start_s * fps).astype(np.int64), 0, n)
    last = np.clip(np.ceil(index.end_s * fps).astype(np.int64) + 1, 0, n)
    touches_bad = bad[last] - bad[first] > 0
    return ~index.usable | touches_bad


def new_phone_priors(model: ArticulationModel | None, span_plans: list[SpanPlan]
                     ) -> dict[str, tuple[float, float]]:
    """Each new phone's frames in the co-articulation model's fit and the phone prior's
    weight against them (``ArticulationModel.prior_weight``); empty without a prior."""
    if model is None or model.prior_weight is None or model.own_frames is None \
            or not model.prior_weight.any():
        return {}
    said = dict.fromkeys(p.phone for s in span_plans for p in s.phones if p.phone != SILENCE)
    return {p: (round(float(model.own_frames[PHONE_CODES[p]]), 1),
                round(float(model.prior_weight[PHONE_CODES[p]]), 3)) for p in said}


def _neighbour(index: VisemeIndex, time_s: float, before: bool) -> int:
    """The clip phone ending at (before) or starting at (after) a cut; -1 beyond the clip."""
    k = (int(np.searchsorted(index.end_s, time_s + 1e-6, "right")) - 1 if before
         else int(np.searchsorted(index.start_s, time_s - 1e-6, "left")))
    return k if 0 <= k < len(index) else -1


def phone_at(index: VisemeIndex, time_s: float, before: bool) -> str:
    """The query's context at a cut: the clip phone beside it ("sil" beyond the clip)."""
    k = _neighbour(index, time_s, before)
    return str(index.phones[k]) if k >= 0 else SILENCE


def _has_pause(index: VisemeIndex, time_s: float, min_pause_s: float, before: bool) -> bool:
    """Whether the clip pauses at a cut already (the clip's edge counts as a pause)."""
    k = _neighbour(index, time_s, before)
    return k < 0 or (index.phones[k] == SILENCE and index.durations[k] >= min_pause_s)


# --- the stage -------------------------------------------------------------------------------


def _clip_snr_db(paths: ClipPaths) -> float | None:
    """The clip's speech over its noise floor as align measured it (None: an align.json
    written before it was recorded)."""
    path = align_metrics_path(paths)
    value = json.loads(path.read_text()).get("snr_db") if path.is_file() else None
    return None if value is None else float(value)


def plan_edit(edit: str, root: Path, opts: PlanParams, align_opts: AlignParams,
              audio: AudioParams) -> PlanResult:
    """Everything ``run_plan`` writes, in memory.

    When the edit's audio is the user's recording (spec ``audio:`` key or
    ``audio.source``), the new words are timed by the recording, not espeak-ng.
    """
    spec = load_spec(edit, root, audio.source)
    paths = ClipPaths.of(spec.clip, root)
    warnings: list[str] = []

    words = read_parquet(paths.words, WORDS, stage_hint=f"align@{spec.clip}")
    words = words.sort_values("word_index").reset_index(drop=True)
    original = [str(w) for w in words["normalized"]]
    if original != [w.text for w in normalize_text(spec.original_text, str(paths.transcript))]:
        raise TalkeditError(paths.words, f"was aligned from another version of "
                            f"{paths.transcript.name}", f"re-run align@{spec.clip} (dvc repro)")
    if not normalize_text(spec.edited_text, str(spec.path)):
        raise TalkeditError(spec.path, "deletes every word of the clip (nothing would be said)",
                            "keep at least one word of the transcript")
    edited, word_specs = prepare_words(spec.edited_text, align_opts, str(spec.path))
    prons = [w.prons[0].pairs() for w in word_specs]  # each word's preferred pronunciation
    # Words the spec asks to say anew are marked so that the diff sees them as replaced.
    written = words["written_index"].to_numpy()
    forced = np.zeros(len(original), bool)
    for a, b in spec.resynthesize:
        forced |= (written >= a) & (written <= b)
    compared = [f"\0{w}" if f else w for w, f in zip(original, forced, strict=True)]
    spans = edited_spans(compared, words["start_s"].to_numpy(), words["end_s"].to_numpy(), edited)

    if not spans:
        msg = (f"{spec.path}: the edited transcript says the same words as the clip's; "
               "the plan is the unedited clip")
        if opts.on_no_change == "error":
            raise TalkeditError(spec.path, "does not change the clip's words",
                                "change the transcript, or set plan.on_no_change: warn to "
                                "accept an identity plan")
        log.warning(msg)
        warnings.append(msg)
    changed = sum(max(s.n_removed, s.n_new) for s in spans)
    share = changed / max(len(original), 1)
    if share > opts.max_changed_share:
        msg = (f"changes {changed} of the clip's {len(original)} words ({share:.0%}), more than "
               f"plan.max_changed_share {opts.max_changed_share:.0%}")
        if opts.on_large_edit == "error":
            raise TalkeditError(spec.path, msg, "edit less, or raise plan.max_changed_share / "
                                "set plan.on_large_edit: warn in params.yaml")
        log.warning("%s: %s", spec.path, msg)
        warnings.append(f"{spec.path}: {msg}")

    meta = VideoMeta.read(paths)
    fps, n_frames = meta.fps, meta.n_frames
    face = load_face_params(paths)
    if len(face) != n_frames:
        raise TalkeditError(paths.face, f"has {len(face)} frames, the clip {n_frames}",
                            f"re-run fit@{spec.clip}")
    index = VisemeIndex.load(spec.clip, root)
    blocked, allowed = footage_masks(index, face, spec.exclude_s, fps)
    direction = openness_direction(index, face.expression, fps)
    openness = None if direction is None else clip_openness(face.expression, direction)

    new_spans = [(s.new_first, s.new_end) for s in spans if s.n_new]
    said = recorded_text(spec.audio, edited, new_spans)
    recorded = None
    if said.split() and spec.audio.recording is not None:  # deletions only: nothing recorded
        recording = load_recording(spec.audio.recording, said, align_opts,
                                   audio.max_clipped_share)
        recorded = RecordingTimer(recording, edited, new_spans)
    span_plans = []
    rates: RateModel | None = None
    for span in spans:
        phones, pieces = [], []
        if span.n_new and recorded is not None:
            phones = recorded_phones(recorded, edited, span.new_first, span.new_end)
        elif span.n_new:
            if rates is None:
                speaker = read_parquet(paths.speaker_rate, SPEAKER_RATE,
                                       stage_hint=f"align@{spec.clip}")
                rates = RateModel.measure(speaker, normalize_text(spec.original_text),
                                          opts.voice, opts.rate_wpm, opts.rate_prior,
                                          opts.reference_words)
            phones = time_words(
                edited, span.new_first, span.new_end, prons, rates, opts.voice,
                opts.rate_wpm, opts.context_words,
                pause_before=not _has_pause(index, span.cut_start_s, opts.min_pause_s, True),
                pause_after=not _has_pause(index, span.cut_end_s, opts.min_pause_s, False),
                alternatives=[[p.pairs() for p in w.prons] for w in word_specs])
        if span.n_new:
            query = Query(tuple(p.phone for p in phones),
                          np.array([p.duration_s for p in phones]),
                          phone_at(index, span.cut_start_s, True),
                          phone_at(index, span.cut_end_s, False))
            try:
                pieces = search(index, query, opts.search, blocked)
            except TalkeditError as exc:
                raise TalkeditError(f"{spec.path} (clip {spec.clip})", exc.problem,
                                    exc.fix) from exc
        new_words = edited[span.new_first:span.new_end]
        span_plans.append(SpanPlan(span.cut_start_s, span.cut_end_s, phones, pieces,
                                   " ".join(w.text for w in new_words),
                                   _written(spec.edited_text, new_words)))

    model = None
    prior = load_phone_prior(opts.phone_prior)
    if opts.articulation > 0 and direction is not None and openness is not None:
        model = ArticulationModel.fit(index, openness, allowed, fps,
                                      face.expression if opts.lip_shape > 0 else None, prior)
    timeline, frames = span_frames(span_plans, index, face, allowed, fps, opts, openness,
                                   direction, model, face.natural_change(0.99))
    checked = None
    if opts.self_check.spans > 0 and direction is not None and openness is not None:
        models: dict[bytes, ArticulationModel | None] = {}  # one fit per footage

        def plan_frames(span: SpanPlan, rest: np.ndarray, without: np.ndarray) -> FramePlan:
            """The same planner's frames for one span: pieces from the frames ``rest``,
            the co-articulation model fitted on ``without``."""
            key = np.packbits(without).tobytes()
            if key not in models:
                models[key] = (ArticulationModel.fit(index, openness, without, fps,
                                                     face.expression if opts.lip_shape > 0
                                                     else None, prior)
                               if opts.articulation > 0 else None)
            return span_frames([span], index, face, rest, fps, opts, openness, direction,
                               models[key], frames.natural_p99)[1]

        checked = self_check(
            index, openness, direction, blocked, allowed, fps, opts.search, opts.self_check,
            sum(p.phone != SILENCE for s in span_plans for p in s.phones),
            [(s.cut_start_s, s.cut_end_s) for s in span_plans], plan_frames)
    snr_db = _clip_snr_db(paths)
    footage_s = float(allowed.sum()) / fps  # the frames pieces may read
    rare = rare_phone_share([p.phone for s in span_plans for p in s.phones],
                            [str(p) for p in index.phones], ~blocked, opts.min_phone_examples)
    quality, reasons = quality_estimate(
        [p.viseme_cost for s in span_plans for p in s.pieces], frames.max_join_change,
        frames.natural_p99, float(words["low_confidence"].mean()) if len(words) else 0.0,
        snr_db, align_opts.noisy_snr_db, rare, opts.max_rare_share, opts.min_phone_examples,
        None if checked is None else checked.r, opts.self_check.min_r,
        checked is None or checked.r is not None, footage_s, opts.min_footage_s)
    # A noisy clip, too little footage, or new phones the footage hardly shows, always say
    # so: their cost was measured (stages/plan/quality.py).
    noisy = snr_db is not None and snr_db < align_opts.noisy_snr_db
    failed = checked is not None and (checked.r is None or checked.r < opts.self_check.min_r)
    short = footage_s < opts.min_footage_s
    if quality < opts.min_quality or noisy or short or rare >= opts.max_rare_share or failed:
        below = (f" is below plan.min_quality {opts.min_quality:.2f}"
                 if quality < opts.min_quality else "")
        msg = (f"quality estimate {quality:.2f}{below}: {'; '.join(reasons)}. Review the "
               "result before using it")
        log.warning("%s: %s", spec.path, msg)
        warnings.append(msg)
    result = PlanResult(spec, spans, span_plans, timeline, frames, fps, index, warnings,
                        recorded.recording if recorded else None, round(quality, 3),
                        rare_phone_share=round(rare, 3), self_check=checked,
                        footage_s=round(footage_s, 3),
                        prior_weights=new_phone_priors(model, span_plans))
    # The new words' mouth from the clip's audio model: all of it (spec mouth_motion: audio)
    # or a share of the way from the searched one (plan.audio_share; off by default: 0.3
    # raised the demo's development sentences' plan opening r 0.877 -> 0.891 but lowered
    # the development pairs', whose lip models are weaker, 0.954 -> 0.937; the held-out
    # evaluate stayed 0.888 with mouth PSNR 23.62 -> 23.21 dB; benchmarks/audio_prior.py).
    share = 1.0 if spec.mouth_motion == MOUTH_AUDIO else opts.audio_share
    if share > 0:
        from stages.lipsync.edit_mouth import audio_mouth  # deferred: torch only when asked

        result.frames, result.mouth = audio_mouth(result, root, audio, opts.blend_ms / 1000,
                                                  share)
    return result


def span_frames(span_plans: list[SpanPlan], index: VisemeIndex, face: FaceParams,
                allowed: np.ndarray, fps: float, opts: PlanParams, openness: np.ndarray | None,
                direction: np.ndarray | None, model: ArticulationModel | None,
                natural_p99: float) -> tuple[Timeline, FramePlan]:
    """The timeline and frame plan of ``span_plans`` (searched): pieces read the clip frames
    ``allowed``, cross-faded at their joins; with a co-articulation ``model`` (and the
    clip's ``openness`` along ``direction``) the new words' opening and lip shape corrected
    towards it (``coarticulate``)."""
    timeline = build_timeline(span_plans, len(face) / fps, opts.background_margin_s, index,
                              allowed, fps, opts.blend_max_ms / 1000, opts.max_edge_speed,
                              openness)
    frames = frame_plan(timeline, face, fps, opts.blend_ms / 1000, opts.blend_max_ms / 1000,
                        natural_p99)
    if model is not None and direction is not None:
        coarticulate(frames, timeline, span_plans, index, model, direction, opts.articulation,
                     opts.blend_ms / 1000, opts.lip_shape, opts.articulation_borrowed,
                     opts.lip_shape_borrowed)
    return timeline, frames


def output_phones(timeline: Timeline, span_plans: list[SpanPlan], index: VisemeIndex
                  ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every phone of the edited video on its own timeline: the clip's aligned phones in
    kept segments, the new words' timed phones in new ones; which are new; and which new
    ones are borrowed (``borrowed_phones``)."""
    spans = sorted(span_plans, key=lambda s: s.cut_start_s)
    phones: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    new: list[bool] = []
    borrowed: list[bool] = []
    for seg in timeline.segments:
        if seg.kind == "kept":
            inside = np.flatnonzero((index.end_s > seg.source_start_s)
                                    & (index.start_s < seg.source_end_s))
            shift = seg.out_start_s - seg.source_start_s
            for k in inside:
                phones.append(str(index.phones[k]))
                starts.append(max(index.start_s[k], seg.source_start_s) + shift)
                ends.append(min(index.end_s[k], seg.source_end_s) + shift)
                new.append(False)
                borrowed.append(False)
        else:
            span = spans[seg.span]
            for phone, (a, b), other in zip(span.phones, timeline.placed[seg.span],
                                            borrowed_phones(span, index), strict=True):
                phones.append(phone.phone)
                starts.append(a)
                ends.append(b)
                new.append(True)
                borrowed.append(other)
    return (phones, np.asarray(starts), np.asarray(ends), np.asarray(new, bool),
            np.asarray(borrowed, bool))


def borrowed_phones(span: SpanPlan, index: VisemeIndex) -> list[bool]:
    """Per new phone of ``span``: whether its piece shows the clip saying another phone
    (the search's viseme-class substitute: EH or AE for an EY the footage hardly says).
    Such a piece opens as its own phone did, not as the new one should."""
    out = [False] * len(span.phones)
    for piece in span.pieces:
        for j in range(piece.length):
            out[piece.query_start + j] = (str(index.phones[piece.corpus_start + j])
                                          != span.phones[piece.query_start + j].phone)
    return out


def coarticulate(frames: FramePlan, timeline: Timeline, span_plans: list[SpanPlan],
                 index: VisemeIndex, model: ArticulationModel, direction: np.ndarray,
                 share: float, ramp_s: float, shape_share: float = 0.0,
                 borrowed_share: float | None = None,
                 borrowed_shape_share: float | None = None) -> None:
    """The plan's expression, its opening inside the new words moved ``share`` of the way
    to the co-articulation model's curve for the new phone sequence, its lip shape (the
    rest of the expression) ``shape_share`` of the way to the model's shape for it
    (``articulation.reshape``), and its opening towards the clip's closed level where a
    p/b/m is said (``articulation.shut``; all fading out over ``ramp_s`` beyond each new
    segment, never beyond the rendered frames: kept footage is untouched). Set on
    ``frames`` (``set_expression``), a window of PLAN_ROWS frames at a time: only the
    windows holding new words are corrected, the rest read for their openness when a
    p/b/m is said.

    Where a new phone's piece says another phone (``borrowed_phones``) the opening moves
    ``borrowed_share`` of the way instead (default ``share``), the change spread over the
    model's smoothing width: such a piece's opening is its own phone's, not the new one's
    (on the demo's development sentences 0-3, retrieval alone planned EY +0.30 too wide
    from EH/AE pieces, AW -0.16 too narrow, where the model's own targets were within
    0.04; session 9, 13v, benchmarks/plan_opening.py)."""
    phones, starts, ends, new, borrowed = output_phones(timeline, span_plans, index)
    t = frames.time_s
    inside = np.zeros(len(t))
    for seg in timeline.segments:
        if seg.kind == "new":
            before = np.clip((t - (seg.out_start_s - ramp_s)) / max(ramp_s, 1e-9), 0, 1)
            after = np.clip(((seg.out_end_s + ramp_s) - t) / max(ramp_s, 1e-9), 0, 1)
            inside = np.maximum(inside, np.minimum(before, after))
    inside *= frames.edited
    if not inside.any():
        return
    other = borrowed_weight(t, starts[borrowed], ends[borrowed], model.sigma_s)
    opening_share = share + ((share if borrowed_share is None else borrowed_share) - share) \
        * other
    lip_share = shape_share + ((shape_share if borrowed_shape_share is None
                                else borrowed_shape_share) - shape_share) * other
    corrected: dict[int, np.ndarray] = {}  # window start -> its expression, corrected
    for a in range(0, len(t), PLAN_ROWS):
        b = min(a + PLAN_ROWS, len(t))
        if inside[a:b].any():
            # The model's curve where asked (a design row depends on its own time only).
            target = model.predict(phones, starts, ends, t[a:b])
            expression = frames.rows(a, b).expression
            corrected[a] = correct(expression, direction, target,
                                   opening_share[a:b] * inside[a:b], out=expression)
            if lip_share[a:b].any():  # the rest of the expression: the opening stays as set
                reshape(expression, direction, model, phones, starts, ends, t[a:b],
                        lip_share[a:b] * inside[a:b], out=expression)
    if np.isfinite(model.closed):
        # Only the new words' p/b/m: kept footage shows its own closures.
        said = [p if is_new else SILENCE for p, is_new in zip(phones, new, strict=True)]
        closure = closure_weight(said, starts, ends, t)
        if (closure > 0).any():  # the lips' envelope reads every frame's openness
            openness = np.empty(len(t))
            for a in range(0, len(t), PLAN_ROWS):
                expression = corrected.get(a)
                if expression is None:
                    expression = frames.rows(a, a + PLAN_ROWS).expression
                openness[a:a + PLAN_ROWS] = expression @ direction
            target = shut_target(openness, closure, model.closed, model.max_step)
            for a, expression in corrected.items():
                correct(expression, direction, target[a:a + len(expression)],
                        inside[a:a + len(expression)], out=expression)
    for a, expression in corrected.items():
        rows = np.flatnonzero(inside[a:a + len(expression)])
        frames.set_expression(rows + a, expression[rows])


def _written(text: str, words: list[SpokenWord]) -> str:
    tokens = text.split()
    seen = sorted({w.written_index for w in words})
    return " ".join(tokens[i] for i in seen)


def run_plan(edit: str, root: Path, plan: PlanParams, align: AlignParams, audio: AudioParams
             ) -> dict[str, Any]:
    """Plan one edit; write data/plans/<edit>/{plan,segments,new_phones}.parquet, summary.md
    and recording/ (the user's recording aligned; empty for other audio sources)."""
    result = plan_edit(edit, root, plan, align, audio)
    summary = write_outputs(result, EditPaths.of(edit, root))
    log.info("plan %s: %s", edit, summary)
    return summary
