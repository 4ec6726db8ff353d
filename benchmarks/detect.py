"""Edited-mouth detection (stages/detect) on generated clips: detection and false alarms.

Issue 22's "Must show": unedited clips, talkedit edits, naive cuts and dubs; span-level
ROC AUC per kind and the false-alarm rate on unedited clips at the chosen thresholds.

Two disjoint sets of generated clips (``talkedit demo``'s generator: the astronaut photo
in four variants, four espeak-ng voices, rates 140-168 wpm, head motion and lighting
seeded per clip), with different texts and seeds:

* calibration: clean clips only. ``--calibrate`` fits, per evidence type, a normal (or
  log-normal, for the skewed positive scores) distribution to the clips' highest window
  score and prints the threshold a clean clip passes with probability false_alarm_rate / 5
  (or the highest clean calibration score, when that is higher) (five evidence types, so about
  false_alarm_rate per clip in all): the values params.yaml ``detect:`` holds.
* evaluation: per clip, the clean clip, a naive cut (one word spliced out of video and
  audio, nothing re-rendered) and a dub (the same video with a different take of the
  audio: the same words at another rate, started up to 0.15 s earlier or later); plus
  talkedit's own edits of the demo clip (data/outputs/*.mp4, truth from their plans)
  against the demo clip itself. Nothing here was used to choose a threshold.

talkedit's edits: the bundled one (data/outputs/demo.mp4) and more made in a copy of the
project with ``composite.label: false`` by ``talkedit edit demo --replace OLD --with NEW
--name eN`` for each pair in TALKEDIT_EDITS (``--edits-project`` names that copy).

Every generated case goes through the same decode and H.264 re-encode (CRF 18), so
encoding generations are no cue. Window scores are cached under .tmp/bench/detect/.

    python -m benchmarks.detect --calibrate   # thresholds from the calibration set
    python -m benchmarks.detect               # the evaluation table at params.yaml's thresholds
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from statistics import NormalDist

import av
import cv2
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from benchmarks.common import REPO
from stages.demo import DemoParams, generate_demo
from stages.detect import EVIDENCE, DetectParams, detect_video
from talkedit.artifacts import PLAN, read_parquet
from talkedit.edits import load_spec
from talkedit.espeak import synthesize
from talkedit.params import load_section
from talkedit.video import VideoWriter, open_container

CACHE = REPO / ".tmp" / "bench" / "detect"
FPS, SIZE, CRF = 25, 256, 18
VOICES = ("en-us", "en", "en-us+f3", "en-us+m3")  # en: British English
FACES = ("plain", "mirrored", "warm", "zoom")
SCORES = ("closure", "sync_offset_ms", "sync_gain", "seam", "texture")
# Scores fitted as log-normal (offset added before the log: a clip in perfect sync has a
# 0 ms offset); the others (bounded shares and correlations) as normal.
LOG_NORMAL = {"sync_offset_ms": 1.0, "seam": 0.0, "texture": 0.0}

CALIBRATION_TEXTS = (
    "My brother put the maps in a big brown bag.",
    "Maybe the baby wants more apple pie before bed.",
    "Paul bought a pair of blue boots in Boston.",
    "The members met by the pool every Monday morning.",
    "Bob made a simple plan to paint the barn purple.",
    "Please bring me the brush and a bucket of warm water.",
    "Mary played the piano at the museum for an hour.",
    "A bumpy path brought them back to the camp by noon.",
    "The puppy jumped up and grabbed my mitten.",
    "Bill keeps his bike by the lamp post near the pub.",
    "Pam baked plump muffins with maple butter.",
    "The band performed a number about a broken bridge.",
    "My boss booked a room by the harbor for the team.",
    "People pour milk into a bowl of plain porridge.",
    "Ben spent a month mapping the remote bay.",
    "Some problems become simple when you map them.",
    "The mob of pigeons pecked at the bread by the bench.",
    "Patty hummed a happy tune as she mopped the porch.",
    "A promise made in May must be kept by the members.",
    "Bright beams of moonlight passed the open window.",
)
EVALUATION_TEXTS = (
    "Mom baked a pumpkin pie for the big parade.",
    "The bus stopped by the museum at a quarter past nine.",
    "Bears might be moving back into the empty parks.",
    "Perhaps the map will help me find the bakery.",
    "Maybe Paul will bring popcorn to the movie tonight.",
    "The pilot made a perfect landing in the storm.",
    "My neighbor painted his mailbox bright blue.",
    "Bubbles floated up above the pond in the breeze.",
    "Paper boats drift by the mill pond every summer.",
    "Emma put both bottles back in the cupboard.",
    "The mayor promised better public transport.",
    "A plumber fixed the pipe beneath my bathroom.",
    "Brown bread with butter makes a simple breakfast.",
    "The campers built a bonfire by the pebble beach.",
    "Palm trees sway by the pier at sunset.",
    "Bobby spilled some maple syrup on the map.",
    "Members of the public may bring a picnic.",
    "The piper played a ballad about the empire.",
    "Pebbles bounced off the bumper of my cab.",
    "Mabel brushed her pony before the morning ride.",
)


TALKEDIT_EDITS = (
    ("small research team", "big product group"), ("promising", "remarkable"),
    ("a new sentence", "a brief message"), ("every step", "each part"),
    ("lips that move in time", "lips that match the words"), ("a lot of work", "many problems"),
    ("next week", "next month"), ("the weekly update", "the monthly bulletin"),
    ("the shape of the mouth", "the motion of the lips"), ("a tool", "a program"),
)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # clean | cut | dub | talkedit
    group: str  # calibration | evaluation
    video: Path
    transcript: Path
    truth: tuple[tuple[float, float], ...]  # manipulated time spans (empty: clean)


def face_photo(variant: str) -> Path | None:
    """The astronaut photo in one of four looks (mirrored, warmer, closer)."""
    if variant == "plain":
        return None
    path = CACHE / "faces" / f"{variant}.png"
    if not path.is_file():
        from skimage.data import astronaut

        image = astronaut()
        if variant == "mirrored":
            image = image[:, ::-1]
        elif variant == "warm":
            image = np.clip(image * np.array([1.08, 1.0, 0.86]) + 6, 0, 255).astype(np.uint8)
        elif variant == "zoom":
            image = cv2.resize(image[20:420, 50:450], (512, 512), interpolation=cv2.INTER_CUBIC)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    return path


def decode(video: Path) -> tuple[list[np.ndarray], np.ndarray, int]:
    """All frames (short clips only) and the mono int16 soundtrack at its own rate."""
    with open_container(video) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with open_container(video) as c:
        stream = c.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        pcm = [o.to_ndarray().reshape(-1) for f in c.decode(stream) for o in resampler.resample(f)]
        pcm += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return frames, np.concatenate(pcm).astype(np.int16), rate


def encode(path: Path, frames: list[np.ndarray], audio: np.ndarray, rate: int) -> None:
    n = int(round(len(frames) / FPS * rate))
    audio = np.concatenate([audio, np.zeros(max(0, n - len(audio)), np.int16)])[:n]
    tmp = path.with_suffix(".part.mp4")
    with VideoWriter(tmp, frames[0].shape[1], frames[0].shape[0], FPS, crf=CRF,
                     audio_rate=rate) as out:
        for image in frames:
            out.write(image)
        out.write_audio(audio)
    tmp.replace(path)


def base_clip(group: str, k: int) -> tuple[Path, Path, pd.DataFrame, dict]:
    """A generated clean clip: (video, transcript, truth phones, how it was made)."""
    texts = CALIBRATION_TEXTS if group == "calibration" else EVALUATION_TEXTS
    name = f"{group[:3]}{k:02d}"
    folder = CACHE / "base"
    # past the list's length a text comes back in another voice, face, rate and motion
    turn = k // len(texts)
    recipe = {"text": texts[k % len(texts)], "voice": VOICES[(k + turn) % 4],
              "face": FACES[(k // 4 + turn) % 4], "rate": 140 + 7 * ((k + 2 * turn) % 5),
              "seed": (1 if group == "calibration" else 2) * 1000 + k}
    video = folder / f"{name}.mp4"
    if not video.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        text_file = folder / f"{name}.src.txt"
        text_file.write_text(recipe["text"] + "\n")
        face = face_photo(recipe["face"])
        generate_demo(REPO, DemoParams(name=name, face=str(face) if face else None,
                                       text=str(text_file), voice=recipe["voice"],
                                       rate_wpm=recipe["rate"], seed=recipe["seed"],
                                       size=SIZE, fps=FPS, crf=CRF), out_dir=folder)
    phones = pd.read_parquet(folder / f"{name}.truth_phones.parquet")
    return video, folder / f"{name}.txt", phones, recipe


def make_cases(group: str, count: int, dev_fakes: int = 0, first: int = 0) -> list[Case]:
    """The group's cases; ``dev_fakes``: cuts and dubs of the first calibration clips too,
    to look at while developing (never used to set a threshold, never reported)."""
    cases: list[Case] = []
    out = CACHE / "cases"
    out.mkdir(parents=True, exist_ok=True)
    for k in range(first, first + count):
        video, transcript, phones, recipe = base_clip(group, k)
        name = video.stem
        wanted = {"clean": out / f"{name}-clean.mp4"}
        fakes = group == "evaluation" or k < dev_fakes
        if fakes:
            wanted |= {"cut": out / f"{name}-cut.mp4", "dub": out / f"{name}-dub.mp4"}
        rng = np.random.default_rng(recipe["seed"])
        # the word cut: one in the middle third of the speech, at least 0.15 s long
        words = phones[phones["word_index"] >= 0].groupby("word_index").agg(
            start=("start_s", "min"), end=("end_s", "max"))
        middle = words.iloc[len(words) // 3: max(len(words) // 3 + 1, 2 * len(words) // 3)]
        middle = middle[(middle["end"] - middle["start"]) >= 0.15]
        word = middle.iloc[int(rng.integers(len(middle)))] if len(middle) else words.iloc[1]
        f0, f1 = int(round(word["start"] * FPS)), int(round(word["end"] * FPS))
        # the other take: the same words 8-15 % faster or slower, started up to 0.15 s off
        factor = 1 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.15)
        shift_s = rng.uniform(-0.15, 0.15)
        if any(not p.is_file() for p in wanted.values()):
            frames, audio, rate = decode(video)
            if not wanted["clean"].is_file():
                encode(wanted["clean"], frames, audio, rate)
            if "cut" in wanted and not wanted["cut"].is_file():
                a0, a1 = int(f0 / FPS * rate), int(f1 / FPS * rate)
                encode(wanted["cut"], frames[:f0] + frames[f1:],
                       np.concatenate([audio[:a0], audio[a1:]]), rate)
            if "dub" in wanted and not wanted["dub"].is_file():
                take = synthesize(recipe["text"], voice=recipe["voice"],
                                  rate_wpm=int(round(recipe["rate"] * factor)))
                take_audio = take.samples
                if take.sample_rate != rate:
                    take_audio = av_resample(take_audio, take.sample_rate, rate)
                lead = int((0.5 + shift_s) * rate)
                encode(wanted["dub"], frames,
                       np.concatenate([np.zeros(lead, np.int16), take_audio]), rate)
        speech = (float(words["start"].min()), float(words["end"].max()))
        cases.append(Case(f"{name}-clean", "clean", group, wanted["clean"], transcript, ()))
        if fakes:
            t_cut = f0 / FPS
            cases.append(Case(f"{name}-cut", "cut", group, wanted["cut"], transcript,
                              ((t_cut - 0.02, t_cut + 0.02),)))
            cases.append(Case(f"{name}-dub", "dub", group, wanted["dub"], transcript,
                              (speech,)))
    return cases


def av_resample(pcm: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = np.gcd(rate_in, rate_out)
    return np.clip(resample_poly(pcm.astype(np.float64), rate_out // g, rate_in // g),
                   -32768, 32767).astype(np.int16)


def talkedit_cases(project: Path) -> list[Case]:
    """talkedit's own edits of the demo clip in ``project`` (their watermark and manifest
    unused), and the demo clip itself as their unedited counterpart."""
    cases = []
    raw = project / "data" / "raw" / "demo.mp4"
    if raw.is_file():
        cases.append(Case("demo", "clean", "evaluation", raw, raw.with_suffix(".txt"), ()))
    for video in sorted((project / "data" / "outputs").glob("*.mp4")):
        plan_path = project / "data" / "plans" / video.stem / "plan.parquet"
        if not plan_path.is_file():
            continue
        text = CACHE / "cases" / f"talkedit-{video.stem}.txt"  # what the edited video says
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text(load_spec(video.stem, project).edited_text + "\n")
        plan = read_parquet(plan_path, PLAN)
        edited = plan["edited"].to_numpy(bool)
        times = plan["time_s"].to_numpy(float)
        spans, start = [], None
        for k, flag in enumerate([*edited, False]):
            if flag and start is None:
                start = k
            elif not flag and start is not None:
                spans.append((float(times[start]), float(times[k - 1] + 1 / FPS)))
                start = None
        cases.append(Case(f"talkedit-{video.stem}", "talkedit", "evaluation", video, text,
                          tuple(spans)))
    return cases


def window_scores(case: Case, params: DetectParams) -> pd.DataFrame:
    """The case's raw window scores (cached: they do not depend on the thresholds)."""
    path = CACHE / "scores" / f"{case.name}.parquet"
    if path.is_file() and path.stat().st_mtime >= case.video.stat().st_mtime:
        return pd.read_parquet(path)
    verdict = detect_video(case.video, case.transcript, params)
    windows = verdict.windows[["window", "start_s", "end_s", "sync_lag_ms", "sync_r", *SCORES]]
    path.parent.mkdir(parents=True, exist_ok=True)
    windows.to_parquet(path)
    return windows


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count half)."""
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = rankdata(np.r_[positive, negative])
    u = ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def overlaps(windows: pd.DataFrame, spans: tuple[tuple[float, float], ...]) -> np.ndarray:
    hit = np.zeros(len(windows), bool)
    for a, b in spans:
        hit |= (windows["start_s"].to_numpy() < b) & (windows["end_s"].to_numpy() > a)
    return hit


def calibrate(cases: list[Case], params: DetectParams) -> None:
    z = NormalDist().inv_cdf(1 - params.false_alarm_rate / len(EVIDENCE))
    clip = pd.DataFrame([window_scores(c, params)[list(SCORES)].max() for c in cases])
    print(f"calibration: {len(cases)} clean generated clips; per-clip highest window score, "
          f"(log-)normal fit, z = {z:.2f} (false-alarm rate {params.false_alarm_rate} / "
          f"{len(EVIDENCE)} types)")
    for s in SCORES:
        values = clip[s].dropna()
        if s in LOG_NORMAL:  # positive and right-skewed: a normal fit on the logs
            logs = np.log(values + LOG_NORMAL[s])
            threshold = float(np.exp(logs.mean() + z * logs.std(ddof=1)) - LOG_NORMAL[s])
        else:
            threshold = float(values.mean() + z * values.std(ddof=1))
        # never below the highest clean calibration score: a fit's tail can be too thin
        chosen = max(threshold, float(values.max()))
        print(f"  {s:15s} n={len(values):2d} mean {values.mean():8.3f} sd {values.std(ddof=1):7.3f}"
              f" range {values.min():8.3f}..{values.max():8.3f}  fit {threshold:8.3f}"
              f" -> {s}: {chosen:.3g}")


def evaluate(cases: list[Case], params: DetectParams) -> str:
    thresholds = params.thresholds()
    rows = []
    for case in cases:
        windows = window_scores(case, params)
        ratios = thresholds.ratios(windows)
        score = ratios.max(axis=1, skipna=True).fillna(0.0).to_numpy()
        truth = overlaps(windows, case.truth)
        rows.append({"case": case, "windows": windows, "ratios": ratios, "score": score,
                     "truth": truth})
    clean = [r for r in rows if r["case"].kind == "clean"]
    neg = np.concatenate([r["score"] for r in clean])
    neg_by_type = {k: np.concatenate([r["ratios"][k].fillna(0).to_numpy() for r in clean])
                   for k in EVIDENCE}
    false_alarms = sum(bool((r["score"] > 1).any()) for r in clean)
    lines = [
        f"thresholds (params.yaml detect:): {dataclasses.asdict(thresholds)}",
        "",
        f"unedited clips: {len(clean)}, false alarms {false_alarms} "
        f"({false_alarms / max(1, len(clean)):.0%}); unedited windows {len(neg)}",
        "",
        "| kind | cases | detected (a flagged span on the truth) | flagged anywhere | "
        "span-level AUC | " + " | ".join(f"AUC {k}" for k in EVIDENCE) + " |",
        "|---|---|---|---|---|" + "---|" * len(EVIDENCE),
    ]
    for kind in ("cut", "dub", "talkedit"):
        these = [r for r in rows if r["case"].kind == kind]
        if not these:
            continue
        pos = np.concatenate([r["score"][r["truth"]] for r in these])
        hit = sum(bool((r["score"][r["truth"]] > 1).any()) for r in these)
        anywhere = sum(bool((r["score"] > 1).any()) for r in these)
        per_type = [auc(np.concatenate([r["ratios"][k].fillna(0).to_numpy()[r["truth"]]
                                        for r in these]), neg_by_type[k]) for k in EVIDENCE]
        lines.append(f"| {kind} | {len(these)} | {hit} ({hit / len(these):.0%}) | "
                     f"{anywhere} ({anywhere / len(these):.0%}) | {auc(pos, neg):.3f} | "
                     + " | ".join(f"{a:.3f}" for a in per_type) + " |")
    lines += ["", "per evidence type, share of cases with a window over its threshold on the truth:"]
    for kind in ("clean", "cut", "dub", "talkedit"):
        these = [r for r in rows if r["case"].kind == kind]
        if not these:
            continue
        where = (lambda r: np.ones(len(r["score"]), bool)) if kind == "clean" else \
            (lambda r: r["truth"])
        shares = {k: np.mean([bool((r["ratios"][k].fillna(0).to_numpy()[where(r)] > 1).any())
                              for r in these]) for k in EVIDENCE}
        lines.append(f"  {kind:9s} " + "  ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true",
                        help="print thresholds from the calibration set (clean clips only)")
    parser.add_argument("--clips", type=int, default=20, help="generated evaluation clips")
    parser.add_argument("--calibration-clips", type=int, default=60,
                        help="generated clean calibration clips (the 20 texts, each in 3 "
                             "voices, faces and rates)")
    parser.add_argument("--first", type=int, default=0,
                        help="first evaluation clip: 20 gives a second evaluation set (the "
                             "same texts in other voices, faces, rates and motion)")
    parser.add_argument("--edits-project", type=Path, default=REPO,
                        help="a project whose data/outputs holds talkedit edits of the demo clip")
    args = parser.parse_args(argv)
    params = load_section(DetectParams, REPO)
    if args.calibrate:
        calibrate(make_cases("calibration", args.calibration_clips), params)
        return 0
    cases = (make_cases("evaluation", args.clips, first=args.first)
             + talkedit_cases(args.edits_project))
    print(f"evaluation: {args.clips} generated clips from #{args.first} (texts and seeds "
          f"disjoint from the "
          f"calibration clips'), each clean, cut and dubbed; "
          f"{sum(c.kind == 'talkedit' for c in cases)} talkedit edit(s) of the demo clip")
    print(evaluate(cases, params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
