"""Building the phone-opening prior's table (stages/plan/prior.py) from the generated corpus.

Each clip of ``stages.demo.corpus`` is generated, extracted, aligned, fitted and indexed as
the pair stages do; its co-articulation model (stages/plan/articulation.py, fitted as the
plan fits it, without a prior) gives each phone's opening target and the frames it was
learnt from; ``pool_openings`` pools the clips' targets into one value per phone, in
standard units. ``talkedit phone-prior --work DIR`` runs it (about 6 s a clip on 2 cores).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stages.align import run_align
from stages.demo.corpus import CORPUS_CASES, CorpusCase, make_corpus_clip
from stages.extract import extract_clip
from stages.fit import run_fit
from stages.index import VisemeIndex, run_index
from stages.plan import footage_masks, load_face_params
from stages.plan.articulation import ArticulationModel
from stages.plan.retime import openness_direction
from stages.plan.search import PHONE_CODES
from talkedit.artifacts import ClipPaths, VideoMeta
from talkedit.errors import TalkeditError

if TYPE_CHECKING:
    from stages.pairs.clip import ClipSections

POOL_ITERATIONS = 50  # alternations of the per-clip lines and the pooled values


def phone_frames(phones: list[str], starts: np.ndarray, ends: np.ndarray, usable: np.ndarray,
                 fps: float) -> np.ndarray:
    """(len(PHONE_CODES),) frames the clip says each phone for, over its ``usable`` phones."""
    codes = np.array([PHONE_CODES[p] for p in phones], np.int64)
    length = (np.asarray(ends) - np.asarray(starts)) * fps
    return np.bincount(codes[usable], length[usable], len(PHONE_CODES))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def pool_openings(targets: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(phones,) each phone's opening pooled over clips, in standard units (frame-weighted
    mean 0, sd 1 over the phones); NaN for a phone no clip says.

    ``targets`` and ``frames`` are (clips, phones). Each clip's targets are taken as a line
    of the pooled values (its own offset and scale: speakers open to different extents);
    the lines and the values are fitted in turn, each value the frame-weighted median of
    the clips' targets mapped back through their lines (a few frames of one clip, learnt
    in an odd context, do not carry a phone)."""
    targets = np.asarray(targets, np.float64)
    weights = np.where(np.asarray(frames, np.float64) > 0, frames, 0.0)
    said = weights.sum(axis=0) > 0
    if said.sum() < 3:
        raise TalkeditError("phone-opening corpus", "says fewer than three phones",
                            "generate the corpus clips again (stages.demo.corpus)")
    values = np.full(targets.shape[1], np.nan)
    values[said] = (weights * targets).sum(axis=0)[said] / weights.sum(axis=0)[said]
    for _ in range(POOL_ITERATIONS):
        values = _standard(values, weights.sum(axis=0))
        offsets, scales = np.zeros(len(targets)), np.ones(len(targets))
        for c in range(len(targets)):
            own = weights[c] > 0
            x = np.column_stack([np.ones(int(own.sum())), values[own]])
            w = weights[c, own]
            offsets[c], scales[c] = np.linalg.lstsq(x * np.sqrt(w)[:, None],
                                                    targets[c, own] * np.sqrt(w), rcond=None)[0]
        for p in np.flatnonzero(said):
            clips = (weights[:, p] > 0) & (np.abs(scales) > 1e-9)
            mapped = (targets[clips, p] - offsets[clips]) / scales[clips]
            values[p] = _weighted_median(mapped, weights[clips, p] * scales[clips] ** 2)
    return _standard(values, weights.sum(axis=0))


def _standard(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    known = np.isfinite(values)
    mean = np.average(values[known], weights=weights[known])
    sd = np.sqrt(np.average((values[known] - mean) ** 2, weights=weights[known]))
    return (values - mean) / max(sd, 1e-12)


def clip_targets(clip: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A built clip's co-articulation targets and phone frames, as the plan fits them."""
    paths = ClipPaths.of(clip, root)
    fps = VideoMeta.read(paths).fps
    face = load_face_params(paths)
    index = VisemeIndex.load(clip, root)
    expression = np.asarray(face.expression[0:len(face)], np.float64)
    direction = openness_direction(index, expression, fps)
    if direction is None:
        raise TalkeditError(f"corpus clip {clip}", "has no p/b/m or no open vowel",
                            "give its text both")
    blocked, allowed = footage_masks(index, face, (), fps)
    model = ArticulationModel.fit(index, expression @ direction, allowed, fps)
    if model is None:
        raise TalkeditError(f"corpus clip {clip}", "is too short to fit",
                            "give it a longer text")
    return model.targets, phone_frames([str(p) for p in index.phones], index.start_s,
                                       index.end_s, ~blocked, fps)


def prepare_corpus_clip(case: CorpusCase, work: Path, sections: ClipSections) -> None:
    """Generate, extract, align, fit and index a corpus clip in ``work`` with the pair
    stages' ``sections`` (a clip already indexed there is kept)."""
    make_corpus_clip(case, work)
    if not ClipPaths.of(case.name, work).visemes.is_file():
        extract_clip(case.name, work, sections.extract)
        run_align(case.name, work, sections.align)
        run_fit(case.name, work, sections.fit, sections.scale)
        run_index(case.name, work, sections.index)


def build_table(work: Path, sections: ClipSections) -> dict[str, object]:
    """Generate and fit every corpus clip in ``work`` (what it holds already is kept) with
    the pair stages' ``sections``; pool their targets (``table_of``)."""
    clips: dict[str, dict[str, object]] = {}
    for case in CORPUS_CASES:
        prepare_corpus_clip(case, work, sections)
        targets, frames = clip_targets(case.name, work)
        clips[case.name] = {"targets": _rounded(targets), "frames": _rounded(frames)}
    return table_of(clips)


def table_of(clips: dict[str, dict[str, object]]) -> dict[str, object]:
    """The shipped table: the pooled openings of the corpus clips' targets and frames."""
    names = sorted(clips)
    targets = np.array([[clips[c]["targets"][p] for p in PHONE_CODES] for c in names])
    frames = np.array([[clips[c]["frames"][p] for p in PHONE_CODES] for c in names])
    values = pool_openings(targets, frames)
    return {"built_by": "talkedit phone-prior --work DIR (stages/demo/corpus.py)",
            "openings": {p: round(float(v), 6) for p, v in zip(PHONE_CODES, values,
                                                               strict=True)
                         if np.isfinite(v)},
            "clips": {c: clips[c] for c in names}}


def _rounded(values: np.ndarray) -> dict[str, float]:
    return {p: round(float(values[k]), 6) for p, k in PHONE_CODES.items()}
