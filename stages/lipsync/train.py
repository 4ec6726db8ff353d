"""lipmodel stage: train the clip's audio-to-expression model and score it on held-out frames.

The clip's last ``holdout_share`` of frames is never trained on (nor used to pick
anything). Of the rest, the last ``validation_share`` picks each network's best
step and which network is kept; the earlier frames train, their audio also stretched
by each of ``speed_factors`` (``speed_perturbed``: other rates, pitches and vocal tract
lengths, warped back by the same VTLN new audio gets) with the expressions re-timed to
it, so that new audio at another rate or in another voice is not new. Held-out scores, for
both networks and two baselines (the training mean, and a linear map from the
frame's audio level to mouth opening), go to metrics.json: mouth opening
(pose-free: the inner-lip gap of the person model's shape for the expression,
over the eye distance) r and mean error against the fitted one, the standardised
expression error, and, for a generated clip, r against the true jaw opening: by that lip
gap (``truth_jaw_r``) and by the person-model opening the evaluate stage scores edits with
(``truth_jaw_r_model``: ``jaw_measure``, mapped to the true jaw on the training frames
only). The lip gap follows the lips' width as well as the jaw (rounded vowels close it):
on the demo's held-out tail the fitted expressions' own gap tracks the true jaw at r 0.906,
their model opening at 0.983, so only the latter can say how close a prediction comes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.signal import resample_poly

from stages.fit import load_fit
from stages.fit.model import PersonModel
from stages.lipsync import LipModelParams
from stages.lipsync.features import (
    RATE,
    FeatureConfig,
    choose_warp,
    frame_energy_db,
    frame_features,
    power_spectrogram,
    read_clip_wav,
    voice_spectrum,
)
from stages.lipsync.model import (
    KINDS,
    LipModel,
    NetConfig,
    TrainConfig,
    Trained,
    Trunk,
    averaged,
    openings,
    train_members,
    train_net,
)
from stages.lipsync.phones import N_CLASSES, fit_map
from stages.lipsync.respeak import ClipSpeech, respoken
from stages.lipsync.trunk import TRUNK_FILE, load_trunks
from stages.opening import ExpressionOpening
from talkedit.artifacts import (
    LIP_LOSSES_COLUMNS,
    PHONES,
    TRUTH_FRAMES,
    WORDS,
    ClipPaths,
    LipModelPaths,
    VideoMeta,
    column_array,
    read_parquet,
)
from talkedit.atomic import write_json, write_text
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)
ENERGY_FLOOR_DB = -40.0  # quieter frames count as silence for the level baseline


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def feature_config(opts: LipModelParams) -> FeatureConfig:
    # The map reads the recognised classes too: the features carry them; the network reads
    # them only with ``phones`` (net_inputs).
    return FeatureConfig(opts.n_mfcc, opts.fmax_hz, opts.context, opts.lifter_ms,
                         opts.cmvn_window_s, opts.phones or opts.phone_map_share > 0,
                         opts.phone_smooth_ms)


def net_inputs(opts: LipModelParams) -> int:
    """How many of the features' leading columns the networks read: all, or all but the
    recognised classes the phone map alone reads."""
    dim = feature_config(opts).dim
    return dim - N_CLASSES if opts.phone_map_share > 0 and not opts.phones else dim


def net_config(kind: str, opts: LipModelParams, in_dim: int, members: int = 1) -> NetConfig:
    return NetConfig(kind, in_dim, opts.components, opts.hidden, opts.dropout,
                     delay=opts.lstm_delay if kind == "lstm" else 0, kernel=opts.tcn_kernel,
                     dilations=tuple(opts.tcn_dilations), members=members)


def split(n: int, opts: LipModelParams, clip: str) -> tuple[slice, slice, slice]:
    """(train, validation, held-out) frame ranges, in time order."""
    heldout = int(round(n * opts.holdout_share))
    rest = n - heldout
    val = int(round(rest * opts.validation_share))
    if rest - val < opts.min_train_frames:
        raise TalkeditError(f"clip {clip}", f"leaves {rest - val} frames to train the lip-sync "
                            f"model on ({n} frames, {heldout} held out, {val} for validation)",
                            f"use a longer clip (lipmodel.min_train_frames is "
                            f"{opts.min_train_frames})")
    return slice(0, rest - val), slice(rest - val, rest), slice(rest, n)


def speed_perturbed(samples: np.ndarray, target: np.ndarray, fps: float, cfg: FeatureConfig,
                    factors: tuple[float, ...], reference: np.ndarray,
                    warps: tuple[float, ...] = ()
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per factor, the training audio's features and targets with its duration stretched by
    that factor (resampled: tempo, pitch and formants move together, as between speakers
    and rates) and warped back toward the person's voice as new audio is (VTLN, job.py);
    the targets are the expressions re-timed by linear interpolation. Factor 1 is the
    audio as it is, unwarped: the person's own voice. Then, per warp in ``warps``, the
    audio as it is through a mel bank warped by it (VTLN augmentation: the warp new audio
    gets is never exact), the targets as they are."""
    xs, ys = [], []
    frames = np.arange(len(target))
    for factor in factors:
        # Rates in whole 100 Hz steps: a short resampling filter, the same bytes anywhere.
        rate = int(round(RATE * factor / 100)) * 100
        stretch = rate / RATE
        step = math.gcd(rate, RATE)
        audio = resample_poly(samples, rate // step, RATE // step) if rate != RATE else samples
        n = int(round(len(target) * stretch))
        warp = 1.0 if rate == RATE else choose_warp(audio, cfg, reference)
        xs.append(frame_features(audio, n, fps, cfg, warp))
        at = np.arange(n) / stretch  # the original frame each stretched frame shows
        ys.append(np.stack([np.interp(at, frames, column) for column in target.T], axis=1))
    for warp in warps:
        xs.append(frame_features(samples, len(target), fps, cfg, warp))
        ys.append(target)
    return xs, ys


def opening_direction(person: PersonModel, mean: np.ndarray, std: np.ndarray,
                      target: np.ndarray) -> np.ndarray:
    """The direction, in standardised target units, along which the mouth opens (openings'
    gradient at the mean expression), scaled so that an error of 1 along it is one spread
    of ``target``'s opening."""
    k, step = len(mean), 1e-3
    base = np.zeros((k + 1, person.basis.shape[0]))
    base[:, :k] = mean
    base[1:, :k] += step * np.diag(std)
    opening = openings(person, base)
    direction = (opening[1:] - opening[0]) / step
    return direction / max(float(np.std(target @ direction)), 1e-9)


def loss_weights(person: PersonModel, mean: np.ndarray, std: np.ndarray, target: np.ndarray,
                 opening_weight: float) -> np.ndarray:
    """The training loss's quadratic form on standardised errors: each component weighted by
    the variance it explains (so the sum is the shape error), plus ``opening_weight`` times
    the squared error along the mouth's opening."""
    k = len(mean)
    weights = np.diag(person.explained[:k] / person.explained[:k].sum())
    if opening_weight > 0:
        u = opening_direction(person, mean, std, target)
        weights = weights + opening_weight * np.outer(u, u)
    return weights


def level_baseline(energy: np.ndarray, opening: np.ndarray, train: slice) -> np.ndarray:
    """Least-squares opening = a + b * level (floored), fitted on the training frames."""
    level = np.maximum(energy, ENERGY_FLOOR_DB)
    a = np.c_[np.ones(len(level)), level]
    coef, *_ = np.linalg.lstsq(a[train], opening[train], rcond=None)
    return a @ coef


def jaw_measure(person: PersonModel, expression: np.ndarray, truth_jaw: np.ndarray,
                frames: slice | np.ndarray) -> ExpressionOpening:
    """The evaluate stage's person-model opening, its map to the true jaw fitted on the
    clip's ``frames`` (the training frames: never those it scores)."""
    return ExpressionOpening.of(person).fitted(expression[frames], truth_jaw[frames])


def scores(pred_opening: np.ndarray, fitted_opening: np.ndarray, truth_jaw: np.ndarray | None,
           pred_expr: np.ndarray | None = None, fitted_expr: np.ndarray | None = None,
           std: np.ndarray | None = None, weights: np.ndarray | None = None,
           pred_model_opening: np.ndarray | None = None) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "opening_r": pearson(pred_opening, fitted_opening),
        "opening_mae": float(np.abs(pred_opening - fitted_opening).mean()),
    }
    if pred_expr is not None and fitted_expr is not None and std is not None \
            and weights is not None:
        # In units of each component's spread, weighted by the variance it explains.
        err = (((pred_expr - fitted_expr) / std) ** 2).mean(axis=0)
        out["expression_rmse_sd"] = float(np.sqrt((err * weights).sum()))
    if truth_jaw is not None:
        out["truth_jaw_r"] = pearson(pred_opening, truth_jaw)
        if pred_model_opening is not None:
            out["truth_jaw_r_model"] = pearson(pred_model_opening, truth_jaw)
    return {k: (None if v is None else round(v, 4)) for k, v in out.items()}


def losses_table(runs: dict[str, Trained]) -> str:
    rows = {}
    for kind, run in runs.items():
        for step, train_loss, val_loss in run.curve:
            rows.setdefault(step, {"step": step})[f"{kind}_train"] = round(train_loss, 5)
            rows[step][f"{kind}_validation"] = round(val_loss, 5)
    table = pd.DataFrame(list(rows.values()), columns=LIP_LOSSES_COLUMNS)
    return table.to_csv(sep="\t", index=False)


@dataclass
class Networks:
    """Networks trained on some of a clip's frames, with their target scaling and voice."""

    runs: dict[str, Trained]
    seconds: dict[str, float]  # training time of each
    mean: np.ndarray  # (components,) expression mean of the training frames
    std: np.ndarray  # (components,) and spread
    voice: np.ndarray  # voice_spectrum of the training audio
    picked: dict[str, Trained]  # before refit (lipmodel.refit): trained on ``train`` only
    phone_map: np.ndarray | None = None  # phones.fit_map's weights (lipmodel.phone_map_share)

    def model(self, kind: str, opts: LipModelParams, n_expression: int,
              meta: dict[str, str] | None = None) -> LipModel:
        """The ``kind`` network (with the phone map, if one) as a LipModel."""
        return LipModel(self.runs[kind].net,
                        net_config(kind, opts, net_inputs(opts), opts.ensemble),
                        feature_config(opts), self.mean, self.std, n_expression, meta or {},
                        self.voice, self.phone_map, opts.phone_map_share)


def fit_networks(samples: np.ndarray, fps: float, expression: np.ndarray, person: PersonModel,
                 train: list[slice], val: tuple[np.ndarray, slice], opts: LipModelParams,
                 speech: ClipSpeech | None = None, kinds: tuple[str, ...] = KINDS,
                 progress: Callable[[str], None] | None = None,
                 trunks: dict[str, Trunk] | None = None) -> Networks:
    """Train each of ``kinds`` on the ``train`` frame ranges of the clip (each one speed-
    perturbed and, given what the clip says, re-spoken by ``opts.voices``; no training
    window crosses from one range or copy to another), keeping the step best on the
    ``val`` (features, frames) pair; with ``opts.refit``, the kind better on ``val`` is
    then trained again, each member for its best number of steps, on the ``val`` frames
    too (its validation loss stays the one that picked it). Given ``trunks`` (trunk.py),
    each kind starts from its pretrained trunk."""
    feats_cfg, k = feature_config(opts), opts.components
    rows = np.concatenate([np.arange(part.start, part.stop) for part in train])
    mean, std = expression[rows, :k].mean(axis=0), expression[rows, :k].std(axis=0) + 1e-6
    target = (expression[:, :k] - mean) / std

    def part_audio(part: slice) -> np.ndarray:
        return samples[int(round(part.start / fps * RATE)):int(round(part.stop / fps * RATE))]

    voice = voice_spectrum(*power_spectrogram(np.concatenate([part_audio(p) for p in train])),
                           feats_cfg)

    def copies(parts: list[slice]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """The parts' training sequences (features), all end to end, and their targets."""
        xs, ys = [], []
        for part in parts:
            part_x, part_y = speed_perturbed(part_audio(part), target[part], fps, feats_cfg,
                                             opts.speed_factors, voice, opts.train_warps)
            xs += part_x
            ys += part_y
            if opts.voices and speech is not None:
                part_x, part_y = respoken(part, speech, target, fps, feats_cfg,
                                          opts.voices, opts.voice_rates_wpm, voice)
                xs += [x for x in part_x if len(x) >= opts.window]
                ys += [y for y in part_y if len(y) >= opts.window]
        return xs, np.concatenate(xs), np.concatenate(ys)

    xs, train_x, train_y = copies(train)
    in_dim = net_inputs(opts)
    phone_map = None
    if opts.phone_map_share > 0:  # fitted on every copy the networks train on
        ys = np.split(train_y, np.cumsum([len(x) for x in xs])[:-1])
        phone_map = fit_map([x[:, -N_CLASSES:] for x in xs], ys)
    train_x = train_x[:, :in_dim]
    loss = loss_weights(person, mean, std, train_y, opts.opening_weight)
    train_cfg = TrainConfig(opts.steps, opts.batch, opts.window, opts.lr, opts.weight_decay,
                            opts.eval_every, opts.seed, opts.velocity_weight)
    val_x, val_rows = val
    val_x = val_x[:, :in_dim]
    val_y = target[val_rows]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums, so the same weights, anywhere
    torch.use_deterministic_algorithms(True)
    runs: dict[str, Trained] = {}
    seconds: dict[str, float] = {}
    try:
        # One kind after another (each timed); with worker processes, every kind's members
        # at once (2 workers x 2 kinds x 3 members keep both cores busy; the time is shared).
        for group in ([[kind] for kind in kinds] if opts.workers <= 1 else [list(kinds)]):
            t = time.perf_counter()
            jobs = [(net_config(kind, opts, in_dim),
                     dataclasses.replace(train_cfg, seed=opts.seed + member))
                    for kind in group for member in range(opts.ensemble)]
            members = train_members(jobs, train_x, train_y, loss, (val_x, val_y),
                                    [len(x) for x in xs], opts.workers, progress, trunks)
            for number, kind in enumerate(group):
                runs[kind] = averaged(members[number * opts.ensemble:
                                              (number + 1) * opts.ensemble],
                                      loss, (val_x, val_y))
                seconds[kind] = round((time.perf_counter() - t) / len(group), 2)
        picked = dict(runs)
        if opts.refit:  # the kind best on validation again from its start, now also on those
            all_xs, all_x, all_y = copies([*train, val_rows])
            kind = min(kinds, key=lambda kind: (runs[kind].best_val, kind))
            t = time.perf_counter()
            steps = runs[kind].best_step
            members = [train_net(net_config(kind, opts, in_dim),
                                 dataclasses.replace(train_cfg, seed=opts.seed + member,
                                                     steps=step, eval_every=step),
                                 all_x[:, :in_dim], all_y, loss, (val_x, val_y),
                                 lengths=[len(x) for x in all_xs],
                                 trunk=(trunks or {}).get(kind))
                       for member, step in enumerate(steps if isinstance(steps, list)
                                                     else [steps])]
            runs[kind] = averaged(members, loss, (val_x, val_y))
            runs[kind].best_val = picked[kind].best_val  # the refit net's own is in-sample
            seconds[kind] = round(seconds[kind] + time.perf_counter() - t, 2)
    finally:
        torch.set_num_threads(threads)
    return Networks(runs, seconds, mean, std, voice, picked, phone_map)


def clip_speech(clip: str, root: Path | None) -> ClipSpeech:
    """The clip's transcript tokens and its aligned words and phones (the align stage's)."""
    paths = ClipPaths.of(clip, root)
    hint = f"align@{clip}"
    return ClipSpeech(paths.transcript.read_text(encoding="utf-8").split(),
                      read_parquet(paths.words, WORDS, stage_hint=hint),
                      read_parquet(paths.phones, PHONES, stage_hint=hint))


def run_lipmodel(clip: str, root: Path, lipmodel: LipModelParams) -> dict[str, Any]:
    """Train and score the clip's audio-to-expression model; write data/models/<clip>/lipsync/."""
    t0 = time.perf_counter()
    opts = lipmodel
    paths, out = ClipPaths.of(clip, root), LipModelPaths.of(clip, root)
    person, table = load_fit(clip, root)
    expression = column_array(table, "expression").astype(np.float64)
    n, fps = len(expression), VideoMeta.read(paths).fps
    samples = read_clip_wav(paths.audio)
    feats_cfg = feature_config(opts)
    feats = frame_features(samples, n, fps, feats_cfg)
    train, val, held = split(n, opts, clip)
    train_s = (train.stop - train.start) / fps
    warnings = [] if train_s >= opts.advise_train_s else [
        f"the lip model of {clip} trains on {train_s:.1f} s of its speech (the rest is for "
        f"validation and held out); with less than {opts.advise_train_s:.0f} s its lips "
        "trailed the viseme search's where the words are known (benchmarks/results/"
        "lipsync.md, session 19): give lip-sync jobs their words (--transcript), or use a "
        "longer clip"]
    for line in warnings:
        log.warning("lipmodel %s: %s", clip, line)

    k = opts.components
    speech = clip_speech(clip, root) if opts.voices else None
    trunks = load_trunks(opts, net_inputs(opts)) if opts.pretrained else None
    nets = fit_networks(samples, fps, expression, person, [train], (feats[val], val), opts,
                        speech, progress=lambda line: log.info("lipmodel %s: %s", clip, line),
                        trunks=trunks)
    runs, seconds, mean, std = nets.runs, nets.seconds, nets.mean, nets.std
    weights = person.explained[:k] / person.explained[:k].sum()
    kept = min(KINDS, key=lambda kind: (runs[kind].best_val, kind))

    fitted_open = openings(person, expression)
    truth, measure = None, None
    if paths.truth_frames.is_file():
        jaw = read_parquet(paths.truth_frames, TRUTH_FRAMES)["jaw_open"].to_numpy()[:n]
        truth, measure = jaw[held], jaw_measure(person, expression, jaw, train)
    metrics: dict[str, Any] = {"kept": kept, "train_s": round(train_s, 2), "warnings": warnings,
                               "pretrained": trunks is not None,
                               "frames": {"train": train.stop, "validation":
                                          val.stop - val.start, "heldout": held.stop - held.start}}
    for kind, run in runs.items():
        pred = nets.model(kind, opts, expression.shape[1]).expression(feats[held])
        metrics[kind] = {"best_step": run.best_step, "validation_loss": round(run.best_val, 5),
                         **scores(openings(person, pred), fitted_open[held], truth, pred[:, :k],
                                  expression[held, :k], std, weights,
                                  None if measure is None else measure.from_coefficients(pred))}
    energy = frame_energy_db(samples, n, fps)
    metrics["baseline_mean"] = scores(np.full(held.stop - held.start, fitted_open[train].mean()),
                                      fitted_open[held], truth, np.tile(mean, (held.stop - held.start,
                                                                                1)),
                                      expression[held, :k], std, weights)
    metrics["baseline_level"] = scores(level_baseline(energy, fitted_open, train)[held],
                                       fitted_open[held], truth)
    if truth is not None and measure is not None:  # set together; both for the type checker
        metrics["fitted_truth_jaw_r"] = round(pearson(fitted_open[held], truth) or 0.0, 4)
        metrics["fitted_truth_jaw_r_model"] = round(
            pearson(measure.from_coefficients(expression[held]), truth) or 0.0, 4)

    meta = {"clip": clip, "fit_sha256": file_sha256(paths.face), "fps": repr(float(fps))}
    if trunks is not None:  # what the networks started from
        meta["trunk_sha256"] = file_sha256(TRUNK_FILE)
    model = nets.model(kept, opts, expression.shape[1], meta)
    model.save(out.model)
    write_text(out.losses, losses_table(runs))
    write_json(out.metrics, metrics)
    summary = {"clip": clip, "kept": kept, **{f"{kind}_opening_r": metrics[kind]["opening_r"]
                                               for kind in KINDS},
               "level_opening_r": metrics["baseline_level"]["opening_r"],
               **{f"{kind}_train_seconds": s for kind, s in seconds.items()},
               "seconds": round(time.perf_counter() - t0, 2), "warnings": warnings}
    log.info("lipmodel %s: %s", clip, summary)
    return summary
