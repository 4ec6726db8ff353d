"""The whole edit's turnaround with the chin warp (``mouth.jaw_warp``) on against off.

    .venv/bin/python benchmarks/jaw_edit_turnaround.py [--edit demo] [--rounds 3] [--label L]
        [--stages plan,audio,render,composite,compare]

Runs the edit's own stages, plan -> audio -> render -> composite (-> compare, the
before/after video `talkedit edit` also makes: --stages) (their entry functions,
as `dvc repro` runs them, the project's params.yaml), in a scratch project (the clip's
inputs and models linked, the edit's spec copied, nothing under data/ written), in one
process, the chin warp off and on alternating per round so that the shared machine's load
hits both alike. Reports each stage's CPU seconds (process time and children's, median over rounds) per
way and the ratio on / off of the whole turnaround: the issue-13 goal is no measurable
regression (within ~1.03x). Only render reads ``jaw_warp``; composite's cost follows the
render's alpha. Writes benchmarks/results/jaw_edit_turnaround.{json,md} under ``--label``.

``--old-decode-baseline`` also runs both ways with the frame reading of main before
session 8's helper 13t2 (talkedit/video.py: a seek decodes every frame up to the wanted
one, and every decoded frame is converted to RGB), in the same rounds, and reports the
turnaround against it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
STAGES = ("plan", "audio", "render", "composite")  # the default; compare may follow


def scratch_project(edit: str) -> Path:
    """A project root with the clip's inputs and models linked, params.yaml and the edit's
    spec copied: the edit's stages write only here."""
    root = Path(tempfile.mkdtemp(prefix="talkedit-jaw-edit-"))
    (root / "data").mkdir()
    for part in ("raw", "interim", "models"):
        os.symlink(REPO / "data" / part, root / "data" / part)
    shutil.copytree(REPO / "data" / "edits" / edit, root / "data" / "edits" / edit)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    return root


def cpu_seconds() -> float:
    """This process's CPU seconds (every thread) and its finished children's (an encoder)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edit", default="demo")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--label", default="current")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="comma-separated edit stages, in order (compare: after composite)")
    ap.add_argument("--old-decode-baseline", action="store_true",
                    help="also time both ways with the old frame reading (see above)")
    args = ap.parse_args()
    stages = tuple(args.stages.split(","))

    from flows.registry import STAGES as SPECS
    from stages.render.interior import MouthParams
    from talkedit import video
    from talkedit.params import load_section

    specs = {s.name: s for s in SPECS if s.name in stages}
    mouth = load_section(MouthParams, REPO)
    ways = {"off": dataclasses.replace(mouth, jaw_warp=False),
            "on": dataclasses.replace(mouth, jaw_warp=True)}
    if args.old_decode_baseline:
        ways |= {f"{way}/old-decode": m for way, m in list(ways.items())}
    new_decode = video._decode_from, video.DecodedFrame

    class EagerDecodedFrame(video.DecodedFrame):
        def __init__(self, frame: object, rotation: int) -> None:
            super().__init__(frame, rotation)
            self.image()  # converted as decoded, whether read or not
    seconds: dict[str, dict[str, list[float]]] = {w: {s: [] for s in stages} for w in ways}
    frames = 0
    root = scratch_project(args.edit)
    try:
        for round_index in range(args.rounds):
            # Every other round in reverse, so that a drift in the machine's load within a
            # round hits every way alike.
            order = list(ways.items())
            for way, mouth_way in order[::-1] if round_index % 2 else order:
                for name in stages:
                    spec = specs[name]
                    sections = {key: load_section(cls, REPO)
                                for key, cls in spec.sections().items()}
                    if "mouth" in sections:
                        sections["mouth"] = mouth_way
                    video._decode_from, video.DecodedFrame = (
                        new_decode if "/" not in way else
                        (lambda container, vs, _: container.decode(vs), EagerDecodedFrame))
                    c0 = cpu_seconds()
                    summary = spec.entry_function()(args.edit, root, **sections)
                    seconds[way][name].append(cpu_seconds() - c0)
                    if name == "render":
                        frames = int(summary["frames"])
    finally:
        video._decode_from, video.DecodedFrame = new_decode
        shutil.rmtree(root, ignore_errors=True)
    median = {w: {s: statistics.median(v) for s, v in per.items()} for w, per in seconds.items()}
    total = {w: sum(per.values()) for w, per in median.items()}
    # The ratio of the whole turnaround, per round too (the rounds' spread shows the noise).
    per_round = [sum(seconds["on"][s][k] for s in stages) / sum(seconds["off"][s][k]
                                                               for s in stages)
                 for k in range(args.rounds)]
    result = {
        "edit": args.edit, "stages": list(stages), "rendered_frames": frames, "rounds": args.rounds,
        "cpu_s": {w: {s: [round(x, 3) for x in v] for s, v in per.items()}
                  for w, per in seconds.items()},
        "cpu_s_median": {w: {s: round(x, 3) for s, x in per.items()}
                         for w, per in median.items()},
        "total_cpu_s": {w: round(x, 3) for w, x in total.items()},
        "ratio_on_off": round(total["on"] / total["off"], 4),
        "ratio_per_round": [round(x, 4) for x in per_round],
        "jaw_ms_per_frame": round(1000 * (median["on"]["render"] - median["off"]["render"])
                                  / max(frames, 1), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.old_decode_baseline:
        result["old_decode"] = {
            "ratio_on_off": round(total["on/old-decode"] / total["off/old-decode"], 4),
            # this code's turnaround / the old frame reading's, per way (< 1: faster)
            "vs_old_decode": {w: round(total[w] / total[f"{w}/old-decode"], 4)
                              for w in ("off", "on")},
            "on_vs_old_decode_off": round(total["on"] / total["off/old-decode"], 4)}
    store = RESULTS / "jaw_edit_turnaround.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[args.label] = result
    store.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    write_report(runs)
    return 0


def write_report(runs: dict[str, dict]) -> None:
    """benchmarks/results/jaw_edit_turnaround.md from every stored run (printed too)."""
    lines = ["# The whole edit's turnaround, chin warp off vs on "
             "(benchmarks/jaw_edit_turnaround.py)", "",
             "CPU seconds (process time and children's, median of alternating rounds) of "
             "the edit's stages (listed) with `mouth.jaw_warp` off and on; the ratio on / off "
             "of their sum (per round in brackets); the render's extra ms per rendered "
             "frame.", "",
             "| label | edit | frames | stages | off: per stage = total (s) | "
             "on: same (s) | on / off | per round | jaw ms/frame | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in runs.items():
        cells, done = [], r.get("stages", list(STAGES))
        for w in ("off", "on"):
            m = r["cpu_s_median"][w]
            cells.append(" / ".join(f"{m[s]:.2f}" for s in done)
                         + f" = {r['total_cpu_s'][w]:.2f}")
        rounds = ", ".join(f"{x:.3f}" for x in r["ratio_per_round"])
        lines.append(f"| {label} | {r['edit']} | {r['rendered_frames']} | {', '.join(done)} | "
                     f"{cells[0]} | "
                     f"{cells[1]} | {r['ratio_on_off']:.3f} | {rounds} | "
                     f"{r['jaw_ms_per_frame']:.1f} | {r['load_average'][0]:.1f} |")
    lines += ["", "Against the old frame reading (`--old-decode-baseline`, same rounds: main "
              "before 13t2's non-reference skip in seeks and lazy RGB in the cursor): the old "
              "on / off, this code's turnaround / the old one per way, and warp on now / warp "
              "off before.", "",
              "| label | old on / off | off now / old | on now / old | on now / off old |",
              "|---|---|---|---|---|"]
    for label, r in runs.items():
        if "old_decode" in r:
            b = r["old_decode"]
            lines.append(f"| {label} | {b['ratio_on_off']:.3f} | {b['vs_old_decode']['off']:.3f} | "
                         f"{b['vs_old_decode']['on']:.3f} | {b['on_vs_old_decode_off']:.3f} |")
    (RESULTS / "jaw_edit_turnaround.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
