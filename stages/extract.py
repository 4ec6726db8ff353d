"""extract stage: a clip's video into the canonical timeline, and its audio at 16 kHz.

One streaming pass over the file demuxes video and audio together: video
frames are decoded (so a corrupt or truncated file fails here, not three
stages later) but only their timestamps are kept; audio is resampled to
16 kHz mono and written to the WAV as it arrives. Memory is flat in length.
"""

from __future__ import annotations

import dataclasses
import logging
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkedit.artifacts import FRAMES, ClipPaths, VideoMeta, write_parquet
from talkedit.atomic import atomic_path
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.video import nearest_source_frames, open_container, probe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractParams(Section):
    """The ``extract:`` section of params.yaml."""

    SECTION = "extract"

    fps: float | None = None  # constant output frame rate; None = the source's average rate
    audio_rate: int = 16000

    def check(self, where: str) -> None:
        if self.fps is not None and not 0 < self.fps <= 240:
            raise bad_param(where, "fps", "must be a frame rate in (0, 240] or null")
        if not 8000 <= self.audio_rate <= 48000:
            raise bad_param(where, "audio_rate", "must lie in 8000..48000 Hz", "use 16000")


def check_clip_inputs(clip: str, root: Path | None = None, need_transcript: bool = True) -> ClipPaths:
    """The clip's inputs exist and are usable; one clear error otherwise."""
    paths = ClipPaths.of(clip, root)
    if not paths.video.is_file():
        raise TalkeditError(paths.video, f"clip {clip!r} is listed but its video is missing",
                            f"put the video at {paths.video} or remove {clip!r} from params.yaml clips")
    if need_transcript:
        if not paths.transcript.is_file():
            raise TalkeditError(paths.transcript, f"clip {clip!r} has no transcript",
                                "write what is said in the video to this text file (or, to "
                                "use a clip without speech for reenactment only, list it "
                                "under video_clips: in params.yaml instead of clips:)")
        if not paths.transcript.read_text(encoding="utf-8", errors="replace").strip():
            raise TalkeditError(paths.transcript, "transcript is empty",
                                "write what is said in the video to this text file")
    return paths


def extract_clip(clip: str, root: Path, extract: ExtractParams) -> dict[str, object]:
    """Write frames.parquet, video.json and audio.wav for ``clip``; return a summary."""
    return _extract(clip, root, extract, speech=True)


def extract_video_clip(clip: str, root: Path, extract: ExtractParams) -> dict[str, object]:
    """videoextract: a clip without speech (listed under ``video_clips:``, for reenactment
    only). No transcript is read; a video without an audio track gets a silent audio.wav
    as long as the video, so every later reader sees one contract."""
    return _extract(clip, root, extract, speech=False)


def _extract(clip: str, root: Path, extract: ExtractParams, speech: bool) -> dict[str, object]:
    paths = check_clip_inputs(clip, root, need_transcript=speech)
    info = probe(paths.video)
    if speech and not info.has_audio:
        raise TalkeditError(paths.video, "has no audio track",
                            "give the video with its sound (alignment needs the speech), or, "
                            "to use it for reenactment only, list it under video_clips: in "
                            "params.yaml instead of clips:")
    audio_rate = extract.audio_rate

    pts_list: list[int] = []
    key_list: list[bool] = []
    n_audio = 0
    with open_container(paths.video) as container, atomic_path(paths.audio) as wav_tmp:
        vs = container.streams.video[0]
        aus = container.streams.audio[0] if info.has_audio else None
        vs.thread_type = "AUTO"
        resampler = av.AudioResampler(format="s16", layout="mono", rate=audio_rate)
        first_video_s: float | None = None
        first_audio_s: float | None = None
        with wave.open(str(wav_tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(audio_rate)
            try:
                for packet in container.demux(*(s for s in (vs, aus) if s is not None)):
                    for frame in packet.decode():
                        if packet.stream is vs:
                            if frame.pts is None:
                                continue
                            pts_list.append(frame.pts)
                            key_list.append(bool(frame.key_frame))
                            if first_video_s is None:
                                first_video_s = float(frame.pts * vs.time_base)
                        elif aus is not None:
                            if first_audio_s is None and frame.pts is not None:
                                first_audio_s = float(frame.pts * aus.time_base)
                            for out in resampler.resample(frame):
                                pcm = out.to_ndarray().reshape(-1)
                                wav.writeframes(pcm.astype("<i2").tobytes())
                                n_audio += len(pcm)
                for out in resampler.resample(None) if aus is not None else ():
                    pcm = out.to_ndarray().reshape(-1)
                    wav.writeframes(pcm.astype("<i2").tobytes())
                    n_audio += len(pcm)
            except av.error.FFmpegError as exc:
                at = f" after {len(pts_list)} frames" if pts_list else ""
                raise TalkeditError(paths.video, f"is corrupt or truncated{at} ({exc})",
                                    "re-export or re-download the video") from exc
        if len(pts_list) < 2:
            raise TalkeditError(paths.video, f"decoded only {len(pts_list)} video frame(s)",
                                "the file is truncated or corrupt; re-export it")
        if n_audio == 0 and aus is not None:
            raise TalkeditError(paths.video, "its audio track decoded to no samples",
                                "re-export the video with its sound")

        # Presentation order, then the constant-rate timeline.
        order = np.argsort(np.asarray(pts_list), kind="stable")
        pts = np.asarray(pts_list, dtype=np.int64)[order]
        keys = np.asarray(key_list, dtype=bool)[order]
        tb = info.time_base
        times = (pts - pts[0]) * float(tb)
        fps = Fraction(extract.fps).limit_denominator(1001) if extract.fps else info.average_rate
        deltas = np.diff(times)
        last_duration = float(np.median(deltas)) if len(deltas) else 1.0 / float(fps)
        duration = float(times[-1] + last_duration)
        n_out = max(1, int(round(duration * float(fps))))
        src = nearest_source_frames(times, float(fps), n_out)

        audio_offset_s = ((first_audio_s or 0.0) - (first_video_s or 0.0)) if aus is not None else 0.0
        if aus is None:  # no audio track: silence as long as the timeline
            n_audio = _write_silence(wav_tmp, int(round(n_out / float(fps) * audio_rate)),
                                     audio_rate)
        elif abs(audio_offset_s) > 1.0 / audio_rate:
            n_audio = _shift_wav(wav_tmp, audio_offset_s, audio_rate)

    frames = {
        "frame": np.arange(n_out, dtype=np.int32),
        "time_s": np.arange(n_out) / float(fps),
        "source_index": src.astype(np.int32),
        "source_pts": pts[src],
        "keyframe": keys[src],
        "width": np.full(n_out, info.width, dtype=np.int32),
        "height": np.full(n_out, info.height, dtype=np.int32),
    }
    # Output keyframe flags mark seekable source frames; keep them only once per source frame.
    first_use = np.r_[True, src[1:] != src[:-1]]
    frames["keyframe"] = frames["keyframe"] & first_use
    variable_rate = bool(len(deltas) and (deltas.max() - deltas.min()) > 0.1 / float(fps))
    write_parquet(frames, FRAMES, paths.frames)
    project = paths.data.parent
    meta = VideoMeta(
        clip=clip,
        source=str(paths.video.relative_to(project) if project in paths.video.parents
                   else paths.video),
        fps=float(fps), fps_rational=f"{fps.numerator}/{fps.denominator}",
        width=info.width, height=info.height, rotation=info.rotation,
        n_frames=n_out, n_source_frames=len(pts), duration_s=duration,
        variable_frame_rate=variable_rate, source_codec=info.codec,
        time_base=f"{tb.numerator}/{tb.denominator}",
        audio_rate=audio_rate, audio_samples=n_audio, audio_offset_s=audio_offset_s,
    )
    meta.write(paths.video_meta)
    log.info("extracted %s: %d frames at %.3f fps (%d source frames%s), %.1f s of audio",
             clip, n_out, float(fps), len(pts), ", variable rate" if variable_rate else "",
             n_audio / audio_rate)
    return dataclasses.asdict(meta)


def _write_silence(path: Path, samples: int, rate: int) -> int:
    return _write_wav(path, np.zeros(samples, dtype="<i2"), rate)


def _shift_wav(path: Path, offset_s: float, rate: int) -> int:
    """Put audio time 0 at the first video frame: pad silence or trim the lead-in."""
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    shift = int(round(offset_s * rate))
    data = np.concatenate([np.zeros(shift, dtype="<i2"), data]) if shift > 0 else data[-shift:]
    return _write_wav(path, data, rate)


def _write_wav(path: Path, data: np.ndarray, rate: int) -> int:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return len(data)
