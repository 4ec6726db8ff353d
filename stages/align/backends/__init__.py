"""Aligner backends behind one small interface, chosen by name (params ``align.backend``).

A backend aligns one chunk: 16 kHz samples plus the words said in them, each
with the pronunciations the lexicon chose. It returns phones (silences
included) with times relative to the chunk and, where it has them, acoustic
scores. Everything else (chunking, retries, refinement, scoring, stitching)
is shared and lives in the pipeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stages.align.config import AlignParams
from stages.align.lexicon import Pron
from talkedit.errors import TalkeditError


@dataclass(frozen=True)
class WordSpec:
    """A word to align: its spoken text, the pronunciations allowed for it, and whether
    the text pauses after it (0 no, 1 clause end, 2 sentence end: a likely silence)."""

    text: str
    prons: tuple[Pron, ...]
    break_after: int = 0


@dataclass
class AlignedPhone:
    word_pos: int  # index into the chunk's words; -1 for silence
    phone: str  # ARPAbet without stress, or "sil"
    start_s: float  # seconds from the chunk's start
    end_s: float
    score: float = float("nan")  # acoustic log-likelihood per 10 ms frame; NaN if unknown


@dataclass
class ChunkAlignment:
    phones: list[AlignedPhone]
    variants: list[int]  # per word: which of its prons the backend used


class AlignmentFailed(Exception):
    """A backend could not align a chunk with the current settings (retry may help)."""


class AlignerBackend(ABC):
    name: ClassVar[str]
    # Whether chunks may be aligned by separate worker processes. A backend that
    # parallelises internally (an external program) says False.
    parallel: ClassVar[bool] = True

    def __init__(self, params: AlignParams) -> None:
        self.params = params

    @property
    def attempts(self) -> int:
        """How many increasingly permissive tries a chunk gets (one per beam)."""
        return len(self.params.beams)

    @abstractmethod
    def align_chunk(self, samples: np.ndarray, words: Sequence[WordSpec],
                    attempt: int = 0) -> ChunkAlignment:
        """Align ``words`` to ``samples`` (int16, 16 kHz). Raise AlignmentFailed to be retried."""


BACKENDS: dict[str, type[AlignerBackend]] = {}


def register(cls: type[AlignerBackend]) -> type[AlignerBackend]:
    BACKENDS[cls.name] = cls
    return cls


def get_backend(params: AlignParams) -> AlignerBackend:
    cls = BACKENDS.get(params.backend)
    if cls is None:
        raise TalkeditError(f"params.yaml align.backend {params.backend!r}", "is not a known backend",
                            f"use one of: {', '.join(sorted(BACKENDS))}")
    return cls(params)


# Importing the implementations registers them.
from stages.align.backends import mfa, sphinx  # noqa: E402,F401
