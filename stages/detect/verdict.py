"""Flagged windows -> spans with their evidence, and the readable verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stages.detect.scores import EVIDENCE

if TYPE_CHECKING:
    from stages.detect import DetectParams

DESCRIBE = {
    "closure": "mouth stays open during M/B/P",
    "sync_offset_ms": "audio-visual offset departs from the clip's",
    "pace": "the soundtrack runs at another pace than the mouth",
    "seam": "jump between frames",
    "texture": "mouth region detail differs from the rest of the face",
}


def _detail(kind: str, win: pd.DataFrame, bilabials: list[dict], words: list[str],
            start: float, end: float) -> str:
    if kind == "closure":
        worst = [b for b in bilabials if start <= (b["start_s"] + b["end_s"]) / 2 < end]
        if worst:
            b = max(worst, key=lambda b: b["score"])
            word = words[b["word_index"]] if 0 <= b["word_index"] < len(words) else "?"
            return (f"{b['phone']} in {word!r} at {b['start_s']:.2f} s: open by "
                    f"{b['score']:.2f} of the speaker's range beyond any closing dip")
    if kind == "sync_offset_ms":
        k = win["ratio_sync_offset_ms"].idxmax()
        return f"lag {win.at[k, 'sync_lag_ms']:+.0f} ms (r {win.at[k, 'sync_r']:.2f})"
    if kind == "pace":
        k = win["pace"].idxmax()
        return (f"{win.at[k, 'pace_ratio']:.2f} x the mouth's pace fits "
                f"{win.at[k, 'pace']:.2f} better in r")
    if kind == "seam":
        return f"jump of {win['seam'].max():.1f} robust SD"
    if kind == "texture":
        return f"{win['texture'].max():.1f} robust SD from the clip's level"
    return ""


def flag_spans(windows: pd.DataFrame, bilabials: list[dict], words: list[str]
               ) -> pd.DataFrame:
    """Overlapping flagged windows merged into spans; each span lists its evidence (most
    decisive first) and a one-line detail for each."""
    rows: list[dict[str, Any]] = []
    flagged = windows[windows["flagged"]].sort_values("start_s")
    groups: list[list[int]] = []
    last_end = -np.inf
    for k, row in flagged.iterrows():
        if groups and row["start_s"] <= last_end + 1e-9:
            groups[-1].append(k)
            last_end = max(last_end, row["end_s"])
        else:
            groups.append([k])
            last_end = row["end_s"]
    for i, group in enumerate(groups):
        win = windows.loc[group]
        start, end = float(win["start_s"].min()), float(win["end_s"].max())
        peak = {kind: float(win[f"ratio_{kind}"].max()) for kind in EVIDENCE}
        kinds = sorted((k for k in EVIDENCE if peak[k] > 1.0), key=lambda k: -peak[k])
        rows.append({"span": i, "start_s": start, "end_s": end, "evidence": ",".join(kinds),
                     "score": float(win["score"].max()),
                     "detail": "; ".join(f"{DESCRIBE[k]}: {_detail(k, win, bilabials, words, start, end)}"
                                         for k in kinds)})
    return pd.DataFrame(rows, columns=["span", "start_s", "end_s", "evidence", "score",
                                       "detail"])


@dataclass(frozen=True)
class Verdict:
    name: str
    duration_s: float
    has_audio: bool
    spans: pd.DataFrame
    windows: pd.DataFrame
    params: DetectParams

    @property
    def manipulated(self) -> bool:
        return len(self.spans) > 0

    @property
    def exit_code(self) -> int:
        """0: manipulation found; 1: none found (2, bad input, never reaches a verdict)."""
        return 0 if self.manipulated else 1

    def checks(self) -> list[str]:
        done = ["seams", "mouth texture"]
        if self.has_audio:
            done = ["bilabial closure", "audio-visual sync", *done]
        return done

    def render(self) -> str:
        head = (f"{self.name}: {'MANIPULATION FOUND' if self.manipulated else 'no manipulation found'}"
                f" ({len(self.spans)} span(s) in {self.duration_s:.1f} s; checks: "
                f"{', '.join(self.checks())}"
                f"{'' if self.has_audio else '; no audio track: visual checks only'})")
        lines = [head]
        for row in self.spans.itertuples():
            lines.append(f"  {row.start_s:6.2f}-{row.end_s:6.2f} s  score {row.score:.2f}  "
                         f"{row.detail}")
        lines.append(f"  (thresholds calibrated on generated clean clips for a "
                     f"{self.params.false_alarm_rate:.0%} false-alarm rate per clip; "
                     "watermarks and manifests are not consulted)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.name, "manipulated": self.manipulated,
            "duration_s": round(self.duration_s, 3), "has_audio": self.has_audio,
            "checks": self.checks(), "false_alarm_rate": self.params.false_alarm_rate,
            "spans": [{"start_s": round(r.start_s, 3), "end_s": round(r.end_s, 3),
                       "evidence": r.evidence.split(","), "score": round(r.score, 3),
                       "detail": r.detail} for r in self.spans.itertuples()],
            "max_window_score": round(float(self.windows["score"].max()), 3)
            if len(self.windows) else 0.0,
        }
