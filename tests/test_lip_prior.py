"""The lip model's pretrained trunks: pretraining on several clips through heads of their own
(stages/lip_prior.py), the least-squares start of a clip's output layer
(stages/lipsync/model.py ``fit_output``) and the shipped file (stages/lipsync/trunk.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.demo.corpus import CORPUS_CASES
from stages.lip_prior import ClipSequences, pretrain
from stages.lipsync import LipModelParams
from stages.lipsync.model import NetConfig, TrainConfig, fit_output, make_net, predict
from stages.lipsync.train import net_inputs
from stages.lipsync.trunk import TRUNK_FILE, load_trunks
from talkedit.errors import TalkeditError
from talkedit.params import load_section

REPO = Path(__file__).resolve().parents[1]


def _sequence(rng: np.random.Generator, frames: int, dim: int) -> np.ndarray:
    """Smooth random features, as speech features move from frame to frame."""
    raw = rng.normal(size=(frames + 4, dim))
    return (raw[:-4] + raw[1:-3] + raw[2:-2] + raw[3:-1] + raw[4:]) / np.sqrt(5)


def test_each_clip_trains_its_own_head_and_the_trunk_starts_a_new_one() -> None:
    """Three clips hear the same kind of audio; each maps one shared (non-linear) reading of
    it to its own expression basis, the third with the sign flipped. Pretrained on all three
    through heads of their own, the trunk gives each clip's own targets (r > 0.9 on its
    validation tail, the flipped one included), and, given a fourth basis through its
    least-squares output layer alone (no step trained), reads new audio at r > 0.8 (0.91
    measured) where a random trunk reads it at 0.16."""
    rng = np.random.default_rng(0)
    dim, k = 6, 2
    mix, gate = rng.normal(size=(dim, 3)), rng.normal(size=(dim, 3))

    def reading(x: np.ndarray) -> np.ndarray:
        # Products of two readings of the audio: no linear map of it (or of random units) has them.
        return (x @ mix) * (x @ gate) / dim

    bases = [rng.normal(size=(3, k)) for _ in range(3)]
    bases[2] = -bases[0]
    clips = []
    for c, basis in enumerate(bases):
        x = _sequence(rng, 400, dim)
        y = reading(x) @ basis
        clips.append(ClipSequences(f"c{c}", [x[:320]], [y[:320]], (x[320:], y[320:]),
                                   np.eye(k)))
    cfg = NetConfig("tcn", dim, k, 32, 0.0, dilations=(1,))
    run = pretrain(cfg, TrainConfig(600, 8, 32, 5e-3, 0.0, 100, 0), clips)
    assert run.trunk and not any(name.startswith("out.") for name in run.trunk)
    # The heads: rebuild the pretraining's wide net from the trunk and fit each head alone.
    for clip in clips:
        net = make_net(cfg)
        net.load_state_dict({**net.state_dict(),
                             **{n: v for n, v in run.trunk.items()}})
        fit_output(net, clip.xs[0], clip.ys[0], [len(clip.xs[0])])
        pred = predict(net, clip.val[0])
        assert min(np.corrcoef(pred[:, j], clip.val[1][:, j])[0, 1] for j in range(k)) > 0.9
    new_basis = rng.normal(size=(3, k))
    x_new, x_test = _sequence(rng, 120, dim), _sequence(rng, 200, dim)
    scores = {}
    for name, trunk in (("pretrained", run.trunk), ("random", None)):
        torch.manual_seed(1)
        net = make_net(cfg)
        if trunk is not None:
            net.load_state_dict({**net.state_dict(), **trunk})
        fit_output(net, x_new, reading(x_new) @ new_basis, [len(x_new)])
        pred, truth = predict(net, x_test), reading(x_test) @ new_basis
        scores[name] = min(np.corrcoef(pred[:, j], truth[:, j])[0, 1] for j in range(k))
    assert scores["pretrained"] > 0.8 and scores["pretrained"] > scores["random"] + 0.2


def test_the_output_layer_starts_at_the_least_squares_map_of_the_trunk() -> None:
    """Targets that are an exact linear map of a random LSTM's hidden units, over two
    training sequences (each read from its own start), are recovered by ``fit_output``:
    on a third sequence the output follows them at r > 0.998 and errs by under 10 % of
    their spread (5.3 % measured: the ridge's shrinkage)."""
    rng = np.random.default_rng(1)
    cfg = NetConfig("lstm", 5, 3, 16, 0.0, delay=2)
    torch.manual_seed(0)
    net = make_net(cfg)
    mapping, offset = rng.normal(size=(16, 3)), np.array([0.5, -1.0, 2.0])

    def targets(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            hidden = net.hidden(torch.from_numpy(x.astype(np.float32))[None])[0].numpy()
        return hidden @ mapping + offset

    parts = [_sequence(rng, 100, 5), _sequence(rng, 50, 5)]
    fit_output(net, np.concatenate(parts), np.concatenate([targets(p) for p in parts]),
               [100, 50])
    x_test = _sequence(rng, 200, 5)
    truth = targets(x_test)
    err = predict(net, x_test) - truth
    assert (np.sqrt((err ** 2).mean(axis=0)) / truth.std(axis=0)).max() < 0.1
    assert min(np.corrcoef(err[:, j] + truth[:, j], truth[:, j])[0, 1] for j in range(3)) > 0.998


def test_the_shipped_trunks_match_params_and_came_from_the_corpus_alone() -> None:
    """params.yaml's lipmodel settings can start from the shipped file (a change of features
    or network shape needs `talkedit lip-prior`); it was pretrained on the corpus clips, no
    others (the corpus shares no face, voice or text with the demo or the pairs:
    tests/test_phone_prior.py)."""
    from safetensors import safe_open

    opts = load_section(LipModelParams, REPO)
    assert opts.pretrained
    trunks = load_trunks(opts, net_inputs(opts))
    assert set(trunks) == {"lstm", "tcn"}
    for kind, trunk in trunks.items():
        net = make_net(NetConfig(kind, net_inputs(opts), opts.components, opts.hidden,
                                 opts.dropout, delay=opts.lstm_delay if kind == "lstm" else 0,
                                 kernel=opts.tcn_kernel, dilations=tuple(opts.tcn_dilations)))
        assert set(net.state_dict()) - set(trunk) == {"out.weight", "out.bias"}
    with safe_open(str(TRUNK_FILE), "pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["clips"]) == [case.name for case in CORPUS_CASES]


def test_a_trunk_of_other_settings_or_none_is_one_clear_error(tmp_path: Path) -> None:
    opts = load_section(LipModelParams, REPO)
    with pytest.raises(TalkeditError, match="not found.*lip-prior"):
        load_trunks(opts, net_inputs(opts), tmp_path / "absent.safetensors")
    wider = dataclasses.replace(opts, hidden=opts.hidden * 2)
    with pytest.raises(TalkeditError, match="other lipmodel settings.*lip-prior"):
        load_trunks(wider, net_inputs(wider))
    other_features = dataclasses.replace(opts, n_mfcc=opts.n_mfcc + 1)
    with pytest.raises(TalkeditError, match="other lipmodel settings"):
        load_trunks(other_features, net_inputs(other_features))
    # Dropout is training only: the same trunk starts a network trained with another.
    assert load_trunks(dataclasses.replace(opts, dropout=0.4), net_inputs(opts))
