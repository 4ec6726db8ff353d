"""The new speech's phones where its words are known, and the clip's own co-articulation
model's expression for them (stages/plan/articulation.py).

A job whose audio is text (espeak-ng says it) knows its phones and their times exactly; a
WAV or another clip's audio with a ``transcript:`` gets them from the project's aligner
(stages/align, the ``align:`` settings). The lip model hears only the sound: trained on
~20 s of one voice, another voice's spectrum misleads it (the demo's sentence 4 said by
en-us+f3: opening r 0.75 against the truth). The co-articulation model that the edit path
fits on the clip (each phone's target, held and smoothed, the lips' lag, p/b/m shut) needs
only phones and their times, whoever says them; the new frames' expression moves
``lipsync.phone_share`` of the way from the lip model's prediction to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.align import AlignParams, align_audio
from stages.index import VisemeIndex
from stages.lipsync.spec import JobSpec
from stages.plan import (
    PlanParams,
    blocked_phones,
    clip_openness,
    load_face_params,
    phone_at,
    span_frames,
)
from stages.plan.articulation import ArticulationModel, PhonePrior
from stages.plan.retime import SpanPlan, openness_direction
from stages.plan.search import PHONE_CODES, Query, search
from stages.plan.timing import QueryPhone
from talkedit.artifacts import ClipPaths
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE


@dataclass(frozen=True)
class SpokenPhones:
    """The new speech's phones and their times (s from its start), silence filling gaps."""

    phones: list[str]
    starts: np.ndarray
    ends: np.ndarray
    source: str  # "espeak-ng" | "aligned transcript"


def covered(rows: list[tuple[str, float, float]], source: str) -> SpokenPhones:
    """``rows`` (phone, start_s, end_s) in time order with silence in every gap (and before
    the first): the model reads a time no phone covers as silence, not as its constant."""
    phones: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    at = 0.0
    for phone, start, end in rows:
        if end <= max(start, at):  # empty, or wholly inside the phone before
            continue
        if start > at + 1e-6:
            phones.append(SILENCE)
            starts.append(at)
            ends.append(start)
        phones.append(phone if phone in PHONE_CODES else SILENCE)
        starts.append(max(start, at))
        ends.append(end)
        at = end
    return SpokenPhones(phones, np.asarray(starts, np.float64), np.asarray(ends, np.float64),
                        source)


def known_phones(spec: JobSpec, synthesized: list[Any] | None, samples: np.ndarray,
                 align: AlignParams) -> SpokenPhones | None:
    """The job's phones: espeak-ng's own (``synthesized``) for text audio, the transcript
    aligned to ``samples`` (16 kHz) for a WAV or clip audio with one; None otherwise."""
    if synthesized is not None:
        return covered([(p.phone, p.start_s, p.end_s) for p in synthesized], "espeak-ng")
    if spec.transcript is None:
        return None
    try:
        _, phones = align_audio(samples, spec.transcript, align)
    except TalkeditError as exc:
        raise TalkeditError(spec.path, f"its transcript: does not align with the audio "
                            f"({exc.problem})", "give the words the audio says, or leave "
                            "transcript: out (the lip model alone then drives the mouth)"
                            ) from exc
    return covered([(str(r.phone), float(r.start_s), float(r.end_s))
                    for r in phones.sort_values("start_s").itertuples()], "aligned transcript")


@dataclass(frozen=True)
class FootageModel:
    """What the clip's footage (the frames a lip-sync job may read) says about its speech:
    its viseme index with only those phones usable, the opening direction and the
    co-articulation model fitted on them."""

    index: VisemeIndex
    usable: np.ndarray  # (n_clip,) frames the models and the search may read
    direction: np.ndarray
    model: ArticulationModel


def footage_model(clip: str, root: Path | None, fitted: np.ndarray, fps: float,
                  footage: np.ndarray, prior: PhonePrior | None = None) -> FootageModel | None:
    """The clip's models fitted on the clip frames ``footage`` only (the clip less the span
    replaced, ``job.footage_frames``), the opening held towards ``prior`` as the edit path
    holds it (plan.phone_prior); None when the clip lacks what the model needs (a p/b/m
    and an open vowel, enough footage)."""
    usable = np.zeros(len(fitted), bool)
    usable[footage] = True
    usable &= np.isfinite(fitted).all(axis=1)
    # Phones said outside the footage read as unusable: the opening direction too is the
    # footage's own (no frame of the span).
    table = VisemeIndex.load(clip, root).table.copy()
    centre = np.clip(np.rint((table["start_s"] + table["end_s"]).to_numpy() / 2 * fps)
                     .astype(np.int64), 0, len(fitted) - 1)
    table["usable"] = table["usable"].to_numpy(bool) & usable[centre]
    index = VisemeIndex(table)
    filled = np.nan_to_num(fitted)  # unusable rows: never fitted on
    direction = openness_direction(index, filled, fps)
    if direction is None:
        return None
    model = ArticulationModel.fit(index, filled @ direction, usable, fps, filled, prior)
    return None if model is None else FootageModel(index, usable, direction, model)


def phone_expression(footage: FootageModel, spoken: SpokenPhones, n_new: int, fps: float
                     ) -> np.ndarray:
    """(n_new, d) the clip's co-articulation model's expression for ``spoken`` at the new
    frames' instants."""
    return footage.model.expression(spoken.phones, spoken.starts, spoken.ends,
                                    np.arange(n_new) / fps, footage.direction)


def searched_expression(clip: str, root: Path | None, footage: FootageModel,
                        spoken: SpokenPhones, fps: float, first: int, stop: int, n_new: int,
                        plan: PlanParams) -> np.ndarray:
    """(n_new, d) the edit path's expression for ``spoken`` said over the clip frames
    [first, stop): the viseme search's pieces of real footage (only ``footage``'s frames),
    timed by the phones' own times, cross-faded into the kept frames on either side and
    corrected towards the co-articulation model (stages/plan: ``search``, ``span_frames``)."""
    paths = ClipPaths.of(clip, root)
    face = load_face_params(paths)
    allowed = footage.usable & (face.usable if face.measured is None else face.measured)
    # The phones fill the new audio exactly: a closing pause up to its last frame.
    phones, starts, ends = list(spoken.phones), list(spoken.starts), list(spoken.ends)
    end_s = n_new / fps
    if not ends or ends[-1] < end_s - 1e-6:
        phones.append(SILENCE)
        starts.append(ends[-1] if ends else 0.0)
        ends.append(end_s)
    durations = np.asarray(ends) - np.asarray(starts)
    query_phones = [QueryPhone(p, 0, float(d), float(d), -1 if p == SILENCE else 0, "")
                    for p, d in zip(phones, durations, strict=True)]
    cut_start, cut_end = first / fps, stop / fps
    index = footage.index
    query = Query(tuple(phones), durations, phone_at(index, cut_start, True),
                  phone_at(index, cut_end, False))
    pieces = search(index, query, plan.search, blocked_phones(index, allowed, fps))
    span = SpanPlan(cut_start, cut_end, query_phones, pieces)
    openness = clip_openness(face.expression, footage.direction)
    _, frames = span_frames([span], index, face, allowed, fps, plan, openness,
                            footage.direction, footage.model if plan.articulation > 0 else None,
                            face.natural_change(0.99))
    return frames.rows(first, first + n_new).expression.astype(np.float64)
