"""The lip model's pretrained trunks (trunk.safetensors): a start learnt from other speakers.

The lip model of one clip learns from its own ~17 s of speech, and its held-out error was
still falling with every doubling of footage at 84.5 s (benchmarks/results/lipsync.md,
session 19). Which sounds open, round or close the mouth, and when, is largely shared
between speakers: ``stages.lip_prior`` trains each kind's network on the corpus clips of
``stages.demo.corpus`` (other faces, voices, rates and texts), every clip through an
output layer of its own (each person model has its own expression basis), and keeps the
trunk (every layer but the output). With ``lipmodel.pretrained`` a clip's networks start
from it, their output layer fitted afresh to the clip's own basis.
``talkedit lip-prior --work DIR`` rebuilds the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from stages.lipsync import LipModelParams
from stages.lipsync.model import KINDS, Trunk
from talkedit.errors import TalkeditError

TRUNK_FILE = Path(__file__).with_name("trunk.safetensors")
FORMAT = "talkedit-liptrunk-1"
OUTPUT = "out."  # the output layer's parameters (per clip); the rest is the trunk


def trunk_signature(kind: str, opts: LipModelParams, in_dim: int) -> dict[str, Any]:
    """What a trunk must have been trained with to start a clip's ``kind`` network."""
    from stages.lipsync.train import feature_config, net_config

    net = asdict(net_config(kind, opts, in_dim))
    for not_shape in ("out_dim", "members", "dropout"):  # per clip, or training only
        del net[not_shape]
    return {"net": net, "features": asdict(feature_config(opts))}


def load_trunks(opts: LipModelParams, in_dim: int, path: Path = TRUNK_FILE
                ) -> dict[str, Trunk]:
    """Each kind's pretrained trunk as arrays, checked against ``opts``: a trunk trained
    with other features or another network shape cannot start this clip's."""
    fix = "rebuild it: talkedit lip-prior --work DIR (or set lipmodel.pretrained: false)"
    if not path.is_file():
        raise TalkeditError(path, "not found (lipmodel.pretrained is on)", fix)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata() or {})
    if meta.get("format") != FORMAT:
        raise TalkeditError(path, f"is not a {FORMAT} file", fix)
    tensors = load_file(str(path))
    trunks: dict[str, Trunk] = {}
    for kind in KINDS:
        wanted = json.loads(json.dumps(trunk_signature(kind, opts, in_dim)))
        if json.loads(meta.get(f"{kind}.signature", "null")) != wanted:
            raise TalkeditError(path, f"holds a {kind} trunk trained with other lipmodel "
                                "settings (features or network shape) than params.yaml's", fix)
        trunks[kind] = {name[len(kind) + 1:]: v.numpy() for name, v in tensors.items()
                        if name.startswith(f"{kind}.")}
    return trunks
