"""Video I/O with PyAV: probing, streaming decode, and the canonical frame store.

The canonical frame store is the source file itself plus the extract stage's
``frames.parquet`` timeline: output frame k (constant rate) shows source frame
``source_index[k]``. No re-encode: pixels stay bit-exact, there is no extra
copy of a one-hour video on disk, and extraction costs one decode pass.
Rotation metadata is applied on read, so every stage sees upright frames.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkedit.errors import TalkeditError


@dataclass
class StreamInfo:
    path: Path
    width: int  # after rotation
    height: int
    rotation: int  # degrees counter-clockwise to turn the coded picture upright
    average_rate: Fraction
    time_base: Fraction
    codec: str
    has_audio: bool
    audio_rate: int | None
    duration_s: float | None


def open_container(path: str | Path) -> av.container.InputContainer:
    """Open a media file, turning every failure into one clear error."""
    path = Path(path)
    if not path.exists():
        raise TalkeditError(path, "file not found", "check the path, or put the clip at data/raw/<clip>.mp4")
    if not path.is_file():
        raise TalkeditError(path, "is not a file", "give the path of a video file")
    if path.stat().st_size == 0:
        raise TalkeditError(path, "is empty (0 bytes)", "copy the video again")
    try:
        return av.open(str(path))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        if _looks_like_media(path):
            raise TalkeditError(path, f"is corrupt or truncated: its header is a video's but it "
                                f"cannot be opened ({exc.__class__.__name__})",
                                "copy or re-export the whole file again") from exc
        raise TalkeditError(path, f"is not a readable video ({exc.__class__.__name__})",
                            "give an MP4/MOV/MKV/WebM video file") from exc


def _looks_like_media(path: Path) -> bool:
    """Does the file start like a media container (so a failure means damage, not the wrong file)?"""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head.startswith(
        (b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"FLV"))


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply display rotation (degrees counter-clockwise) to an HxWxC array."""
    turns = (int(round(rotation / 90.0)) % 4)
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


# ffmpeg demuxers that read one still image: a photo renamed .mp4 opens as a "video".
IMAGE_FORMATS = ("image2", "_pipe", "webp")


def probe(path: str | Path) -> StreamInfo:
    with open_container(path) as container:
        fmt = container.format.name
        if any(fmt == f or fmt.endswith(f) for f in IMAGE_FORMATS):
            kind = fmt.removesuffix("_pipe")
            raise TalkeditError(path, f"is a still image ({kind}), not a video",
                                "give the video file of the clip (MP4/MOV/MKV/WebM)")
        if not container.streams.video:
            raise TalkeditError(path, "has no video stream", "give a video file, not an audio-only file")
        vs = container.streams.video[0]
        rotation = 0
        try:
            first = next(container.decode(vs))
            rotation = int(round(first.rotation or 0))
        except StopIteration as exc:
            raise TalkeditError(path, "has a video stream with no decodable frame",
                                "re-export the video") from exc
        except av.error.FFmpegError as exc:
            raise TalkeditError(path, f"cannot be decoded ({exc})", "re-export the video") from exc
        w, h = vs.codec_context.width, vs.codec_context.height
        if rotation % 180:
            w, h = h, w
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = float(container.duration / av.time_base) if container.duration else None
        return StreamInfo(Path(path), w, h, rotation, Fraction(rate), Fraction(vs.time_base),
                          vs.codec_context.name, audio is not None,
                          audio.codec_context.sample_rate if audio is not None else None, duration)


def nearest_source_frames(source_times: np.ndarray, fps: float, n_out: int) -> np.ndarray:
    """For each constant-rate output frame, the source frame on screen at that time.

    ``source_times`` are the presentation times (s, from the first frame) in
    display order. A frame is shown from its pts until the next one's, so the
    output frame at time t takes the last source frame with pts <= t (with half
    a frame of tolerance for timestamp jitter).
    """
    out_times = np.arange(n_out) / fps + 0.5 / fps * 0.999
    idx = np.searchsorted(source_times, out_times, side="right") - 1
    return np.clip(idx, 0, len(source_times) - 1)


class DecodedFrame:
    """A decoded video frame whose upright RGB array is made on first use: a reader that
    skips forward past frames (FrameCursor) pays the decode of each, not its conversion."""

    __slots__ = ("_frame", "_image", "_rotation")

    def __init__(self, frame: av.VideoFrame, rotation: int) -> None:
        self._frame: av.VideoFrame | None = frame
        self._image: np.ndarray | None = None
        self._rotation = rotation

    def image(self) -> np.ndarray:
        if self._image is None:
            assert self._frame is not None
            self._image = upright(self._frame.to_ndarray(format="rgb24"), self._rotation)
            self._frame = None  # the decoder's buffer is let go once converted
        return self._image


class FrameStore:
    """Read a clip's frames on its constant-rate timeline, streaming, by index.

    ``source_pts[k]`` is the pts of the source frame shown at output frame k;
    ``keyframe_pts`` are the source keyframes (seek targets).
    """

    def __init__(self, video: str | Path, source_pts: np.ndarray, rotation: int = 0,
                 keyframe_pts: np.ndarray | None = None) -> None:
        self.video = Path(video)
        self.source_pts = np.asarray(source_pts, dtype=np.int64)
        self.rotation = rotation
        self.keyframe_pts = np.sort(np.asarray(keyframe_pts if keyframe_pts is not None else [],
                                               dtype=np.int64))

    @classmethod
    def for_clip(cls, clip: str, root: Path | None = None) -> FrameStore:
        """The store of an extracted clip (reads frames.parquet and video.json)."""
        from talkedit.artifacts import FRAMES, ClipPaths, VideoMeta, read_parquet

        paths = ClipPaths.of(clip, root)
        table = read_parquet(paths.frames, FRAMES, stage_hint=f"extract@{clip}")
        meta = VideoMeta.read(paths)
        key = table.loc[table["keyframe"], "source_pts"].to_numpy()
        return cls(paths.video, table["source_pts"].to_numpy(), meta.rotation, key)

    def __len__(self) -> int:
        return len(self.source_pts)

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (output frame index, RGB uint8 HxWx3) for frames [start, stop)."""
        for k, decoded in self.iter_decoded(start, stop):
            yield k, decoded.image()

    def iter_decoded(self, start: int = 0,
                     stop: int | None = None) -> Iterator[tuple[int, DecodedFrame]]:
        """Yield (output frame index, its decoded frame) for frames [start, stop); the RGB
        array is made when asked for (one object for the output frames one source frame fills)."""
        stop = len(self) if stop is None else min(stop, len(self))
        if start >= stop:
            return
        first = int(self.source_pts[start])
        k = start
        with open_container(self.video) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            if start > 0:
                self._seek(container, vs, first)
            for frame in _decode_from(container, vs, first):
                if frame.pts is None or frame.pts < first:
                    continue  # decoded from the keyframe up to the first wanted frame
                decoded = DecodedFrame(frame, self.rotation)
                # One source frame fills every output frame that shows it; "<=" keeps
                # the timeline whole if a pts listed in frames.parquet is missing.
                while k < stop and self.source_pts[k] <= frame.pts:
                    yield k, decoded
                    k += 1
                if k >= stop:
                    return

    def iter_decoded_at(self, indices: Iterable[int]) -> Iterator[tuple[int, DecodedFrame]]:
        """Yield (output frame index, its decoded frame) for each of ``indices`` (any order,
        repeats once) in ascending order: one forward pass per keyframe interval that holds
        a wanted frame (each entered by a seek to its keyframe), in which the decoder drops
        every non-reference frame that is not wanted. Scattered frames (the mouth painter's
        exemplars) cost the reference frames up to each, never a packet twice."""
        wanted = sorted({int(k) for k in indices})
        if not wanted:
            return
        if wanted[0] < 0 or wanted[-1] >= len(self):
            raise IndexError(f"frames {wanted[0]}..{wanted[-1]} outside 0..{len(self) - 1}")
        pts = self.source_pts[wanted]
        # The keyframe interval of each wanted frame (-1: before the first keyframe).
        interval = np.searchsorted(self.keyframe_pts, pts, side="right") - 1
        with open_container(self.video) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            for group in np.split(np.arange(len(wanted)), np.flatnonzero(np.diff(interval)) + 1):
                by_pts: dict[int, list[int]] = {}
                for i in group.tolist():
                    by_pts.setdefault(int(pts[i]), []).append(wanted[i])
                last, keep = int(pts[group[-1]]), frozenset(by_pts)
                if wanted[int(group[0])] > 0:
                    self._seek(container, vs, int(pts[group[0]]))
                for frame in _decode_skipping(container, vs, lambda p, keep=keep: p not in keep):
                    if frame.pts in by_pts:
                        decoded = DecodedFrame(frame, self.rotation)
                        for k in by_pts.pop(frame.pts):
                            yield k, decoded
                    if not by_pts or (frame.pts is not None and frame.pts > last):
                        break
                if by_pts:
                    raise TalkeditError(self.video, f"frame {min(min(v) for v in by_pts.values())}"
                                        " could not be decoded", "re-run extract")

    def _seek(self, container: av.container.InputContainer, vs: av.video.stream.VideoStream,
              pts: int) -> None:
        pos = int(np.searchsorted(self.keyframe_pts, pts, side="right")) - 1
        target = int(self.keyframe_pts[pos]) if pos >= 0 else pts
        container.seek(target, backward=True, any_frame=False, stream=vs)

    def frame(self, index: int) -> np.ndarray:
        """One frame by output index (seeks to the keyframe before it)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} outside 0..{len(self) - 1}")
        for _, image in self.iter_frames(index, index + 1):
            return image
        raise TalkeditError(self.video, f"frame {index} could not be decoded", "re-run extract")


def _decode_from(container: av.container.InputContainer, vs: av.video.stream.VideoStream,
                 first_pts: int) -> Iterator[av.VideoFrame]:
    """Decode ``vs`` from where the container stands, skipping the work on frames that
    are never shown nor needed: before ``first_pts`` the decoder drops non-reference
    frames (most B-frames), which no other frame predicts from, so every frame from
    ``first_pts`` on decodes to the same pixels as a plain decode. A seek lands on a
    keyframe up to a GOP (250 frames for x264's default) before the wanted frame."""
    return _decode_skipping(container, vs, lambda pts: pts < first_pts)


def _decode_skipping(container: av.container.InputContainer, vs: av.video.stream.VideoStream,
                     unwanted: Callable[[int], bool]) -> Iterator[av.VideoFrame]:
    """Decode ``vs`` from where the container stands; the decoder drops the non-reference
    frames of packets whose pts is ``unwanted`` (no other frame predicts from them, so
    every other frame decodes to the same pixels as a plain decode)."""
    context = vs.codec_context
    skipping: bool | None = None  # set on the first packet: a reused decoder may be skipping
    for packet in container.demux(vs):
        # A packet's pts is its frame's display time; None (the final flush) decodes all.
        skip = packet.pts is not None and unwanted(packet.pts)
        if skip != skipping:
            context.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        yield from packet.decode()


# libx264's output bytes change with its thread count (measured: 1, 2, 3 and 4 threads give
# four different files), and its default is one per core: a fixed count makes an encode
# the same on every machine. 4 keeps most of the speed of frame threading.
X264_THREADS = 4


# libx264's AVX-512 code (core 165, bundled with PyAV 18.1) makes an encode depend on
# memory it did not write: the same frames, encoded twice in one process, come out
# different (measured: 2-3 distinct files in 4-5 encodes of a 70-frame 320x240 close-up,
# decoded pixels off by up to 51 levels from the first differing frame on; threads=1
# too), and across processes they follow the heap's history. With x264's assembly
# capped at AVX2 the same encodes are byte-identical every time.
X264_ASM_WITHOUT_AVX512 = "AVX2"  # x264's name for AVX2 and everything below it


@functools.cache
def _cpu_has_avx512() -> bool:
    """Whether this CPU offers AVX-512 (x264 would then use it). Read from Linux's
    /proc/cpuinfo; elsewhere False, which leaves x264's own choice."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^flags\s*:.*\bavx512f\b", cpuinfo, re.MULTILINE) is not None


def x264_options(**options: object) -> dict[str, str]:
    """libx264 options with the thread count fixed (see X264_THREADS) and, on a CPU
    with AVX-512, x264's assembly capped at AVX2 (see X264_ASM_WITHOUT_AVX512)."""
    result = {**{k: str(v) for k, v in options.items()}, "threads": str(X264_THREADS)}
    if _cpu_has_avx512():
        params = [p for p in result.get("x264-params", "").split(":") if p]
        result["x264-params"] = ":".join([*params, f"asm={X264_ASM_WITHOUT_AVX512}"])
    return result


class VideoWriter:
    """Stream RGB frames (and optionally mono int16 audio) into an H.264 + AAC MP4.

    Frames are encoded as they arrive, so memory is flat in length. Write to a
    temp path (``talkedit.atomic.atomic_path``) and rename when done.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction | float,
                 crf: int = 18, preset: str = "medium", audio_rate: int | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 4:2:0 needs even dimensions, got {width}x{height}")
        self.container = av.open(str(path), "w", format="mp4",
                                 options={"movflags": "use_metadata_tags"})
        for key, value in (metadata or {}).items():
            self.container.metadata[key] = value
        self.video = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.options = x264_options(crf=crf, preset=preset)
        self.audio = None
        if audio_rate:
            self.audio = self.container.add_stream("aac", rate=audio_rate)
            self.audio.layout = "mono"
        self._k = 0
        self._samples = 0

    def write(self, image_rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_rgb), format="rgb24")
        frame.pts = self._k
        self._k += 1
        self.container.mux(self.video.encode(frame))

    def write_audio(self, pcm: np.ndarray, block: int = 1024) -> None:
        """Append mono int16 samples."""
        self.write_audio_blocks([pcm], block)

    def write_audio_blocks(self, blocks: Iterable[np.ndarray], block: int = 1024) -> None:
        """Append mono int16 samples given as consecutive arrays of any lengths (a long
        soundtrack streamed): encoded in frames of ``block`` samples, the last one
        possibly shorter, exactly as ``write_audio`` of them joined."""
        assert self.audio is not None, "VideoWriter was made without audio_rate"
        rate = self.audio.codec_context.sample_rate
        pending = np.zeros(0, np.int16)
        for pcm in blocks:
            pending = np.concatenate([pending, np.asarray(pcm, dtype=np.int16)])
            whole = len(pending) - len(pending) % block
            for start in range(0, whole, block):
                self._encode_audio(pending[start:start + block], rate)
            pending = pending[whole:]
        if len(pending):
            self._encode_audio(pending, rate)

    def _encode_audio(self, chunk: np.ndarray, rate: int) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, self._samples
        self._samples += len(chunk)
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.container.close()


class FrameCursor:
    """Random access to a FrameStore that is cheap when requests mostly move forward.

    Edited timelines read source frames in order with short repeats and skips
    (retiming), and jumps at deletions. The cursor keeps one decoder running
    forward, serves repeats from a small cache of recent frames, and seeks only
    for a backward or long forward jump.
    """

    def __init__(self, store: FrameStore, cache: int = 16, max_skip: int = 50) -> None:
        self.store = store
        self.cache: dict[int, DecodedFrame] = {}
        self.cache_size = cache
        self.max_skip = max_skip
        self._iter: Iterator[tuple[int, DecodedFrame]] | None = None
        self._next = 0  # the frame index the running decoder yields next

    def _restart(self, index: int) -> None:
        self._iter = self.store.iter_decoded(index)
        self._next = index

    def __getitem__(self, index: int) -> np.ndarray:
        if index in self.cache:
            return self.cache[index].image()
        if not 0 <= index < len(self.store):
            raise IndexError(f"frame {index} outside 0..{len(self.store) - 1}")
        if self._iter is None or index < self._next or index > self._next + self.max_skip:
            self._restart(index)
        assert self._iter is not None
        for k, decoded in self._iter:
            self._next = k + 1
            self.cache[k] = decoded  # converted to RGB only if asked for
            if len(self.cache) > self.cache_size:
                del self.cache[min(self.cache)]
            if k == index:
                return decoded.image()
        raise TalkeditError(self.store.video, f"frame {index} could not be decoded", "re-run extract")
