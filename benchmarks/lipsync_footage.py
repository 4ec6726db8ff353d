"""How the audio-to-expression model's held-out error falls with the footage it trains on.

    .venv/bin/python benchmarks/lipsync_footage.py [--project DIR] [--clip demo]
        [--shares 0.25,0.5,0.75,1] [--kinds tcn]

Issue 17's Must-show asks the audio-driven path to beat the viseme search, which has the
words; the per-person model of "Synthesizing Obama" trained on 17 hours of one speaker,
ours on the ~17 s of a generated clip's training share. This trains the lipmodel stage's
networks (params.yaml's ``lipmodel:`` of the project, the same code, ``fit_networks``)
on the last ``share`` of the clip's training frames only (validation and held-out frames
the stage's own: the same held-out frames for every share) and scores each on the held-out
frames as the stage does (``stages.lipsync.train.scores``): mouth opening r against the
fitted one, the person-model opening's r against the generator's true jaw, and the
standardised expression error (weighted by explained variance; the training mean scores
about 1). Nothing here is chosen: a learning curve, for whether more footage is what the
audio model lacks. Writes benchmarks/results/lipsync_footage.json (under ``--label``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))



def curve(root: Path, clip: str, shares: list[float], kinds: tuple[str, ...]
          ) -> dict[str, Any]:
    """Held-out scores of the networks trained on each share of the clip's training frames."""
    from benchmarks.common import lip_clip
    from stages.lipsync import LipModelParams
    from stages.lipsync.model import openings
    from stages.lipsync.train import fit_networks, pearson, scores
    from talkedit.params import load_section

    opts = load_section(LipModelParams, root)
    # The opening scale is mapped to the true jaw on the whole training range for every
    # share: the scores differ only by the networks.
    c = lip_clip(clip, root, opts)
    person, expression, fps, samples, feats = c.person, c.expression, c.fps, c.samples, c.feats
    train, val, held, jaw, measure = c.train, c.val, c.held, c.jaw, c.measure
    fitted_open, weights, k = c.fitted_open, c.weights, opts.components
    out: dict[str, Any] = {"clip": clip, "fps": fps, "frames": {
        "train": train.stop, "validation": val.stop - val.start, "heldout": held.stop - held.start},
        "ceiling_truth_jaw_r_model": round(pearson(measure.from_coefficients(expression[held]),
                                                   jaw[held]) or 0.0, 4),
        "shares": {}}
    for share in shares:
        first = train.stop - int(round(share * train.stop))
        t = time.perf_counter()
        nets = fit_networks(samples, fps, expression, person, [slice(first, train.stop)],
                            (feats[val], val), opts, kinds=kinds)
        row: dict[str, Any] = {"train_s": round((train.stop - first) / fps, 2),
                               "seconds": round(time.perf_counter() - t, 1)}
        for kind in kinds:
            pred = nets.model(kind, opts, expression.shape[1]).expression(feats[held])
            row[kind] = scores(openings(person, pred), fitted_open[held], jaw[held],
                               pred[:, :k], expression[held, :k], nets.std, weights,
                               measure.from_coefficients(pred))
        print(json.dumps({str(share): row}), flush=True)
        out["shares"][str(share)] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", type=Path, default=REPO,
                    help="a built project (its data/ and params.yaml; default this one)")
    ap.add_argument("--clip", default="demo")
    ap.add_argument("--shares", default="0.25,0.5,0.75,1",
                    help="shares of the training frames (the last ones) to train on")
    ap.add_argument("--kinds", default="tcn,lstm", help="networks to train (lipmodel's kinds)")
    ap.add_argument("--label", default="current", help="name of this run in the results")
    args = ap.parse_args()
    from benchmarks.common import store_run
    from stages.lipsync.model import KINDS
    from talkedit.errors import TalkeditError

    kinds = tuple(args.kinds.split(","))
    root = args.project.resolve()
    try:
        if not set(kinds) <= set(KINDS):
            raise TalkeditError("--kinds", f"names {args.kinds!r}", f"use some of {KINDS}")
        try:
            shares = [float(s) for s in args.shares.split(",")]
        except ValueError:
            shares = []
        if not shares or not all(0 < s <= 1 for s in shares):
            raise TalkeditError("--shares", f"{args.shares!r} is not a list of shares in "
                                "(0, 1]", "give shares of the training frames, e.g. 0.5,1")
        if not (root / "params.yaml").is_file():
            raise TalkeditError(f"--project {root}", "has no params.yaml",
                                "give a project whose lipmodel stage has run")
        result = curve(root, args.clip, shares, kinds)
    except TalkeditError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store_run("lipsync_footage.json", args.label, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
