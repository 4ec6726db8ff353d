"""Praat TextGrid reading (long and short text formats), for aligners that write them.

Only interval tiers are returned; point tiers are skipped. Montreal Forced
Aligner writes a "words" and a "phones" interval tier per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from talkedit.errors import TalkeditError

# Strings are double-quoted ("" escapes a quote); "[3]" item indices of the long format are
# skipped; other bare words are numbers, the <exists> flag, or keys (dropped).
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(\[\d*\])|([^\s"=\[\]:]+)')


@dataclass(frozen=True)
class Interval:
    start_s: float
    end_s: float
    text: str


def _tokens(text: str) -> list[str | float]:
    """The values of a TextGrid in order (keys such as 'xmin =' are dropped)."""
    out: list[str | float] = []
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            out.append(m.group(1).replace('""', '"'))
            continue
        if m.group(2) is not None:
            continue
        word = m.group(3)
        try:
            out.append(float(word))
        except ValueError:
            if word == "<exists>":
                out.append(word)
            # other bare words are keys (xmin, intervals, item...): not values
    return out


def parse_textgrid(text: str, source: str | Path = "TextGrid") -> dict[str, list[Interval]]:
    """Interval tiers by name. Works on both Praat text formats: values come in the same order."""
    vals = _tokens(text)
    try:
        if vals[:2] != ["ooTextFile", "TextGrid"]:
            raise ValueError("missing the 'ooTextFile' / 'TextGrid' header")
        pos = 4  # header, xmin, xmax
        if vals[pos] == "<exists>":
            pos += 1
        n_tiers = int(vals[pos])
        pos += 1
        tiers: dict[str, list[Interval]] = {}
        for _ in range(n_tiers):
            kind, name = vals[pos], vals[pos + 1]
            n = int(vals[pos + 4])
            pos += 5
            width = 3 if kind == "IntervalTier" else 2
            if kind == "IntervalTier":
                tiers[str(name)] = [Interval(float(vals[pos + 3 * k]), float(vals[pos + 3 * k + 1]),
                                             str(vals[pos + 3 * k + 2])) for k in range(n)]
            pos += width * n
    except (IndexError, ValueError, TypeError) as exc:
        raise TalkeditError(source, f"is not a readable TextGrid ({exc})",
                            "re-run the aligner that wrote it; the file is truncated or not Praat text") from exc
    return tiers


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    path = Path(path)
    if not path.is_file():
        raise TalkeditError(path, "not found", "check the aligner's output folder")
    raw = path.read_bytes()
    # Praat writes UTF-16 when a label needs it; MFA writes UTF-8.
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    return parse_textgrid(text, path)
