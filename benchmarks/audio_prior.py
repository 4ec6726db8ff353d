"""The clip's audio model as a prior for the new words' mouth: how far to blend it in?

    .venv/bin/python benchmarks/audio_prior.py --work DIR [--heldout SHARE]

``plan.audio_share`` moves the searched (and co-articulated) expression of the new words a
share of the way to lipmodel@<clip>'s prediction from their sound (1 = ``mouth_motion:
audio``). The share is chosen on development data only, scored by the plan's own mouth
opening (before rendering) against the generator's true jaw:

* the development pairs (stages.demo.pairs.DEV_CASES, never the scored ones): each case
  clip's lip model trained as the lipmodel stage does (its last 35% held out), the pair's
  edit planned with the search and with the audio model; opening r per new segment by
  the yardstick's expression map (stages.evaluate.edit_truth.OpeningMeasure) against the
  truth clip's jaw through the phones (as score_pair's ``plan_opening_r``);
* the demo's development sentences 0-3, each re-created as the evaluate stage does, with
  a lip model (tcn, the kind lipmodel@demo keeps) trained on the clip's training share
  (the frames before the held-out tail) WITHOUT that sentence and its margin: the demo's
  own lip model was trained on them. Opening r by the same map, fitted on the training
  share's frames.

Blends are linear in the expression, so each share is scored from the two plans. The lip
models are trained once per --work (reused after). ``--heldout SHARE`` then plans the
evaluate's held-out sentences (4-5) with lipmodel@demo (never trained on them: its
held-out tail is the renderer's) at share 0 and SHARE: one look, after the choice.
Writes benchmarks/results/audio_prior.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
DEV_SENTENCES = (0, 1, 2, 3)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@dataclasses.dataclass
class Scored:
    """Plan openings (search, audio) and the truth's jaw over the rows of one new segment."""

    name: str
    search: np.ndarray
    audio: np.ndarray
    truth: np.ndarray

    def r(self, share: float) -> float:
        return pearson(self.search + share * (self.audio - self.search), self.truth)


def plan_both(edit: str, root: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """The edit's plan (search), its expression and the audio model's for it (share 1)."""
    from stages.align import AlignParams
    from stages.audio.config import AudioParams
    from stages.lipsync.edit_mouth import audio_mouth
    from stages.plan import PlanParams, plan_edit
    from talkedit.params import load_section

    opts = load_section(PlanParams, REPO)
    result = plan_edit(edit, root, opts, load_section(AlignParams, REPO),
                       load_section(AudioParams, REPO))
    n = len(result.frames)
    search = result.frames.rows(0, n).expression.astype(np.float64).copy()
    audio_mouth(result, root, load_section(AudioParams, REPO), opts.blend_ms / 1000)
    return result, search, result.frames.rows(0, n).expression.astype(np.float64)


@dataclasses.dataclass
class PairTruth:
    """A development pair's planned edit lined up with the truth of its new words."""

    measure: Any  # OpeningMeasure calibrated on the clip's fitted frames against its true jaw
    segments: Any  # the plan's segments (DataFrame)
    t_out: np.ndarray  # (n,) output frame times
    t_truth: np.ndarray  # (n,) the same moments on the truth clip's clock
    truth_phones: Any  # the truth clip's phones (DataFrame)
    truth: np.ndarray  # (n,) true jaw opening at t_truth

    def new_segments(self) -> list[tuple[str, np.ndarray]]:
        """(words, output-frame mask) of each new-words segment."""
        new = self.segments[self.segments["kind"] == "new"]
        return [(seg.words, (self.t_out >= seg.out_start_s - 1e-9) & (self.t_out <= seg.out_end_s))
                for seg in new.itertuples()]


def pair_truth(name: str, work: Path, result: Any, n_frames: int) -> PairTruth:
    """Line up ``result`` (pair ``name``'s plan, ``n_frames`` output frames) with the pair's
    truth clip through their phones, with the opening measure validated on the clip."""
    import pandas as pd

    from stages.evaluate.edit_truth import OpeningMeasure, output_phones, time_map, truth_jaw
    from stages.fit import load_fit
    from stages.plan.report import new_phone_rows, segment_columns
    from talkedit.artifacts import TRUTH_FRAMES, ClipPaths, column_array, read_parquet

    model, table = load_fit(name, work)
    paths = ClipPaths.of(name, work)
    src = read_parquet(paths.truth_frames, TRUTH_FRAMES)
    m, fps = len(table), result.fps
    jaw = np.interp(np.arange(m) / fps, src["time_s"], src["jaw_open"])
    measure = OpeningMeasure.calibrate(model, column_array(table, "expression"),
                                       column_array(table, "landmarks_2d").reshape(m, -1, 2),
                                       jaw)
    segments = pd.DataFrame(segment_columns(result))
    phones = output_phones(segments, pd.DataFrame(new_phone_rows(result)),
                           pd.read_parquet(paths.truth_phones))
    truth_phones = pd.read_parquet(work / "truth" / f"{name}.truth_phones.parquet")
    k_out, k_truth = time_map(phones, truth_phones)
    t_out = np.arange(n_frames) / fps
    t_truth = np.interp(t_out, k_out, k_truth)
    return PairTruth(measure, segments, t_out, t_truth, truth_phones,
                     truth_jaw(truth_phones, t_truth))


def dev_pairs(work: Path) -> list[Scored]:
    from benchmarks.edit_mouth import train_lipmodel
    from benchmarks.edit_quality import prepare_clip, write_spec
    from stages.demo.pairs import DEV_CASES

    out = []
    for case in DEV_CASES:
        prepare_clip(case, work, 0, train=False)
        train_lipmodel(case.name, work)
        write_spec(case, work)
        result, search, audio = plan_both(case.name, work)
        pair = pair_truth(case.name, work, result, len(search))
        for words, rows in pair.new_segments():
            out.append(Scored(f"{case.name}: {words}", pair.measure(search[rows]),
                              pair.measure(audio[rows]), pair.truth[rows]))
            print(out[-1].name, round(out[-1].r(0), 3), round(out[-1].r(1), 3), flush=True)
    return out


@dataclasses.dataclass
class Demo:
    """The demo clip's fit, truth and opening map (fitted on the training share only)."""

    root: Path
    expression: np.ndarray
    fps: float
    share: int  # first frame of the held-out tail
    measure: Any

    @classmethod
    def load(cls) -> Demo:
        from stages.evaluate.edit_truth import OpeningMeasure
        from stages.fit import load_fit
        from stages.lipsync import LipModelParams
        from stages.lipsync.train import split
        from talkedit.artifacts import (
            TRUTH_FRAMES,
            ClipPaths,
            VideoMeta,
            column_array,
            read_parquet,
        )
        from talkedit.params import load_section

        person, table = load_fit("demo", REPO)
        expression = column_array(table, "expression").astype(np.float64)
        paths = ClipPaths.of("demo", REPO)
        n, fps = len(expression), VideoMeta.read(paths).fps
        share = split(n, load_section(LipModelParams, REPO), "demo")[1].stop
        truth = read_parquet(paths.truth_frames, TRUTH_FRAMES)
        jaw = np.interp(np.arange(n) / fps, truth["time_s"], truth["jaw_open"])
        landmarks = column_array(table, "landmarks_2d").reshape(n, -1, 2)
        return cls(REPO, expression, fps, share,
                   OpeningMeasure.calibrate(person, expression[:share], landmarks[:share],
                                            jaw[:share]))

    def scored(self, held: Any, root: Path) -> Scored:
        """``held`` re-created in ``root`` as the evaluate does, both plans scored."""
        import pandas as pd

        from stages.evaluate.holdout import clip_phones, time_map, write_spec
        from stages.plan.report import new_phone_rows
        from talkedit.artifacts import TRUTH_FRAMES, ClipPaths, read_parquet

        name = write_spec(held, "demo", root)
        result, search, audio = plan_both(name, root)
        t_new, t_real = time_map(held, pd.DataFrame(new_phone_rows(result)),
                                 clip_phones("demo", REPO))
        t = np.arange(len(search)) / self.fps
        inside = (t >= t_new[0]) & (t <= t_new[-1])
        truth = read_parquet(ClipPaths.of("demo", REPO).truth_frames, TRUTH_FRAMES)
        jaw = np.interp(np.interp(t[inside], t_new, t_real), truth["time_s"], truth["jaw_open"])
        return Scored(f"demo sentence {held.sentence}", self.measure(search[inside]),
                      self.measure(audio[inside]), jaw)


def linked_root(root: Path) -> Path:
    """A project root whose demo inputs and fit link to the repository's."""
    for part in ("data/raw/demo.mp4", "data/raw/demo.txt", "data/raw/demo.truth_frames.parquet",
                 "data/raw/demo.truth_phones.parquet", "data/interim/demo"):
        dst = root / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.symlink(REPO / part, dst)
    return root


def fold_model(demo: Demo, held: Any, root: Path) -> None:
    """lipmodel@demo as the stage trains it (tcn), on the training share without ``held``."""
    from stages.fit import load_fit
    from stages.lipsync import LipModelParams
    from stages.lipsync.features import frame_features, read_clip_wav
    from stages.lipsync.model import LipModel
    from stages.lipsync.train import clip_speech, feature_config, fit_networks, net_config
    from talkedit.artifacts import ClipPaths, LipModelPaths
    from talkedit.params import load_section

    path = LipModelPaths.of("demo", root).model
    if path.is_file():
        return
    opts = load_section(LipModelParams, REPO)
    person, _ = load_fit("demo", REPO)
    a = int(np.floor(held.exclude[0] * demo.fps))
    b = int(np.ceil(held.exclude[1] * demo.fps)) + 1
    parts = [s for s in (slice(0, a), slice(b, demo.share)) if s.stop - s.start >= opts.window]
    total = sum(s.stop - s.start for s in parts)
    cut = parts[-1].stop - int(round(total * opts.validation_share))  # as the stage: the end picks
    train, val = [*parts[:-1], slice(parts[-1].start, cut)], slice(cut, parts[-1].stop)
    samples = read_clip_wav(ClipPaths.of("demo", REPO).audio)
    cfg = feature_config(opts)
    feats = frame_features(samples, len(demo.expression), demo.fps, cfg)
    nets = fit_networks(samples, demo.fps, demo.expression, person, train, (feats[val], val),
                        opts, clip_speech("demo", REPO), ("tcn",))
    path.parent.mkdir(parents=True, exist_ok=True)
    LipModel(nets.runs["tcn"].net, net_config("tcn", opts, cfg.dim, opts.ensemble), cfg,
             nets.mean, nets.std, demo.expression.shape[1],
             {"clip": "demo", "fps": repr(float(demo.fps)),
              "trained_on": [[s.start, s.stop] for s in train]}, nets.voice).save(path)


def demo_sentences(work: Path, demo: Demo) -> list[Scored]:
    from stages.evaluate.holdout import clip_sentences

    sentences = {h.sentence: h for h in clip_sentences("demo", REPO, 0.05)}
    out = []
    for k in DEV_SENTENCES:
        held = sentences[k]
        assert held.exclude[0] * demo.fps < demo.share, "a development sentence lies in the tail"
        root = linked_root(work / "demo" / f"fold{k}")
        fold_model(demo, held, root)
        out.append(demo.scored(held, root))
        print(out[-1].name, round(out[-1].r(0), 3), round(out[-1].r(1), 3), flush=True)
    return out


def heldout(work: Path, demo: Demo) -> list[Scored]:
    """The evaluate's held-out sentences with lipmodel@demo (trained on none of them)."""
    from stages.evaluate.holdout import clip_sentences
    from talkedit.artifacts import LipModelPaths

    root = linked_root(work / "demo" / "heldout")
    mine = LipModelPaths.of("demo", root).dir
    if not mine.exists():
        mine.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(LipModelPaths.of("demo", REPO).dir, mine)
    evaluated = json.loads((REPO / "data/metrics/demo/evaluate.json").read_text())["sentences"]
    sentences = {h.sentence: h for h in clip_sentences("demo", REPO, 0.05)}
    out = []
    for k in evaluated:
        assert sentences[k].exclude[0] * demo.fps >= demo.share, "not in the held-out tail"
        out.append(demo.scored(sentences[k], root))
    return out


def table(title: str, rows: list[Scored], shares: tuple[float, ...]) -> list[str]:
    lines = [f"### {title}", "", "| | " + " | ".join(f"{s:g}" for s in shares) + " |",
             "|---|" + "---|" * len(shares)]
    for row in rows:
        lines.append(f"| {row.name} | " + " | ".join(f"{row.r(s):.3f}" for s in shares) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{np.mean([x.r(s) for x in rows]):.4f}**"
                                            for s in shares) + " |")
    return [*lines, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/talkedit-bench-audio-prior"))
    ap.add_argument("--heldout", type=float, default=None,
                    help="then score the evaluate's held-out sentences at share 0 and this")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    demo = Demo.load()
    pairs = dev_pairs(args.work / "dev")
    sentences = demo_sentences(args.work, demo)
    mean = {s: (np.mean([x.r(s) for x in pairs]), np.mean([x.r(s) for x in sentences]))
            for s in SHARES}
    lines = ["# The audio model as a prior for the new words' opening (benchmarks/audio_prior.py)",
             "", "Plan opening r (before rendering) against the true jaw inside the new words, "
             "by share of the way to the audio model's expression (0 = search, 1 = "
             "mouth_motion: audio). Development data only; see the script's docstring.", "",
             *table("Development pairs (each clip's own lip model, last 35% held out)", pairs,
                    SHARES),
             *table("Demo development sentences (lip model trained without the sentence)",
                    sentences, SHARES),
             "Best share: pairs " + f"{max(SHARES, key=lambda s: mean[s][0]):g}, demo sentences "
             + f"{max(SHARES, key=lambda s: mean[s][1]):g}.", ""]
    record: dict[str, Any] = {
        "pairs": {x.name: {f"{s:g}": round(x.r(s), 4) for s in SHARES} for x in pairs},
        "demo_sentences": {x.name: {f"{s:g}": round(x.r(s), 4) for s in SHARES}
                           for x in sentences}}
    if args.heldout is not None:
        shares = (0.0, args.heldout)
        held = heldout(args.work, demo)
        lines += table("Held-out sentences (lipmodel@demo, never trained on them): one look",
                       held, shares)
        record["heldout"] = {x.name: {f"{s:g}": round(x.r(s), 4) for s in shares} for x in held}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audio_prior.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / "audio_prior.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
