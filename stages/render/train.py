"""train stage: a per-person recurrent generator, trained adversarially on the clip itself.

Each step samples ``batch`` sequences of ``seq_len`` consecutive training
frames. Their conditioning images come from the frames' own fitted parameters
and backgrounds (with probability ``mask_union_prob`` the mask of a sequence
is widened by another frame's outline, as an edit's would be). The generator
is unrolled over each sequence on its own outputs, starting from the real
previous frame or, with probability ``cold_start_prob``, from nothing (how a
render starts). Losses: L1 inside the mask (outside it the output *is* the
background), LSGAN terms from a spatial patch discriminator (frame +
conditioning) and a temporal one (``temporal_frames`` consecutive frames +
their conditioning), and discriminator feature matching.

The last ``holdout_share`` of the clip is never trained on; ``evaluate.py``
scores the result there. Checkpoints (``checkpoint.py``) are written every
``checkpoint_every`` steps, on interruption and at the end; a rerun with the
same clip, config and fit resumes from the last one.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.fit import PersonModel
from stages.render.checkpoint import (
    Stamp,
    build_generator,
    load_checkpoint,
    save_checkpoint,
    save_generator,
)
from stages.render.conditioning import Box, Conditioning, FaceRenderer, conditioning_channels
from stages.render.config import TrainParams, pick_device, place, set_threads
from stages.render.data import ClipData, ReferencePool, load_clip
from stages.render.evaluate import evaluate_holdout
from stages.render.infer import ConditioningSource, Frames, StreamState, rollout
from stages.render.networks import Generator, PatchDiscriminator
from talkedit.artifacts import LOSSES_COLUMNS, ModelPaths
from talkedit.atomic import write_bytes, write_json, write_text
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)


@dataclass
class Split:
    train: np.ndarray  # usable training frames
    heldout: np.ndarray  # the held-out span (consecutive)
    starts: np.ndarray  # frames that start a training sequence


def split_frames(data: ClipData, cfg: TrainParams) -> Split:
    """Training frames, the held-out span, and sequence starts; fails on too short a clip."""
    n = len(data)
    first = cfg.holdout_start(n)
    trainable = data.usable.copy()
    trainable[first:] = False
    # A sequence start needs seq_len trainable frames from it on.
    run = np.r_[0, np.cumsum(trainable)]
    ends = np.arange(n) + cfg.seq_len
    ok = (ends <= n) & (run[np.minimum(ends, n)] - run[np.arange(n)] == cfg.seq_len)
    starts = np.flatnonzero(ok)
    count = int(trainable.sum())
    if count < cfg.min_train_frames or not len(starts):
        raise TalkeditError(
            f"clip {data.clip!r}",
            f"has {count} usable frames to train on after holding out the last {n - first} "
            f"({n} frames in all), fewer than the {cfg.min_train_frames} the renderer needs",
            f"give a longer clip (at least {cfg.min_train_frames + (n - first)} frames with a "
            "face), or lower train.min_train_frames / train.holdout_share in params.yaml")
    return Split(np.flatnonzero(trainable), np.arange(first, n), starts)


def per_time(cond: Conditioning, batch: int, steps: int) -> list[Conditioning]:
    """A (batch * steps)-frame conditioning, sequence-major, as ``steps`` batches."""
    def view(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, steps, *t.shape[1:])

    ch, bg, hard, alpha = (view(t) for t in (cond.channels, cond.background, cond.hard,
                                             cond.alpha))
    return [Conditioning(ch[:, t], bg[:, t], hard[:, t], alpha[:, t]) for t in range(steps)]


def lsgan(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)) / len(fake)


class Trainer:
    """Networks, optimizers and the data sampler for one clip."""

    def __init__(self, cfg: TrainParams, model: PersonModel, data: ClipData, split: Split,
                 box: Box, device: torch.device) -> None:
        self.cfg, self.data, self.split, self.box, self.device = cfg, data, split, box, device
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = place(build_generator(cfg), device)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        per_frame = conditioning_channels(cfg.reference) + 3
        self.d_spatial = place(PatchDiscriminator(per_frame, cfg.disc_channels, cfg.disc_layers),
                               device)
        self.d_temporal = place(PatchDiscriminator(cfg.temporal_frames * per_frame,
                                                   cfg.disc_channels, cfg.disc_layers), device)
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam([*self.d_spatial.parameters(),
                                       *self.d_temporal.parameters()], cfg.lr_d, betas=betas)
        self.use_gan = (cfg.adversarial > 0 or cfg.temporal_adversarial > 0
                        or cfg.feature_matching > 0)
        # bfloat16 needs no loss scaling; mixed precision is for GPUs only.
        self.amp = bool(cfg.amp and device.type == "cuda" and torch.cuda.is_bf16_supported())
        face = FaceRenderer(model, cfg.size, cfg.mask_dilate, cfg.mask_feather, device)
        self.pool = (ReferencePool.sample(data, split.train, cfg.reference_pool)
                     if cfg.reference else None)
        # A training frame's exemplar is never itself or a near neighbour in time: at render
        # time the exemplar is another moment of the clip too.
        self.reference_of = (self.pool.nearest(data.expression, np.arange(len(data)),
                                               cfg.reference_gap) if self.pool else None)
        self.source = ConditioningSource(face, lambda f: data.crops[f], data.transforms,
                                         data.outlines, self.pool)
        self.frames = Frames(np.arange(len(data)), data.pose, data.expression,
                             data.illumination)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"g": self.generator, "ema": self.ema, "ds": self.d_spatial,
                "dt": self.d_temporal}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def final_generator(self) -> Generator:
        return self.ema if self.cfg.ema > 0 else self.generator

    def sample(self) -> tuple[list[Conditioning], StreamState, torch.Tensor]:
        """A batch: per-time conditioning of the unrolled frames, the start state, targets."""
        cfg, rng, n = self.cfg, self.rng, len(self.data)
        b, length, window = cfg.batch, cfg.seq_len, cfg.window
        starts = rng.choice(self.split.starts, b)
        steps = window - 1 + length
        rows = np.clip(starts[:, None] + np.arange(-(window - 1), length), 0, n - 1)
        widen = rng.random(b) < cfg.mask_union_prob
        other = rng.choice(self.split.train, b)
        extra = self.data.outlines[np.where(widen, other, starts)]
        flat = rows.reshape(-1)
        cond = self.source.build(self.frames, flat, np.repeat(extra, steps, axis=0),
                                 self.reference_of[flat] if self.pool else None)
        seq = per_time(cond.window(self.box), b, steps)
        history = torch.cat([c.channels for c in seq[:window - 1]], dim=1) if window > 1 else \
            seq[0].channels[:, :0]
        frames = seq[window - 1:]
        previous_rows = np.maximum(starts - 1, 0)
        cold = (rng.random(b) < cfg.cold_start_prob) | (starts == 0) | \
            ~self.data.usable[previous_rows]
        real_prev = torch.from_numpy(self.data.crops[previous_rows]).to(self.device)
        real_prev = self.box.slice(real_prev.permute(0, 3, 1, 2).float() / 127.5 - 1.0)
        cold_t = torch.from_numpy(cold).to(self.device)[:, None, None, None]
        previous = torch.where(cold_t, frames[0].masked_background, real_prev)
        target = torch.stack([f.background for f in frames], dim=1)
        return frames, StreamState(history, previous), target

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        frames, state, real = self.sample()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            outs, _ = rollout(self.generator, frames, state)
        fake = torch.stack(outs, dim=1).float()  # (B, L, 3, h, w)
        hard = torch.stack([f.hard for f in frames], dim=1)
        l1 = ((fake - real).abs() * hard).sum() / (hard.sum() * 3).clamp_min(1.0)
        losses = {"l1": float(l1.detach())}
        g_loss = cfg.l1 * l1
        if self.use_gan:
            cond = torch.stack([f.channels for f in frames], dim=1)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                d_loss, real_feats = self._discriminate(cond, real, fake.detach(), losses)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            for d in (self.d_spatial, self.d_temporal):
                d.requires_grad_(False)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                g_loss = g_loss + self._fool(cond, fake, real_feats, losses)
            for d in (self.d_spatial, self.d_temporal):
                d.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self._update_ema()
        return losses

    def _spatial_input(self, cond: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond, rgb], dim=2).flatten(0, 1)  # (B*L, C+3, h, w)

    def _temporal_input(self, cond: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        k = self.cfg.temporal_frames
        both = torch.cat([cond, rgb], dim=2)  # (B, L, C+3, h, w)
        stacks = [both[:, t:t + k].flatten(1, 2) for t in range(both.shape[1] - k + 1)]
        return torch.cat(stacks, dim=0)

    def _discriminate(self, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                      losses: dict[str, float]) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        feats = []
        total = torch.zeros((), device=self.device)
        for name, d, make in (("d_spatial", self.d_spatial, self._spatial_input),
                              ("d_temporal", self.d_temporal, self._temporal_input)):
            real_logits, real_feats = d(make(cond, real))
            fake_logits, _ = d(make(cond, fake))
            loss = 0.5 * (lsgan(real_logits, 1.0) + lsgan(fake_logits, 0.0))
            losses[name] = float(loss.detach())
            feats.append([f.detach() for f in real_feats])
            total = total + loss
        return total, feats

    def _fool(self, cond: torch.Tensor, fake: torch.Tensor, real_feats: list[list[torch.Tensor]],
              losses: dict[str, float]) -> torch.Tensor:
        cfg = self.cfg
        s_logits, s_feats = self.d_spatial(self._spatial_input(cond, fake))
        t_logits, t_feats = self.d_temporal(self._temporal_input(cond, fake))
        adv, t_adv = lsgan(s_logits, 1.0), lsgan(t_logits, 1.0)
        fm = 0.5 * (feature_matching(s_feats, real_feats[0])
                    + feature_matching(t_feats, real_feats[1]))
        losses.update(adversarial=float(adv.detach()),
                      temporal_adversarial=float(t_adv.detach()),
                      feature_matching=float(fm.detach()))
        return cfg.adversarial * adv + cfg.temporal_adversarial * t_adv + \
            cfg.feature_matching * fm

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.cfg.ema <= 0:
            return
        for e, p in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
            e.lerp_(p, 1.0 - self.cfg.ema)


# --- the loss log ------------------------------------------------------------------------------


def read_losses(path: Path, up_to: int) -> list[dict[str, float]]:
    """Rows of an existing losses.tsv up to step ``up_to`` (a resumed run continues it)."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    header = lines[0].split("\t") if lines else []
    if not set(LOSSES_COLUMNS) <= set(header):
        return []
    # Read by name: a file from an older release may have extra columns (it logged seconds).
    rows = [dict(zip(header, map(float, line.split("\t")), strict=True))
            for line in lines[1:] if line.strip()]
    return [{c: r[c] for c in LOSSES_COLUMNS} for r in rows if r["step"] <= up_to]


def write_losses(path: Path, rows: list[dict[str, float]]) -> None:
    def fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e12 else f"{v:.6g}"

    body = "\n".join("\t".join(fmt(r.get(c, float("nan"))) for c in LOSSES_COLUMNS)
                     for r in rows)
    write_text(path, "\t".join(LOSSES_COLUMNS) + "\n" + (body + "\n" if body else ""))


def write_png(path: Path, image_rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    write_bytes(path, buf.tobytes())


# --- the stage ---------------------------------------------------------------------------------


def _stale_fit(checkpoint: Path, stamp: Stamp) -> bool:
    """The checkpoint is this clip's and config's, made before the clip was fitted again."""
    found, _ = Stamp.read(checkpoint)
    return (found.clip == stamp.clip and found.config.config_hash == stamp.config.config_hash
            and found.face_model_sha != stamp.face_model_sha)


def run_train(clip: str, root: Path, train: TrainParams) -> dict[str, Any]:
    """Train (or resume) the clip's renderer; write the generator, losses, metrics, preview.

    A run stopped by ``train.max_minutes`` fails after checkpointing, so DVC never records
    a half-trained model as done and the next ``dvc repro`` continues it.
    """
    t_start = time.perf_counter()
    cfg = train
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    paths = ModelPaths.of(clip, root)
    paths.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.dir, prefix=".train-") as scratch:
        model, data = load_clip(clip, root, cfg.size, Path(scratch))
        split = split_frames(data, cfg)
        face_px = FaceRenderer(model, cfg.size, cfg.mask_dilate, cfg.mask_feather).dilate_px
        box = Box.around(data.outlines[split.train], cfg.size,
                         face_px + cfg.box_margin * cfg.size, 2 ** cfg.gen_depth)
        trainer = Trainer(cfg, model, data, split, box, device)
        stamp = Stamp(clip, cfg, box, 0, data.face_model_sha)
        checkpoint = paths.checkpoint(cfg.config_hash)
        step, resumed_from = 0, None
        if cfg.resume and checkpoint.is_file() and _stale_fit(checkpoint, stamp):
            # Our own progress against an older fit of this clip (fit was re-run): it cannot
            # be resumed, and refusing would make the `dvc repro` that should fix it fail.
            log.warning("train %s: %s was trained against an earlier fit; starting over",
                        clip, checkpoint)
        elif cfg.resume and checkpoint.is_file():
            step, _ = load_checkpoint(checkpoint, stamp, trainer.modules(),
                                      trainer.optimizers(), trainer.rng)
            resumed_from = step
            log.info("train %s: resuming from step %d (%s)", clip, step, checkpoint)
        rows = read_losses(paths.losses, step) if resumed_from is not None else []

        def save(at: int) -> None:
            stamp.step = at
            save_checkpoint(checkpoint, stamp, trainer.modules(), trainer.optimizers(),
                            trainer.rng)
            write_losses(paths.losses, rows)

        t_train, cpu_train = time.perf_counter(), time.process_time()
        done_before = step
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        stopped_early = False
        pending: list[dict[str, float]] = []
        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {clip}", unit="step",
                   mininterval=2.0, smoothing=0.05)
        try:
            while step < cfg.steps:
                pending.append(trainer.step())
                step += 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    mean = {k: float(np.mean([p[k] for p in pending if k in p]))
                            for k in pending[-1]}
                    rows.append({"step": step, **mean})
                    bar.set_postfix(l1=f"{mean['l1']:.4f}")
                    pending = []
                if step % cfg.checkpoint_every == 0:
                    save(step)
                if time.perf_counter() - t_train > budget:
                    stopped_early = step < cfg.steps
                    break
        except KeyboardInterrupt:
            save(step)  # an interrupted run resumes from here
            raise
        finally:
            bar.close()
        train_seconds = time.perf_counter() - t_train
        cpu_seconds = time.process_time() - cpu_train
        save(step)
        if stopped_early:
            raise TalkeditError(
                f"params.yaml train.max_minutes ({cfg.max_minutes})",
                f"stopped training {clip} at step {step} of {cfg.steps}, checkpointed in "
                f"{checkpoint}", "run `dvc repro` again to continue from there, or raise "
                "train.max_minutes (null: no limit)")
        generator = trainer.final_generator()
        save_generator(paths.generator, stamp, generator)
        # Always written (empty without exemplars), so the file list never depends on config.
        (trainer.pool or ReferencePool.empty(cfg.size)).save(paths.references,
                                                              stamp.metadata())
        metrics, preview = evaluate_holdout(generator, box, trainer.source, data, split.train,
                                            split.heldout, cfg.eval_warmup,
                                            max_frames=cfg.eval_frames)
    steps_run = step - done_before
    # Quality only: run times would make metrics.json (DVC metrics, tracked) differ on
    # every run; they go in the summary, which the flow writes to the run report.
    metrics.update({"steps": step, "train_frames": int(len(split.train))})
    write_json(paths.metrics, metrics)
    write_png(paths.preview, preview)
    summary = {"clip": clip, "profile": cfg.profile, "config_hash": cfg.config_hash,
               "device": str(device), "steps": step, "resumed_from": resumed_from,
               "box": [box.top, box.left, box.height, box.width],
               "psnr_db": metrics["psnr_db"], "psnr_gain_db": metrics["psnr_gain_db"],
               "temporal_ratio": metrics["temporal_change"]["ratio"],
               "train_seconds": round(train_seconds, 1),
               "train_cpu_seconds": round(cpu_seconds, 1),
               "steps_per_s": round(steps_run / train_seconds, 3) if steps_run else None,
               "seconds": round(time.perf_counter() - t_start, 1)}
    log.info("train %s: %s", clip, summary)
    return summary
