"""The pairclip stage: one edit-with-truth case's clip, truth clip, clip stages and renderer.

Imports nothing of the edit path (plan, audio, composite, scoring), so changing that code
never retrains a pair's renderer (see stages/pairs/__init__.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.align import AlignParams, run_align
from stages.demo.pairs import PairCase, find_case, make_pair
from stages.extract import ExtractParams, extract_clip
from stages.fit import FitParams, run_fit
from stages.index import IndexParams, run_index
from stages.render.config import TrainParams
from stages.render.train import run_train
from talkedit.artifacts import ClipPaths, ModelPaths, pair_paths
from talkedit.params import Section, bad_param
from talkedit.scale import ScaleParams


@dataclass(frozen=True)
class PairParams(Section):
    """The ``pair:`` section of params.yaml: how each case's clip and renderer are built
    (the pairclip stage)."""

    SECTION = "pair"

    holdout_share: float = 0.1  # the renderer never trains on the clip's last share
    min_train_frames: int = 100  # the cases are 18-23 s: fewer frames than a user's clip
    steps: int | None = None  # renderer training steps; None: the train section's own
    # Synthetic voices read a word unusually now and then: mark it, do not fail.
    on_mismatch: str = "mark"

    def check(self, where: str) -> None:
        if not 0.0 < self.holdout_share < 0.5:
            raise bad_param(where, "holdout_share", f"is {self.holdout_share}, not in (0, 0.5)",
                            "use 0.1")
        if self.steps is not None and self.steps < 1:
            raise bad_param(where, "steps", f"is {self.steps}", "use null (train's own) or >= 1")


@dataclass(frozen=True)
class ClipSections:
    """What a pair's clip stages and renderer read, as a pair runs them."""

    extract: ExtractParams
    align: AlignParams
    fit: FitParams
    index: IndexParams
    train: TrainParams
    scale: ScaleParams

    @classmethod
    def of(cls, pair: PairParams, extract: ExtractParams, align: AlignParams, fit: FitParams,
           index: IndexParams, train: TrainParams, scale: ScaleParams) -> ClipSections:
        """``pair`` sets what alignment does with a misread word and the renderer's held-out
        share, minimum and steps (the project's own holdout is for its evaluate stage)."""
        return cls(extract, dataclasses.replace(align, on_mismatch=pair.on_mismatch), fit,
                   index, dataclasses.replace(train, holdout_share=pair.holdout_share,
                                              holdout_frames=None,
                                              min_train_frames=pair.min_train_frames,
                                              steps=pair.steps or train.steps), scale)


def prepare_clip(case: PairCase, root: Path, sections: ClipSections,
                 train: bool = True, reuse: bool = False) -> None:
    """The case's clip and truth in ``root``, extracted, aligned, fitted, indexed and (with
    ``train``) its renderer trained. ``reuse``: keep what ``root`` already holds (a
    benchmark's work folder); a stage's root is always empty (DVC removes its outputs)."""
    make_pair(case, root)
    paths = ClipPaths.of(case.name, root)
    if not (reuse and paths.visemes.is_file()):
        extract_clip(case.name, root, sections.extract)
        run_align(case.name, root, sections.align)
        run_fit(case.name, root, sections.fit, sections.scale)
        run_index(case.name, root, sections.index)
    if train and not (reuse and ModelPaths.of(case.name, root).generator.is_file()):
        run_train(case.name, root, sections.train)


def run_pairclip(case: str, root: Path, pair: PairParams, extract: ExtractParams,
                 align: AlignParams, fit: FitParams, index: IndexParams, train: TrainParams,
                 scale: ScaleParams) -> dict[str, Any]:
    """Build one pair's clip and truth, its clip stages and renderer, in data/pairs/<case>/."""
    out = pair_paths(case, root)
    sections = ClipSections.of(pair, extract, align, fit, index, train, scale)
    t0 = time.perf_counter()
    prepare_clip(find_case(case), out.root, sections)
    # Times vary run to run: the stage summary (the run report) has them, no artifact.
    return {"case": case, "root": str(out.root), "steps": sections.train.steps,
            "seconds": round(time.perf_counter() - t0, 1)}
