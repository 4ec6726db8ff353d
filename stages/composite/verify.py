"""``talkedit verify VIDEO``: is this a talkedit edit? Manifest, watermark, and whether they agree.

The video counts as ``edited`` when the watermark is found or a talkedit
manifest is present (even a corrupted one: only talkedit writes it). The
watermark is the robust signal: it survives re-encoding and rescaling, which
break the manifest's binding to the file or strip the metadata altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.composite import provenance
from stages.composite.watermark import (
    FRAME_ALPHA,
    DetectionResult,
    WatermarkParams,
    detect_file,
)


@dataclass
class VerifyReport:
    path: Path
    has_manifest: bool  # a talkedit manifest is embedded or beside the video (maybe corrupted)
    manifest_valid: bool
    manifest_matches_file: bool  # its stream hash is this file's: no re-encode, no tampering
    watermark_found: bool
    watermark_share: float  # share of frames where the mark is found on its own
    payload_id: int | None  # decoded from the watermark
    payload_matches_manifest: bool
    manifest_source: str | None = None  # "embedded" | "sidecar"
    manifest_problem: str | None = None
    manifest: dict[str, Any] | None = None
    watermark: DetectionResult | None = None

    @property
    def edited(self) -> bool:
        return self.watermark_found or self.has_manifest

    def render(self) -> str:
        lines = [f"{self.path}: {'EDITED with talkedit' if self.edited else 'no talkedit mark found'}"]
        if not self.has_manifest:
            lines.append("  manifest:  none (no talkedit metadata, no <name>.provenance.json)")
        elif not self.manifest_valid:
            lines.append(f"  manifest:  {self.manifest_source}, INVALID: {self.manifest_problem}")
        else:
            m = self.manifest or {}
            lines.append(f"  manifest:  {self.manifest_source}, valid; {m.get('claim_generator')}, "
                         f"created {m.get('created') or '(no time recorded)'}")
            lines.append("  binding:   " + (
                "matches this file's streams" if self.manifest_matches_file else
                "DOES NOT match this file's streams (re-encoded, or frames/audio changed)"))
        w = self.watermark
        if w is not None and w.detected:
            lines.append(f"  watermark: found in {w.frames} frames: z = {w.z:.1f}, an unmarked video "
                         f"scores this high with p <= 10^{w.log10_p:.0f}; in "
                         f"{100 * w.share:.0f}% of frames on their own (p <= {FRAME_ALPHA:g} each)")
        elif w is not None:
            lines.append(f"  watermark: not found in {w.frames} frames: z = {w.z:.1f}, p bound "
                         f"{w.p_value:.2g} (found needs <= {w.alpha:g})")
        if self.payload_id is not None:
            agree = ("matches the manifest" if self.payload_matches_manifest
                     else "differs from the manifest" if self.manifest_valid else "no manifest to match")
            lines.append(f"  id:        {self.payload_id:08x} ({agree})")
        elif self.watermark_found:
            lines.append("  id:        not decodable (mark too weak for the payload)")
        return "\n".join(lines)


def _load_manifest(path: Path) -> tuple[dict[str, Any] | None, str | None, str | None, bool]:
    """(manifest, source, problem, present): the embedded one, else the sidecar."""
    for source, reader in (("embedded", provenance.read_manifest),
                           ("sidecar", provenance.read_sidecar)):
        try:
            manifest = reader(path)
        except provenance.ManifestError as exc:
            return None, source, exc.problem, True
        if manifest is not None:
            return manifest, source, None, True
    return None, None, None, False


def verify_video(path: str | Path, watermark: WatermarkParams | None = None) -> VerifyReport:
    """Read the manifest (embedded, else the sidecar), check it against the file, and
    look for the watermark in every frame. An unreadable file raises TalkeditError."""
    path = Path(path)
    settings = watermark or WatermarkParams()
    manifest, source, problem, present = _load_manifest(path)
    mark = detect_file(path, settings.key_bytes, settings.alpha)
    expected = manifest["watermark"]["payload_id"] if manifest else None
    return VerifyReport(
        path=path,
        has_manifest=present,
        manifest_valid=manifest is not None,
        manifest_matches_file=manifest is not None and provenance.matches_file(manifest, path),
        watermark_found=mark.detected,
        watermark_share=mark.share,
        payload_id=mark.payload_id,
        payload_matches_manifest=expected is not None and mark.payload_id == expected,
        manifest_source=source,
        manifest_problem=problem,
        manifest=manifest,
        watermark=mark,
    )
