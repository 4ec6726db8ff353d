"""compare stage: the before/after video of an edit, data/outputs/<edit>.compare.mp4.

Left, the original footage; right, the edited output; one frame per output frame, so
the two run in step on kept segments (the left shows the clip frame the plan keeps as
background: the very same frame there, the retimed footage around an edit). Frames
around an edit get a coloured bar under the right half (orange: new words, yellow:
retimed footage) and the new words are written under it. Sound: the edit's.

Streamed: the output is decoded forward and the clip read through a FrameCursor, one
frame of each in memory. Like the output it carries the invisible watermark (on every
frame and on its sound), the manifest in its metadata and beside it, and signed
Content Credentials, all from the composite stage's own code (watermark.py,
audio_watermark.py, provenance.py, credentials.py), so `talkedit verify` says edited.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stages.composite.audio_watermark import embed_audio_blocks
from stages.composite.compose import PRESETS, PlanAudio, _even
from stages.composite.credentials import SigningSettings
from stages.composite.provenance import build_manifest, publish
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams, detect_file
from talkedit.artifacts import (
    PLAN,
    SEGMENTS,
    ClipPaths,
    EditPaths,
    ModelPaths,
    VideoMeta,
    compare_metrics_path,
    compare_video_path,
    read_parquet,
)
from talkedit.atomic import write_json
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.progress import progress
from talkedit.video import FrameCursor, FrameStore, VideoWriter, open_container

NEW_WORDS, RETIMED = (230, 110, 30), (242, 193, 46)


@dataclass(frozen=True)
class CompareParams(Section):
    """The ``compare:`` section of params.yaml."""

    SECTION = "compare"

    crf: int = 20  # H.264 quality of the before/after video (it is for looking, not for use)
    preset: str = "veryfast"  # x264 speed/size trade-off
    bar_px: int = 28  # height of the band under the halves that marks edited frames

    def check(self, where: str) -> None:
        if not 0 <= self.crf <= 51:
            raise bad_param(where, "crf", f"is {self.crf}, not an H.264 CRF in 0..51", "use 20")
        if self.preset not in PRESETS:
            raise bad_param(where, "preset", f"is {self.preset!r}, not an x264 preset",
                            f"use one of {', '.join(PRESETS)}")
        if not 8 <= self.bar_px <= 120:
            raise bad_param(where, "bar_px", f"is {self.bar_px}", "use 8..120")


def _decoded(video: Path) -> Any:
    """RGB frames of a video, forward."""
    with open_container(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def _caption(width: int, height: int, text: str, colour: tuple[int, int, int] | None
             ) -> np.ndarray:
    """A dark band with ``text``; ``colour`` fills a bar on its left when given."""
    band = np.full((height, width, 3), 24, np.uint8)
    x = 8
    if colour is not None:
        band[:, : width // 40 + 6] = colour
        x = width // 40 + 14
    if text:
        scale = height / 48
        cv2.putText(band, text, (x, int(height * 0.68)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return band


def side_by_side(original: np.ndarray, edited: np.ndarray, note: str,
                 colour: tuple[int, int, int] | None, bar_px: int) -> np.ndarray:
    """original | edited, each with its caption band under it."""
    h, w = original.shape[:2]
    if edited.shape[:2] != (h, w):
        edited = cv2.resize(edited, (w, h), interpolation=cv2.INTER_AREA)
    left = np.vstack([original, _caption(w, bar_px, "original", None)])
    right = np.vstack([edited, _caption(w, bar_px, note or "edit", colour)])
    return np.hstack([left, right])


def run_compare(edit: str, root: Path, compare: CompareParams, watermark: WatermarkParams
                ) -> dict[str, Any]:
    """Write data/outputs/<edit>.compare.mp4 (+ its provenance and .compare.json)."""
    paths = EditPaths.of(edit, root)
    spec = load_spec(edit, root)
    clip = ClipPaths.of(spec.clip, root)
    if not paths.output.is_file():
        raise TalkeditError(paths.output, "not found", f"run composite@{edit} first (dvc repro)")
    plan = read_parquet(paths.plan, PLAN, stage_hint=f"plan@{edit}")
    segments = read_parquet(paths.segments, SEGMENTS, stage_hint=f"plan@{edit}")
    meta = VideoMeta.read(clip)
    audio = PlanAudio.open(paths.audio)
    source = plan["source_frame"].to_numpy()
    edited = plan["edited"].to_numpy(bool)
    kind = segments.set_index("segment").loc[plan["segment"].to_numpy(), "kind"].to_numpy()
    words = segments.set_index("segment").loc[plan["segment"].to_numpy(), "words"].to_numpy()
    out = compare_video_path(paths)
    model = ModelPaths.of(spec.clip, root)
    # The same inputs as the output's manifest, plus the output itself: this video shows it.
    manifest = build_manifest(
        source_video=clip.video, transcript=clip.transcript, edit_spec=paths.spec,
        model_files=[p for p in (model.generator, clip.face_model) if p.exists()],
        plan_files=[p for p in (paths.plan, paths.audio, paths.output) if p.exists()])
    marker = WatermarkEmbedder(watermark.key_bytes, manifest["watermark"]["payload_id"],
                               watermark.strength)
    credentials = SigningSettings.of(watermark, root).credentials()
    clip_frames = FrameCursor(FrameStore.for_clip(spec.clip, root))
    width, height = 2 * meta.width, meta.height + compare.bar_px
    width, height = width + width % 2, height + height % 2
    written = 0
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{edit}.compare.") as scratch:
        encoded = Path(scratch) / "encoded.mp4"
        with VideoWriter(encoded, width, height, meta.fps_rational, crf=compare.crf,
                         preset=compare.preset, audio_rate=audio.rate) as writer:
            for k, image in progress(enumerate(_decoded(paths.output)), len(plan),
                                     f"compare {edit}"):
                if k >= len(plan):
                    break
                new = kind[k] == "new"
                colour = NEW_WORDS if new else RETIMED if edited[k] else None
                note = f"new: {words[k]}" if new else "retimed" if edited[k] else ""
                frame = side_by_side(clip_frames[int(source[k])], image, note, colour,
                                     compare.bar_px)
                writer.write(marker.embed(_even(frame), k))
                written += 1
            writer.write_audio_blocks(embed_audio_blocks(audio.read, audio.length, audio.rate,
                                                         watermark.key_bytes,
                                                         watermark.audio_depth))
        if written != len(plan):
            raise TalkeditError(paths.output, f"has {written} frames, the plan {len(plan)}",
                                f"re-run composite@{edit}")
        manifest = publish(encoded, manifest, out, credentials)
    found = detect_file(out, watermark.key_bytes, watermark.alpha)
    metrics = {
        "frames": int(len(plan)), "edited_frames": int(edited.sum()),
        "edited_share": round(float(edited.mean()), 4) if len(plan) else 0.0,
        "new_word_frames": int((kind == "new").sum()),
        "watermark": {"detected": bool(found.detected), "z": round(float(found.z), 2),
                      "payload_matches": found.payload_id == manifest["watermark"]["payload_id"]},
    }
    write_json(compare_metrics_path(paths), metrics)
    return {"edit": edit, "compare": str(out), **{k: v for k, v in metrics.items()
                                                   if k != "watermark"},
            "watermark_detected": metrics["watermark"]["detected"],
            "watermark_z": metrics["watermark"]["z"]}
