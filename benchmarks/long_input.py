"""Long inputs: time and peak memory of extract, align, fit and index on a 30-minute clip.

    nice -n 10 python -m benchmarks.long_input [--minutes 1,30] [--base 3] [--edit] [--keep]

Generating 30 minutes of 1280x720 video with the demo generator takes longer than the
stages themselves, so the long clip is the generator's ``--base``-minute clip (made once
by benchmarks.stress, face 100 px between the eyes) looped: its video packets copied
with shifted timestamps (no re-encode) and its sound re-encoded as one continuous track
of exactly the picture's length, both streamed copy by copy. The transcript is the base
transcript repeated, and the phone truth is shifted copy by copy, so align's error is
measured on the whole long clip. A 1-minute clip from the same generator is the
reference the issue compares memory against.

Each stage runs in a fresh interpreter (under this one's nice); its peak memory is VmHWM of
that process, and, for align, also the largest peak of its worker processes
(RUSAGE_CHILDREN: align spawns one per core for recordings over 150 s); its time both
as wall clock and as CPU seconds (own + workers: on a shared machine the wall clock
measures the neighbours as much as the stage). Writes
benchmarks/results/long_input.md and prints the per-minute cost and memory slope.

``--edit`` goes on to a 5-word edit of each clip, each stage measured the same way: train
(capped: the stress benchmark's TRAIN_BUDGET, 60 steps instead of params.yaml's 1200; its
held-out span is params.yaml's, 35 % of the clip, of which train.eval_frames (1500) are
scored, in evenly spread runs; its training sample is not capped, every usable frame before
the held-out ones is a candidate, their crops in a scratch file read with plain reads;
each stage's peak RssAnon, sampled every 0.1 s, is recorded beside VmHWM), then plan,
audio, render and composite of
EDIT_WORDS (a 5-word replace, in the last copy of a looped clip; composite with x264
``ultrafast``, as the stress benchmark, since its output is not scored). ``--keep`` keeps
each clip's project as the last run left it instead of making it afresh, so
``--stages align,index --edit --keep`` re-measures align and index and adds the edit
without re-running extract and fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd

from benchmarks.common import REPO
from benchmarks.stress import CLIP, LONG_STAGES, TRAIN_BUDGET, WORK, _new_root, long_clip

RESULTS = REPO / "benchmarks" / "results" / "long_input.md"
EDIT = "e5"
# Five written words replaced (three of them changed); the phrase is in every copy of the
# looped clip, so ``occurrence`` picks the last one. Not the middle one: the looped
# transcript is periodic, and plan's diff (difflib, longest matching block first) then
# finds a block shifted by whole copies as long as the true one, and takes it (91 % of the
# words "changed"); real transcripts do not repeat themselves for minutes.
EDIT_WORDS = {"replace": "a family of ducks walked", "with": "a flock of geese marched"}
# (stage, entry, overrides): train and composite capped as the module docstring says;
# train starts afresh (no resume), so a re-run measures the same work
EDIT_STAGES = (("train", "stages.render.train:run_train",
                {"train": {**TRAIN_BUDGET, "resume": False}}),
               ("plan", "stages.plan:run_plan", {}),
               ("audio", "stages.audio.stage:run_audio", {}),
               ("render", "stages.render.render:run_render", {}),
               ("composite", "stages.composite.compose:run_composite",
                {"composite": {"preset": "ultrafast"}}))

# VmHWM also counts the pages of files the stage maps (train's crops are a disk-backed
# memory map), which the kernel may drop; RssAnon, sampled every 0.1 s by a thread, is the
# memory it cannot.
_CHILD = """
import json, resource, threading, time
from pathlib import Path
from benchmarks.stress import call
def status(key):
    return int([ln for ln in open('/proc/self/status') if ln.startswith(key)][0].split()[1])
anon = [0]
def sample():
    while True:
        anon[0] = max(anon[0], status('RssAnon'))
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
out = call({entry!r}, {item!r}, Path({root!r}), **{overrides!r})
own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({{'s': round(time.perf_counter() - t, 1),
                   'cpu_s': round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1),
                   'mb': status('VmHWM') / 1024, 'anon_mb': anon[0] / 1024,
                   'workers_mb': kids.ru_maxrss / 1024}}))
"""


def loop_clip(base: Path, copies: int, fresh: bool = True) -> tuple[Path, int, float]:
    """``copies`` of the base clip back to back, in a new project (``fresh`` false: the
    project as the last run left it): root, frames, seconds."""
    name = f"loop{base.name}x{copies}"
    root = _new_root(name, json.dumps([base.name, copies, 1]), fresh)
    raw, src_raw = root / "data" / "raw", base / "data" / "raw"
    video = raw / f"{CLIP}.mp4"
    if video.is_file():
        with av.open(str(video)) as c:
            frames, fps = c.streams.video[0].frames, float(c.streams.video[0].average_rate)
        return root, frames, frames / fps
    with av.open(str(src_raw / f"{CLIP}.mp4")) as src:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        fps, rate, n_frames = vin.average_rate, ain.codec_context.sample_rate, vin.frames
        copy_s = n_frames / float(fps)
        # The base sound once, cut or padded to exactly the picture's length, so the
        # copies stay in sync and the truth shifts by copy_s per copy.
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in src.decode(ain)])
    want = int(round(copy_s * rate))
    pcm = np.pad(pcm[:want], (0, max(0, want - len(pcm)))).astype(np.float32)
    tmp = raw / f".{CLIP}.part.mp4"
    with av.open(str(tmp), "w") as out:
        with av.open(str(src_raw / f"{CLIP}.mp4")) as src:
            vout = out.add_stream_from_template(src.streams.video[0])
        aout = out.add_stream("aac", rate=rate, bit_rate=128000)
        aout.layout = "mono"
        n_audio = 0
        for k in range(copies):
            with av.open(str(src_raw / f"{CLIP}.mp4")) as src:
                for packet in src.demux(src.streams.video[0]):
                    if packet.dts is None:
                        continue
                    # the template stream's time base is the source's: shift by whole copies
                    shift = int(round(k * copy_s / packet.time_base))
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = vout
                    out.mux(packet)
            for s in range(0, want, 1024):
                frame = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="flt",
                                                   layout="mono")
                frame.sample_rate, frame.pts = rate, n_audio
                n_audio += frame.samples
                out.mux(aout.encode(frame))
        out.mux(aout.encode(None))
    tmp.rename(video)
    text = (src_raw / f"{CLIP}.txt").read_text().strip()
    (raw / f"{CLIP}.txt").write_text(" ".join([text] * copies) + "\n")
    phones = pd.read_parquet(src_raw / f"{CLIP}.truth_phones.parquet")
    n_words = int(phones["word_index"].max()) + 1
    parts = []
    for k in range(copies):
        part = phones.copy()
        part[["start_s", "end_s"]] += k * copy_s
        part["word_index"] = np.where(part["word_index"] >= 0, part["word_index"] + k * n_words,
                                      -1).astype(np.int32)
        parts.append(part)
    pd.concat(parts, ignore_index=True).to_parquet(raw / f"{CLIP}.truth_phones.parquet")
    return root, copies * n_frames, copies * copy_s


def measure(root: Path, stage: str, entry: str, item: str, overrides: dict) -> dict[str, float]:
    """One stage in a fresh interpreter: its wall and CPU seconds and peak memory."""
    code = _CHILD.format(entry=entry, item=item, root=str(root), overrides=overrides)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    if proc.returncode:
        raise RuntimeError(f"{stage} failed on {root}:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(root.name, stage, out, flush=True)
    return out


def run_stages(root: Path, only: set[str] | None = None, kept: dict | None = None
               ) -> dict[str, dict[str, float]]:
    """Each stage's figures; with ``only``, the others are taken from ``kept`` (last run)."""
    out: dict[str, dict[str, float]] = dict(kept or {})
    for stage, entry in LONG_STAGES:
        if only and stage not in only and stage in out:
            continue
        overrides = {"align": {"on_mismatch": "mark"}} if stage == "align" else {}
        out[stage] = measure(root, stage, entry, CLIP, overrides)
    return out


def run_edit(root: Path, occurrence: int, only: set[str] | None = None,
             kept: dict | None = None) -> dict[str, dict[str, float]]:
    """Train the clip's renderer (capped), then make EDIT_WORDS: each stage's figures;
    with ``only``, the others are taken from ``kept`` (last run)."""
    from tests.conftest import write_edit

    write_edit(root, EDIT, {"clip": CLIP, "description": "replace five words",
                            "operations": [{**EDIT_WORDS, "occurrence": occurrence}]})
    out: dict[str, dict[str, float]] = {}
    for stage, entry, overrides in EDIT_STAGES:
        if only and stage not in only and stage in (kept or {}):
            out[stage] = kept[stage]
            continue
        out[stage] = measure(root, stage, entry, CLIP if stage == "train" else EDIT, overrides)
    return out


def align_error(root: Path) -> dict[str, float]:
    from benchmarks.stress import align_errors

    return align_errors(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="1,30", help="clip lengths; the first is the "
                        "reference, generated; longer ones loop the --base clip")
    parser.add_argument("--base", type=float, default=3.0, help="minutes of the looped clip")
    parser.add_argument("--stages", help="re-measure only these stages (comma-separated); "
                        "the others keep their last figures (include extract unless --keep: "
                        "each run makes the clip's project afresh, so the later stages need "
                        "its output)")
    parser.add_argument("--edit", action="store_true", help="then train (capped) and make "
                        "a 5-word edit of each clip, measuring each stage")
    parser.add_argument("--keep", action="store_true", help="keep each clip's project as "
                        "the last run left it (only the stages run now are re-measured)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    minutes = [float(m) for m in args.minutes.split(",")]
    cache = WORK / "long_input.json"
    rows: dict[str, dict] = json.loads(cache.read_text()) if cache.is_file() else {}
    for m in minutes:
        t = time.perf_counter()
        if m <= args.base:
            root, frames = long_clip(m, fresh=not args.keep)
            seconds = frames / 25
            how = "generated"
        else:
            base, _ = long_clip(args.base, fresh=not args.keep)
            with av.open(str(base / "data" / "raw" / f"{CLIP}.mp4")) as c:
                base_s = c.streams.video[0].frames / float(c.streams.video[0].average_rate)
            copies = int(np.ceil(m * 60 / base_s))
            root, frames, seconds = loop_clip(base, copies, fresh=not args.keep)
            how = f"{copies} x the {args.base:g}-min clip"
        made_s = time.perf_counter() - t
        only = set(args.stages.split(",")) if args.stages else None
        stages = run_stages(root, only, rows.get(f"{m:g}", {}).get("stages"))
        last = rows.get(f"{m:g}", {})
        # align's error is measured afresh only when align ran now (the project is new)
        errors = (align_error(root) if only is None or "align" in only else
                  {k: last.get(k) for k in ("phone_mae_ms", "low_conf_words")})
        if args.edit:
            copies = int(how.split()[0]) if how != "generated" else 1
            stages.update(run_edit(root, copies, only,
                                   rows.get(f"{m:g}", {}).get("stages")))
        rows[f"{m:g}"] = {"minutes": round(seconds / 60, 2), "frames": frames, "how": how,
                          "made_s": round(made_s, 1), "stages": stages, **errors}
        cache.write_text(json.dumps(rows, indent=1))
        write_table(rows)


def _cell(stage: dict[str, float], workers: bool = False) -> str:
    extra = f" (+{stage['workers_mb']:.0f} worker)" if workers and stage.get(
        "workers_mb", 0) > 1 else ""
    anon = f" ({stage['anon_mb']:.0f} anon.)" if "anon_mb" in stage else ""
    return f"{stage['mb']:.0f}{anon}{extra} / {stage['s']} ({stage.get('cpu_s', '-')} CPU)"


def write_table(rows: dict[str, dict]) -> None:
    names = [n for n, _ in LONG_STAGES]
    edit_names = [n for n, _, _ in EDIT_STAGES]
    lines = ["# Long inputs: time and peak memory per stage", "",
             "Made by `nice -n 10 python -m benchmarks.long_input` (see its docstring): "
             "1280x720 clips, face 100 px between the eyes, 25 fps; each stage in a fresh "
             "process on 2 shared cores; peak = VmHWM of the stage's process (align: + the "
             "largest worker's peak); time = wall s (CPU s of the stage and its workers).", "",
             "| clip | frames | how made | " + " | ".join(f"{n} peak MB / s" for n in names)
             + " | align phone MAE ms | low-conf. words |",
             "|---|---|---|" + "---|" * len(names) + "---|---|"]
    ordered = sorted(rows.values(), key=lambda r: r["minutes"])
    for r in ordered:
        cells = [_cell(r["stages"][n], workers=n == "align") for n in names]
        lines.append(f"| {r['minutes']:g} min | {r['frames']} | {r['how']} | "
                     + " | ".join(cells) + f" | {r['phone_mae_ms']} | {r['low_conf_words']} |")
    edited = [r for r in ordered if all(n in r["stages"] for n in edit_names)]
    if edited:
        lines += ["", "The 5-word edit (`--edit`): "
                  f"replace \"{EDIT_WORDS['replace']}\" with \"{EDIT_WORDS['with']}\" (in the "
                  f"last copy of a looped clip); train capped at {TRAIN_BUDGET['cpu']['steps']} "
                  "steps (params.yaml: 1200); its held-out span 35 % of the clip, of which "
                  "at most train.eval_frames (1500) are scored, in runs of 250 spread evenly "
                  "(before session 6, scoring all of the 31-min clip's 16,490 took train to "
                  "12118 MB and 408 s); its training sample not capped (crops in a scratch "
                  "file, read with plain reads); composite with x264 ultrafast. "
                  "Peak MB: VmHWM (peak RssAnon sampled every 0.1 s).", "",
                  "| clip | " + " | ".join(f"{n} peak MB / s" for n in edit_names) + " |",
                  "|---|" + "---|" * len(edit_names)]
        for r in edited:
            lines.append(f"| {r['minutes']:g} min | "
                         + " | ".join(_cell(r["stages"][n]) for n in edit_names) + " |")
    if len(ordered) >= 2:
        a, b = ordered[0], ordered[-1]
        dm = b["minutes"] - a["minutes"]
        lines += ["", f"Between {a['minutes']:g} and {b['minutes']:g} min (per extra minute "
                  "of input; peak ratio long / short):", "",
                  "| stage | wall s per min | CPU s per min | MB per min | peak ratio |",
                  "|---|---|---|---|---|"]
        for n in names + edit_names:
            if n not in a["stages"] or n not in b["stages"]:
                continue
            sa, sb = a["stages"][n], b["stages"][n]
            cpu = ((sb.get("cpu_s", np.nan) - sa.get("cpu_s", np.nan)) / dm)
            lines.append(f"| {n} | {(sb['s'] - sa['s']) / dm:.2f} | {cpu:.2f} | "
                         f"{(sb['mb'] - sa['mb']) / dm:.2f} | {sb['mb'] / sa['mb']:.2f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)

if __name__ == "__main__":
    main()
