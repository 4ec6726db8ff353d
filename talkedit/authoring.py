"""Writing an edit from the command line (``talkedit edit``): check, name, write, register.

The kernel side of the command: it checks the requested operations against the clip's
transcript with the edit contract's own matching (``talkedit.edits.apply_operations``),
so a phrase that is not there fails before anything is written; derives a unique edit
name; writes ``data/edits/<edit>/edit.yaml`` (and the user's recording beside it); and
lists the edit under ``edits:`` in params.yaml, keeping every comment and the order of
the file (ruamel.yaml round trip). Running the DAG is the command's part (talkedit/cli.py).
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from talkedit.artifacts import ClipPaths, EditPaths
from talkedit.atomic import write_bytes, write_text
from talkedit.edits import (
    AUDIO_SOURCES,
    DEFAULT_RECORDING,
    MOUTH_MOTIONS,
    RECORDING,
    apply_operations,
)
from talkedit.errors import TalkeditError
from talkedit.params import PARAMS_FILE, check_name, load_params

MAX_NAME = 64
VIDEO_CLIPS = "video_clips"  # params.yaml's clips without speech (reenactment only)


@dataclass
class EditRequest:
    """What ``talkedit edit`` was asked for, before it is written."""

    clip: str
    operations: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the options behind each operation
    text: str | None = None  # the whole edited transcript (--text-file)
    audio: str | None = None  # speaker | synthetic | recording (None: params' default)
    recording: Path | None = None  # the user's WAV, copied into the edit's folder
    mouth_motion: str | None = None  # search | audio (None: the spec's default, search)

    def spec(self) -> dict[str, Any]:
        """The edit.yaml mapping."""
        data: dict[str, Any] = {"clip": self.clip, "description": self.description()}
        if self.text is not None:
            data["text"] = self.text
        else:
            data["operations"] = [dict(op) for op in self.operations]
        if self.audio == RECORDING:
            data["audio"] = {"source": RECORDING, "recording": DEFAULT_RECORDING}
        elif self.audio is not None:
            data["audio"] = self.audio
        if self.mouth_motion is not None:
            data["mouth_motion"] = self.mouth_motion
        return data

    def description(self) -> str:
        if self.text is not None:
            return "the whole edited transcript"
        parts = []
        for op in self.operations:
            if "replace" in op:
                parts.append(f"replace {op['replace']!r} with {op['with']!r}")
            elif "delete" in op:
                parts.append(f"delete {op['delete']!r}")
            else:
                parts.append(f"insert {op['insert']!r} after {op['after']!r}")
        return "; ".join(parts)


def _pairs(first: list[str], second: list[str], a: str, b: str) -> list[tuple[str, str]]:
    if len(first) != len(second):
        raise TalkeditError(f"{a} / {b}", f"{len(first)} {a} but {len(second)} {b}",
                            f"give each {a} its own {b}, in the same order")
    return list(zip(first, second, strict=True))


def make_request(clip: str, replace: list[str], with_: list[str], insert_after: list[str],
                 text: list[str], delete: list[str], text_file: Path | None,
                 audio: str | None, mouth_motion: str | None = None) -> EditRequest:
    """An ``EditRequest`` from the command's options (pairing --replace/--with and
    --insert-after/--text in the order given); option misuse raises TalkeditError."""
    check_name(clip, "clip")
    req = EditRequest(clip)
    for old, new in _pairs(replace, with_, "--replace", "--with"):
        req.operations.append({"replace": old, "with": new})
        req.labels.append(f"--replace {old!r}")
    for anchor, words in _pairs(insert_after, text, "--insert-after", "--text"):
        req.operations.append({"insert": words, "after": anchor})
        req.labels.append(f"--insert-after {anchor!r}")
    for old in delete:
        req.operations.append({"delete": old})
        req.labels.append(f"--delete {old!r}")
    if text_file is not None:
        if req.operations:
            raise TalkeditError("--text-file", "gives the whole edited transcript, so it cannot "
                                "be combined with --replace/--insert-after/--delete",
                                "use either --text-file or the operations")
        try:
            req.text = " ".join(Path(text_file).read_text(encoding="utf-8").split())
        except FileNotFoundError:
            raise TalkeditError(text_file, "not found", "give the edited transcript's file") from None
        except UnicodeDecodeError:
            raise TalkeditError(text_file, "is not UTF-8 text", "save it as UTF-8") from None
        if not req.text:
            raise TalkeditError(text_file, "is empty", "write the whole edited transcript in it")
    elif not req.operations:
        raise TalkeditError("talkedit edit", "no change given",
                            "add --replace OLD --with NEW, --insert-after W --text NEW, "
                            "--delete OLD or --text-file FILE")
    if audio is not None:
        if audio in AUDIO_SOURCES and audio != RECORDING:
            req.audio = audio
        else:
            wav = Path(audio)
            if wav.suffix.lower() != ".wav" or not wav.is_file():
                raise TalkeditError(f"--audio {audio}", "is neither speaker, synthetic nor an "
                                    "existing .wav file", "give --audio speaker, --audio "
                                    "synthetic or the path of your recording (WAV)")
            req.audio, req.recording = RECORDING, wav
    if mouth_motion is not None:
        if mouth_motion not in MOUTH_MOTIONS:
            raise TalkeditError(f"--mouth-motion {mouth_motion}", f"is not one of "
                                f"{', '.join(MOUTH_MOTIONS)}", "give --mouth-motion search (the "
                                "clip's footage) or --mouth-motion audio (the clip's lip model)")
        req.mouth_motion = mouth_motion
    return req


def check_request(req: EditRequest, root: Path) -> str:
    """The edited transcript; a clip or phrase problem raises TalkeditError (nothing written).

    Matching is the edit contract's own: a phrase must occur in the clip's transcript
    (case and punctuation ignored), and the error offers the nearest phrases that do.
    """
    clips = load_params(root).get("clips") or []
    paths = ClipPaths.of(req.clip, root)
    check_clip_has_speech(root, req.clip, "an edit by text")
    if req.clip not in clips:
        raise TalkeditError(f"clip {req.clip!r}", f"is not listed under clips: in {PARAMS_FILE}"
                            f" (listed: {list(clips)})",
                            f"add it there (its video and transcript go to {paths.video.parent})")
    if not paths.transcript.is_file():
        raise TalkeditError(paths.transcript, "not found (the clip's transcript)",
                            "write what is said in the clip there")
    original = " ".join(paths.transcript.read_text(encoding="utf-8").split())
    if req.text is not None:
        return req.text
    edited, _ = apply_operations(original, req.operations, paths.transcript, req.labels)
    return edited


def _slug(req: EditRequest) -> str:
    if req.text is not None:
        words = "text"
    else:
        op = req.operations[0]
        words = op.get("with") or op.get("insert") or f"cut {op.get('delete', '')}"
    slug = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-") or "edit"
    return slug


def same_edit(name: str, req: EditRequest, root: Path) -> bool:
    """Whether ``data/edits/<name>/`` already holds exactly this edit."""
    paths = EditPaths.of(name, root)
    try:
        data = yaml.safe_load(paths.spec.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    if data != req.spec():
        return False
    if req.recording is not None:
        kept = paths.inputs / DEFAULT_RECORDING
        return kept.is_file() and kept.read_bytes() == req.recording.read_bytes()
    return True


def _registered_clip(name: str, root: Path) -> str | None:
    entry = (load_params(root).get("edits") or {}).get(name)
    return entry.get("clip") if isinstance(entry, dict) else None


def taken(name: str, req: EditRequest, root: Path) -> bool:
    """Whether ``name`` already names a different edit (a folder or a params entry)."""
    exists = EditPaths.of(name, root).inputs.exists()
    clip = _registered_clip(name, root)
    if not exists and clip is None:
        return False
    return not (same_edit(name, req, root) and clip in (None, req.clip))


def choose_name(req: EditRequest, root: Path, name: str | None, force: bool) -> str:
    """The edit's name: ``name`` (refused when it is a different edit, unless ``force``), or
    ``<clip>-<new words>``, numbered ``-2``, ``-3``... past names already taken."""
    if name is not None:
        check_name(name, "edit")
        if not force and taken(name, req, root):
            raise TalkeditError(EditPaths.of(name, root).inputs, "already holds a different edit",
                                "choose another --name, or add --force to replace it")
        return name
    base = f"{req.clip}-{_slug(req)}"[:MAX_NAME - 4].rstrip("-_")
    for k in range(1, 1000):
        candidate = base if k == 1 else f"{base}-{k}"
        if not taken(candidate, req, root):
            return check_name(candidate, "edit")
    raise TalkeditError(base, "has 999 variants already", "give --name")


def write_edit(name: str, req: EditRequest, root: Path) -> Path:
    """Write ``data/edits/<name>/edit.yaml`` (and the recording); return the spec's path.

    A folder left by an earlier edit of that name is replaced (the caller checked
    ``--force``), so no stale recording stays in it.
    """
    paths = EditPaths.of(name, root)
    if same_edit(name, req, root):
        return paths.spec
    if paths.inputs.exists():
        shutil.rmtree(paths.inputs)
    paths.inputs.mkdir(parents=True)
    if req.recording is not None:
        write_bytes(paths.inputs / DEFAULT_RECORDING, req.recording.read_bytes())
    header = f"# Written by `talkedit edit`: {req.description()}\n"
    write_text(paths.spec, header + yaml.safe_dump(req.spec(), sort_keys=False,
                                                   allow_unicode=True, width=88))
    return paths.spec


# --- params.yaml, comments and order kept -------------------------------------------------


def _round_trip() -> Any:
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    # write null as params.yaml does ("key: null"), not as an empty value
    rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def _take_tail(node: Any) -> Any:
    """Detach what follows the last entry of ``node`` on later lines (blank lines, comments
    before the next section) and return it as a comment token, or None."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and node:
        key = list(node)[-1]
    elif isinstance(node, CommentedSeq) and node:
        key = len(node) - 1
    else:
        return None
    slot = node.ca.items.get(key)
    token = slot[2] if slot and len(slot) > 2 else None
    if token is None:
        return _take_tail(node[key])
    own, newline, rest = token.value.partition("\n")
    if not rest:
        return None
    import copy

    tail = copy.copy(token)
    tail.value = "\n" + rest
    token.value = own + newline
    return tail


def register_edit(root: Path, name: str, clip: str, section: str = "edits",
                  fields: dict[str, str] | None = None) -> bool:
    """List ``name: {clip: <clip>}`` (or ``fields``, e.g. a reenactment's target and source)
    under ``edits:`` (or ``section:``, e.g. lipsync_jobs) in params.yaml; keep the rest of
    the file byte for byte. Returns whether the file changed."""
    from ruamel.yaml.comments import CommentedMap

    wanted = fields or {"clip": clip}
    path = Path(root) / PARAMS_FILE
    rt = _round_trip()
    source = path.read_text(encoding="utf-8")
    doc = rt.load(source)
    edits = doc.get(section)
    entry = edits.get(name) if isinstance(edits, dict) else None
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in wanted.items()):
        return False
    if isinstance(entry, dict):
        entry.update(wanted)
    else:
        if not isinstance(edits, CommentedMap):
            edits = CommentedMap()
            doc[section] = edits
        tail = _take_tail(edits)
        new = CommentedMap()
        for key, value in wanted.items():
            new[key] = value
        if tail is not None:
            new.ca.items[list(wanted)[-1]] = [None, None, tail, None]
        edits[name] = new
    out = io.StringIO()
    rt.dump(doc, out)
    write_text(path, out.getvalue())
    return True


def check_clip_has_speech(root: Path, clip: str, use: str) -> None:
    """Refuse edit-by-text work (``use``) on a clip declared without speech: listed under
    ``video_clips:`` (for reenactment only). The stages refuse one whose transcript is
    missing (``talkedit.edits.refuse_clip_without_speech``)."""
    if clip in (load_params(root).get(VIDEO_CLIPS) or []):
        raise TalkeditError(f"clip {clip!r}", f"is listed under {VIDEO_CLIPS}: in {PARAMS_FILE} "
                            f"(a clip without speech, for reenactment only): {use} needs its "
                            "words and sound", "edit a clip listed under clips:, or give this "
                            f"one its transcript (data/raw/{clip}.txt) and sound and move it to "
                            "clips:")


def clip_has_speech(root: Path, clip: str) -> bool:
    """Whether a clip can go under ``clips:`` (a transcript and a sound track), else it
    belongs under ``video_clips:`` (reenactment only)."""
    from talkedit.video import probe

    paths = ClipPaths.of(clip, root)
    return paths.transcript.is_file() and probe(paths.video).has_audio


def register_clip(root: Path, name: str, section: str = "clips") -> bool:
    """List ``name`` under ``section`` (``clips:``, or ``video_clips:`` for a clip without
    speech) in params.yaml unless it is listed under either; keep the rest of the file
    byte for byte. Returns whether the file changed."""
    from ruamel.yaml.comments import CommentedSeq

    check_name(name, "clip")
    path = Path(root) / PARAMS_FILE
    rt = _round_trip()
    doc = rt.load(path.read_text(encoding="utf-8"))
    if any(isinstance(doc.get(key), list) and name in doc[key] for key in ("clips", VIDEO_CLIPS)):
        return False
    clips = doc.get(section)
    if not isinstance(clips, CommentedSeq):
        clips = CommentedSeq(clips or [])
        doc[section] = clips
    clips.append(name)
    out = io.StringIO()
    rt.dump(doc, out)
    write_text(path, out.getvalue())
    return True
