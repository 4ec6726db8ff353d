"""scenerender stage: the cut scene as a video, with its watermark and provenance.

Plays the cut list shot by shot: each shot's source frames decoded in order from its
take (streamed, one frame in memory), the visible "edited" label (composite.label),
the invisible watermark on every frame, and the shots' sound joined with 5 ms
cross-fades and watermarked (stages/composite: watermark.py, audio_watermark.py).
Cuts are edits, so the output carries the provenance manifest (provenance.py): the
scene file as the transcript, the cut list (every shot: take, lines, source and
record frames) as the edit, every take used as an ingredient, signed Content
Credentials (credentials.py); nothing is written in place.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stages.composite.audio_watermark import embed_audio
from stages.composite.blend import draw_edited_label
from stages.composite.compose import CompositeParams
from stages.composite.credentials import SigningSettings
from stages.composite.provenance import build_manifest, publish
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams
from stages.scene.media import iter_frames, read_audio, video_info
from stages.scene.spec import load_scene
from talkedit.artifacts import SCENE_CUT, ScenePaths, read_parquet
from talkedit.errors import TalkeditError
from talkedit.video import VideoWriter

log = logging.getLogger(__name__)
AUDIO_RATE = 24000
FADE_S = 0.005


def join_sound(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    """Shots' sound end to end, each join faded out/in over FADE_S (no click), same length."""
    fade = int(FADE_S * rate)
    ramp = np.linspace(0.0, 1.0, fade)
    out = []
    for piece in pieces:
        x = piece.astype(np.float64)
        if len(x) > 2 * fade:
            x[:fade] *= ramp
            x[-fade:] *= ramp[::-1]
        out.append(x)
    return np.clip(np.concatenate(out), -32768, 32767).astype(np.int16)


def shot_sound(take_sound: np.ndarray, shot: Any, fps: float) -> np.ndarray:
    """The samples a shot plays: its take's sound over [audio_in, audio_out) frames.

    Sample counts come from the scene timeline's frame boundaries (where the sound sits in
    the scene), so the pieces add up to the picture's length exactly."""
    def sample(frame: float) -> int:
        return int(round(frame / fps * AUDIO_RATE))

    scene_start = shot.record_in - (shot.source_in - shot.audio_in)  # the sound's place
    scene_end = shot.record_out - (shot.source_out - shot.audio_out)
    start = sample(shot.audio_in)
    return take_sound[start:start + sample(scene_end) - sample(scene_start)]


def cut_manifest_entry(cut: Any, fps: float, paths: ScenePaths) -> list[dict[str, Any]]:
    return [{"shot": int(r.shot), "take": r.take,
             "source": str(paths.take_video(r.take).relative_to(paths.data.parent)),
             "lines": [int(r.first_line), int(r.last_line)], "setup": r.setup,
             "source_frames": [int(r.source_in), int(r.source_out)],
             "record_frames": [int(r.record_in), int(r.record_out)],
             "sound_frames": [int(r.audio_in), int(r.audio_out)], "fps": fps}
            for r in cut.itertuples()]


def run_scenerender(scene: str, root: Path, composite: CompositeParams,
                    watermark: WatermarkParams) -> dict[str, Any]:
    """Write data/outputs/scenes/<scene>/<scene>.mp4 and its provenance."""
    spec = load_scene(scene, root)
    paths = ScenePaths.of(scene, root)
    cut = read_parquet(paths.cut, SCENE_CUT, stage_hint=f"scenecut@{scene}")
    infos = {take: video_info(paths.take_video(take)) for take in cut["take"].unique()}
    fps, _, width, height = next(iter(infos.values()))
    if any((w, h) != (width, height) for _, _, w, h in infos.values()):
        raise TalkeditError(paths.takes_dir, "the cut's takes have different frame sizes",
                            "conform the takes to one size")
    manifest = build_manifest(
        source_video=paths.take_video(cut["take"].iloc[0]), transcript=spec.path,
        edit_spec={"scene": scene, "kind": "dialogue scene cut (Leake et al. 2017)",
                   "idioms": spec.idioms, "cuts": cut_manifest_entry(cut, fps, paths)},
        plan_files=[paths.cut, paths.otio,
                    *[paths.take_video(t) for t in sorted(cut["take"].unique())]])
    manifest["actions"][0]["description"] = (
        "Dialogue scene cut from several takes by its script: shots chosen by film-editing "
        "idioms, cut at line boundaries; the pictures and sound of the takes are unchanged.")
    marker = WatermarkEmbedder(watermark.key_bytes, manifest["watermark"]["payload_id"],
                               watermark.strength)
    credentials = SigningSettings.of(watermark, root).credentials()
    sounds = {take: read_audio(paths.take_video(take), AUDIO_RATE) for take in infos}
    pieces = [shot_sound(sounds[r.take], r, fps) for r in cut.itertuples()]
    sound = embed_audio(join_sound(pieces, AUDIO_RATE), AUDIO_RATE, watermark.key_bytes,
                        watermark.audio_depth)
    paths.video.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with tempfile.TemporaryDirectory(dir=paths.video.parent, prefix=f".{scene}.") as scratch:
        encoded = Path(scratch) / "encoded.mp4"
        with VideoWriter(encoded, width, height, fps, crf=composite.crf, preset=composite.preset,
                         audio_rate=AUDIO_RATE) as out:
            for r in cut.itertuples():
                for _, image in iter_frames(paths.take_video(r.take), r.source_in, r.source_out):
                    if composite.label:
                        image = draw_edited_label(image)
                    out.write(marker.embed(image, written))
                    written += 1
            out.write_audio(sound)
        expected = int(cut["record_out"].iloc[-1])
        if written != expected:
            raise TalkeditError(paths.cut, f"the takes gave {written} frames, the cut list "
                                f"{expected}", f"re-run scenecut@{scene}: the takes changed")
        manifest = publish(encoded, manifest, paths.video, credentials)
    log.info("rendered scene %s: %d shots, %d frames", scene, len(cut), written)
    return {"scene": scene, "output": str(paths.video), "shots": len(cut), "frames": written,
            "duration_s": round(written / fps, 3),
            "watermark_id": manifest["watermark"]["payload_id"],
            "provenance": str(paths.provenance)}
