"""The per-person audio-to-expression networks, their training and their file.

Two small sequence models map per-frame audio features (features.py) to the
clip's leading expression coefficients, standardised:
- ``lstm``: a one-layer LSTM whose output at frame t + delay is read as frame t's
  expression, so it hears ``delay`` frames of future audio (the time delay of
  Suwajanakorn et al. 2017: the mouth moves before the sound it makes);
- ``tcn``: a non-causal temporal convolution net (dilated residual blocks),
  which sees a symmetric window of audio around each frame.
Both train on random windows of the training frames, seeded, on one CPU thread
(so the weights are the same bytes on any machine), keeping the weights of the
step with the lowest validation loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from stages.fit.model import PersonModel, mouth_opening
from stages.fit.topology import Topology
from stages.lipsync.features import FeatureConfig, choose_warp, frame_features
from stages.lipsync.phones import N_CLASSES, map_design
from talkedit.atomic import write_safetensors
from talkedit.errors import TalkeditError

KINDS = ("lstm", "tcn")
FORMAT = "talkedit-lipmodel-1"


def middle_lip_pairs(topo: Topology) -> tuple[tuple[int, int], ...]:
    """The three facing inner-lip pairs at the middle of the mouth (all of them when
    there are three, as in ibug68). The jaw opens the lips most at the middle; the pairs
    towards the corners also move with the lips' width (spread or rounded), so their gap
    follows the jaw less (on the demo's training frames the fitted gap's r with the true
    jaw is 0.974 over the middle pairs against 0.967 over all nine)."""
    pairs = topo.inner_lip_pairs
    middle = len(pairs) // 2
    return pairs[max(0, middle - 1):middle + 2]


def openings(person: PersonModel, expression: np.ndarray) -> np.ndarray:
    """Pose-free mouth opening of each (n, 64) expression: the lips' gap at their middle
    (``middle_lip_pairs``) over the eye distance."""
    topo = person.topo
    return mouth_opening(person.shape(expression), replace(topo,
                                                           inner_lip_pairs=middle_lip_pairs(topo)))


def weighted_square(err: Any, weights: Any) -> Any:
    """Per-frame loss of (..., k) errors (numpy or torch): ``weights`` (k,) weighs each
    component, a (k, k) matrix is a quadratic form (components plus directions such as the
    mouth opening's)."""
    if weights.ndim == 1:
        return ((err ** 2) * weights).sum(-1)
    return ((err @ weights) * err).sum(-1)


def sequence_loss(err: torch.Tensor, weights: torch.Tensor, velocity_weight: float = 0.0
                  ) -> torch.Tensor:
    """Mean loss of (batch, frames, k) errors: ``weighted_square`` per frame, plus
    ``velocity_weight`` times the same on the error's change from one frame to the next (an
    opening early or late errs in its velocity too; a constant offset does not)."""
    loss = weighted_square(err, weights).mean()
    if velocity_weight > 0:
        loss = loss + velocity_weight * weighted_square(err[:, 1:] - err[:, :-1], weights).mean()
    return loss


@dataclass(frozen=True)
class NetConfig:
    kind: str  # lstm | tcn
    in_dim: int
    out_dim: int
    hidden: int
    dropout: float
    delay: int = 0  # lstm: frames of future audio heard
    kernel: int = 3  # tcn
    dilations: tuple[int, ...] = (1, 2, 4)
    members: int = 1  # networks of this config trained with different seeds, outputs averaged


class DelayedLSTM(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.delay = cfg.delay
        self.drop = nn.Dropout(cfg.dropout)
        self.inp = nn.Linear(cfg.in_dim, cfg.hidden)
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.out_dim)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, hidden): what the output layer reads."""
        # Zero features (= the speech mean) after the end let the last frames hear "future" audio.
        x = nn.functional.pad(x, (0, 0, 0, self.delay))
        h, _ = self.lstm(torch.tanh(self.inp(self.drop(x))))
        return h[:, self.delay:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))

    def set_output(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """The output layer as (out_dim, hidden) weights and (out_dim,) bias."""
        self.out.weight.data.copy_(weight)
        self.out.bias.data.copy_(bias)


class TemporalConvNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.drop = nn.Dropout(cfg.dropout)
        self.inp = nn.Conv1d(cfg.in_dim, cfg.hidden, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, dilation=d, padding=d * (cfg.kernel // 2))
            for d in cfg.dilations)
        self.out = nn.Conv1d(cfg.hidden, cfg.out_dim, 1)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(self.drop(x).transpose(1, 2))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return h

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, hidden): what the output layer reads."""
        return self._trunk(x).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self._trunk(x)).transpose(1, 2)

    def set_output(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """The output layer as (out_dim, hidden) weights and (out_dim,) bias."""
        self.out.weight.data.copy_(weight[:, :, None])
        self.out.bias.data.copy_(bias)


class Averaged(nn.Module):
    """Several networks' mean output: seeds differ in what they overfit, so their mean
    errs less than a member does."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def make_net(cfg: NetConfig) -> nn.Module:
    def one() -> nn.Module:
        return DelayedLSTM(cfg) if cfg.kind == "lstm" else TemporalConvNet(cfg)

    return one() if cfg.members == 1 else Averaged([one() for _ in range(cfg.members)])


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch: int
    window: int
    lr: float
    weight_decay: float
    eval_every: int
    seed: int
    velocity_weight: float = 0.0  # + this x the loss on the error's frame-to-frame change


@dataclass
class Trained:
    net: nn.Module
    best_step: int | list[int]  # an Averaged net: each member's
    best_val: float
    curve: list[tuple[int, float, float]]  # (step, mean train loss since last row, val loss)


def predict(net: nn.Module, x: np.ndarray) -> np.ndarray:
    """The network over a whole (n, in_dim) sequence, in eval mode, on one thread (so the
    same float sums, the same bytes, on any machine; the nets are small)."""
    net.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0].numpy()
    finally:
        torch.set_num_threads(threads)


Trunk = dict[str, np.ndarray]  # a network's parameters but its output layer's (trunk.py)


def window_starts(lengths: list[int], window: int) -> tuple[np.ndarray, int]:
    """Where a training window may start in sequences laid end to end (none crosses from one
    to the next), and the window (no longer than the shortest sequence)."""
    window = min(window, *lengths)
    offsets = np.cumsum([0, *lengths[:-1]])
    return np.concatenate([o + np.arange(n - window + 1)
                           for o, n in zip(offsets, lengths, strict=True)]), window


HEAD_RIDGE = 1e-2  # the output layer's least-squares start: ridge, per unit of hidden variance


def fit_output(net: nn.Module, x: np.ndarray, y: np.ndarray, lengths: list[int]) -> None:
    """Set a pretrained trunk's fresh output layer to the least-squares map from the trunk's
    hidden units to ``y`` over the training sequences (no dropout), so fine-tuning starts
    from the trunk's best linear reading rather than a random one, which would first pull
    the trunk's units towards its noise."""
    net.eval()
    with torch.no_grad():
        hidden = torch.cat([net.hidden(torch.from_numpy(part.astype(np.float32))[None])[0]
                            for part in np.split(x, np.cumsum(lengths)[:-1])]).double().numpy()
    mean = hidden.mean(axis=0)
    centred = hidden - mean
    gram = centred.T @ centred
    gram[np.diag_indices_from(gram)] += HEAD_RIDGE * np.trace(gram) / len(gram)
    weight = np.linalg.solve(gram, centred.T @ (y - y.mean(axis=0))).T
    bias = y.mean(axis=0) - weight @ mean
    net.set_output(torch.from_numpy(weight.astype(np.float32)),
                   torch.from_numpy(bias.astype(np.float32)))


def train_net(cfg: NetConfig, train: TrainConfig, x: np.ndarray, y: np.ndarray,
              weights: np.ndarray, val: tuple[np.ndarray, np.ndarray],
              progress: Callable[[str], None] | None = None,
              lengths: list[int] | None = None, trunk: Trunk | None = None) -> Trained:
    """Fit ``cfg``'s net on (x, y) windows, keeping the weights best on ``val``. ``x`` may be
    several sequences end to end (``lengths``): no window crosses from one to the next.
    Given a pretrained ``trunk``, the net starts from it, its output layer the least-squares
    map from the trunk's units (``fit_output``). On one thread, whatever the caller's count
    (the convolutions' float sums depend on it), so a member is the same bytes in any
    process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_net(cfg, train, x, y, weights, val, progress, lengths, trunk)
    finally:
        torch.set_num_threads(threads)


def _train_net(cfg: NetConfig, train: TrainConfig, x: np.ndarray, y: np.ndarray,
               weights: np.ndarray, val: tuple[np.ndarray, np.ndarray],
               progress: Callable[[str], None] | None, lengths: list[int] | None,
               trunk: Trunk | None) -> Trained:
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    net = make_net(cfg)
    if trunk is not None:
        state = net.state_dict()
        if not set(trunk) < set(state):
            raise ValueError(f"a {cfg.kind} trunk's parameters are not this network's")
        net.load_state_dict({**state, **{k: torch.from_numpy(v) for k, v in trunk.items()}})
        fit_output(net, x, y, lengths or [len(x)])
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    w = torch.from_numpy(weights.astype(np.float32))
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    xv, yv = val
    starts_ok, window = window_starts(lengths or [len(x)], train.window)
    best: tuple[float, int, dict[str, torch.Tensor]] = (float("inf"), 0, {})
    curve, running = [], []
    for step in range(1, train.steps + 1):
        net.train()
        starts = starts_ok[rng.integers(0, len(starts_ok), size=train.batch)]
        idx = torch.from_numpy(starts[:, None] + np.arange(window))
        loss = sequence_loss(net(xt[idx]) - yt[idx], w, train.velocity_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if step % train.eval_every == 0 or step == train.steps:
            val_loss = float(weighted_square(predict(net, xv) - yv, weights).mean())
            curve.append((step, float(np.mean(running)), val_loss))
            running = []
            if val_loss < best[0]:
                best = (val_loss, step, {k: v.clone() for k, v in net.state_dict().items()})
            if progress:
                progress(f"{cfg.kind} step {step}/{train.steps}: train {curve[-1][1]:.4f}, "
                         f"validation {val_loss:.4f}")
    net.load_state_dict(best[2])
    net.eval()
    return Trained(net, best[1], best[0], curve)


def _train_member(cfg: NetConfig, train: TrainConfig, x: np.ndarray, y: np.ndarray,
                  weights: np.ndarray, val: tuple[np.ndarray, np.ndarray], lengths: list[int],
                  trunk: Trunk | None
                  ) -> tuple[dict[str, np.ndarray], int, float, list[tuple[int, float, float]]]:
    """train_net in a worker process, on one thread as in the parent: the weights as arrays
    (what crosses back), the best step and loss, the curve."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    run = train_net(cfg, train, x, y, weights, val, lengths=lengths, trunk=trunk)
    return ({k: v.numpy() for k, v in run.net.state_dict().items()}, int(run.best_step),
            run.best_val, run.curve)


def train_members(jobs: list[tuple[NetConfig, TrainConfig]], x: np.ndarray, y: np.ndarray,
                  weights: np.ndarray, val: tuple[np.ndarray, np.ndarray], lengths: list[int],
                  workers: int, progress: Callable[[str], None] | None = None,
                  trunks: dict[str, Trunk] | None = None) -> list[Trained]:
    """train_net for each (net, training) config on the same data, ``workers`` at a time in
    processes of their own (each member is seeded and trains on one thread, so its weights
    are the same bytes whichever process trains it, and however many run at once); each
    kind from its pretrained trunk in ``trunks``, if given."""
    trunks = trunks or {}
    if workers <= 1 or len(jobs) == 1:
        return [train_net(cfg, train, x, y, weights, val, progress=progress, lengths=lengths,
                          trunk=trunks.get(cfg.kind))
                for cfg, train in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter (forking a process whose torch runtime has started is unsafe)
    with ProcessPoolExecutor(min(workers, len(jobs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_member, cfg, train, x, y, weights, val, lengths,
                               trunks.get(cfg.kind))
                   for cfg, train in jobs]
        out = []
        for (cfg, train), future in zip(jobs, futures, strict=True):
            state, best_step, best_val, curve = future.result()
            net = make_net(cfg)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            net.eval()
            out.append(Trained(net, best_step, best_val, curve))
            if progress:
                progress(f"{cfg.kind} seed {train.seed}: best step {best_step}, validation "
                         f"{best_val:.4f}")
    return out


def averaged(members: list[Trained], weights: np.ndarray, val: tuple[np.ndarray, np.ndarray]
             ) -> Trained:
    """The members' mean as one Trained net: validation loss of the mean prediction, the
    members' mean loss curves."""
    if len(members) == 1:
        return members[0]
    net = Averaged([m.net for m in members])
    net.eval()
    val_x, val_y = val
    curve = [(step, float(np.mean([m.curve[i][1] for m in members])),
              float(np.mean([m.curve[i][2] for m in members])))
             for i, (step, _, _) in enumerate(members[0].curve)]
    return Trained(net, [int(m.best_step) for m in members],  # type: ignore[misc]
                   float(weighted_square(predict(net, val_x) - val_y, weights).mean()), curve)


@dataclass
class LipModel:
    """A trained audio-to-expression model with what it needs to run on new audio."""

    net: nn.Module
    net_cfg: NetConfig
    features: FeatureConfig
    mean: np.ndarray  # (components,) expression mean of the training frames
    std: np.ndarray  # (components,) and spread
    n_expression: int  # full expression width (the rest stays at the mean: zero)
    meta: dict[str, str]
    voice: np.ndarray  # the person's voice_spectrum (features.py): new voices are warped to it
    # phones.fit_map's weights from the recognised classes (the features' last columns) to
    # the standardised expression, and the share of the output that is the map's
    phone_map: np.ndarray | None = None
    phone_map_share: float = 0.0

    def expression(self, feats: np.ndarray) -> np.ndarray:
        """(n, n_expression) expression coefficients for (n, dim) features: the network on
        the leading columns it reads, blended with the phone map's (if one)."""
        standard = predict(self.net, feats[:, :self.net_cfg.in_dim])
        if self.phone_map is not None:
            mapped = map_design(feats[:, -N_CLASSES:]) @ self.phone_map
            standard = (1 - self.phone_map_share) * standard + self.phone_map_share * mapped
        out = np.zeros((len(feats), self.n_expression))
        out[:, :len(self.mean)] = standard * self.std + self.mean
        return out

    def from_audio(self, samples: np.ndarray, n_frames: int, fps: float,
                   normalize_voice: bool = True) -> tuple[np.ndarray, float]:
        """(n_frames, n_expression) expressions for 16 kHz speech, and the frequency warp
        used: a voice other than the person's is warped to theirs (VTLN) first."""
        warp = choose_warp(samples, self.features, self.voice) if normalize_voice else 1.0
        return self.expression(frame_features(samples, n_frames, fps, self.features, warp)), warp

    def _features_meta(self) -> dict[str, Any]:
        # Feature options added later are written only when on: a model trained without
        # them keeps the bytes it had before they existed (and loads with their default).
        meta = asdict(self.features)
        for later in ("lifter_ms", "cmvn_window_s"):
            if meta[later] == 0:
                del meta[later]
        if not meta["phones"]:
            del meta["phones"], meta["phone_smooth_ms"]
        return meta

    def save(self, path: Path) -> None:
        tensors = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
        tensors["target.mean"] = torch.from_numpy(self.mean.astype(np.float32))
        tensors["target.std"] = torch.from_numpy(self.std.astype(np.float32))
        tensors["voice.spectrum"] = torch.from_numpy(self.voice.astype(np.float32))
        meta = {**self.meta, "format": FORMAT, "net": json.dumps(asdict(self.net_cfg)),
                "features": json.dumps(self._features_meta()),
                "n_expression": str(self.n_expression)}
        if self.phone_map is not None:  # written only when on: older models keep their bytes
            tensors["phone_map.weights"] = torch.from_numpy(self.phone_map.astype(np.float32))
            meta["phone_map_share"] = repr(float(self.phone_map_share))
        write_safetensors(path, save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: Path, stage_hint: str) -> LipModel:
        if not path.is_file():
            raise TalkeditError(path, "not found", f"run {stage_hint} first (dvc repro)")
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            meta: dict[str, Any] = dict(fh.metadata() or {})
        if meta.get("format") != FORMAT:
            raise TalkeditError(path, f"is not a {FORMAT} file", f"re-run {stage_hint}")
        tensors = load_file(str(path))
        raw_net = json.loads(meta["net"])
        net_cfg = NetConfig(**{**raw_net, "dilations": tuple(raw_net["dilations"])})
        net = make_net(net_cfg)
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        net.eval()
        return cls(net, net_cfg, FeatureConfig(**json.loads(meta["features"])),
                   tensors["target.mean"].double().numpy(), tensors["target.std"].double().numpy(),
                   int(meta["n_expression"]),
                   {k: v for k, v in meta.items() if k not in ("net", "features", "format",
                                                               "n_expression",
                                                               "phone_map_share")},
                   tensors["voice.spectrum"].double().numpy(),
                   (tensors["phone_map.weights"].double().numpy()
                    if "phone_map.weights" in tensors else None),
                   float(meta.get("phone_map_share", 0.0)))
