"""Provenance of a rendered edit: signed C2PA Content Credentials plus a JSON copy (DESIGN.md §4).

The talkedit manifest (JSON) says what was edited and with what: the claim
generator (``talkedit <version>``), a ``c2pa.edited`` action carrying the edit
spec, sha256 of every ingredient (source video, transcript, edit spec, model
and plan files), the watermark payload id that links the frames back to it,
and a UTC time only when one is asked for (``SOURCE_DATE_EPOCH``, see
``manifest_time``).

It travels three ways:

* **Content Credentials** (the standard, the one that proves): a C2PA
  manifest written and signed with ``c2pa-python`` into the MP4 (BMFF hash
  binding: any change to the file's media breaks it). Actions ``c2pa.opened``
  (the source video) and ``c2pa.edited`` (digitalSourceType
  ``trainedAlgorithmicMedia``, with the transcript, edit spec, audio and model
  as ingredients), and the talkedit manifest as the ``org.talkedit.provenance``
  assertion. Any C2PA reader shows it; ``read_content_credentials`` reads it
  back with the same library and says whether it is valid, bound to this file
  and signed by a trusted certificate.
* as compact JSON in the MP4's ``comment`` tag, and
* as ``<edit>.provenance.json`` beside the video: unsigned convenience copies.
  They bind to the *encoded streams*: sha256 over every video and audio
  packet's bytes, per stream, so a remux keeps the binding and a re-encode or
  any change to the frames or audio breaks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import c2pa
import yaml

import talkedit
from stages.composite.credentials import Credentials
from stages.composite.watermark import PAYLOAD_BITS, SCHEME
from talkedit.atomic import atomic_path, write_json
from talkedit.errors import TalkeditError
from talkedit.video import open_container

FORMAT = "talkedit-provenance/1"
METADATA_KEY = "comment"  # an MP4 tag PyAV's muxer keeps without use_metadata_tags
NOTICE_KEY = "description"
STREAM_HASH_SCOPE = "sha256 of each video/audio stream's packet bytes, in stream order"
# IPTC term C2PA uses for media changed by a trained model.
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
C2PA_ASSERTION = "org.talkedit.provenance"  # the talkedit manifest inside the Content Credentials
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(TalkeditError):
    """A talkedit manifest is there but corrupted or malformed (not: the file is unreadable)."""


def claim_generator() -> str:
    return f"talkedit {talkedit.__version__}"


# --- hashing ----------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise TalkeditError(path, "not found", "give the file the edit was made from")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _display_name(path: Path) -> str:
    """Path relative to the project (the folder holding data/): no user folders in the
    manifest; a file outside a project's data/ is named by its file name."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if parent.name == "data":
            return resolved.relative_to(parent.parent).as_posix()
    return path.name


def _file_entries(paths: Sequence[str | Path]) -> list[dict[str, str]]:
    """sha256 of each file; a folder stands for every file under it (sorted)."""
    entries = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        entries += [{"path": _display_name(f), "sha256": sha256_file(f)} for f in files]
    return entries


def stream_digest(path: str | Path) -> str:
    """sha256 binding a manifest to the encoded video/audio, unchanged by a remux."""
    with open_container(path) as container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        if not streams:
            raise TalkeditError(path, "has no video or audio stream", "give a rendered video")
        per_stream = {s.index: hashlib.sha256() for s in streams}
        counts = dict.fromkeys(per_stream, 0)
        for packet in container.demux(streams):
            if packet.size == 0:  # demuxer flush packets carry no data
                continue
            per_stream[packet.stream.index].update(bytes(packet))
            counts[packet.stream.index] += 1
        total = hashlib.sha256()
        for s in streams:
            total.update(f"{s.type}:{s.codec_context.name}:{counts[s.index]}:".encode())
            total.update(per_stream[s.index].digest())
    return total.hexdigest()


# --- building and checking --------------------------------------------------------------


def _edit_content(edit_spec: str | Path | Mapping[str, Any]) -> tuple[Any, str | None]:
    """The edit spec's content (and the spec file's sha256 when given as a file)."""
    spec_hash = None
    if isinstance(edit_spec, Mapping):
        content: Any = dict(edit_spec)
    else:
        path = Path(edit_spec)
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TalkeditError(path, "not found",
                                "give the edit spec (data/edits/<edit>.yaml)") from exc
        except yaml.YAMLError as exc:
            raise TalkeditError(path, f"is not valid YAML ({exc})", "correct the edit spec") from exc
        spec_hash = sha256_file(path)
    # JSON round trip: YAML dates and the like become strings, once, here.
    return json.loads(json.dumps(content, default=str)), spec_hash


def derive_payload_id(manifest: Mapping[str, Any]) -> int:
    """A 32-bit id from what was edited (not when): the same edit gets the same id."""
    basis = {k: manifest[k] for k in ("ingredients", "models", "plan")}
    basis["actions"] = [{k: v for k, v in a.items() if k != "when"} for a in manifest["actions"]]
    canon = json.dumps(basis, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(canon).digest()[: PAYLOAD_BITS // 8], "big")


def manifest_time(created: datetime | None = None) -> str | None:
    """The manifest's UTC time: ``created``, else ``SOURCE_DATE_EPOCH``, else none.

    No wall clock by default: the video and its manifest are DVC outputs, and the
    same edit of the same inputs must give the same bytes (and dvc.lock) on every
    run. A time is recorded only when given, by the reproducible-builds convention
    (e.g. ``SOURCE_DATE_EPOCH=$(date +%s) talkedit composite demo``); the run's
    own time is in its run report (talkedit.runreport).
    """
    if created is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if not epoch:
            return None
        try:
            created = datetime.fromtimestamp(int(epoch), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise TalkeditError(f"SOURCE_DATE_EPOCH={epoch!r}", "is not a time in whole seconds "
                                "since 1970", "unset it, or set it to e.g. $(date +%s)") from exc
    return created.astimezone(UTC).isoformat(timespec="seconds")


def build_manifest(*, source_video: str | Path, transcript: str | Path | None,
                   edit_spec: str | Path | Mapping[str, Any],
                   model_files: Sequence[str | Path] = (), plan_files: Sequence[str | Path] = (),
                   payload_id: int | None = None,
                   created: datetime | None = None, description: str | None = None,
                   extra_ingredients: Sequence[tuple[str, str | Path]] = ()) -> dict[str, Any]:
    """The manifest of one edit, before encoding (no stream hash yet: see embed_manifest).

    ``payload_id`` defaults to one derived from the inputs; the renderer passes
    ``manifest["watermark"]["payload_id"]`` to the watermark embedder. ``transcript`` is
    None for an output that uses none of the clip's words (a reenactment).
    """
    when = manifest_time(created)
    content, spec_hash = _edit_content(edit_spec)
    edit_params: dict[str, Any] = {"edit_spec": content}
    if spec_hash is not None:
        edit_params["edit_spec_sha256"] = spec_hash
    source_video = Path(source_video)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "claim_generator": claim_generator(),
        "claim_generator_info": [{"name": "talkedit", "version": talkedit.__version__}],
        "title": None,  # the rendered file's name, set by embed_manifest
        "created": when,
        "actions": [{
            "action": "c2pa.edited",
            **({"when": when} if when else {}),
            "softwareAgent": claim_generator(),
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "description": description or (
                "Transcript-driven edit: new speech audio and synthesized lower-face "
                "motion for the edited words (Fried et al. 2019)."),
            "parameters": edit_params,
        }],
        "ingredients": [
            {"title": source_video.name, "relationship": "parentOf", "role": "source_video",
             "hash": {"alg": "sha256", "value": sha256_file(source_video)}},
            *([] if transcript is None else [
                {"title": Path(transcript).name, "relationship": "inputTo", "role": "transcript",
                 "hash": {"alg": "sha256", "value": sha256_file(transcript)}}]),
            *([] if spec_hash is None else [
                {"title": Path(str(edit_spec)).name, "relationship": "inputTo", "role": "edit_spec",
                 "hash": {"alg": "sha256", "value": spec_hash}}]),
            *({"title": Path(path).name, "relationship": "inputTo", "role": role,
               "hash": {"alg": "sha256", "value": sha256_file(path)}}
              for role, path in extra_ingredients),
        ],
        "models": _file_entries(model_files),
        "plan": _file_entries(plan_files),
    }
    pid = derive_payload_id(manifest) if payload_id is None else payload_id
    if not 0 <= int(pid) < 2**PAYLOAD_BITS:
        raise ValueError(f"payload id {pid} is not a {PAYLOAD_BITS}-bit unsigned int")
    manifest["watermark"] = {"scheme": SCHEME, "payload_id": int(pid),
                             "payload_hex": f"{int(pid):08x}"}
    return manifest


def _is_hash(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and obj.get("alg") == "sha256"
            and isinstance(obj.get("value"), str) and bool(_HEX64.match(obj["value"])))


def manifest_problems(manifest: Any, *, need_stream_hash: bool = True) -> list[str]:
    """What is wrong with a manifest (empty when it is well formed)."""
    if not isinstance(manifest, Mapping):
        return [f"is a JSON {type(manifest).__name__}, not an object"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if not str(manifest.get("claim_generator", "")).startswith("talkedit "):
        problems.append("claim_generator is not 'talkedit <version>'")
    try:
        if manifest.get("created") is not None:  # null: no time was recorded
            datetime.fromisoformat(str(manifest["created"]))
    except ValueError:
        problems.append("created is not an ISO time")
    actions = manifest.get("actions")
    if not isinstance(actions, list) or not any(
            isinstance(a, Mapping) and a.get("action") == "c2pa.edited" for a in actions):
        problems.append("actions lack a c2pa.edited entry")
    ingredients = manifest.get("ingredients")
    if not isinstance(ingredients, list) or len(ingredients) < 2 or not all(
            isinstance(i, Mapping) and _is_hash(i.get("hash")) for i in ingredients):
        problems.append("ingredients must list the source video and transcript with sha256 hashes")
    for key in ("models", "plan"):
        entries = manifest.get(key)
        if not isinstance(entries, list) or not all(
                isinstance(e, Mapping) and _HEX64.match(str(e.get("sha256", ""))) for e in entries):
            problems.append(f"{key} must be a list of files with sha256 hashes")
    mark = manifest.get("watermark")
    pid = mark.get("payload_id") if isinstance(mark, Mapping) else None
    if not (isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid < 2**PAYLOAD_BITS):
        problems.append(f"watermark.payload_id must be a {PAYLOAD_BITS}-bit unsigned int")
    if need_stream_hash and not _is_hash(manifest.get("stream_hash")):
        problems.append("stream_hash is missing or not a sha256")
    return problems


def _validated(manifest: Any, where: str | Path) -> dict[str, Any]:
    problems = manifest_problems(manifest)
    if problems:
        raise ManifestError(where, "has a malformed talkedit manifest: " + "; ".join(problems),
                            "re-render the edit, or restore the manifest from "
                            "<edit>.provenance.json")
    return dict(manifest)


def parse_manifest(text: str, where: str | Path) -> dict[str, Any]:
    """JSON text to a checked manifest, or a ManifestError saying what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(where, f"holds a corrupted talkedit manifest (not JSON: {exc})",
                            "re-render the edit, or restore the manifest from "
                            "<edit>.provenance.json") from exc
    return _validated(obj, where)


# --- MP4 metadata and sidecar -----------------------------------------------------------


def embed_manifest(video: str | Path, manifest: Mapping[str, Any],
                   out: str | Path | None = None, title: str | None = None) -> dict[str, Any]:
    """Bind the manifest to ``video``'s streams and write it into the MP4's metadata.

    Stream-copies ``video`` (packets untouched) into ``out`` (default: in place,
    atomically) with the manifest as compact JSON in the ``comment`` tag, and
    returns the manifest with its ``stream_hash``.
    """
    video = Path(video)
    out = Path(out) if out is not None else video
    final = json.loads(json.dumps(dict(manifest)))  # a deep copy that is JSON for sure
    final["title"] = title or out.name
    final["stream_hash"] = {"alg": "sha256", "scope": STREAM_HASH_SCOPE,
                            "value": stream_digest(video)}
    _validated(final, out)
    with atomic_path(out, suffix=".mp4") as tmp:
        with open_container(video) as src, av.open(str(tmp), "w", format="mp4") as dst:
            meta = {k: v for k, v in src.metadata.items()
                    if k not in (METADATA_KEY, NOTICE_KEY, "encoder")}
            meta[METADATA_KEY] = json.dumps(final, sort_keys=True, separators=(",", ":"))
            meta[NOTICE_KEY] = (f"Edited with {claim_generator()}: synthesized speech and face "
                                "motion. Provenance manifest in the comment tag.")
            dst.metadata.update(meta)
            streams = [s for s in src.streams if s.type in ("video", "audio")]
            mapping = {s.index: dst.add_stream_from_template(s) for s in streams}
            for packet in src.demux(streams):
                if packet.dts is None:  # flush packets
                    continue
                packet.stream = mapping[packet.stream.index]
                dst.mux(packet)
        if stream_digest(tmp) != final["stream_hash"]["value"]:
            raise RuntimeError(f"remuxing {video} changed its packets; the manifest would not match")
    return final


def read_manifest(video: str | Path) -> dict[str, Any] | None:
    """The manifest embedded in an MP4, None if it has none; ManifestError if corrupted."""
    with open_container(video) as container:
        text = container.metadata.get(METADATA_KEY)
    if not text or "talkedit-provenance" not in text:
        return None  # no comment, or someone else's comment
    return parse_manifest(text, video)


def sidecar_path(video: str | Path) -> Path:
    """``data/outputs/<edit>.mp4`` -> ``data/outputs/<edit>.provenance.json``."""
    video = Path(video)
    return video.with_name(f"{video.stem}.provenance.json")


def write_sidecar(video: str | Path, manifest: Mapping[str, Any]) -> Path:
    path = sidecar_path(video)
    write_json(path, _validated(manifest, path))
    return path


def read_sidecar(video: str | Path) -> dict[str, Any] | None:
    path = sidecar_path(video)
    if not path.is_file():
        return None
    return parse_manifest(path.read_text(encoding="utf-8"), path)


def publish(encoded: str | Path, manifest: Mapping[str, Any], out: str | Path,
            credentials: Credentials) -> dict[str, Any]:
    """The renderer's last step: the manifest into ``out``'s metadata, signed Content
    Credentials over it, and the sidecar."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as scratch:
        final = embed_manifest(encoded, manifest, Path(scratch) / "remuxed.mp4", title=out.name)
        sign_content_credentials(Path(scratch) / "remuxed.mp4", final, credentials, out)
    write_sidecar(out, final)
    return final


def matches_file(manifest: Mapping[str, Any], video: str | Path) -> bool:
    """Whether the video's streams are the ones the manifest was made for."""
    stream_hash = manifest.get("stream_hash")
    return _is_hash(stream_hash) and stream_hash["value"] == stream_digest(video)


# --- Content Credentials (C2PA) ------------------------------------------------------------

_FORMATS = {".mp4": "video/mp4", ".mov": "video/quicktime", ".wav": "audio/wav",
            ".txt": "text/plain", ".yaml": "application/x-yaml", ".json": "application/json"}


C2PA_MEMORY_MB = 16  # see sign_content_credentials
C2PA_MERKLE_KB = 16 * 1024


def _format(name: str) -> str:
    return _FORMATS.get(Path(name).suffix.lower(), "application/octet-stream")


def _c2pa_ingredient(title: str, relationship: str, label: str, sha256: str) -> dict[str, Any]:
    return {"title": title, "format": _format(title), "relationship": relationship,
            "label": label,
            "metadata": {"dataSource": {"type": "localProvider", "details": f"sha256:{sha256}"}}}


def c2pa_definition(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The C2PA manifest definition of a talkedit manifest.

    Ingredients: the source video (parentOf, opened), then as inputs to the edit
    the transcript, the edit spec, the soundtrack (the plan's .wav) and the model files.
    """
    ingredients = [_c2pa_ingredient(i["title"], i["relationship"], i["role"], i["hash"]["value"])
                   for i in manifest["ingredients"]]
    ingredients += [_c2pa_ingredient(Path(f["path"]).name, "inputTo", f"audio{k}", f["sha256"])
                    for k, f in enumerate(manifest["plan"]) if f["path"].endswith(".wav")]
    ingredients += [_c2pa_ingredient(Path(f["path"]).name, "inputTo", f"model{k}", f["sha256"])
                    for k, f in enumerate(manifest["models"])]
    parent = [i["label"] for i in ingredients if i["relationship"] == "parentOf"]
    inputs = [i["label"] for i in ingredients if i["relationship"] != "parentOf"]
    edited = manifest["actions"][0]
    agent = {"name": "talkedit", "version": talkedit.__version__}
    return {
        "claim_generator_info": [agent],
        "title": manifest.get("title") or "talkedit output",
        "format": "video/mp4",
        "ingredients": ingredients,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.opened", "softwareAgent": agent,
                 "parameters": {"ingredientIds": parent}},
                {"action": "c2pa.edited", "softwareAgent": agent,
                 **({"when": edited["when"]} if edited.get("when") else {}),
                 "digitalSourceType": DIGITAL_SOURCE_TYPE, "description": edited["description"],
                 "parameters": {"ingredientIds": inputs}},
            ]}},
            {"label": C2PA_ASSERTION, "data": json.loads(json.dumps(dict(manifest)))},
        ],
    }


def sign_content_credentials(video: str | Path, manifest: Mapping[str, Any],
                             credentials: Credentials, out: str | Path) -> None:
    """Write ``video`` to ``out`` (atomically) with signed C2PA Content Credentials embedded."""
    chain, key = credentials.read()
    try:
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    except c2pa.C2paError as exc:
        raise TalkeditError(credentials.chain, f"cannot sign with this certificate and key ({exc})",
                            "give an ES256 (P-256) certificate chain, leaf first, and its key") from exc
    # Bounded memory on long outputs: c2pa keeps the asset it signs in memory up to
    # core.backing_store_memory_threshold_in_mb (default 512 MB: a 10-minute output took
    # 2x its size, 1.2 GB), and hashes mdat in buffers of up to 256 MB (+490 MB at 31 min).
    # Hashed as a Merkle tree of C2PA_MERKLE_KB leaves instead (the BMFF hash's own
    # scheme), signing a 1.5 GB output takes +16 MB and adds 31 KB of leaf hashes.
    settings = c2pa.Settings.from_dict(
        {"core": {"backing_store_memory_threshold_in_mb": C2PA_MEMORY_MB,
                  "merkle_tree_chunk_size_in_kb": C2PA_MERKLE_KB}})
    builder = c2pa.Builder(c2pa_definition(manifest), context=c2pa.Context(settings=settings))
    with atomic_path(out, suffix=".mp4") as tmp, Path(video).open("rb") as src, tmp.open("w+b") as dst:
        try:
            builder.sign(signer, "video/mp4", src, dst)
        except c2pa.C2paError as exc:
            raise TalkeditError(credentials.chain, f"signing the Content Credentials failed ({exc})",
                                "check that the certificate chain matches the key and is valid "
                                "now (ES256, leaf first)") from exc


@dataclass
class ContentCredentials:
    """What ``read_content_credentials`` found.

    state: "absent"; "valid" (signature good, signer trusted, bound to this file);
    "untrusted" (the same, but the signer is outside the trust list); "other_content"
    (a good signature over other media: copied onto this file, or the file changed);
    "invalid" (corrupted, or a signature that does not verify).
    """

    state: str
    problems: list[str] = field(default_factory=list)  # the validator's failure codes
    manifest: dict[str, Any] | None = None  # the talkedit assertion, when there is one
    actions: list[str] = field(default_factory=list)
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    signer: str | None = None
    digital_source_types: list[str] = field(default_factory=list)

    @property
    def payload_id(self) -> int | None:
        mark = (self.manifest or {}).get("watermark")
        pid = mark.get("payload_id") if isinstance(mark, Mapping) else None
        return pid if isinstance(pid, int) else None


_BINDING_FAILURES = ("assertion.bmffHash.mismatch", "assertion.dataHash.mismatch",
                     "assertion.boxesHash.mismatch")
_TRUST_FAILURES = ("signingCredential.untrusted",)


def _c2pa_context(trust_anchors: Sequence[str | Path]) -> Any:
    for anchor in map(Path, trust_anchors):
        if not anchor.is_file():
            raise TalkeditError(anchor, "trust anchor not found",
                                "give the PEM file of a CA certificate")
    pems = "".join(Path(p).read_text(encoding="ascii") for p in trust_anchors)
    config: dict[str, Any] = {"verify": {"verify_trust": True}}
    if pems:
        config["trust"] = {"trust_anchors": pems}
    return c2pa.Context(settings=c2pa.Settings.from_dict(config))


def read_content_credentials(video: str | Path,
                             trust_anchors: Sequence[str | Path] = ()) -> ContentCredentials:
    """Read and validate the C2PA manifest embedded in ``video`` (c2pa-python)."""
    try:
        with Path(video).open("rb") as fh:
            reader = c2pa.Reader("video/mp4", fh, context=_c2pa_context(trust_anchors))
            store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc):
            return ContentCredentials("absent")
        return ContentCredentials("invalid", [f"unreadable: {exc}"])
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    if results:
        problems = [f.get("code", "?") for f in results.get("failure", [])]
    else:  # readers that give only the flat status list
        problems = [s.get("code", "?") for s in store.get("validation_status", [])]
    found = ContentCredentials("valid", problems)
    for assertion in active.get("assertions", []):
        if assertion.get("label") == C2PA_ASSERTION:
            found.manifest = assertion.get("data")
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                found.actions.append(action.get("action"))
                if action.get("digitalSourceType"):
                    found.digital_source_types.append(action["digitalSourceType"])
    found.ingredients = list(active.get("ingredients", []))
    found.signer = (active.get("signature_info") or {}).get("common_name")
    other = [p for p in problems if p not in _BINDING_FAILURES + _TRUST_FAILURES]
    if other or not active:
        found.state = "invalid"
    elif any(p in _BINDING_FAILURES for p in problems):
        found.state = "other_content"
    elif any(p in _TRUST_FAILURES for p in problems):
        found.state = "untrusted"
    return found
