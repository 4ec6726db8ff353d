"""scenealign stage: every take aligned to the script, line by line.

A take comes with its transcript (what was said, as transcription returns it). The
transcript is force-aligned to the take's audio by the clip aligner (``stages.align``:
word times), and its words are matched to the script's words in order
(``difflib``: longest common subsequence blocks). Each transcript utterance then
belongs to the script line most of its matched words come from; a script line no
utterance belongs to is ``skipped``, one said with fewer than ``said_share`` of its
words is ``partial``, and an utterance matching no line is an ``adlib`` row (line -1).
A take whose words mostly match nothing in the script is from another scene: an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.align import AlignParams, align_audio, normalize_text
from stages.scene.config import DialogueParams
from stages.scene.media import read_audio
from stages.scene.spec import Scene, load_scene
from talkedit.artifacts import SCENE_LINES, SCENE_WORDS, ScenePaths, write_parquet
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)
ALIGN_RATE = 16000


def script_words(scene: Scene) -> tuple[list[str], list[int]]:
    """The script's spoken words in order, and the line of each."""
    words, lines = [], []
    for line in scene.script:
        spoken = [w.text for w in normalize_text(line.text, f"{scene.path} script[{line.index}]")]
        words += spoken
        lines += [line.index] * len(spoken)
    return words, lines


def utterance_of_token(transcript: str) -> list[int]:
    """For each whitespace token of the transcript, the transcript line (utterance) it is on."""
    out = []
    for k, text_line in enumerate(t for t in transcript.splitlines() if t.strip()):
        out += [k] * len(text_line.split())
    return out


def align_take(scene: Scene, take: str, transcript: str, audio_16k: np.ndarray,
               align: AlignParams, dialogue: DialogueParams, where: Path
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lines, words) of one take: SCENE_LINES and SCENE_WORDS rows."""
    if not transcript.strip():
        raise TalkeditError(where, f"take {take!r} has an empty transcript",
                            "write what is said in the take, one utterance a line")
    # A performance may stumble: mismatched words are marked (low_confidence), not fatal.
    words, _ = align_audio(audio_16k, " ".join(transcript.split()),
                           dataclasses.replace(align, on_mismatch="mark"))
    token_utt = utterance_of_token(transcript)
    words["utterance"] = [token_utt[i] for i in words["written_index"]]
    spoken = words["normalized"].str.lower().str.strip(".,!?;:").tolist()
    ref, ref_line = script_words(scene)
    matcher = difflib.SequenceMatcher(a=ref, b=spoken, autojunk=False)
    matched_line = np.full(len(spoken), -1)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            matched_line[block.b + k] = ref_line[block.a + k]
    share = float((matched_line >= 0).mean()) if len(spoken) else 0.0
    if share < dialogue.min_match_share:
        raise TalkeditError(where, f"take {take!r}: only {share:.0%} of its words are in the script "
                            f"of scene {scene.name!r}", "it is a take of another scene (or its "
                            "transcript is wrong): remove it from the scene's takes")
    # Each utterance goes to the line most of its matched words come from.
    words["line"] = -1
    utt_line: dict[int, int] = {}
    for utt, idx in words.groupby("utterance").indices.items():
        hits = matched_line[idx]
        hits = hits[hits >= 0]
        if len(hits) >= 0.5 * len(idx):
            utt_line[int(utt)] = int(np.bincount(hits).argmax())
        words.loc[words.index[idx], "line"] = utt_line.get(int(utt), -1)
    script_count = np.bincount(ref_line, minlength=len(scene.script))
    rows = []
    for line in scene.script:
        mine = words[words["line"] == line.index]
        matched = int(((matched_line == line.index) & (words["line"] == line.index).to_numpy()).sum())
        if mine.empty:
            rows.append((take, line.index, line.character, "skipped", int(script_count[line.index]),
                         0, np.nan, np.nan, ""))
            continue
        status = "said" if matched >= dialogue.said_share * script_count[line.index] else "partial"
        rows.append((take, line.index, line.character, status, int(script_count[line.index]),
                     matched, float(mine["start_s"].min()), float(mine["end_s"].max()),
                     " ".join(mine["word"])))
    for _, group in words[words["line"] < 0].groupby("utterance"):
        rows.append((take, -1, "", "adlib", 0, 0, float(group["start_s"].min()),
                     float(group["end_s"].max()), " ".join(group["word"])))
    lines = pd.DataFrame(rows, columns=SCENE_LINES.names)
    lines = lines.sort_values(["start_s", "line"], na_position="last", kind="stable")
    word_rows = pd.DataFrame({"take": take, "line": words["line"].astype(np.int32),
                              "word": spoken, "start_s": words["start_s"],
                              "end_s": words["end_s"]})
    return lines.reset_index(drop=True), word_rows


def run_scenealign(scene: str, root: Path, align: AlignParams, dialogue: DialogueParams
                   ) -> dict[str, Any]:
    """Align every take of ``scene``; write lines.parquet and words.parquet."""
    spec = load_scene(scene, root)
    paths = ScenePaths.of(scene, root)
    lines, words = [], []
    for take in spec.takes:
        transcript = paths.take_transcript(take).read_text(encoding="utf-8", errors="replace")
        audio = read_audio(paths.take_video(take), ALIGN_RATE)
        take_lines, take_words = align_take(spec, take, transcript, audio, align, dialogue,
                                            paths.take_transcript(take))
        lines.append(take_lines)
        words.append(take_words)
    table = pd.concat(lines, ignore_index=True)
    write_parquet(pd.concat(words, ignore_index=True), SCENE_WORDS, paths.words)
    write_parquet(table, SCENE_LINES, paths.lines)
    status = {take: {s: [int(v) for v in g["line"]] for s, g in group.groupby("status")
                     if s != "said"} for take, group in table.groupby("take", sort=False)}
    summary = {"scene": scene, "takes": len(spec.takes), "lines": len(spec.script),
               "said": int((table["status"] == "said").sum()),
               "not_said": {t: v for t, v in status.items() if v}}
    log.info("aligned scene %s: %d takes x %d lines", scene, len(spec.takes), len(spec.script))
    return summary
