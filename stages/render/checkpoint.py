"""Checkpoints and the trained generator as safetensors (no pickle), with metadata.

Every file records the clip, the config hash (``TrainParams.config_hash``),
the full resolved config, the generator's box, the step and the SHA-256 of the
person model it was trained against; loading checks them and refuses a file
made for another clip, config or fit, saying which and how to fix it.

A checkpoint holds the generator, its EMA copy, both discriminators, the
three Adam states (flattened to tensors; the param groups go to metadata as
JSON) and the RNG states, so a resumed run continues the same random stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from stages.render.conditioning import Box, conditioning_channels
from stages.render.config import TrainParams, place
from stages.render.networks import Generator
from talkedit import __version__
from talkedit.atomic import write_safetensors
from talkedit.errors import TalkeditError

FORMAT = "talkedit-render-1"


@dataclass
class Stamp:
    """What a model file was made from."""

    clip: str
    config: TrainParams
    box: Box
    step: int
    face_model_sha: str

    def metadata(self) -> dict[str, str]:
        return {"format": FORMAT, "clip": self.clip, "config_hash": self.config.config_hash,
                "config": self.config.to_json(), "box": self.box.to_json(),
                "step": str(self.step), "face_model_sha256": self.face_model_sha,
                "talkedit_version": __version__}

    @classmethod
    def read(cls, path: Path) -> tuple[Stamp, dict[str, str]]:
        if not path.is_file():
            raise TalkeditError(path, "not found", "run the train stage first (dvc repro)")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
            raise TalkeditError(path, f"is not a readable safetensors file ({exc})",
                                "delete it and re-run the train stage") from exc
        if meta.get("format") != FORMAT:
            raise TalkeditError(path, f"is not a talkedit renderer file (format "
                                f"{meta.get('format')!r}, expected {FORMAT!r})",
                                "re-run the train stage with this version of talkedit")
        stamp = cls(meta["clip"], TrainParams.from_json(meta["config"]),
                    Box.from_json(meta["box"]), int(meta["step"]), meta["face_model_sha256"])
        return stamp, meta

    def check(self, path: Path, clip: str, config_hash: str | None = None,
              face_model_sha: str | None = None) -> None:
        """Refuse a file made for another clip, config or fit of the clip."""
        if self.clip != clip:
            raise TalkeditError(path, f"was trained on clip {self.clip!r}, not {clip!r}",
                                f"use data/models/{clip}/ (run train@{clip})")
        if config_hash is not None and self.config.config_hash != config_hash:
            raise TalkeditError(
                path, f"was made with another train config (hash {self.config.config_hash}; "
                f"params.yaml's train section gives {config_hash})",
                f"re-run train@{clip} (dvc repro), or restore the train settings it was "
                "made with")
        if face_model_sha is not None and self.face_model_sha != face_model_sha:
            raise TalkeditError(path, f"was trained against another fit of clip {clip!r} (its "
                                "face_model.safetensors changed since)",
                                f"re-run train@{clip} (dvc repro)")


def build_generator(config: TrainParams) -> Generator:
    return Generator(conditioning_channels(config.reference), config.window, config.gen_channels,
                     config.gen_depth, config.gen_max_channels, config.gen_res_blocks,
                     residual=config.reference)


def _flat_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor],
                                                                       str]:
    state = opt.state_dict()
    tensors = {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{pid}.{key}"] = t.detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    groups: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def _prefixed(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in
            module.state_dict().items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def save_checkpoint(path: Path, stamp: Stamp, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], rng: np.random.Generator,
                    extra: dict[str, str] | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {}
    meta = stamp.metadata()
    for name, module in modules.items():
        tensors.update(_prefixed(name, module))
    for name, opt in optimizers.items():
        flat, groups = _flat_optimizer(name, opt)
        tensors.update(flat)
        meta[f"{name}.param_groups"] = groups
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta["rng.numpy"] = json.dumps(rng.bit_generator.state)
    meta.update(extra or {})
    write_safetensors(path, save(tensors, metadata=meta))


def load_checkpoint(path: Path, stamp: Stamp, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], rng: np.random.Generator
                    ) -> tuple[int, dict[str, str]]:
    """Restore a checkpoint made for ``stamp``'s clip, config and fit; returns its step."""
    found, meta = Stamp.read(path)
    found.check(path, stamp.clip, stamp.config.config_hash, stamp.face_model_sha)
    tensors = load_file(str(path))
    for name, module in modules.items():
        module.load_state_dict(_unprefixed(name, tensors))
    for name, opt in optimizers.items():
        _load_optimizer(name, opt, tensors, meta[f"{name}.param_groups"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    rng.bit_generator.state = json.loads(meta["rng.numpy"])
    return found.step, meta


def save_generator(path: Path, stamp: Stamp, generator: Generator,
                   extra: dict[str, str] | None = None) -> None:
    write_safetensors(path, save(_prefixed("generator", generator),
                                 metadata={**stamp.metadata(), **(extra or {})}))


def load_generator(path: Path, clip: str, config_hash: str | None = None,
                   face_model_sha: str | None = None, device: torch.device | str = "cpu"
                   ) -> tuple[Generator, Stamp]:
    """The trained generator of ``clip``, checked against the clip, config and fit."""
    stamp, _ = Stamp.read(path)
    stamp.check(path, clip, config_hash, face_model_sha)
    generator = build_generator(stamp.config)
    generator.load_state_dict(_unprefixed("generator", load_file(str(path))))
    return place(generator, torch.device(device)).eval(), stamp
