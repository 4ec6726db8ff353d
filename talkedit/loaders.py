"""One-call loaders for notebooks: ``load(clip)`` and ``load_edit(edit)``.

Each returns a ``Bundle``: the artifacts of docs/artifacts.md by name, read when first
used (so ``load("demo").phones`` reads one Parquet file, and the face model's tensors are
never read unless asked for)::

    from talkedit.loaders import load, load_edit
    clip = load("demo")
    clip.words, clip.phones, clip.face       # pandas DataFrames
    clip.face_model["identity"]               # numpy arrays (safetensors)
    edit = load_edit("demo")
    edit.plan, edit.segments, edit.new_phones, edit.audio_units, edit.spec.edited_text
    edit.clip.visemes                         # the edited clip's bundle

A name whose file is missing raises TalkeditError naming the stage that writes it. Part
of the kernel: it imports no stage and no flow. (Not re-exported as ``talkedit.load``:
talkedit/__init__.py is a dependency of every DVC stage, so touching it reruns them all.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from talkedit.artifacts import ClipPaths, DetectPaths, EditPaths, ModelPaths, VideoMeta
from talkedit.errors import TalkeditError
from talkedit.params import repo_root


class Bundle(Mapping[str, Any]):
    """Artifacts by name (item or attribute access), each read once, when first used."""

    def __init__(self, title: str, loaders: dict[str, tuple[Path, str, Callable[[Path], Any]]]
                 ) -> None:
        self._title = title
        self._loaders = loaders  # name -> (path, stage that writes it, reader)
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            if name not in self._loaders:
                raise KeyError(name)
            path, stage, read = self._loaders[name]
            if not path.exists():
                raise TalkeditError(path, f"not found ({name}, written by {stage})",
                                    f"run `dvc repro {stage}` first")
            self._cache[name] = read(path)
        return self._cache[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self._title} has no {name!r}; it has {list(self)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._loaders]

    def path(self, name: str) -> Path:
        """Where artifact ``name`` lives."""
        return self._loaders[name][0]

    def available(self) -> list[str]:
        """The names whose files exist now."""
        return [name for name, (path, _, _) in self._loaders.items() if path.exists()]

    def __repr__(self) -> str:
        have = set(self.available())
        names = ", ".join(n if n in have else f"({n})" for n in self._loaders)
        note = "  (parenthesized: not written yet)" if len(have) < len(self) else ""
        return f"<{self._title}: {names}>{note}"


def _parquet(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _tsv(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path, sep="\t")


def _wav(path: Path) -> Any:
    """(samples as float32 in -1..1, sample rate)."""
    from scipy.io import wavfile

    rate, data = wavfile.read(path)
    if data.dtype.kind == "i":
        data = data.astype("float32") / float(2 ** (8 * data.dtype.itemsize - 1))
    return data, rate


def _tensors(path: Path) -> Any:
    from safetensors.numpy import load_file

    return load_file(path)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load(clip: str, root: Path | None = None) -> Bundle:
    """The clip's artifacts: transcript, frames, video (VideoMeta), audio, words, phones,
    speaker_rate, face, face_model, visemes, truth tables (demo clips), training losses
    and held-out metrics, evaluate's scores, detect's verdict."""
    root = Path(root) if root is not None else repo_root()
    c, m = ClipPaths.of(clip, root), ModelPaths.of(clip, root)
    video = lambda _: VideoMeta.read(c)  # noqa: E731
    loaders = {
        "transcript": (c.transcript, "(your input, data/raw)", _text),
        "frames": (c.frames, f"extract@{clip}", _parquet),
        "video": (c.video_meta, f"extract@{clip}", video),
        "audio": (c.audio, f"extract@{clip}", _wav),
        "words": (c.words, f"align@{clip}", _parquet),
        "phones": (c.phones, f"align@{clip}", _parquet),
        "speaker_rate": (c.speaker_rate, f"align@{clip}", _parquet),
        "face": (c.face, f"fit@{clip}", _parquet),
        "face_model": (c.face_model, f"fit@{clip}", _tensors),
        "visemes": (c.visemes, f"index@{clip}", _parquet),
        "truth_phones": (c.truth_phones, "demo", _parquet),
        "truth_frames": (c.truth_frames, "demo", _parquet),
        "losses": (m.losses, f"train@{clip}", _tsv),
        "train_metrics": (m.metrics, f"train@{clip}", _json),
        "evaluate": (c.metrics_dir / "evaluate.json", f"evaluate@{clip}", _json),
        "detect": (DetectPaths.of(clip, root).verdict_json, f"detect@{clip}", _json),
    }
    return Bundle(f"clip {clip}", loaders)


def load_edit(edit: str, root: Path | None = None) -> Bundle:
    """The edit's artifacts: spec (EditSpec: original and edited text), plan, segments,
    new_phones, summary, audio, audio_units, audio_summary, provenance, and clip (the
    edited clip's ``load`` bundle)."""
    from talkedit.edits import load_spec
    from talkedit.params import raw_section

    root = Path(root) if root is not None else repo_root()
    e = EditPaths.of(edit, root)
    default_audio = raw_section("audio", root).get("source", "speaker") if (
        root / "params.yaml").is_file() else "speaker"
    spec = load_spec(edit, root, default_audio)
    loaders = {
        "spec": (e.spec, "(your input, data/edits)", lambda _: spec),
        "clip": (e.spec, "(your input, data/edits)", lambda _: load(spec.clip, root)),
        "plan": (e.plan, f"plan@{edit}", _parquet),
        "segments": (e.segments, f"plan@{edit}", _parquet),
        "new_phones": (e.new_phones, f"plan@{edit}", _parquet),
        "summary": (e.summary, f"plan@{edit}", _text),
        "audio": (e.audio, f"audio@{edit}", _wav),
        "audio_units": (e.plan_dir / "audio_units.parquet", f"audio@{edit}", _parquet),
        "audio_summary": (e.plan_dir / "audio.json", f"audio@{edit}", _json),
        "provenance": (e.provenance, f"composite@{edit}", _json),
    }
    return Bundle(f"edit {edit}", loaders)
