"""Fillers the transcript holds and the audio lacks ("um", "you know").

A verbatim transcript (or a transcription service) may write a filler the speaker never
said. The aligner must still give its phones some frames, and squeezes them into the
40-80 ms it can steal from the neighbours; the run-based fit check (stages/align/
scoring.py) sees that only when the stolen frames also fit badly. A filler the speaker
does say is drawn out, not squeezed (hesitation lengthens it): on the calibration and
development passages a said filler's phones averaged 0.79-1.56 times the recording's
median phone length, an unsaid one's 0.35-0.74 (two of 40 higher). Only known fillers
are judged: an ordinary short word ("of", "the") is often reduced to almost nothing in
real speech, and that is not a wrong transcript.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Fillers, as spoken words (the normaliser's lower-case forms), longest first.
FILLERS: tuple[tuple[str, ...], ...] = (
    ("you", "know"), ("i", "mean"), ("um",), ("uh",), ("uhm",), ("umm",), ("er",), ("erm",),
    ("hmm",), ("mm",))


def filler_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """(first, stop) positions of the fillers in ``words``, not overlapping, in order."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        for filler in FILLERS:
            if tuple(words[i:i + len(filler)]) == filler:
                spans.append((i, i + len(filler)))
                i += len(filler)
                break
        else:
            i += 1
    return spans


def filler_shares(spans: Sequence[tuple[int, int]], word_index: np.ndarray, dur: np.ndarray
                  ) -> list[float]:
    """Per filler span: its phones' mean length over the recording's median phone length
    (``word_index``, ``dur``: the speech phones; NaN for a filler without phones)."""
    if not len(dur):
        return [float("nan")] * len(spans)
    typical = float(np.median(dur))
    out = []
    for first, stop in spans:
        mine = dur[(word_index >= first) & (word_index < stop)]
        out.append(float(mine.mean()) / typical if len(mine) else float("nan"))
    return out
