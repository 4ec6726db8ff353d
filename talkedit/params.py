"""params.yaml: every knob of the pipeline, read in one place."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from talkedit.errors import TalkeditError

CLIP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def repo_root() -> Path:
    """The project root: the nearest folder above cwd holding params.yaml (or cwd)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    return here


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TalkeditError(path, f"is not valid YAML ({exc})", "correct the syntax") from exc
    if not isinstance(data, dict):
        raise TalkeditError(path, "must be a mapping of sections", "see the README's params section")
    return data


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else repo_root() / "params.yaml"
    if not path.is_file():
        raise TalkeditError(path, "not found", "run from the project root, which holds params.yaml")
    return _load(path.resolve(), path.stat().st_mtime)


def section(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """One section of params.yaml (e.g. ``extract``); missing sections are empty."""
    return dict(load_params(path).get(name) or {})


def check_name(name: str, kind: str = "clip") -> str:
    """Reject names that could escape data/ (``../x``) or are unusable as file names."""
    if not isinstance(name, str) or not CLIP_NAME_RE.match(name):
        raise TalkeditError(
            f"{kind} name {name!r}",
            "may only hold letters, digits, '-' and '_' (no path characters), 1-64 long",
            f"rename the {kind}, e.g. 'my_talk'",
        )
    return name


def reject_unknown(section_name: str, params: Any, settings: type) -> None:
    """A typo in params.yaml fails loudly instead of being silently ignored.

    ``settings`` is the dataclass a section is read into; ``section_name`` is its
    dotted place in params.yaml (e.g. ``plan.search``).
    """
    import dataclasses

    names = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise TalkeditError(f"params.yaml {section_name}.{unknown[0]}",
                            f"is not one of the {section_name} parameters",
                            f"use one of: {', '.join(sorted(names))}")
