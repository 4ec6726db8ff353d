"""composite stage: the edited video a person watches, with its provenance.

Streams the plan frame by frame: the background source frame (decoded once,
forward; between two frames inside a retimed region, ``interpolate.py``), the rendered face crop blended in on edited frames
(``blend.composite_crop``), the visible "edited" label (on by default), the
invisible watermark on every frame (cannot be turned off), then H.264 + AAC
with the plan's audio, itself watermarked (``audio_watermark``). The finished
file gets signed Content Credentials and the manifest in its metadata and
beside it (``provenance.publish``); nothing is written in place.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.composite.audio_watermark import embed_audio_blocks
from stages.composite.blend import BlendParams, composite_crop, draw_edited_label
from stages.composite.credentials import SigningSettings
from stages.composite.interpolate import FlowInterpolator, split_instant
from stages.composite.provenance import build_manifest, publish
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams
from talkedit.artifacts import PLAN, ClipPaths, EditPaths, ModelPaths, VideoMeta, read_parquet
from talkedit.edits import load_spec
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.progress import progress
from talkedit.scale import ChunkMap, ScaleParams, serial_map
from talkedit.video import FrameCursor, FrameStore, VideoWriter

log = logging.getLogger(__name__)
FrameFilter = Callable[[int, np.ndarray], np.ndarray]  # (plan row, frame) -> frame
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")


@dataclass(frozen=True)
class CompositeParams(Section):
    """The ``composite:`` section of params.yaml."""

    SECTION = "composite"

    crf: int = 12  # H.264 quality of the output (lower = better, bigger)
    preset: str = "medium"  # x264 speed/size trade-off
    label: bool = True  # visible "EDITED" label; the watermark and manifest cannot be turned off
    blend: BlendParams = field(default_factory=BlendParams)

    def check(self, where: str) -> None:
        if not 0 <= self.crf <= 51:
            raise bad_param(where, "crf", f"is {self.crf}, not an H.264 CRF in 0..51", "use 12")
        if self.preset not in PRESETS:
            raise bad_param(where, "preset", f"is {self.preset!r}, not an x264 preset",
                            f"use one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class PlanAudio:
    """The edit's audio.wav (16-bit mono), read a region at a time: a long soundtrack is
    never whole in memory."""

    path: Path
    rate: int
    length: int  # samples

    @classmethod
    def open(cls, path: Path) -> PlanAudio:
        if not path.is_file():
            raise TalkeditError(path, "the edit's audio is missing", "run the audio stage (dvc repro)")
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise TalkeditError(path, "is not 16-bit mono PCM", "re-run the audio stage")
            return cls(path, wav.getframerate(), wav.getnframes())

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) (clamped to the file), int16."""
        start, stop = max(0, start), min(stop, self.length)
        with wave.open(str(self.path), "rb") as wav:
            wav.setpos(start)
            return np.frombuffer(wav.readframes(max(0, stop - start)), dtype="<i2")


def _even(image: np.ndarray) -> np.ndarray:
    """H.264 4:2:0 needs even sizes: repeat the last row/column of an odd-sized frame."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _check_output_is_not_an_input(out: Path, inputs: list[Path]) -> None:
    for path in inputs:
        if path.exists() and out.resolve() == path.resolve():
            raise TalkeditError(out, "the output would overwrite an input",
                                "rename the edit so its output differs from its inputs")


def _render_store(edit: str, root: Path | None, plan_frames: int, edited: np.ndarray) -> Any:
    from stages.render.store import RenderStore

    store = RenderStore(edit, root)
    rendered = set(int(f) for f in store.frames)
    if store.frames.size and int(store.frames.max()) >= plan_frames:
        raise TalkeditError(store.paths.index, f"renders reach frame {int(store.frames.max())} but "
                            f"the plan has {plan_frames} frames", f"re-run render@{edit}")
    missing = [int(f) for f in np.nonzero(edited)[0] if int(f) not in rendered]
    if missing:
        raise TalkeditError(store.paths.index, f"{len(missing)} edited frames of the plan were not "
                            f"rendered (first: {missing[0]})", f"re-run render@{edit}")
    return store


def run_composite(edit: str, root: Path, composite: CompositeParams, watermark: WatermarkParams,
                  scale: ScaleParams, map_chunks: ChunkMap = serial_map) -> dict[str, Any]:
    """Write data/outputs/<edit>.mp4 (watermarked frames and soundtrack, signed Content
    Credentials) and <edit>.provenance.json; return a summary. ``scale`` and
    ``map_chunks``: frame chunks as tasks (``composite_plan``)."""
    paths = EditPaths.of(edit, root)
    return composite_plan(load_spec(edit, root).clip, paths, paths.spec, composite, watermark,
                          scale=scale, map_chunks=map_chunks)


class FramePainter:
    """Output frame ``k`` of a plan, exactly as it is encoded: its background (between two
    clip frames inside a retimed region), the rendered face on edited frames, the label
    and the watermark. Frames depend on ``k`` alone, so frame chunks painted by other
    tasks, in any order, give the same pixels."""

    def __init__(self, clip_name: str, paths: EditPaths, composite: CompositeParams,
                 watermark: WatermarkParams, payload_id: str | None, plan_stage: str = "plan",
                 frame_filter: FrameFilter | None = None,
                 frame_after: FrameFilter | None = None) -> None:
        root = paths.data.parent
        plan = read_parquet(paths.plan, PLAN, stage_hint=f"{plan_stage}@{paths.edit}")
        self.edited = plan["edited"].to_numpy()
        self.source_frames = plan["source_frame"].to_numpy()
        self.positions = plan["source_time_s"].to_numpy(np.float64)  # * fps: frame positions
        self.store = FrameStore.for_clip(clip_name, root)
        if len(self.source_frames) and (self.source_frames.max() >= len(self.store)
                                        or self.source_frames.min() < 0):
            raise TalkeditError(paths.plan, "references frames outside the clip",
                                f"re-run {plan_stage}@{paths.edit} after extract@{clip_name}")
        self.renders = _render_store(paths.edit, root, len(plan), self.edited)
        self.fps = VideoMeta.read(ClipPaths.of(clip_name, root)).fps
        self.watermark = watermark
        self.marker: WatermarkEmbedder | None = None
        if payload_id is not None:
            self.watermark_with(payload_id)
        self.blend, self.label = composite.blend, composite.label
        self.frames = FrameCursor(self.store)
        self.between = FlowInterpolator()
        self.frame_filter = frame_filter  # (plan row, frame) -> the frame behind its face
        self.frame_after = frame_after  # (plan row, frame) -> the frame with its face pasted

    def __len__(self) -> int:
        return len(self.source_frames)

    def watermark_with(self, payload_id: str) -> None:
        """The manifest's payload id, known once the inputs are checked and hashed."""
        self.marker = WatermarkEmbedder(self.watermark.key_bytes, payload_id,
                                        self.watermark.strength)

    def paint(self, k: int) -> np.ndarray:
        f0, alpha = split_instant(self.positions[k] * self.fps, len(self.store))
        image = (self.between.between(self.frames[f0], self.frames[f0 + 1], f0, alpha) if alpha
                 else self.frames[int(self.source_frames[k])])
        if self.frame_filter is not None:
            image = self.frame_filter(k, image)
        if self.edited[k]:
            crop = self.renders.read(k)
            image = composite_crop(image, crop.crop, crop.transform, crop.alpha,
                                   self.blend.at_scale(crop.crop.shape[0] / self.renders.size))
        if self.frame_after is not None:
            image = self.frame_after(k, image)
        if self.label:
            image = draw_edited_label(image)
        if self.marker is None:
            raise RuntimeError("FramePainter.paint before watermark_with: every frame is marked")
        return self.marker.embed(_even(image), k)


@dataclass(frozen=True)
class PaintChunk:
    """Output frames [start, stop) of a plan, painted by a task of its own (picklable)."""

    clip: str
    paths: EditPaths
    composite: CompositeParams
    watermark: WatermarkParams
    payload_id: str
    plan_stage: str
    start: int
    stop: int
    frame_filter: FrameFilter | None = None
    frame_after: FrameFilter | None = None


def paint_chunk(chunk: PaintChunk) -> list[np.ndarray]:
    painter = FramePainter(chunk.clip, chunk.paths, chunk.composite, chunk.watermark,
                           chunk.payload_id, chunk.plan_stage, chunk.frame_filter,
                           chunk.frame_after)
    return [painter.paint(k) for k in range(chunk.start, chunk.stop)]


def composite_plan(clip_name: str, paths: EditPaths, spec_path: Path, composite: CompositeParams,
                   watermark: WatermarkParams, *, description: str | None = None,
                   model_files: tuple[Path, ...] = (),
                   ingredients: tuple[tuple[str, Path], ...] = (),
                   stages: tuple[str, str] = ("plan", "audio"),
                   scale: ScaleParams | None = None, map_chunks: ChunkMap = serial_map,
                   frame_filter: FrameFilter | None = None,
                   frame_after: FrameFilter | None = None,
                   with_transcript: bool = True) -> dict[str, Any]:
    """Composite the plan, renders and soundtrack under ``paths`` (the PLAN contract: an
    edit's, or a lip-sync job's whose spec is ``spec_path``) into ``paths.output``.

    ``description`` says what was done in the manifest's edit action; ``model_files`` and
    ``ingredients`` ((role, file)) are hashed into it beside the clip's own (its video, and
    its transcript ``with_transcript``: a reenactment uses none of its words). With
    ``scale.chunk_frames`` set, frame chunks are painted through ``map_chunks`` (in
    order, at most ``scale.in_flight`` chunks of frames held) and encoded here: the
    same frames, so the same video stream, as one pass. ``frame_filter`` (plan row, frame)
    changes each frame before the face is pasted, ``frame_after`` after it (a portrait
    reenactment turns the head, face and all)."""
    edit, root = paths.edit, paths.data.parent
    plan_stage, audio_stage = stages
    clip = ClipPaths.of(clip_name, root)
    _check_output_is_not_an_input(paths.output, [clip.video, clip.transcript, spec_path,
                                                 *(p for _, p in ingredients)])
    painter = FramePainter(clip_name, paths, composite, watermark, None, plan_stage,
                           frame_filter, frame_after)
    edited = painter.edited
    audio = PlanAudio.open(paths.audio)
    audio_rate = audio.rate
    meta = VideoMeta.read(clip)
    fps = meta.fps
    expected = len(painter) / fps
    if abs(audio.length / audio_rate - expected) > 2.0 / fps:
        raise TalkeditError(paths.audio, f"lasts {audio.length / audio_rate:.2f} s but the plan "
                            f"lasts {expected:.2f} s", f"re-run {audio_stage}@{edit}")

    model = ModelPaths.of(clip_name, root)
    manifest = build_manifest(
        source_video=clip.video, transcript=clip.transcript if with_transcript else None,
        edit_spec=spec_path,
        model_files=[p for p in (model.generator, clip.face_model, *model_files) if p.exists()],
        plan_files=[p for p in (paths.plan, paths.audio) if p.exists()],
        description=description, extra_ingredients=ingredients,
    )
    payload_id = manifest["watermark"]["payload_id"]
    painter.watermark_with(payload_id)
    credentials = SigningSettings.of(watermark, root).credentials()
    chunk_rows = scale.chunk_frames if scale is not None else 0
    if chunk_rows:
        chunks = [PaintChunk(clip_name, paths, composite, watermark, payload_id, plan_stage,
                             a, b, frame_filter, frame_after) for a, b in scale.spans(len(painter))]
        painted: Iterable[np.ndarray] = itertools.chain.from_iterable(
            map_chunks(paint_chunk, chunks))
    else:
        painted = (painter.paint(k) for k in range(len(painter)))
    width, height = meta.width, meta.height
    padded = (width % 2, height % 2)
    if any(padded):
        log.warning("source is %dx%d: padded by one pixel to even dimensions for H.264", width, height)

    paths.output.parent.mkdir(parents=True, exist_ok=True)
    # Encode into a scratch file; publish() stream-copies it into the output atomically,
    # with the manifest embedded, so the output is never half-written.
    with tempfile.TemporaryDirectory(dir=paths.output.parent, prefix=f".{edit}.") as scratch:
        encoded = Path(scratch) / "encoded.mp4"
        with VideoWriter(encoded, width + padded[0], height + padded[1], meta.fps_rational,
                         crf=composite.crf, preset=composite.preset,
                         audio_rate=audio_rate) as out:
            for image in progress(painted, len(painter), f"composite {edit}"):
                out.write(image)
            # marked and encoded block by block: the soundtrack is never whole in memory
            out.write_audio_blocks(embed_audio_blocks(audio.read, audio.length, audio_rate,
                                                      watermark.key_bytes,
                                                      watermark.audio_depth))
        manifest = publish(encoded, manifest, paths.output, credentials)
    summary = {
        "edit": edit, "clip": clip_name, "output": str(paths.output), "frames": len(painter),
        "edited_frames": int(edited.sum()), "fps": fps, "size": f"{width}x{height}",
        "label": composite.label, "watermark_id": manifest["watermark"]["payload_id"],
        "provenance": str(paths.provenance),
    }
    log.info("composited %s: %d frames (%d edited) -> %s", edit, len(painter), int(edited.sum()),
             paths.output)
    return summary
