"""Edit specs, the contract of every per-edit stage (plan, audio, render, composite, evaluate).

An edit is a folder, ``data/edits/<edit>/``: ``edit.yaml`` names a clip and says how its
transcript changes; anything else the edit uses (a recording of the new words) lies
beside it, so DVC, which tracks the folder, reruns the edit when any of it changes.

Either the whole edited transcript::

    clip: demo
    text: |
      Good morning, and welcome to the weekly update from our video lab. ...

or word-level operations on the clip's transcript, applied together::

    clip: demo
    operations:
      - replace: small research team      # matched text (case and punctuation ignored)
        with: weekly video lab
      - delete: [3, 4]                    # written-word indices, first..last (0-based)
      - insert: really
        after: 12                         # or before: <target>

A target is matched text (it must occur once, or give ``occurrence: k``, 1-based), one
written-word index, or ``[first, last]``. Indices are positions in the original
transcript's whitespace-separated words, whatever the other operations do. Optional:
``exclude_s: [[start, end], ...]``, clip seconds the search must not take footage from.
``resynthesize: [target, ...]`` (targets as above, on the clip's transcript): words said
anew although the text keeps them. Self-reenactment (stages/evaluate) re-creates a real
sentence this way, with ``exclude_s`` over its own footage; a diff alone cannot see it.

``audio:`` chooses where the new words' sound comes from (default: params.yaml
``audio.source``)::

    audio: synthetic                # speaker | synthetic | recording

    audio:                          # or, with a recording of the new words:
      source: recording
      recording: take1.wav          # in the edit's folder; default recording.wav
      text: We have a weekly video lab.   # what the recording says; default: the new words

``mouth_motion:`` chooses where the new words' mouth motion comes from::

    mouth_motion: search            # default: pieces of the clip's footage (viseme search)
    mouth_motion: audio             # the clip's audio-to-expression model (lipmodel@<clip>),
                                    # driven by the new words' sound as the audio stage makes it
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from talkedit.artifacts import ClipPaths, EditPaths
from talkedit.errors import TalkeditError

SPEAKER, SYNTHETIC, RECORDING = "speaker", "synthetic", "recording"
AUDIO_SOURCES = (SPEAKER, SYNTHETIC, RECORDING)
DEFAULT_RECORDING = "recording.wav"
MOUTH_SEARCH, MOUTH_AUDIO = "search", "audio"
MOUTH_MOTIONS = (MOUTH_SEARCH, MOUTH_AUDIO)
SPEC_KEYS = {"clip", "text", "operations", "exclude_s", "resynthesize", "description", "audio",
             "mouth_motion"}
_EDGE_PUNCT = "\"'([{«<*_)]}»>.,;:!?…—–“”‘’"
_TRAILING = ".,;:!?…\"')]}»”’"


@dataclass(frozen=True)
class AudioChoice:
    """Where an edit's new words' sound comes from (its ``audio:`` key or the params default)."""

    source: str
    recording: Path | None = None  # the user's WAV (source: recording), in the edit's folder
    text: str | None = None  # what the recording says; None = the edit's new words


@dataclass(frozen=True)
class EditSpec:
    edit: str
    path: Path
    clip: str
    original_text: str
    edited_text: str
    exclude_s: tuple[tuple[float, float], ...] = ()
    operations: tuple[str, ...] = field(default=())  # one line per operation, for the summary
    resynthesize: tuple[tuple[int, int], ...] = ()  # original written words (first, last) said anew
    audio: AudioChoice = AudioChoice(SPEAKER)
    mouth_motion: str = MOUTH_SEARCH  # where the new words' mouth motion comes from


def _norm(token: str) -> str:
    return token.strip(_EDGE_PUNCT).lower()


def _fail(path: Path, problem: str, fix: str) -> TalkeditError:
    return TalkeditError(path, problem, fix)


def refuse_clip_without_speech(spec: Path | str, clip_paths: ClipPaths, use: str) -> None:
    """Edit-by-text work (``use``: an edit, a lip-sync job) needs the clip's words and
    sound. A clip whose video is there without a transcript is a clip without speech
    (params.yaml ``video_clips:``): it can be reenacted, never edited by text."""
    if clip_paths.video.is_file() and not clip_paths.transcript.is_file():
        raise _fail(Path(spec), f"names clip {clip_paths.clip!r}, a clip without speech (no "
                    f"transcript at {clip_paths.transcript}): {use} needs its words and sound",
                    "use it for reenactment only (talkedit reenact), or write what is said to "
                    "that file and list the clip under clips: in params.yaml")


def read_spec_file(path: Path, missing: str, missing_fix: str, shape: str, example: str,
                   keys: set[str], clip_keys: tuple[str, ...] = ("clip",)) -> dict[str, Any]:
    """A spec file's mapping (an edit's, a lip-sync job's, a reenactment's), checked the one
    way: it exists, is UTF-8 YAML, a mapping of ``keys`` only (``shape`` says which are
    needed), and names its clip (each of ``clip_keys``)."""
    if not path.is_file():
        raise _fail(path, missing, missing_fix)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _fail(path, f"is not valid YAML ({' '.join(str(exc).split())})",
                    f"correct the syntax (a mapping with {shape})") from exc
    except UnicodeDecodeError as exc:
        raise _fail(path, "is not UTF-8 text", "save it as UTF-8") from exc
    if not isinstance(data, dict):
        raise _fail(path, f"must be a mapping with {shape}", f"see {example}")
    unknown = sorted(set(map(str, data)) - keys)
    if unknown:
        raise _fail(path, f"has unknown keys {unknown}", f"use only {sorted(keys)}")
    for key in clip_keys:
        clip = data.get(key)
        if not isinstance(clip, str) or not clip:
            raise _fail(path, f"names no {key}",
                        f"add '{key}: <name>' (a clip listed in params.yaml)")
    return data


def load_spec(edit: str, root: Path | None = None, default_audio: str = SPEAKER) -> EditSpec:
    """Read and check an edit spec; return the clip's transcript and the edited one.

    ``default_audio`` is params.yaml's ``audio.source``, used when the spec has no ``audio:``.
    """
    paths = EditPaths.of(edit, root)
    path = paths.spec
    data = read_spec_file(path, "edit spec not found",
                          f"write it (see data/edits/demo/edit.yaml) or remove '{edit}' from the "
                          "edits list in params.yaml", "clip: and text: or operations:",
                          "data/edits/demo.yaml", SPEC_KEYS)
    clip = data["clip"]
    clip_paths = ClipPaths.of(clip, None if root is None else root)
    refuse_clip_without_speech(path, clip_paths, "an edit by text")
    if not clip_paths.transcript.is_file():
        known = sorted(p.stem for p in clip_paths.transcript.parent.glob("*.txt"))
        raise _fail(path, f"names clip {clip!r}, which has no transcript "
                    f"({clip_paths.transcript} not found)",
                    f"use one of the clips in data/raw: {known}" if known else
                    "add the clip (data/raw/<clip>.mp4 + .txt) and list it in params.yaml")
    original = " ".join(clip_paths.transcript.read_text(encoding="utf-8").split())
    has_text, has_ops = "text" in data, "operations" in data
    if has_text == has_ops:
        raise _fail(path, "must give exactly one of text: (the whole edited transcript) and "
                    "operations: (replace/insert/delete)", "keep one of them")
    if has_text:
        if not isinstance(data["text"], str):
            raise _fail(path, "text: must be a string", "write the edited transcript as text")
        edited, ops = " ".join(data["text"].split()), ("whole transcript given",)
    else:
        edited, ops = apply_operations(original, data["operations"], path)
    targets = data.get("resynthesize") or []
    if not isinstance(targets, list):
        raise _fail(path, "resynthesize: must be a list of targets",
                    "write e.g. resynthesize: [[12, 20]] or resynthesize: [some words]")
    forced = tuple(_resolve(t, original.split(), f"resynthesize {k + 1}", path)
                   for k, t in enumerate(targets))
    mouth = data.get("mouth_motion", MOUTH_SEARCH)
    if mouth not in MOUTH_MOTIONS:
        raise _fail(path, f"mouth_motion: {mouth!r} is not one of {MOUTH_MOTIONS}",
                    "write 'mouth_motion: search' (the clip's footage) or 'mouth_motion: audio' "
                    "(the clip's audio-to-expression model)")
    return EditSpec(edit, path, clip, original, edited, _exclusions(data.get("exclude_s"), path),
                    ops, forced, audio_choice(data.get("audio"), path, default_audio), mouth)


def audio_choice(value: Any, spec_path: Path, default_source: str = SPEAKER) -> AudioChoice:
    """Parse an edit spec's ``audio:`` value (None when the spec has none)."""
    fix = ("write 'audio: speaker', 'audio: synthetic' or 'audio: {source: recording, "
           "recording: take.wav}'")
    if default_source not in AUDIO_SOURCES:
        raise TalkeditError(f"params.yaml audio.source {default_source!r}",
                            f"is not one of {AUDIO_SOURCES}", "fix the value in params.yaml")
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"source": value}
    if not isinstance(value, dict):
        raise _fail(spec_path, "audio: must be a source name or a mapping", fix)
    unknown = sorted(set(map(str, value)) - {"source", "recording", "text"})
    if unknown:
        raise _fail(spec_path, f"audio: has unknown keys {unknown}",
                    "use only source, recording and text")
    source = value.get("source", default_source if "recording" not in value else RECORDING)
    if source not in AUDIO_SOURCES:
        raise _fail(spec_path, f"audio: source {source!r} is not one of {AUDIO_SOURCES}", fix)
    text = value.get("text")
    if text is not None and (not isinstance(text, str) or not text.split()):
        raise _fail(spec_path, "audio: text must be the words the recording says",
                    "write them as one string, or leave text out")
    recording = None
    if source == RECORDING:
        name = value.get("recording", DEFAULT_RECORDING)
        if not isinstance(name, str) or not name:
            raise _fail(spec_path, "audio: recording must be a WAV file name", fix)
        folder = spec_path.parent.resolve()
        recording = (folder / name).resolve()
        if folder not in recording.parents:
            raise _fail(spec_path, f"audio: recording {name!r} lies outside the edit's folder "
                        f"{spec_path.parent}", "copy the WAV into that folder (DVC tracks it "
                        "there) and give its file name")
        if not recording.is_file():
            raise TalkeditError(recording, "the edit's recording was not found",
                                f"record the new words into it, or point audio: recording in "
                                f"{spec_path.name} at your WAV file")
    return AudioChoice(source, recording, text)


def _exclusions(value: Any, path: Path) -> tuple[tuple[float, float], ...]:
    if value is None:
        return ()
    try:
        spans = tuple((float(a), float(b)) for a, b in value)
    except (TypeError, ValueError) as exc:
        raise _fail(path, "exclude_s must be a list of [start, end] pairs in seconds",
                    "write e.g. exclude_s: [[10.0, 12.5]]") from exc
    if any(not b > a for a, b in spans):
        raise _fail(path, "exclude_s has a span whose end is not after its start",
                    "write each span as [start, end] with end > start")
    return spans


# --- operations ----------------------------------------------------------------------------


def _resolve(target: Any, tokens: list[str], where: str, path: Path,
             occurrence: Any = None) -> tuple[int, int]:
    """A target as an inclusive (first, last) range of written-word indices."""
    n = len(tokens)
    if isinstance(target, bool):
        target = None  # YAML yes/no: not a valid target
    if isinstance(target, int):
        target = [target, target]
    if isinstance(target, list) and len(target) == 2 and all(
            isinstance(t, int) and not isinstance(t, bool) for t in target):
        first, last = target
        if not 0 <= first <= last < n:
            raise _fail(path, f"{where}: word range {target} is outside the transcript's "
                        f"{n} words (0..{n - 1})", "use 0-based written-word indices")
        return first, last
    if isinstance(target, str) and target.split():
        want = [_norm(t) for t in target.split()]
        k = len(want)
        hits = [i for i in range(n - k + 1) if [_norm(t) for t in tokens[i:i + k]] == want]
        if not hits:
            near = nearest_phrases(target, tokens)
            offer = f" (nearest: {', '.join(map(repr, near))})" if near else ""
            raise _fail(path, f"{where}: {target!r} does not occur in the clip's "
                        f"transcript{offer}",
                        "copy the words exactly as the transcript has them, or use indices")
        if occurrence is None and len(hits) > 1:
            raise _fail(path, f"{where}: {target!r} occurs {len(hits)} times "
                        f"(at words {hits[:6]})", "add 'occurrence: k' (1-based) or use indices, or "
                        "give more of the words around it")
        k_occ = 1 if occurrence is None else occurrence
        if not isinstance(k_occ, int) or not 1 <= k_occ <= len(hits):
            raise _fail(path, f"{where}: occurrence {occurrence!r} is not in 1..{len(hits)}",
                        "give which occurrence to use, counting from 1")
        start = hits[k_occ - 1]
        return start, start + k - 1
    raise _fail(path, f"{where}: target {target!r} is neither text nor a word index",
                "give matched text, one index, or [first, last]")


def nearest_phrases(phrase: str, tokens: list[str], n: int = 3) -> list[str]:
    """The transcript's phrases (runs of ``tokens``) closest to ``phrase``, best first.

    Compares case- and punctuation-free text with difflib over every run of as many words
    as ``phrase`` has, one fewer and one more; returns them as the transcript writes them.
    """
    want = " ".join(_norm(t) for t in phrase.split())
    k = max(1, len(phrase.split()))
    candidates: dict[str, str] = {}
    for size in {max(1, k - 1), k, k + 1}:
        for i in range(len(tokens) - size + 1):
            words = tokens[i:i + size]
            key = " ".join(_norm(t) for t in words)
            candidates.setdefault(key, " ".join(words).strip(_EDGE_PUNCT))
    best = difflib.get_close_matches(want, list(candidates), n=n, cutoff=0.5)
    return [candidates[key] for key in best]


def apply_operations(original: str, operations: Any, path: Path,
                     labels: list[str] | None = None) -> tuple[str, tuple[str, ...]]:
    """The transcript after replace/insert/delete operations, and a line per operation.

    ``labels`` names each operation in error messages (default "operation k"); the
    ``talkedit edit`` command passes the options that gave it.
    """
    tokens = original.split()
    if not isinstance(operations, list) or not operations:
        raise _fail(path, "operations: must be a non-empty list", "see data/edits/demo.yaml")
    # (first, last, new tokens, kind); insertions are zero-length: last = first - 1.
    changes: list[tuple[int, int, list[str], str]] = []
    lines = []
    for k, op in enumerate(operations):
        where = labels[k] if labels and k < len(labels) else f"operation {k + 1}"
        if not isinstance(op, dict):
            raise _fail(path, f"{where} is not a mapping",
                        "write e.g. '- replace: old words' with 'with: new words'")
        kinds = [key for key in ("replace", "delete", "insert") if key in op]
        if len(kinds) != 1:
            raise _fail(path, f"{where} must have exactly one of replace/delete/insert",
                        "split it into separate operations")
        kind = kinds[0]
        allowed = {"replace": {"replace", "with", "occurrence"},
                   "delete": {"delete", "occurrence"},
                   "insert": {"insert", "before", "after", "occurrence"}}[kind]
        extra = sorted(set(map(str, op)) - allowed)
        if extra:
            raise _fail(path, f"{where} ({kind}) has unknown keys {extra}",
                        f"use only {sorted(allowed)}")
        if kind == "insert":
            text = op["insert"]
            anchors = [a for a in ("before", "after") if a in op]
            if len(anchors) != 1:
                raise _fail(path, f"{where}: insert needs exactly one of before:/after:",
                            "say where the new words go")
            first, last = _resolve(op[anchors[0]], tokens, where, path, op.get("occurrence"))
            at = first if anchors[0] == "before" else last + 1
            new, span = _words(text, where, path), (at, at - 1)
        elif kind == "replace":
            if "with" not in op:
                raise _fail(path, f"{where}: replace needs with:", "give the new words")
            span = _resolve(op["replace"], tokens, where, path, op.get("occurrence"))
            new = _words(op["with"], where, path)
        else:
            span = _resolve(op["delete"], tokens, where, path, op.get("occurrence"))
            new = []
        changes.append((span[0], span[1], new, kind))
        old = " ".join(tokens[span[0]:span[1] + 1])
        lines.append(f"{kind} words {span[0]}..{span[1]} {old!r} -> {' '.join(new)!r}"
                     if kind != "insert" else f"insert {' '.join(new)!r} before word {span[0]}")
    changes.sort(key=lambda c: (c[0], c[1]))
    for (a1, b1, _, _), (a2, _, _, _) in zip(changes, changes[1:], strict=False):
        if a1 <= b1 and a2 <= b1:  # the second starts inside the first's words
            raise _fail(path, f"operations overlap at written word {a2}",
                        "merge them into one operation")
    out: list[str] = []
    pos = 0
    for first, last, new, _ in changes:
        out += tokens[pos:first]
        old = tokens[first:last + 1]
        if old:
            new = _keep_punctuation(old, new, out)
        out += new
        pos = max(pos, last + 1)
    out += tokens[pos:]
    return " ".join(out), tuple(lines)


def _words(value: Any, where: str, path: Path) -> list[str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.split():
        raise _fail(path, f"{where}: the new words must be non-empty text",
                    "use delete: to remove words")
    return value.split()


def _keep_punctuation(old: list[str], new: list[str], before: list[str]) -> list[str]:
    """Carry the replaced words' edge punctuation ("team." -> "lab.") onto the new words.

    A deleted phrase's closing punctuation moves to the word before it, so sentence
    breaks survive (they time pauses when the new words are spoken).
    """
    lead = re.match(r"^[\"'(\[{«“‘]*", old[0]).group()
    trail = re.search(r"[" + re.escape(_TRAILING) + r"]*$", old[-1]).group()
    if not new:
        if trail and before and not re.search(r"[.,;:!?…]$", before[-1]):
            before[-1] += trail
        return []
    new = list(new)
    if lead and not new[0].startswith(lead):
        new[0] = lead + new[0]
    if trail and not re.search(r"[" + re.escape(_TRAILING) + r"]$", new[-1]):
        new[-1] += trail
    return new
