"""Held-out quality of a trained renderer, against two baselines, on the clip's own frames.

For every usable held-out frame (never trained on; of a long clip, at most
``train.eval_frames`` of them in runs spread evenly over the held-out span), with the
frame's own fitted parameters and background, three predictions of the real crop:

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

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from skimage.metrics import structural_similarity

from stages.render.conditioning import Box, to_uint8, to_unit
from stages.render.data import ClipData
from stages.render.infer import ConditioningSource, Frames, Job, Rendered, run_jobs
from stages.render.networks import Generator

METHODS = ("network", "conditioning", "nearest_frame")
CHUNK = 64  # held-out frames whose conditioning is built at once
EVAL_RUN = 250  # frames per run of a capped held-out sample (10 s at 25 fps)


def region_psnr(real: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """PSNR (dB, 8-bit) over the pixels where ``region`` (H, W) is set."""
    diff = real[region].astype(np.float64) - pred[region].astype(np.float64)
    mse = max(float((diff ** 2).mean()), 1e-10)
    return 10.0 * np.log10(255.0 ** 2 / mse)


def region_ssim(real: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """Mean of the SSIM map (7x7 windows, per channel) over ``region``."""
    _, smap = structural_similarity(real, pred, channel_axis=-1, data_range=255, full=True)
    return float(smap[region].mean())


def nearest_expression(train_expr: np.ndarray, query: np.ndarray, block: int = 4096
                       ) -> np.ndarray:
    """Index into ``train_expr`` (m, d) of the nearest row for each query row (Euclidean),
    the first on a tie. ``block`` training rows at a time: a whole long clip's distances
    (64 x 30,623 x 8 bytes for a chunk of the 31-minute clip) are never held at once."""
    query_sq = (query ** 2).sum(1)[:, None]
    best = np.full(len(query), np.inf)
    nearest = np.zeros(len(query), np.int64)
    for a in range(0, len(train_expr), block):
        part = train_expr[a:a + block]
        d2 = query_sq + (part ** 2).sum(1)[None] - 2 * query @ part.T
        k = np.argmin(d2, axis=1)
        value = d2[np.arange(len(query)), k]
        better = value < best  # strictly: an earlier block keeps a tie
        best[better], nearest[better] = value[better], k[better] + a
    return nearest


@dataclass
class Tally:
    psnr: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    ssim: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    change: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in
                                                                    (*METHODS, "real")})


def scored_spans(first: int, last: int, cap: int | None) -> list[tuple[int, int]]:
    """The held-out frames [first, last) scored: all of them, or, beyond ``cap`` frames,
    ceil(cap / EVAL_RUN) runs of equal length (at most ``cap`` frames in all) evenly spread
    over the span, so a long clip's score still samples all of its held-out part."""
    if cap is None or last - first <= cap:
        return [(first, last)]
    count = -(-cap // EVAL_RUN)
    length = cap // count
    starts = np.linspace(first, last - length, count).round().astype(int)
    return [(int(a), int(a) + length) for a in starts]


def _network_chunks(rendered: Iterator[Rendered]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The generator's (rows, crops) of a span regrouped into CHUNK-row blocks from its
    start (the blocks the scoring builds conditioning for at once)."""
    rows, crops = np.zeros(0, np.int64), np.zeros((0, 0, 0, 3), np.uint8)
    for out in rendered:
        rows = np.concatenate([rows, out.rows])
        crops = np.concatenate([crops, out.crops]) if len(crops) else out.crops
        while len(rows) >= CHUNK:
            yield rows[:CHUNK], crops[:CHUNK]
            rows, crops = rows[CHUNK:], crops[CHUNK:]
    if len(rows):
        yield rows, crops


def evaluate_holdout(generator: Generator, box: Box, source: ConditioningSource, data: ClipData,
                     train_frames: np.ndarray, heldout: np.ndarray, warmup: int,
                     preview_frames: int = 4, max_frames: int | None = None
                     ) -> tuple[dict, np.ndarray]:
    """Metrics (see the module doc) and a preview image: one row per sampled held-out
    frame, real | conditioning | nearest frame | network, the box only.

    ``max_frames``: score at most this many held-out frames (``scored_spans``). Frames are
    scored in CHUNK-frame blocks as the generator makes them: memory does not grow with
    the held-out span."""
    frames = Frames(np.arange(len(data)), data.pose, data.expression, data.illumination)
    spans = scored_spans(int(heldout[0]), int(heldout[-1]) + 1, max_frames)
    train_frames = np.asarray(train_frames)
    train_expr = data.expression[train_frames]
    scored = np.concatenate([np.arange(a, b) for a, b in spans])
    usable = data.usable[scored]
    tally = Tally()
    picks = set(scored[np.linspace(0, len(scored) - 1, preview_frames).round().astype(int)]
                .tolist())
    tiles = []
    for a, b in spans:
        previous: dict[str, np.ndarray] | None = None
        rendered = run_jobs(generator, box, source, frames, [Job(max(0, a - warmup), a, b)])
        for rows, net in _network_chunks(rendered):
            cond = source.build(frames, rows).window(box)
            nearest = train_frames[nearest_expression(train_expr, data.expression[rows])]
            exemplar = to_unit(data.crops[nearest], cond.alpha.device)
            preds = {
                "network": np.ascontiguousarray(box.slice(net.transpose(0, 3, 1, 2))
                                                .transpose(0, 2, 3, 1)),
                "conditioning": to_uint8(cond.composite(cond.channels[:, 3:6])),
                "nearest_frame": to_uint8(cond.composite(box.slice(exemplar))),
            }
            real = to_uint8(cond.background)
            hard = cond.hard[:, 0].cpu().numpy() > 0.5
            for i, frame in enumerate(rows.tolist()):
                current = {"real": real[i], **{m: preds[m][i] for m in METHODS},
                           "region": hard[i]}
                if data.usable[frame]:
                    for m in METHODS:
                        tally.psnr[m].append(region_psnr(real[i], preds[m][i], hard[i]))
                        tally.ssim[m].append(region_ssim(real[i], preds[m][i], hard[i]))
                    if previous is not None:
                        both = previous["region"] | hard[i]
                        for m in (*METHODS, "real"):
                            step = np.abs(current[m].astype(np.float64) - previous[m])[both]
                            tally.change[m].append(float(step.mean()))
                previous = current if data.usable[frame] else None
                if frame in picks:
                    tiles.append(np.concatenate([real[i], preds["conditioning"][i],
                                                 preds["nearest_frame"][i], preds["network"][i]],
                                                1))

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 4) if values else float("nan")

    psnr = {m: mean(v) for m, v in tally.psnr.items()}
    change = {m: mean(v) for m, v in tally.change.items()}
    metrics = {
        "heldout_frames": int(usable.sum()),  # scored (all of the held-out span's, uncapped)
        "psnr_db": psnr,
        "ssim": {m: mean(v) for m, v in tally.ssim.items()},
        "psnr_gain_db": {"vs_conditioning": round(psnr["network"] - psnr["conditioning"], 4),
                         "vs_nearest_frame": round(psnr["network"] - psnr["nearest_frame"], 4)},
        "temporal_change": {**change,
                            "ratio": round(change["network"] / max(change["real"], 1e-9), 4)},
    }
    if len(scored) < len(heldout):  # capped: out of how many usable held-out frames
        metrics["heldout_usable_frames"] = int(data.usable[np.asarray(heldout)].sum())
    preview = np.concatenate(tiles, 0) if tiles else np.zeros((1, 1, 3), np.uint8)
    return metrics, preview
