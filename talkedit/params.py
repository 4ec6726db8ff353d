"""params.yaml: every knob of the pipeline, read by one loader into typed sections.

The one route for params: each section of params.yaml (``extract``, ``fit``,
``plan``...) has a frozen dataclass deriving from ``Section`` whose field
defaults are the defaults (a test keeps them equal to params.yaml). A stage's
entry function names the sections it reads as typed keyword parameters
(``run_plan(edit, root, plan: PlanParams, align: AlignParams, audio: AudioParams)``);
the flow that runs it loads exactly those, through ``load_section``. No stage
opens params.yaml.

``build`` turns a mapping into a section: unknown keys fail with one message
shape, ``null`` means "the default", nested sections are built recursively,
lists become tuples where the field is a tuple, and the section's ``check``
validates the result.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from talkedit.errors import TalkeditError

CLIP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PARAMS_FILE = "params.yaml"
S = TypeVar("S", bound="Section")


def repo_root() -> Path:
    """The project root: the nearest folder above cwd holding params.yaml (or cwd)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE).is_file():
            return folder
    return here


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TalkeditError(path, f"is not valid YAML ({' '.join(str(exc).split())})",
                            "correct the syntax") from exc
    if not isinstance(data, dict):
        raise TalkeditError(path, "must be a mapping of sections", "see the README's params section")
    return data


def load_params(root: Path) -> dict[str, Any]:
    """The whole params.yaml of the project at ``root``."""
    path = Path(root) / PARAMS_FILE
    if not path.is_file():
        raise TalkeditError(path, "not found", "run from the project root, which holds params.yaml")
    return _load(path.resolve(), path.stat().st_mtime)


def raw_section(name: str, root: Path) -> dict[str, Any]:
    """One section of params.yaml as a plain mapping (lists like clips/edits; missing = {})."""
    value = load_params(root).get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TalkeditError(f"params.yaml {name}", f"is a {type(value).__name__}, not a mapping",
                            "write the section as 'key: value' lines")
    return dict(value)


def check_name(name: str, kind: str = "clip") -> str:
    """Reject names that could escape data/ (``../x``) or are unusable as file names."""
    if not isinstance(name, str) or not CLIP_NAME_RE.match(name):
        raise TalkeditError(
            f"{kind} name {name!r}",
            "may only hold letters, digits, '-' and '_' (no path characters), 1-64 long",
            f"rename the {kind}, e.g. 'my_talk'",
        )
    return name


# --- typed sections -------------------------------------------------------------------------


def bad_param(where: str, name: str, problem: str, fix: str = "fix the value in params.yaml"
              ) -> TalkeditError:
    """The one shape of a params error: ``params.yaml <section>.<key>: <problem>. Fix: ...``."""
    return TalkeditError(f"params.yaml {where}.{name}", problem, fix)


class Section:
    """A section of params.yaml as a frozen dataclass; subclasses set ``SECTION``."""

    SECTION: ClassVar[str] = ""

    @classmethod
    def prepare(cls, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """Turn YAML values into field values before building (override where needed)."""
        return raw

    def check(self, where: str) -> None:
        """Validate the built values; raise ``bad_param(...)`` on a bad one."""

    @classmethod
    def from_dict(cls: type[S], raw: Mapping[str, Any] | S | None = None, where: str | None = None
                  ) -> S:
        return build(cls, raw, where or cls.SECTION)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Section) and dataclasses.is_dataclass(tp)


def build(cls: type[S], raw: Mapping[str, Any] | S | None, where: str) -> S:
    """A ``Section`` from a params mapping: unknown keys rejected, ``null`` = default."""
    if isinstance(raw, cls):
        return raw
    if raw is not None and not isinstance(raw, Mapping):
        raise TalkeditError(f"params.yaml {where}", f"is a {type(raw).__name__}, not a mapping",
                            "write the section as 'key: value' lines")
    values = cls.prepare({str(k): v for k, v in (raw or {}).items() if v is not None}, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise bad_param(where, unknown[0], f"is not one of the {where} parameters",
                        f"use one of: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    for name, value in list(values.items()):
        tp = hints[name]
        if _is_section(tp):
            values[name] = build(tp, value, f"{where}.{name}")
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            values[name] = tuple(value)
    try:
        out = cls(**values)
    except TypeError as exc:
        raise TalkeditError(f"params.yaml {where}", f"cannot be read ({exc})",
                            "compare it with the project's params.yaml") from exc
    out.check(where)
    return out


def load_section(cls: type[S], root: Path) -> S:
    """The section ``cls.SECTION`` of ``root``'s params.yaml, typed and checked."""
    return build(cls, raw_section(cls.SECTION, root), cls.SECTION)


def section_types(func: Any) -> dict[str, type[Section]]:
    """The params sections a stage entry function reads: its ``Section``-typed parameters."""
    hints = typing.get_type_hints(func)
    out = {}
    for name, tp in hints.items():
        if _is_section(tp):
            if name != tp.SECTION:
                raise TypeError(f"{func.__qualname__}: parameter {name!r} must be named after its "
                                f"section {tp.SECTION!r}")
            out[name] = tp
    return out
