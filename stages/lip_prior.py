"""Building the lip model's pretrained trunks (stages/lipsync/trunk.py) from the generated corpus.

Each clip of ``stages.demo.corpus`` is generated and fitted as the pair stages do
(``stages.phone_prior.prepare_corpus_clip``); its audio and fitted expressions are read as
the lipmodel stage reads a clip's (speed-perturbed, standardised, the last
``validation_share`` kept aside), and each kind's network is trained on all of them at
once, every clip through an output layer of its own. ``talkedit lip-prior --work DIR``
runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save

from stages.demo.corpus import CORPUS_CASES
from stages.fit import load_fit
from stages.lipsync import LipModelParams
from stages.lipsync.features import (
    RATE,
    frame_features,
    power_spectrogram,
    read_clip_wav,
    voice_spectrum,
)
from stages.lipsync.model import (
    KINDS,
    NetConfig,
    TrainConfig,
    make_net,
    predict,
    weighted_square,
    window_starts,
)
from stages.lipsync.train import (
    feature_config,
    loss_weights,
    net_config,
    net_inputs,
    speed_perturbed,
)
from stages.lipsync.trunk import FORMAT, OUTPUT, trunk_signature
from stages.phone_prior import prepare_corpus_clip
from talkedit.artifacts import ClipPaths, VideoMeta, column_array

if TYPE_CHECKING:
    from stages.pairs.clip import ClipSections


@dataclass
class ClipSequences:
    """One corpus clip's training copies, validation tail and loss form."""

    name: str
    xs: list[np.ndarray]  # features of each training copy (speed-perturbed)
    ys: list[np.ndarray]  # standardised expression of each
    val: tuple[np.ndarray, np.ndarray]  # (features, targets) of the clip's validation tail
    weights: np.ndarray  # (k, k) loss form (train.loss_weights)


def clip_sequences(clip: str, root: Path, opts: LipModelParams) -> ClipSequences:
    """A fitted clip's audio and expressions as the lipmodel stage reads them: its last
    ``validation_share`` picks the pretraining's step, the rest trains (speed-perturbed)."""
    paths = ClipPaths.of(clip, root)
    person, table = load_fit(clip, root)
    expression = column_array(table, "expression").astype(np.float64)
    n, fps, k = len(expression), VideoMeta.read(paths).fps, opts.components
    samples = read_clip_wav(paths.audio)
    cfg = feature_config(opts)
    val_from = n - int(round(n * opts.validation_share))
    mean, std = expression[:val_from, :k].mean(axis=0), expression[:val_from, :k].std(axis=0) + 1e-6
    target = (expression[:, :k] - mean) / std
    audio = samples[:int(round(val_from / fps * RATE))]
    voice = voice_spectrum(*power_spectrogram(audio), cfg)
    xs, ys = speed_perturbed(audio, target[:val_from], fps, cfg, opts.speed_factors, voice)
    val_x = frame_features(samples, n, fps, cfg)[val_from:]
    return ClipSequences(clip, xs, ys, (val_x, target[val_from:]),
                         loss_weights(person, mean, std, target[:val_from], opts.opening_weight))


@dataclass
class Pretrained:
    trunk: dict[str, torch.Tensor]
    best_step: int
    best_val: float
    curve: list[tuple[int, float, float]]


def pretrain(cfg: NetConfig, train: TrainConfig, clips: list[ClipSequences]) -> Pretrained:
    """Train ``cfg``'s network on every clip at once, each through an output layer of its
    own (``cfg.out_dim`` columns of a wide one), on one thread; keep the trunk of the step
    whose mean validation loss over the clips is lowest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain(cfg, train, clips)
    finally:
        torch.set_num_threads(threads)


def _pretrain(cfg: NetConfig, train: TrainConfig, clips: list[ClipSequences]) -> Pretrained:
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    k, heads = cfg.out_dim, len(clips)
    net = make_net(replace(cfg, out_dim=k * heads))
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    seqs = [(c, x, y) for c, clip in enumerate(clips) for x, y in zip(clip.xs, clip.ys,
                                                                     strict=True)]
    lengths = [len(x) for _, x, _ in seqs]
    xt = torch.from_numpy(np.concatenate([x for _, x, _ in seqs]).astype(np.float32))
    yt = torch.from_numpy(np.concatenate([y for _, _, y in seqs]).astype(np.float32))
    head_of_row = torch.from_numpy(np.concatenate([np.full(len(x), c) for c, x, _ in seqs]))
    forms = torch.from_numpy(np.stack([clip.weights for clip in clips]).astype(np.float32))
    starts_ok, window = window_starts(lengths, train.window)
    best: tuple[float, int, dict[str, torch.Tensor]] = (float("inf"), 0, {})
    curve, running = [], []
    rows = torch.arange(train.batch)
    for step in range(1, train.steps + 1):
        net.train()
        starts = starts_ok[rng.integers(0, len(starts_ok), size=train.batch)]
        idx = torch.from_numpy(starts[:, None] + np.arange(window))
        head = head_of_row[torch.from_numpy(starts)]
        out = net(xt[idx]).reshape(train.batch, window, heads, k)[rows, :, head]
        err = out - yt[idx]
        loss = torch.einsum("btk,bkl,btl->bt", err, forms[head], err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if step % train.eval_every == 0 or step == train.steps:
            val_loss = float(np.mean([
                weighted_square(predict(net, clip.val[0])[:, c * k:(c + 1) * k] - clip.val[1],
                                clip.weights).mean() for c, clip in enumerate(clips)]))
            curve.append((step, float(np.mean(running)), val_loss))
            running = []
            if val_loss < best[0]:
                best = (val_loss, step, {name: v.clone() for name, v in net.state_dict().items()
                                         if not name.startswith(OUTPUT)})
    return Pretrained(best[2], best[1], best[0], curve)


def build_trunks(work: Path, sections: ClipSections, opts: LipModelParams, steps: int,
                 progress: Callable[[str], None] | None = None
                 ) -> tuple[dict[str, Pretrained], bytes]:
    """Generate and fit the corpus clips in ``work`` (kept ones are reused), pretrain each
    kind's trunk on them; the trunks and the file's bytes (the same for the same corpus,
    settings and versions: one thread, seeded)."""
    clips = []
    for case in CORPUS_CASES:
        prepare_corpus_clip(case, work, sections)
        clips.append(clip_sequences(case.name, work, opts))
        if progress:
            progress(f"corpus clip {case.name}: ready")
    in_dim = net_inputs(opts)
    train = TrainConfig(steps, opts.batch, opts.window, opts.lr, opts.weight_decay,
                        opts.eval_every, opts.seed)
    runs = {}
    for kind in KINDS:
        runs[kind] = pretrain(net_config(kind, opts, in_dim), train, clips)
        if progress:
            progress(f"{kind}: best step {runs[kind].best_step}, corpus validation loss "
                     f"{runs[kind].best_val:.4f}")
    tensors = {f"{kind}.{name}": v.contiguous() for kind, run in runs.items()
               for name, v in run.trunk.items()}
    meta = {"format": FORMAT, "clips": json.dumps([c.name for c in clips]),
            "steps": str(steps),
            **{f"{kind}.signature": json.dumps(trunk_signature(kind, opts, in_dim))
               for kind in KINDS},
            **{f"{kind}.best_step": str(run.best_step) for kind, run in runs.items()}}
    return runs, save(tensors, metadata=meta)


