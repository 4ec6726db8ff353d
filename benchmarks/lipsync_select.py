"""Choosing the lip model's settings without the held-out tail: blocked cross-validation.

    .venv/bin/python benchmarks/lipsync_select.py [--set NAME=VALUE ...] [--folds 4]
                                                  [--kinds tcn] [--blocks 1,2]
                                                  [--inner-validation] [--work DIR]

The lipmodel stage never trains on the clip's last ``holdout_share`` (the held-out
sentences benchmarks/lipsync.py scores). Settings are chosen here, inside the rest (the
training share): it is cut into ``--folds`` consecutive blocks; for each block, the
networks train (fit_networks, as the stage does: speed copies, the loss, step picked on
the block) on the other blocks and are scored on the words wholly inside the block, as
a lip-sync job would run them:
  - own audio: the block's words cut from the clip's soundtrack, predicted mouth opening
    vs the generator's true jaw_open (Pearson r);
  - another voice: espeak-ng en-us+f3 at 130 wpm (OTHER_VOICE) saying those words, truth mapped onto
    its timing through its phones (benchmarks/lipsync.py does the same on the tail).
No frame of the tail is read. ``--set`` overrides a lipmodel: setting (repeatable, YAML
values). Prints one JSON object: per block and the mean over blocks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.lipsync import (  # noqa: E402
    CLIP,
    OTHER_RATE,
    OTHER_VOICE,
    jaw_measure_on,
    lipmodel_params,
    other_voice_time_map,
    pearson,
    scratch_project,
    truth_jaw,
)

if TYPE_CHECKING:
    from stages.opening import ExpressionOpening


def block_words(root: Path, first: int, stop: int, fps: float):
    """The block's words (a HeldOut span), those wholly inside frames [first, stop)."""
    from stages.evaluate.holdout import HeldOut
    from talkedit.artifacts import WORDS, ClipPaths, read_parquet

    paths = ClipPaths.of(CLIP, root)
    words = read_parquet(paths.words, WORDS).sort_values("word_index")
    inside = words[(words["start_s"] >= first / fps + 0.04) & (words["end_s"] <= stop / fps - 0.04)]
    tokens = paths.transcript.read_text(encoding="utf-8").split()
    a, b = int(inside["written_index"].min()), int(inside["written_index"].max())
    return HeldOut(-1, int(inside["word_index"].min()), int(inside["word_index"].max()) + 1,
                   a, b, float(inside["start_s"].min()), float(inside["end_s"].max()),
                   " ".join(tokens[a:b + 1]), 0.05)


def score_block(root: Path, model, held, fps: float, samples: np.ndarray,
                measure: ExpressionOpening) -> dict:
    """Own-audio and other-voice truth-jaw r of ``model`` on the block's words: by the lips'
    gap (``openings``) and by ``measure`` (the person-model opening, ``_r_model``)."""
    from stages.fit import load_fit
    from stages.lipsync.model import openings
    from stages.lipsync.respeak import synthesized

    person, _ = load_fit(CLIP, root)
    first = int(round(held.start_s * fps))
    own = samples[int(round(first / fps * 16000)):int(round(held.end_s * 16000))]
    n = int(round(len(own) / 16000 * fps))
    predicted, _ = model.from_audio(own, n, fps)
    jaw = truth_jaw(root, (first + np.arange(n)) / fps)
    voice, _ = synthesized(held.text, OTHER_VOICE, OTHER_RATE)
    n_voice = int(round(len(voice) / 16000 * fps))
    voiced, warp = model.from_audio(voice, n_voice, fps)
    t_new, t_clip = other_voice_time_map(root, held, held.text)
    local = np.arange(n_voice) / fps
    inside = (local >= t_new[0]) & (local <= t_new[-1])
    jaw_voice = truth_jaw(root, np.interp(local[inside], t_new, t_clip))
    return {"words": held.text, "frames": [first, first + n],
            "own_audio_r": pearson(openings(person, predicted), jaw),
            "other_voice_r": pearson(openings(person, voiced)[inside], jaw_voice),
            "own_audio_r_model": pearson(measure.from_coefficients(predicted), jaw),
            "other_voice_r_model": pearson(measure.from_coefficients(voiced)[inside], jaw_voice),
            "voice_warp": warp}


def cross_validate(root: Path, opts, folds: int, kinds: tuple[str, ...],
                   blocks: tuple[int, ...] | None = None, inner_validation: bool = False,
                   phone_shares: tuple[float, ...] = ()) -> dict:
    from stages.fit import load_fit
    from stages.lipsync.features import frame_features, read_clip_wav
    from stages.lipsync.train import (
        clip_speech,
        feature_config,
        fit_networks,
        split,
    )
    from talkedit.artifacts import ClipPaths, VideoMeta, column_array

    paths = ClipPaths.of(CLIP, root)
    person, table = load_fit(CLIP, root)
    expression = column_array(table, "expression").astype(np.float64)
    n, fps = len(expression), VideoMeta.read(paths).fps
    samples = read_clip_wav(paths.audio)
    _, val, _ = split(n, opts, CLIP)
    share = val.stop  # the training share: frames before the held-out tail
    feats_cfg = feature_config(opts)
    feats = frame_features(samples, n, fps, feats_cfg)
    edges = np.linspace(0, share, folds + 1).round().astype(int)
    rows = []
    for number, (first, stop) in enumerate(zip(edges[:-1], edges[1:], strict=True), 1):
        if blocks and number not in blocks:
            continue
        train = [part for part in (slice(0, first), slice(stop, share))
                 if part.stop - part.start >= opts.window]
        block = slice(int(first), int(stop))
        val = block
        if inner_validation:  # as the stage: the training frames' last share picks the steps
            last = train[-1]
            cut = last.stop - int(round(sum(p.stop - p.start for p in train)
                                        * opts.validation_share))
            train, val = [*train[:-1], slice(last.start, cut)], slice(cut, last.stop)
        nets = fit_networks(samples, fps, expression, person, train, (feats[val], val), opts,
                            clip_speech(CLIP, root), kinds)
        measure, _ = jaw_measure_on(root, train)  # the block's frames never calibrate it
        row: dict = {"block": [int(first), int(stop)], "number": number,
                     "validation": [int(val.start), int(val.stop)],
                     "train_seconds": sum(nets.seconds.values())}
        scored = dict(nets.runs)
        if opts.refit:
            scored.update({f"{kind}_before_refit": run for kind, run in nets.picked.items()})
        for kind, run in scored.items():
            model = dataclasses.replace(nets.model(kind.split("_")[0], opts, expression.shape[1]),
                                        net=run.net)
            row[kind] = {"best_step": run.best_step, "validation_loss": round(run.best_val, 4),
                         **score_block(root, model, block_words(root, first, stop, fps), fps,
                                       samples, measure)}
            for map_share in phone_shares:  # the same network, the map's share varied
                row[f"{kind}_map_{map_share}"] = score_block(
                    root, dataclasses.replace(model, phone_map_share=map_share),
                    block_words(root, first, stop, fps), fps, samples, measure)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    mean = {kind: {m: round(float(np.mean([r[kind][m] for r in rows])), 4)
                   for m in ("own_audio_r", "other_voice_r", "own_audio_r_model",
                             "other_voice_r_model")} for kind in rows[0]
            if isinstance(rows[0][kind], dict)}
    return {"training_share_frames": share, "blocks": rows, "mean": mean}


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--kinds", default="tcn", help="comma-separated: tcn,lstm")
    parser.add_argument("--blocks", default="", help="comma-separated block numbers (1..folds) "
                        "to score, for a quick first comparison (default: all)")
    parser.add_argument("--inner-validation", action="store_true",
                        help="pick each network's step on the last validation_share of the "
                        "training blocks, as the stage does (default: on the scored block, as "
                        "sessions 5-6 did; lipmodel.refit needs this)")
    parser.add_argument("--phone-shares", default="",
                        help="comma-separated: also score each network with the phone map "
                        "(lipmodel.phone_map_share > 0 fits it) at these shares")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    opts, overrides = lipmodel_params(args.set, "lipsync_select --set")
    if opts.refit and not args.inner_validation:
        parser.error("refit trains on the validation frames: give --inner-validation")
    root = scratch_project(args.work or Path(tempfile.mkdtemp(prefix="talkedit-lipselect-")))
    result = {"settings": overrides,
              **cross_validate(root, opts, args.folds, tuple(args.kinds.split(",")),
                              tuple(int(b) for b in args.blocks.split(",") if b),
                              args.inner_validation,
                              tuple(float(x) for x in args.phone_shares.split(",") if x))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
