"""scenecut stage: choose the cut by dynamic programming over lines x takes, write the EDL.

Each script line is played from one take that said it (its ``Option``). The cost of a
cut is the weighted sum of the idioms' costs (stages/scene/idioms.py): per line, per
cut between takes, per finished shot. The state of the search is (take, lines the
current shot has run, capped at ``RUN_CAP``), so a shot's length is known when it ends;
the search is exact for that state (Viterbi), lines x (takes x RUN_CAP)^2 steps.

Cuts fall between lines: a shot of take t over lines i..j plays t from line i's start
to line j's end, each widened by up to ``pad_s`` into the pauses (never past the middle
of the pause to the take's next or previous utterance). Written to
data/outputs/scenes/<scene>/: cut.parquet (SCENE_CUT), cut.md (readable) and cut.otio
(OpenTimelineIO: one video and one audio track of the takes' source ranges). With
``scenecut.j_cut_s`` the sound crosses each cut before (J-cut) or after (L-cut) the picture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.scene.config import DialogueParams
from stages.scene.idioms import Idiom, Option, build_idioms
from stages.scene.media import video_info
from stages.scene.spec import Scene, load_scene
from talkedit.artifacts import (
    SCENE_CUT,
    SCENE_LABELS,
    SCENE_LINES,
    ScenePaths,
    read_parquet,
    write_parquet,
)
from talkedit.atomic import write_text
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param

log = logging.getLogger(__name__)
RUN_CAP = 4  # lines a shot is tracked for; longer shots count as this long (idioms judge <= it)


@dataclass(frozen=True)
class SceneCutParams(Section):
    """The ``scenecut:`` section of params.yaml: how the chosen cut plays (scenecut only)."""

    SECTION = "scenecut"

    j_cut_s: float = 0.0  # each shot's sound starts this much before its picture (J-cut); < 0: after it (L-cut)

    def check(self, where: str) -> None:
        if abs(self.j_cut_s) > 1.0:
            raise bad_param(where, "j_cut_s", f"is {self.j_cut_s}: at most 1 s either way",
                            "use 0 (straight cuts) or e.g. 0.2")


@dataclass(frozen=True)
class TakeTiming:
    fps: float
    frames: int


def padded_spans(lines: pd.DataFrame, durations: dict[str, float], pad_s: float
                 ) -> dict[tuple[str, int], tuple[float, float]]:
    """(take, line) -> (in_s, out_s): the line widened into the pauses around it."""
    out = {}
    for take, group in lines[lines["status"] != "skipped"].groupby("take"):
        group = group.sort_values("start_s")
        starts, ends = group["start_s"].to_numpy(), group["end_s"].to_numpy()
        for k, row in enumerate(group.itertuples()):
            if row.line < 0:
                continue
            lo = (ends[k - 1] + starts[k]) / 2 if k else 0.0
            hi = (ends[k] + starts[k + 1]) / 2 if k + 1 < len(group) else durations[take]
            out[take, int(row.line)] = (max(row.start_s - pad_s, lo), min(row.end_s + pad_s, hi))
    return out


def line_options(scene: Scene, labels: pd.DataFrame,
                 spans: dict[tuple[str, int], tuple[float, float]]) -> list[list[Option]]:
    """Every take's version of every script line; a line no take says is an error."""
    options = []
    n = len(scene.script)
    for line in scene.script:
        rows = labels[labels["line"] == line.index]
        if rows.empty:
            raise TalkeditError(f"{scene.path} script[{line.index}]",
                                f"line {line.index} ({line.character}: {line.text!r}) is said in "
                                "no take", "add a take that says it, or remove it from the script")
        tempo = rows["tempo_wps"].to_numpy()
        spread = float(tempo.max() - tempo.min())
        options.append([Option(
            take=r.take, line=line.index, character=line.character, setup=r.setup, shot=r.shot,
            visible=tuple(v for v in r.visible.split(",") if v), speaker=r.speaker,
            tempo_wps=float(r.tempo_wps),
            tempo_rank=float((r.tempo_wps - tempo.min()) / spread) if spread > 0 else 0.5,
            position=line.index / max(n - 1, 1),
            in_s=spans[r.take, line.index][0], out_s=spans[r.take, line.index][1])
            for r in rows.itertuples()])
    return options


def choose_cut(options: list[list[Option]], idioms: list[Idiom]) -> tuple[list[Option], float]:
    """The cheapest sequence of options (one per line) and its total cost."""
    line_costs = [np.array([sum(i.weight * i.line_cost(o) for i in idioms) for o in opts])
                  for opts in options]
    n = len(options)
    # cost[j, r]: best cost with line i played by option j, its shot r+1 lines long so far.
    cost = np.full((len(options[0]), RUN_CAP), np.inf)
    cost[:, 0] = line_costs[0]
    back: list[np.ndarray] = []
    for i in range(1, n):
        prev, here = options[i - 1], options[i]
        take_of_prev = {o.take: j for j, o in enumerate(prev)}
        new = np.full((len(here), RUN_CAP), np.inf)
        ptr = np.zeros((len(here), RUN_CAP, 2), dtype=np.int64)
        # Shot-end cost of leaving (j', r'): the shot's duration is known from the state.
        end_cost = np.array([[_shot_end(options, i - 1, jp, rp, idioms) for rp in range(RUN_CAP)]
                             for jp in range(len(prev))])
        for j, o in enumerate(here):
            # Stay in the same take: no cut.
            jp = take_of_prev.get(o.take)
            if jp is not None:
                for rp in range(RUN_CAP):
                    r = min(rp + 1, RUN_CAP - 1)
                    if cost[jp, rp] < new[j, r]:
                        new[j, r], ptr[j, r] = cost[jp, rp], (jp, rp)
            # Cut from another take.
            for jp, p in enumerate(prev):
                if p.take == o.take:
                    continue
                step = sum(i.weight * i.cut_cost(p, o) for i in idioms)
                rp = int(np.argmin(cost[jp] + end_cost[jp]))
                total = cost[jp, rp] + end_cost[jp, rp] + step
                if total < new[j, 0]:
                    new[j, 0], ptr[j, 0] = total, (jp, rp)
        new += line_costs[i][:, None]
        cost = new
        back.append(ptr)
    final = cost + np.array([[_shot_end(options, n - 1, j, r, idioms) for r in range(RUN_CAP)]
                             for j in range(len(options[-1]))])
    j, r = np.unravel_index(int(np.argmin(final)), final.shape)
    best = float(final[j, r])
    path = [int(j)]
    for ptr in reversed(back):
        j, r = ptr[j, r]
        path.append(int(j))
    path.reverse()
    return [options[i][j] for i, j in enumerate(path)], best


def _shot_end(options: list[list[Option]], i: int, j: int, r: int, idioms: list[Idiom]) -> float:
    """Cost of a shot that ends at line i on option j, having run r+1 lines."""
    last = options[i][j]
    first_line = i - r
    first = next((o for o in options[first_line] if o.take == last.take), None)
    if first is None:  # an impossible state (that take did not say the first line)
        return np.inf
    duration = last.out_s - first.in_s
    return sum(idiom.weight * idiom.shot_cost(duration) for idiom in idioms)


def shots_of(path: list[Option], idioms: list[Idiom], timings: dict[str, TakeTiming],
             j_cut_frames: int = 0) -> pd.DataFrame:
    """The cut list: consecutive lines from one take make one shot, with what it cost.

    At each cut the sound switches ``j_cut_frames`` before the picture (J-cut; negative:
    after it, an L-cut), as far as the takes have sound to give there."""
    runs: list[list[Option]] = []
    for option in path:
        if runs and runs[-1][-1].take == option.take:
            runs[-1].append(option)
        else:
            runs.append([option])
    rows, record = [], 0
    for k, members in enumerate(runs):
        first, last = members[0], members[-1]
        timing = timings[first.take]
        source_in, source_out = _frame(first.in_s, timing), _frame(last.out_s, timing)
        costs = {}
        for i in idioms:
            c = sum(i.line_cost(o) for o in members) + i.shot_cost(last.out_s - first.in_s)
            if k:
                c += i.cut_cost(runs[k - 1][-1], first)
            costs[i.name] = i.weight * c
        rows.append((k, first.line, last.line, first.take, first.setup, source_in, source_out,
                     record, record + source_out - source_in, sum(costs.values()),
                     ",".join(name for name, c in costs.items() if c > 0)))
        record += source_out - source_in
    table = pd.DataFrame(rows, columns=[n for n in SCENE_CUT.names if not n.startswith("audio_")])
    table["audio_in"], table["audio_out"] = table["source_in"], table["source_out"]
    for k in range(1, len(table)):
        before, after = table.index[k - 1], table.index[k]
        frames_before = timings[table.at[before, "take"]].frames
        # The sound of `after` starts j early from its own take; that of `before` ends j early.
        j = int(np.clip(j_cut_frames, -(frames_before - table.at[before, "source_out"]),
                        table.at[after, "source_in"]))
        j = int(np.clip(j, -(table.at[after, "audio_out"] - table.at[after, "audio_in"] - 1),
                        table.at[before, "audio_out"] - table.at[before, "audio_in"] - 1))
        table.loc[after, "audio_in"] -= j
        table.loc[before, "audio_out"] -= j
    return table[SCENE_CUT.names]


def _frame(seconds: float, timing: TakeTiming) -> int:
    return int(min(max(round(seconds * timing.fps), 0), timing.frames))


def cut_markdown(scene: Scene, cut: pd.DataFrame, idioms: list[Idiom], cost: float,
                 fps: float) -> str:
    weights = ", ".join(f"{i.name} {i.weight:g}" for i in idioms) or "none"
    out = [f"# Cut of scene {scene.name}", "", f"Idioms: {weights}. Total cost {cost:.3f}.", "",
           "| shot | lines | take | setup | source frames | scene time | idioms that cost |",
           "|---|---|---|---|---|---|---|"]
    for r in cut.itertuples():
        lines = f"{r.first_line}" if r.first_line == r.last_line else f"{r.first_line}-{r.last_line}"
        out.append(f"| {r.shot} | {lines} | {r.take} | {r.setup} | {r.source_in}-{r.source_out} | "
                   f"{r.record_in / fps:.2f}-{r.record_out / fps:.2f} s | {r.reasons or '-'} |")
    out += ["", "| line | character | text |", "|---|---|---|"]
    out += [f"| {line.index} | {line.character} | {line.text} |" for line in scene.script]
    return "\n".join(out) + "\n"


def cut_timeline(scene: Scene, cut: pd.DataFrame, fps: float, take_paths: dict[str, Path],
                 frames: dict[str, int]) -> Any:
    """The cut as an OpenTimelineIO timeline: a video and an audio track of source ranges."""
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name=scene.name)
    timeline.global_start_time = otio.opentime.RationalTime(0, fps)
    for kind in (otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio):
        track = otio.schema.Track(name=kind, kind=kind)
        start, end = ("source_in", "source_out") if kind == otio.schema.TrackKind.Video \
            else ("audio_in", "audio_out")
        for r in cut.itertuples():
            first, last = getattr(r, start), getattr(r, end)
            media = otio.schema.ExternalReference(
                target_url=take_paths[r.take].as_posix(),
                available_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, fps),
                    otio.opentime.RationalTime(frames[r.take], fps)))
            track.append(otio.schema.Clip(
                name=f"{r.take} lines {r.first_line}-{r.last_line}", media_reference=media,
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(first, fps),
                    otio.opentime.RationalTime(last - first, fps)),
                metadata={"talkedit": {"shot": int(r.shot), "take": r.take, "setup": r.setup,
                                       "first_line": int(r.first_line),
                                       "last_line": int(r.last_line)}}))
        timeline.tracks.append(track)
    return timeline


def run_scenecut(scene: str, root: Path, dialogue: DialogueParams, scenecut: SceneCutParams
                 ) -> dict[str, Any]:
    """Choose the cut from the labels and the scene's idioms; write cut.parquet/.md/.otio."""
    import opentimelineio as otio

    spec = load_scene(scene, root)
    paths = ScenePaths.of(scene, root)
    idioms = build_idioms(spec.idioms, spec.path)
    for i in idioms:
        character = i.settings.get("character")
        if character is not None and character not in spec.names:
            raise TalkeditError(f"{spec.path} idioms.{i.name}.character",
                                f"names {character!r}, not a character of the scene",
                                f"use one of {', '.join(spec.names)}")
    labels = read_parquet(paths.labels, SCENE_LABELS, stage_hint=f"scenelabel@{scene}")
    lines = read_parquet(paths.lines, SCENE_LINES, stage_hint=f"scenealign@{scene}")
    timings = {}
    for take in spec.takes:
        fps, frames, _, _ = video_info(paths.take_video(take))
        timings[take] = TakeTiming(fps, frames)
    rates = {round(t.fps, 3) for t in timings.values()}
    if len(rates) != 1:
        raise TalkeditError(paths.takes_dir, f"takes have different frame rates {sorted(rates)}",
                            "conform the takes to one frame rate")
    fps = next(iter(timings.values())).fps
    spans = padded_spans(lines, {t: v.frames / v.fps for t, v in timings.items()}, dialogue.pad_s)
    options = line_options(spec, labels, spans)
    path, cost = choose_cut(options, idioms)
    cut = shots_of(path, idioms, timings, int(round(scenecut.j_cut_s * fps)))
    write_parquet(cut, SCENE_CUT, paths.cut)
    write_text(paths.cut_markdown, cut_markdown(spec, cut, idioms, cost, fps))
    take_paths = {t: Path("..", "..", "..", "scenes", scene, f"{t}.mp4") for t in spec.takes}
    timeline = cut_timeline(spec, cut, fps, take_paths, {t: v.frames for t, v in timings.items()})
    write_text(paths.otio, otio.adapters.write_to_string(timeline, "otio_json"))
    return {"scene": scene, "shots": len(cut), "cost": round(cost, 4),
            "j_cut_frames": int((cut["source_in"] - cut["audio_in"]).abs().max()),
            "takes_used": sorted(cut["take"].unique().tolist()),
            "frames": int(cut["record_out"].iloc[-1]), "idioms": [i.name for i in idioms]}
