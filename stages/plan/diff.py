"""Where the edited transcript differs from the clip's: edited spans and their cut times.

The spoken (normalized) word sequences are diffed with difflib; every non-equal run
is one edited span: the clip's words [orig_first, orig_end) give way to the edited
words [new_first, new_end). Its cut is the stretch of clip time it removes: from the
first removed word's start to the last one's end (an insertion cuts nothing, at a
word boundary).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from stages.align.normalize import NO_BREAK, SpokenWord


@dataclass(frozen=True)
class EditedSpan:
    index: int
    kind: str  # replace | insert | delete
    orig_first: int  # clip words [orig_first, orig_end) (spoken-word indices)
    orig_end: int
    new_first: int  # edited words [new_first, new_end)
    new_end: int
    cut_start_s: float  # clip time removed (equal for an insertion)
    cut_end_s: float

    @property
    def n_new(self) -> int:
        return self.new_end - self.new_first

    @property
    def n_removed(self) -> int:
        return self.orig_end - self.orig_first


def edited_spans(original: list[str], starts: np.ndarray, ends: np.ndarray,
                 edited: list[SpokenWord]) -> list[EditedSpan]:
    """The edited spans between the clip's spoken words (with times) and the edited words."""
    new = [w.text for w in edited]
    matcher = difflib.SequenceMatcher(None, original, new, autojunk=False)
    spans: list[EditedSpan] = []
    n = len(original)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            a, b = float(starts[i1]), float(ends[i2 - 1])
        elif n == 0:
            a = b = 0.0
        elif i1 == 0:
            a = b = float(starts[0])
        elif i1 == n:
            a = b = float(ends[n - 1])
        else:
            # Between two clip words: join the phrase the edited text attaches the new words
            # to. A break after the word before them (", " / ". ") means they start the next
            # phrase, so they go right before the next word and the pause stays before them.
            breaks = j1 > 0 and edited[j1 - 1].break_after > NO_BREAK
            a = b = float(starts[i1]) if breaks else float(ends[i1 - 1])
        spans.append(EditedSpan(len(spans), tag, i1, i2, j1, j2, a, b))
    return spans
