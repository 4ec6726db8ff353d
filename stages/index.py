"""index stage: the clip's aligned phones as a searchable viseme string (Fried et al. step 3).

Every aligned phone (pauses included) becomes one row of visemes.parquet: its viseme
class (stages/visemes.py), frame span, neighbours, whether it may be searched, and the
suffix array of the clip's viseme string. With the suffix array, all occurrences of a
viseme sequence are one contiguous run of it, found by narrowing a range one symbol at
a time (``VisemeIndex.narrow``), so the planner's search never scans the clip for
exact matches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.visemes import SIL_ID, VISEME_NAMES, viseme_ids
from talkedit.artifacts import (
    PHONES,
    VISEMES,
    WORDS,
    ClipPaths,
    VideoMeta,
    read_parquet,
    write_parquet,
)
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.phonemes import ARPABET, SILENCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexParams(Section):
    """The ``index:`` section of params.yaml."""

    SECTION = "index"

    max_phone_s: float = 1.0  # a (non-pause) phone longer than this is misaligned: not searched

    def check(self, where: str) -> None:
        if not self.max_phone_s > 0:
            raise bad_param(where, "max_phone_s", "must be positive", "use 1.0")


# --- the suffix array --------------------------------------------------------------------


def suffix_array(codes: np.ndarray) -> np.ndarray:
    """Suffix array of a string of non-negative ints, by prefix doubling (O(n log² n), numpy).

    A suffix that ends where a longer one goes on sorts first (the end is smaller than
    every symbol), matching the -1 padding ``VisemeIndex`` reads past the end.
    """
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    rank = np.asarray(codes, dtype=np.int64)
    sa = np.argsort(rank, kind="stable")
    k = 1
    while True:
        second = np.full(n, -1, dtype=np.int64)
        if k < n:
            second[: n - k] = rank[k:]
        sa = np.lexsort((second, rank))
        r, s2 = rank[sa], second[sa]
        new_group = np.r_[True, (r[1:] != r[:-1]) | (s2[1:] != s2[:-1])]
        rank = np.empty(n, dtype=np.int64)
        rank[sa] = np.cumsum(new_group) - 1
        if rank[sa[-1]] == n - 1 or k >= n:
            return sa.astype(np.int32)
        k *= 2


# --- building the table ------------------------------------------------------------------


def build_viseme_table(phones: pd.DataFrame, words: pd.DataFrame | None, fps: float,
                       max_phone_s: float = 1.0, source: str = "phones.parquet") -> pd.DataFrame:
    """The VISEMES table for aligned phones (PHONES columns; ``low_confidence`` optional)."""
    phones = phones.sort_values("start_s", kind="stable").reset_index(drop=True)
    labels = phones["phone"].astype(str).to_numpy()
    bad = sorted({p for p in labels if p not in ARPABET and p != SILENCE})
    if bad:
        raise TalkeditError(source, f"holds phones that are not ARPAbet or 'sil': {bad[:5]}",
                            "re-run the align stage (it writes ARPAbet without stress)")
    n = len(phones)
    start = phones["start_s"].to_numpy(np.float64)
    end = phones["end_s"].to_numpy(np.float64)
    if n and (not np.isfinite(start).all() or not np.isfinite(end).all() or (end < start).any()):
        raise TalkeditError(source, "has phones without finite, ordered start/end times",
                            "re-run the align stage")
    word_index = phones["word_index"].to_numpy(np.int32)
    spoken = np.full(n, "", dtype=object)
    if words is not None and len(words):
        by_index = dict(zip(words["word_index"].to_numpy(), words["normalized"], strict=True))
        spoken = np.array([by_index.get(int(w), "") if w >= 0 else "" for w in word_index],
                          dtype=object)
    vid = viseme_ids(labels)
    names = np.array(VISEME_NAMES, dtype=object)
    prev_phone = np.r_[[SILENCE], labels[:-1]] if n else labels
    next_phone = np.r_[labels[1:], [SILENCE]] if n else labels
    prev_vid = np.r_[[SIL_ID], vid[:-1]].astype(np.int8) if n else vid
    next_vid = np.r_[vid[1:], [SIL_ID]].astype(np.int8) if n else vid
    low = (phones["low_confidence"].to_numpy(bool) if "low_confidence" in phones
           else np.zeros(n, dtype=bool))
    usable = ~low & ((labels == SILENCE) | (end - start <= max_phone_s)) & (end > start)
    stress = (phones["stress"].to_numpy(np.int8) if "stress" in phones
              else np.full(n, -1, dtype=np.int8))
    return pd.DataFrame({
        "phone_index": np.arange(n, dtype=np.int32), "word_index": word_index,
        "word": spoken, "phone": labels, "stress": stress, "viseme": names[vid],
        "viseme_id": vid, "start_s": start, "end_s": end,
        "start_frame": np.round(start * fps).astype(np.int32),
        "end_frame": np.round(end * fps).astype(np.int32),
        "prev_phone": prev_phone, "next_phone": next_phone,
        "prev_viseme": names[prev_vid], "next_viseme": names[next_vid],
        "usable": usable, "suffix_array": suffix_array(vid),
    })


# --- the searchable index ----------------------------------------------------------------


class VisemeIndex:
    """A clip's viseme string with its suffix array, as arrays the search works on."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.phones = table["phone"].to_numpy(dtype=object)
        self.visemes = table["viseme_id"].to_numpy(np.int8)
        self.start_s = table["start_s"].to_numpy(np.float64)
        self.end_s = table["end_s"].to_numpy(np.float64)
        self.usable = table["usable"].to_numpy(bool)
        self.word_index = table["word_index"].to_numpy(np.int32)
        self.sa = table["suffix_array"].to_numpy(np.int64)
        n = len(self.sa)
        # The string padded with -1 (its end) so reads past it need no bounds checks.
        self._padded = np.r_[self.visemes.astype(np.int16), np.full(n + 1, -1, np.int16)]
        first = self.visemes[self.sa] if n else self.visemes
        ids = np.arange(len(VISEME_NAMES) + 1)
        self._bucket = np.searchsorted(first, ids)  # suffixes starting with class v: a run

    def __len__(self) -> int:
        return len(self.sa)

    @classmethod
    def load(cls, clip: str, root: Path | None = None) -> VisemeIndex:
        path = ClipPaths.of(clip, root).visemes
        return cls(read_parquet(path, VISEMES, stage_hint=f"index@{clip}"))

    @property
    def durations(self) -> np.ndarray:
        return self.end_s - self.start_s

    def first(self, viseme: int) -> tuple[int, int]:
        """The suffix-array run of suffixes starting with ``viseme``."""
        return int(self._bucket[viseme]), int(self._bucket[viseme + 1])

    def narrow(self, lo: int, hi: int, depth: int, viseme: int) -> tuple[int, int]:
        """Within a run whose suffixes share their first ``depth`` symbols, the sub-run
        whose next symbol is ``viseme`` (those next symbols are sorted within the run)."""
        nxt = self._padded[self.sa[lo:hi] + depth]
        return (lo + int(np.searchsorted(nxt, viseme, "left")),
                lo + int(np.searchsorted(nxt, viseme, "right")))

    def occurrences(self, visemes: np.ndarray) -> np.ndarray:
        """Start positions of every occurrence of a viseme sequence (sorted)."""
        if len(visemes) == 0:
            return np.zeros(0, dtype=np.int64)
        lo, hi = self.first(int(visemes[0]))
        for depth in range(1, len(visemes)):
            if lo >= hi:
                break
            lo, hi = self.narrow(lo, hi, depth, int(visemes[depth]))
        return np.sort(self.sa[lo:hi])


# --- the stage ---------------------------------------------------------------------------


def read_fps(paths: ClipPaths) -> float:
    return VideoMeta.read(paths).fps


def run_index(clip: str, root: Path, index: IndexParams) -> dict[str, Any]:
    """Write data/interim/<clip>/visemes.parquet from the clip's aligned phones."""
    opts = index
    paths = ClipPaths.of(clip, root)
    phones = read_parquet(paths.phones, PHONES, stage_hint=f"align@{clip}")
    words = read_parquet(paths.words, WORDS, stage_hint=f"align@{clip}")
    if not (phones["phone"] != SILENCE).any():
        raise TalkeditError(paths.phones, "holds no spoken phone",
                            f"check the clip's transcript and audio, then re-run align@{clip}")
    table = build_viseme_table(phones, words, read_fps(paths), opts.max_phone_s,
                               source=str(paths.phones))
    write_parquet(table, VISEMES, paths.visemes)
    spoken = table["phone"] != SILENCE
    counts = table.loc[spoken, "viseme"].value_counts()
    summary = {
        "clip": clip, "phones": int(spoken.sum()), "pauses": int((~spoken).sum()),
        "usable_share": round(float(table["usable"].mean()), 4),
        "visemes_present": int(len(counts)), "visemes_missing": sorted(
            set(VISEME_NAMES) - set(counts.index) - {"SIL"}),
        "rarest_viseme": f"{counts.index[-1]} ({int(counts.iloc[-1])})",
    }
    log.info("index %s: %s", clip, summary)
    return summary
