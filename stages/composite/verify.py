"""``talkedit verify VIDEO``: separate findings, and one verdict that cannot be forged.

Findings, each on its own:

* **watermark** (video frames, with its 32-bit id) and **audio mark**
  (soundtrack, no id): found or not, with z and the false-positive bound
  (``p``) that already counts every hypothesis the detector tried.
* **Content Credentials** (signed C2PA manifest in the file): absent; valid
  (bound to this file's media, signed by a trusted certificate); untrusted
  signer; bound to other content; invalid.
* **metadata copy** (JSON in the MP4 ``comment`` tag) and **sidecar**
  (``<name>.provenance.json``): absent; bound to these streams; bound to
  other content; invalid. Unsigned: anyone can write one, so alone they never
  make a video "edited".

Verdict (exit status):

* ``inconsistent`` (3) when the evidence does not hold together: a manifest,
  copy or sidecar made for other content that the watermark does not
  confirm (its id is not in the frames), ids that differ between the
  watermark and a manifest, a corrupted manifest or a signer outside the
  trust list with no watermark to back it, or an unsigned copy bound to the
  file with neither a watermark nor Content Credentials. Metadata copied onto
  an unedited video lands here, never at "edited".
* ``edited`` (0): otherwise, when either watermark is found or valid Content
  Credentials are bound to this file.
* ``no_evidence`` (1): nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stages.composite import provenance
from stages.composite.audio_watermark import AudioDetection, detect_audio_file
from stages.composite.watermark import DetectionResult, WatermarkParams, detect_file

EXIT_CODES = {"edited": 0, "no_evidence": 1, "inconsistent": 3}


@dataclass
class RecordFinding:
    """An unsigned JSON manifest (metadata copy or sidecar): state and id."""

    state: str  # "absent" | "bound" | "other_content" | "invalid"
    problem: str | None = None
    payload_id: int | None = None
    manifest: dict[str, Any] | None = None


@dataclass
class WatermarkFinding:
    found: bool
    z: float
    z_needed: float
    log10_p: float
    frames: int
    hypotheses: int
    payload_id: int | None
    flip: str | None = None
    period_ratio: tuple[float, float] | None = None
    rotation_deg: float | None = None

    @classmethod
    def of(cls, result: DetectionResult) -> WatermarkFinding:
        lat = result.lattice
        return cls(result.detected, result.z, result.z_needed, result.log10_p, result.frames,
                   result.hypotheses, result.payload_id, result.flip,
                   lat.period_ratio if lat else None, lat.rotation_deg if lat else None)


@dataclass
class AudioFinding:
    present: bool  # the file has an audio stream
    found: bool
    z: float
    z_needed: float
    log10_p: float
    seconds: float

    @classmethod
    def of(cls, result: AudioDetection | None) -> AudioFinding:
        if result is None:
            return cls(False, False, 0.0, 0.0, 0.0, 0.0)
        return cls(True, result.detected, result.z, result.z_needed, result.log10_p,
                   result.seconds)


@dataclass
class VerifyReport:
    path: Path
    watermark: WatermarkFinding
    audio: AudioFinding
    credentials: provenance.ContentCredentials
    metadata: RecordFinding
    sidecar: RecordFinding
    verdict: str = "no_evidence"
    reasons: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def edited(self) -> bool:
        return self.verdict == "edited"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["exit_code"] = self.exit_code
        out["credentials"].pop("manifest", None)
        for name in ("metadata", "sidecar"):
            out[name].pop("manifest", None)
        return out

    def render(self) -> str:
        head = {"edited": "EDITED with talkedit", "no_evidence": "no talkedit evidence found",
                "inconsistent": "INCONSISTENT evidence (do not trust its claims either way)"}
        lines = [f"{self.path}: {head[self.verdict]}"]
        w = self.watermark
        id_text = f", id {w.payload_id:08x}" if w.payload_id is not None else ""
        lines.append(f"  watermark:   {'found' if w.found else 'not found'} in {w.frames} frames: "
                     f"z = {w.z:.1f} (found needs {w.z_needed:.1f}), an unmarked video scores "
                     f"this high with p <= 10^{w.log10_p:.1f} (the bound counts the "
                     f"alignments searched: x{w.hypotheses})"
                     f"{id_text}" + (f"; flip {w.flip}" if w.found and w.flip != "none" else ""))
        a = self.audio
        lines.append("  audio mark:  " + (
            "no audio stream" if not a.present else
            f"{'found' if a.found else 'not found'} in {a.seconds:.1f} s: z = {a.z:.1f} (found "
            f"needs {a.z_needed:.1f}), p <= 10^{a.log10_p:.1f}"))
        c = self.credentials
        c_text = {"absent": "none", "valid": "valid, signed by a trusted certificate, bound to "
                  "this file", "untrusted": "signature valid and bound to this file, but the "
                  "signer is not in the trust list", "other_content": "signed for OTHER content "
                  "(copied onto this file, or the file was changed)",
                  "invalid": "INVALID"}[c.state]
        extra = f" ({', '.join(c.problems)})" if c.problems and c.state != "valid" else ""
        signer = f"; signer {c.signer}" if c.signer else ""
        lines.append(f"  credentials: {c_text}{extra}{signer}"
                     + (f"; actions {', '.join(c.actions)}" if c.actions else ""))
        for name, rec in (("metadata", self.metadata), ("sidecar", self.sidecar)):
            r_text = {"absent": "none", "bound": "bound to these streams",
                      "other_content": "made for OTHER content (streams differ)",
                      "invalid": f"INVALID: {rec.problem}"}[rec.state]
            lines.append(f"  {name + ':':12s} {r_text}")
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def _record(reader: Any, path: Path) -> RecordFinding:
    try:
        manifest = reader(path)
    except provenance.ManifestError as exc:
        return RecordFinding("invalid", exc.problem)
    if manifest is None:
        return RecordFinding("absent")
    state = "bound" if provenance.matches_file(manifest, path) else "other_content"
    return RecordFinding(state, None, manifest["watermark"]["payload_id"], manifest)


def decide(watermark: WatermarkFinding, audio: AudioFinding,
           credentials: provenance.ContentCredentials,
           records: Sequence[tuple[str, RecordFinding]]) -> tuple[str, list[str]]:
    """The verdict and why, from the separate findings (see the module doc)."""
    reasons = []
    marked = watermark.found or audio.found
    mark_id = watermark.payload_id if watermark.found else None
    claims = [("Content Credentials", credentials.state, credentials.payload_id)]
    claims += [(name, rec.state, rec.payload_id) for name, rec in records]
    for name, state, pid in claims:
        # The frames confirm a claim when they carry its id (or a mark too weak to read one).
        confirmed = watermark.found and (mark_id is None or mark_id == pid)
        if mark_id is not None and pid is not None and pid != mark_id:
            reasons.append(f"the {name} names watermark id {pid:08x} but the frames carry "
                           f"{mark_id:08x}")
        elif state == "other_content" and not confirmed:
            reasons.append(f"the {name} was made for other content and the frames do not carry "
                           "its watermark")
        elif state == "invalid" and not marked:
            reasons.append(f"the {name} is corrupted or its signature does not verify, and "
                           "there is no watermark")
        elif state == "untrusted" and not marked:
            reasons.append(f"the {name} is signed by a certificate outside the trust list, and "
                           "there is no watermark")
        elif state == "bound" and not marked and credentials.state != "valid":
            reasons.append(f"the {name} (unsigned) matches this file but neither a watermark "
                           "nor valid Content Credentials back it")
    if reasons:
        return "inconsistent", reasons
    if watermark.found:
        return "edited", ["the frames carry talkedit's watermark"]
    if audio.found:
        return "edited", ["the soundtrack carries talkedit's audio watermark"]
    if credentials.state == "valid":
        return "edited", ["valid Content Credentials bound to this file say it was edited"]
    return "no_evidence", []


def verify_video(path: str | Path, watermark: WatermarkParams | None = None,
                 trust_anchors: Sequence[str | Path] = ()) -> VerifyReport:
    """Every finding about one video, and the verdict. An unreadable file raises
    TalkeditError (the CLI's exit 2)."""
    path = Path(path)
    settings = watermark or WatermarkParams()
    mark = WatermarkFinding.of(detect_file(path, settings.key_bytes, settings.alpha))
    audio = AudioFinding.of(detect_audio_file(path, settings.key_bytes, settings.alpha))
    credentials = provenance.read_content_credentials(path, trust_anchors)
    metadata = _record(provenance.read_manifest, path)
    sidecar = _record(provenance.read_sidecar, path)
    verdict, reasons = decide(mark, audio, credentials, [("metadata copy", metadata),
                                                         ("sidecar", sidecar)])
    return VerifyReport(path, mark, audio, credentials, metadata, sidecar, verdict, reasons)
