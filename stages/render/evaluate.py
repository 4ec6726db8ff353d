"""Held-out quality of a trained renderer, against two baselines, on the clip's own frames.

For every usable held-out frame (never trained on), with the frame's own
fitted parameters and background, three predictions of the real crop:

* ``network``: the generator, run recurrently over the held-out span (after a
  few warm-up frames just before it, as the render stage does);
* ``conditioning``: the conditioning image itself, the synthetic face over the
  masked background (baseline a);
* ``nearest_frame``: the training frame whose expression coefficients are
  nearest, its crop pasted into the same mask (baseline b).

All three are blended into the real background with the same feathered mask,
so they differ only in the *mouth region*: the generator's dilated lower-face
mask inside its box. PSNR (dB) and SSIM are measured there per frame and
averaged. Temporal stability: mean absolute frame-to-frame change of the
region (union of both frames' masks), for each prediction and the real
footage; ``ratio`` = network / real (1 = as steady as the footage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.metrics import structural_similarity

from stages.render.conditioning import Box, to_uint8, to_unit
from stages.render.data import ClipData
from stages.render.infer import ConditioningSource, Frames, Job, run_jobs
from stages.render.networks import Generator

METHODS = ("network", "conditioning", "nearest_frame")
CHUNK = 64  # held-out frames whose conditioning is built at once


def region_psnr(real: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """PSNR (dB, 8-bit) over the pixels where ``region`` (H, W) is set."""
    diff = real[region].astype(np.float64) - pred[region].astype(np.float64)
    mse = max(float((diff ** 2).mean()), 1e-10)
    return 10.0 * np.log10(255.0 ** 2 / mse)


def region_ssim(real: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """Mean of the SSIM map (7x7 windows, per channel) over ``region``."""
    _, smap = structural_similarity(real, pred, channel_axis=-1, data_range=255, full=True)
    return float(smap[region].mean())


def nearest_expression(train_expr: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index into ``train_expr`` (m, d) of the nearest row for each query row (Euclidean)."""
    d2 = (query ** 2).sum(1)[:, None] + (train_expr ** 2).sum(1)[None] - 2 * query @ train_expr.T
    return np.argmin(d2, axis=1)


@dataclass
class Tally:
    psnr: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    ssim: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    change: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in
                                                                    (*METHODS, "real")})


def evaluate_holdout(generator: Generator, box: Box, source: ConditioningSource, data: ClipData,
                     train_frames: np.ndarray, heldout: np.ndarray, warmup: int,
                     preview_frames: int = 4) -> tuple[dict, np.ndarray]:
    """Metrics (see the module doc) and a preview image: one row per sampled held-out
    frame, real | conditioning | nearest frame | network, the box only."""
    frames = Frames(np.arange(len(data)), data.pose, data.expression, data.illumination)
    first, last = int(heldout[0]), int(heldout[-1]) + 1
    net = np.empty((last - first, data.size, data.size, 3), np.uint8)
    for out in run_jobs(generator, box, source, frames, [Job(max(0, first - warmup), first, last)]):
        net[out.rows - first] = out.crops
    nearest = np.asarray(train_frames)[nearest_expression(data.expression[train_frames],
                                                          data.expression[first:last])]
    usable = data.usable[first:last]
    tally = Tally()
    picks = set(np.linspace(0, last - first - 1, preview_frames).round().astype(int).tolist())
    tiles = []
    previous: dict[str, np.ndarray] | None = None
    for a in range(first, last, CHUNK):
        rows = np.arange(a, min(a + CHUNK, last))
        cond = source.build(frames, rows).window(box)
        exemplar = to_unit(data.crops[nearest[rows - first]], cond.alpha.device)
        preds = {
            "network": np.ascontiguousarray(box.slice(net[rows - first].transpose(0, 3, 1, 2))
                                            .transpose(0, 2, 3, 1)),
            "conditioning": to_uint8(cond.composite(cond.channels[:, 3:6])),
            "nearest_frame": to_uint8(cond.composite(box.slice(exemplar))),
        }
        real = to_uint8(cond.background)
        hard = cond.hard[:, 0].cpu().numpy() > 0.5
        for i, k in enumerate(rows - first):
            current = {"real": real[i], **{m: preds[m][i] for m in METHODS}, "region": hard[i]}
            if usable[k]:
                for m in METHODS:
                    tally.psnr[m].append(region_psnr(real[i], preds[m][i], hard[i]))
                    tally.ssim[m].append(region_ssim(real[i], preds[m][i], hard[i]))
                if previous is not None:
                    both = previous["region"] | hard[i]
                    for m in (*METHODS, "real"):
                        step = np.abs(current[m].astype(np.float64) - previous[m])[both]
                        tally.change[m].append(float(step.mean()))
            previous = current if usable[k] else None
            if k in picks:
                tiles.append(np.concatenate([real[i], preds["conditioning"][i],
                                             preds["nearest_frame"][i], preds["network"][i]], 1))

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 4) if values else float("nan")

    psnr = {m: mean(v) for m, v in tally.psnr.items()}
    change = {m: mean(v) for m, v in tally.change.items()}
    metrics = {
        "heldout_frames": int(usable.sum()),
        "psnr_db": psnr,
        "ssim": {m: mean(v) for m, v in tally.ssim.items()},
        "psnr_gain_db": {"vs_conditioning": round(psnr["network"] - psnr["conditioning"], 4),
                         "vs_nearest_frame": round(psnr["network"] - psnr["nearest_frame"], 4)},
        "temporal_change": {**change,
                            "ratio": round(change["network"] / max(change["real"], 1e-9), 4)},
    }
    preview = np.concatenate(tiles, 0) if tiles else np.zeros((1, 1, 3), np.uint8)
    return metrics, preview
