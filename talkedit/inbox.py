"""The watched folder of scheduled runs: new clips and edits dropped in, taken into the project.

Layout of the folder (``watch.inbox`` in params.yaml, ``inbox/`` by default)::

    inbox/<clip>.mp4 + inbox/<clip>.txt          a clip and its transcript
    inbox/edits/<edit>/edit.yaml (+ recording)   an edit of a clip (registered or arriving)

``take_in`` copies each new item to where the pipeline reads it (``data/raw/``,
``data/edits/<edit>/``) and lists it in params.yaml (comments and order kept). The inbox
is never changed, so it can be a shared drop folder; a new video is put under DVC
(``dvc add``) so a shared remote carries it; an item already taken in with the
same bytes is recognised and skipped, so an unchanged folder changes nothing. An item
that would overwrite a different input of the same name, or that is incomplete, is
refused with one reason and leaves nothing behind; the others are taken in regardless.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from talkedit import dvcrun
from talkedit.artifacts import ClipPaths, EditPaths
from talkedit.atomic import atomic_path
from talkedit.authoring import register_clip, register_edit
from talkedit.errors import TalkeditError
from talkedit.params import CLIP_NAME_RE, Section, bad_param, load_params

VIDEO_SUFFIX, TRANSCRIPT_SUFFIX = ".mp4", ".txt"


@dataclass(frozen=True)
class WatchParams(Section):
    """Scheduled runs (``talkedit watch`` / ``talkedit serve``)."""

    SECTION = "watch"
    inbox: str = "inbox"  # the watched folder, relative to the project root
    cron: str = "0 * * * *"  # when ``talkedit serve`` runs a pass (cron syntax, local time)
    clip_target: str = "evaluate"  # per clip, `dvc repro <clip_target>@<clip>` (and upstream)
    edit_target: str = "composite"  # per edit, `dvc repro <edit_target>@<edit>`

    def check(self, where: str) -> None:
        if len(self.cron.split()) != 5:
            raise bad_param(where, "cron", f"{self.cron!r} is not a 5-field cron expression",
                            "write e.g. '0 * * * *' (hourly) or '*/15 * * * *'")


@dataclass
class Intake:
    """What one pass over the inbox found."""

    clips: list[str] = field(default_factory=list)  # newly taken in
    edits: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # "clip x" / "edit y" -> reason


def _same(a: Path, b: Path) -> bool:
    return b.is_file() and filecmp.cmp(a, b, shallow=False)


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _take_clip(name: str, inbox: Path, root: Path) -> bool:
    """Copy one clip's video and transcript into data/raw/ and register it; False if it
    was already there, unchanged."""
    video, transcript = inbox / f"{name}{VIDEO_SUFFIX}", inbox / f"{name}{TRANSCRIPT_SUFFIX}"
    if not transcript.is_file():
        raise TalkeditError(video, f"has no transcript {transcript.name} beside it",
                            f"put the words spoken in {transcript}")
    paths = ClipPaths.of(name, root)
    pairs = [(video, paths.video), (transcript, paths.transcript)]
    known = [target.exists() for _, target in pairs]
    if any(known) and not all(_same(s, t) for s, t in pairs):
        raise TalkeditError(video, f"differs from the clip {name!r} already in data/raw/",
                            "give the new clip another name (inputs are never overwritten)")
    for source, target in pairs:
        if not target.exists():
            _copy_file(source, target)
    if not all(known):
        dvcrun.track(root, paths.video)
    return register_clip(root, name) or not all(known)


def _take_edit(folder: Path, root: Path, clips: set[str]) -> bool:
    """Copy one edit folder into data/edits/ and register it; False if unchanged."""
    import yaml

    name = folder.name
    spec_file = folder / EditPaths.of(name, root).spec.name
    if not spec_file.is_file():
        raise TalkeditError(folder, f"has no {spec_file.name}", "write the edit's spec there")
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        clip = spec["clip"]
    except (yaml.YAMLError, TypeError, KeyError) as exc:
        raise TalkeditError(spec_file, "does not name its clip", "add 'clip: <clip>'") from exc
    if clip not in clips:
        raise TalkeditError(spec_file, f"edits clip {clip!r}, which is not in the project",
                            "drop the clip in the inbox too, or fix the name")
    target_dir = EditPaths.of(name, root).inputs
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    pairs = [(p, target_dir / p.relative_to(folder)) for p in files]
    if target_dir.exists():
        existing = sorted(p.relative_to(target_dir) for p in target_dir.rglob("*") if p.is_file())
        if existing != [p.relative_to(folder) for p in files] or \
                not all(_same(s, t) for s, t in pairs):
            raise TalkeditError(folder, f"differs from the edit {name!r} already in data/edits/",
                                "give the new edit another folder name")
        return register_edit(root, name, clip)
    staging = target_dir.with_name(f".{name}.incoming")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging)
    staging.replace(target_dir)
    register_edit(root, name, clip)
    return True


def take_in(root: Path, params: WatchParams) -> Intake:
    """One pass over the inbox: take in what is new; refuse, per item, what cannot be."""
    root = Path(root)
    inbox = root / params.inbox
    found = Intake()
    if not inbox.is_dir():
        return found
    for video in sorted(inbox.glob(f"*{VIDEO_SUFFIX}")):
        name = video.stem
        try:
            if not CLIP_NAME_RE.match(name):
                raise TalkeditError(video, "has a name talkedit cannot use as a clip name",
                                    "rename it with letters, digits, - and _ only")
            if _take_clip(name, inbox, root):
                found.clips.append(name)
        except TalkeditError as exc:
            found.refused[f"clip {name}"] = str(exc)
    clips = set(load_params(root).get("clips") or [])
    for folder in sorted(p for p in (inbox / "edits").glob("*") if p.is_dir()):
        try:
            if not CLIP_NAME_RE.match(folder.name):
                raise TalkeditError(folder, "has a name talkedit cannot use as an edit name",
                                    "rename it with letters, digits, - and _ only")
            if _take_edit(folder, root, clips):
                found.edits.append(folder.name)
        except TalkeditError as exc:
            found.refused[f"edit {folder.name}"] = str(exc)
    return found
