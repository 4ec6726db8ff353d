"""Atomic artifact writes: write to a temp file beside the target, then rename.

An interrupted stage therefore never leaves a half-written artifact, and
``dvc repro`` resumes cleanly (the target either exists whole or not at all).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _process_umask() -> int:
    # Read once: os.umask can only be read by setting it, which races with other threads
    # (fit's prefetch thread creates files while artifacts are written).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _process_umask()


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it onto ``target`` on success.

    The temp file keeps the target's suffix so libraries that sniff the
    extension (PyAV, soundfile, pyarrow) pick the right format.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600 files; give artifacts the usual umask-based mode.
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _canonical_safetensors_header(blob: bytes) -> tuple[bytes, int]:
    """The canonical length + header of a safetensors file, and where its tensor data starts.

    The safetensors writer keeps ``__metadata__`` in a Rust HashMap, whose order
    changes from process to process, so the same tensors and metadata gave a
    different file (and DVC hash) on every run. The header is re-written with
    sorted metadata and the tensors in data order; the tensor bytes are untouched.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    meta = header.pop("__metadata__", None)
    ordered: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"], kv[0])))
    text = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # as the writer does: data starts 8-byte aligned
    return len(text).to_bytes(8, "little") + text, 8 + size


def canonical_safetensors(blob: bytes) -> bytes:
    """A safetensors file's bytes with its header in canonical order."""
    header, data = _canonical_safetensors_header(blob)
    return header + blob[data:]


def write_safetensors(target: str | Path, blob: bytes) -> None:
    """Write the bytes of ``safetensors.{numpy,torch}.save`` atomically, in canonical form."""
    header, data = _canonical_safetensors_header(blob)
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        fh.write(header)
        fh.write(memoryview(blob)[data:])  # no second copy of the tensors
