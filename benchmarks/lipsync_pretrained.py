"""The lip model started from the pretrained trunks against from random weights, on held-out frames.

    .venv/bin/python benchmarks/lipsync_pretrained.py --work DIR [--clips demo,check-lfw12,...]

For each clip, the lipmodel stage's networks (params.yaml's ``lipmodel:``, ``fit_networks``)
are trained twice, from random weights and from stages/lipsync/trunk.safetensors, and each
kind is scored on the clip's held-out tail as the stage scores it (``scores``): the
person-model opening's r against the generator's true jaw and the standardised expression
error. The kind the stage would keep (the lower validation loss) is marked. Clips: the
demo (this project's, built by ``make demo``) and three generated clips whose faces, voices
and texts are in neither the corpus the trunks learnt from nor the demo (``CHECK_CASES``,
generated and fitted in ``--work`` as the corpus clips are). Writes
benchmarks/results/lipsync_pretrained.json (under ``--label``).
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

from stages.demo.corpus import CorpusCase  # noqa: E402

CHECK_CASES = (
    CorpusCase("check-lfw12", "lfw:12", "en-us+m2", 150, 201,
               "Every autumn the village holds a small fair on the green beside the church. "
               "Farmers bring their largest marrows and the heaviest pumpkins they can carry. "
               "Children queue for toffee apples while a brass band plays old marching tunes. "
               "In the evening a judge in a tweed jacket hands out ribbons, and the winners "
               "pose for a photograph that hangs in the pub until the following year."),
    CorpusCase("check-carphone40", "carphone:40", "en+m3", 155, 202,
               "My grandfather kept bees in three white hives behind his cottage. He never "
               "wore gloves, and he claimed the bees knew his voice. Each August we helped him "
               "lift the heavy frames and spin the honey out in a noisy metal drum. The whole "
               "kitchen smelled of wax for days, and jars of golden honey lined every shelf "
               "until Christmas."),
    CorpusCase("check-lfw50", "lfw:50", "en-us+f2", 145, 203,
               "The lighthouse keeper climbed one hundred and twelve steps every night to light "
               "the lamp. Storms rattled the windows and waves crashed against the rocks below. "
               "She kept a logbook of every ship that passed, writing its name in careful blue "
               "ink. When the light was finally automated, she moved to a cottage in the "
               "harbour and opened a small shop selling maps."),
)


def compare(clip: str, root: Path) -> dict[str, Any]:
    """Held-out scores of each kind trained from random weights and from the trunks."""
    from benchmarks.common import lip_clip
    from stages.lipsync import LipModelParams
    from stages.lipsync.model import KINDS, openings
    from stages.lipsync.train import fit_networks, net_inputs, scores
    from stages.lipsync.trunk import load_trunks
    from talkedit.params import load_section

    opts = load_section(LipModelParams, REPO)
    c = lip_clip(clip, root, opts)
    expression, held, k = c.expression, c.held, opts.components
    out: dict[str, Any] = {"train_s": round(c.train.stop / c.fps, 2)}
    for start, trunks in (("random", None), ("pretrained", load_trunks(opts, net_inputs(opts)))):
        t = time.perf_counter()
        nets = fit_networks(c.samples, c.fps, expression, c.person, [c.train],
                            (c.feats[c.val], c.val), opts, trunks=trunks)
        row: dict[str, Any] = {"seconds": round(time.perf_counter() - t, 1),
                               "kept": min(KINDS, key=lambda kind: (nets.runs[kind].best_val,
                                                                    kind))}
        for kind in KINDS:
            pred = nets.model(kind, opts, expression.shape[1]).expression(c.feats[held])
            row[kind] = {"validation_loss": round(nets.runs[kind].best_val, 4),
                         **scores(openings(c.person, pred), c.fitted_open[held], c.jaw[held],
                                  pred[:, :k], expression[held, :k], nets.std, c.weights,
                                  c.measure.from_coefficients(pred))}
        out[start] = row
        print(json.dumps({clip: {start: row}}), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True,
                    help="folder the check clips are generated and fitted in (kept)")
    ap.add_argument("--clips", default="demo," + ",".join(c.name for c in CHECK_CASES))
    ap.add_argument("--label", default="current", help="name of this run in the results")
    args = ap.parse_args()
    from benchmarks.common import store_run
    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.pairs.clip import ClipSections
    from stages.phone_prior import prepare_corpus_clip
    from talkedit.errors import TalkeditError

    cases = {case.name: case for case in CHECK_CASES}
    try:
        clips = args.clips.split(",")
        for clip in clips:
            if clip != "demo" and clip not in cases:
                raise TalkeditError(f"--clips {clip}", "is neither demo nor a check clip",
                                    "use demo or " + ", ".join(cases))
        if args.work.exists() and not args.work.is_dir():
            raise TalkeditError(args.work, "is not a folder", "give a folder for --work")
        sections = ClipSections.of(**load_sections(ALL_BY_NAME["pairclip"], REPO))
        result = {}
        for clip in clips:
            if clip in cases:
                prepare_corpus_clip(cases[clip], args.work, sections)
            result[clip] = compare(clip, REPO if clip == "demo" else args.work)
    except TalkeditError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store_run("lipsync_pretrained.json", args.label, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
