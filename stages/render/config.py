"""The ``train:`` and ``render:`` sections of params.yaml, resolved and checked.

``train:`` holds knobs shared by every profile plus one block per profile
(``cpu``, ``gpu``); ``profile:`` picks the block, whose keys override the
shared defaults. The *config hash* covers every resolved setting that changes
what the networks are or learn (sizes, losses, data split, seed); run-length
settings (steps, checkpoint cadence, threads, device...) are left out, so
raising ``steps`` resumes a finished training instead of refusing it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param

M = TypeVar("M", bound=torch.nn.Module)

PROFILES = ("cpu", "gpu")


def _run(default: Any) -> Any:
    """A run-length setting: not part of the config hash."""
    return field(default=default, metadata={"run": True})


def _scoring(default: Any) -> Any:
    """A setting of the held-out scoring only (metrics.json): neither part of the config
    hash nor of the config stored with a generator (it does not change the network)."""
    return field(default=default, metadata={"run": True, "stamp": False})


@dataclass(frozen=True)
class TrainParams(Section):
    """Every setting of the train stage (see params.yaml for what each does).

    The defaults are params.yaml's, with the ``cpu`` profile applied (a test keeps them equal).
    """

    SECTION = "train"

    profile: str = _run("cpu")
    seed: int = 0
    holdout_share: float = 0.35
    holdout_frames: int | None = None
    min_train_frames: int = _run(200)
    resume: bool = _run(True)
    checkpoint_every: int = _run(250)
    log_every: int = _run(25)
    threads: int = _run(2)
    device: str = _run("auto")
    max_minutes: float | None = _run(None)
    eval_warmup: int = _run(4)
    # Score at most this many held-out frames (runs evenly spread over the held-out span):
    # 35 % of a 31-minute clip is 16,490 frames, 408 s of scoring; None: every one.
    eval_frames: int | None = _scoring(1500)
    # sizes (per profile)
    size: int = 128
    steps: int = _run(1200)
    batch: int = 4
    seq_len: int = 4
    window: int = 2
    gen_channels: int = 16
    gen_max_channels: int = 128
    gen_depth: int = 4
    gen_res_blocks: int = 2
    disc_channels: int = 16
    disc_layers: int = 3
    temporal_frames: int = 3
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    ema: float = 0.99
    amp: bool = False
    # losses
    l1: float = 1.0
    adversarial: float = 0.01
    temporal_adversarial: float = 0.01
    feature_matching: float = 0.1
    # conditioning
    mask_dilate: float = 0.03
    mask_feather: float = 0.015
    mask_union_prob: float = 0.5
    box_margin: float = 0.03
    # appearance exemplar
    reference: bool = True
    reference_pool: int = 1000
    reference_gap: int = 25
    cold_start_prob: float = 0.25

    @classmethod
    def prepare(cls, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """Apply the chosen profile's block (``cpu:`` / ``gpu:``) over the shared keys."""
        profile = raw.pop("profile", "cpu")
        if profile not in PROFILES:
            raise bad_param(where, "profile", f"is {profile!r}, not one of {PROFILES}",
                            "use cpu or gpu")
        blocks = {p: raw.pop(p, None) or {} for p in PROFILES}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(blocks[profile]) - names)
        if unknown:
            raise bad_param(f"{where}.{profile}", unknown[0],
                            f"is not one of the {where}.{profile} parameters",
                            f"use one of: {', '.join(sorted(names))}")
        return {**raw, **{k: v for k, v in blocks[profile].items() if v is not None},
                "profile": profile}

    def check(self, where: str = "train") -> None:
        def bad(name: str, why: str, fix: str) -> TalkeditError:
            return bad_param(where, name, f"= {getattr(self, name)!r} {why}", fix)

        stride = 2 ** self.gen_depth
        if self.size < 32 or self.size % stride:
            raise bad("size", f"must be >= 32 and a multiple of 2**gen_depth = {stride}",
                      "use 128 or 256")
        if not 0 < self.holdout_share < 0.5:
            raise bad("holdout_share", "must be in (0, 0.5)", "use 0.35")
        if self.eval_frames is not None and self.eval_frames < 2:
            raise bad("eval_frames", "must score at least 2 frames (or be null)", "use 1500")
        if self.holdout_frames is not None and self.holdout_frames < 2:
            raise bad("holdout_frames", "must hold at least 2 frames (or be null)", "use null")
        if self.temporal_frames > self.seq_len or self.temporal_frames < 2:
            raise bad("temporal_frames", "must be 2..seq_len", "use 3 with seq_len >= 3")
        if self.window < 1 or self.batch < 1 or self.steps < 0:
            raise bad("window", "window and batch must be >= 1, steps >= 0", "use window: 2")
        if self.mask_dilate < 2 * self.mask_feather:
            raise bad("mask_dilate", "must be at least twice mask_feather (the feather lies "
                      "inside the dilation)", "use mask_dilate 0.03, mask_feather 0.015")
        if not 0 <= self.ema < 1:
            raise bad("ema", "must be in [0, 1)", "use 0.999 (0 = no averaging)")

    def hashed(self) -> dict[str, Any]:
        """The settings that define the model (run-length knobs left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.metadata.get("run")}

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.hashed(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def holdout_start(self, n_frames: int) -> int:
        """First held-out frame: the last holdout_frames (or share) of the clip."""
        n_out = self.holdout_frames if self.holdout_frames is not None else round(
            self.holdout_share * n_frames)
        return max(0, n_frames - max(2, int(n_out)))

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                           if f.metadata.get("stamp", True)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainParams:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True)
class RenderParams(Section):
    """The ``render:`` section of params.yaml."""

    SECTION = "render"

    device: str = "auto"
    batch: int = 8
    only_edited: bool = True
    warmup_frames: int = 4
    chunk_frames: int = 256
    threads: int = 2

    def check(self, where: str) -> None:
        if self.batch < 1 or self.chunk_frames < 1 or self.warmup_frames < 0:
            raise bad_param(where, "batch", "batch and chunk_frames must be >= 1 and "
                            "warmup_frames >= 0", "use batch 8, chunk_frames 256, warmup 4")


def pick_device(name: str) -> torch.device:
    """``auto`` = the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TalkeditError(f"device {name!r}", "is not a torch device", "use auto, cpu or cuda"
                            ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TalkeditError(f"device {name!r}", "asks for a GPU but torch sees none",
                            "use device: auto or cpu (and the cpu profile)")
    return device


def place(module: M, device: torch.device) -> M:
    """``module`` on ``device``; on a GPU in channels-last layout, which its convolutions
    (cuDNN, tensor cores in bfloat16) run fastest in. Checkpoints store contiguous copies,
    so the layout never reaches a file."""
    if device.type == "cuda":
        return module.to(device, memory_format=torch.channels_last)
    return module.to(device)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def return_large_buffers(threshold: int = 1 << 20) -> None:
    """Have glibc's malloc hand blocks of ``threshold`` bytes and more straight back to the
    system when freed. By default it raises that threshold to the largest block freed so
    far (up to 32 MB); from then on the 1-30 MB buffers of every conditioning chunk come
    from the heap, which fragments and grows over a long run: scoring 1,500 held-out
    frames of the 31-minute clip kept ~200 MB more than a fixed 1 MB threshold (1-minute
    clip, train: peak 1341 -> 1155 MB). No effect off glibc; results are the same bytes."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to set
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold)


def set_threads(threads: int) -> None:
    """Bound torch's CPU threads (the machine is shared); 0 keeps torch's default; and
    keep the heap from growing with the run (``return_large_buffers``).

    Also asks torch for its deterministic kernels: the CPU ones already are for a given
    thread count, and on a GPU it avoids atomics-based ones (warning where an op has no
    deterministic version). The thread count is part of what the result depends on: a
    fixed one (not 0, torch's per-machine default) gives the same bytes on every machine.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    return_large_buffers()
    # cuBLAS is deterministic only with a fixed workspace; read when CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # torch.use_deterministic_algorithms sets this flag and also torch._inductor's, whose
    # import (torch._dynamo) costs 2-5 s of every render and train process; talkedit never
    # compiles with inductor, so the flag alone is set.
    torch._C._set_deterministic_algorithms(True, warn_only=True)
