"""FrameStore seeks: skipping non-reference frames before the wanted one changes no pixel."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

import talkedit.video as video
from talkedit.video import FrameStore, x264_options


def _b_frame_heavy_video(path: Path, n_frames: int = 150, size: tuple[int, int] = (96, 64)) -> None:
    """Moving texture coded with long runs of B-frames, some of them references (b-pyramid),
    and keyframes 60 frames apart, so a seek lands far before most wanted frames."""
    width, height = size
    rng = np.random.default_rng(7)
    texture = rng.integers(0, 256, (height, width * 3, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=Fraction(25))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = x264_options(crf=20, g=60, keyint_min=60, bframes=6, b_adapt=0,
                                  b_pyramid="normal", scenecut=0)
        for k in range(n_frames):
            image = np.ascontiguousarray(texture[:, k % (2 * width): k % (2 * width) + width])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))


def _store(path: Path) -> tuple[FrameStore, list[str]]:
    """The store of a video (display-order pts, keyframes) and its frame types, decoded plainly."""
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        frames = [(f.pts, f.key_frame, PictureType(f.pict_type).name) for f in container.decode(vs)]
    pts = np.array([p for p, _, _ in frames])
    keys = pts[[bool(key) for _, key, _ in frames]]
    return FrameStore(path, pts, 0, keys), [kind for _, _, kind in frames]


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def test_seeked_frames_are_byte_identical_to_a_sequential_decode(tmp_path: Path) -> None:
    path = tmp_path / "bframes.mp4"
    _b_frame_heavy_video(path)
    store, kinds = _store(path)
    assert kinds.count("B") > 0.6 * len(kinds)  # the case the skip is for
    sequential = [_digest(image) for _, image in store.iter_frames()]
    assert len(sequential) == 150
    # Every start in the first two GOPs (each one a B- or P- or I-frame at some distance from
    # its keyframe), read on for a few frames, and single frames across the clip.
    for start in range(0, 125):
        got = [_digest(image) for _, image in store.iter_frames(start, start + 4)]
        assert got == sequential[start:start + 4], f"frames from {start} differ"
    for index in (59, 60, 61, 118, 119, 149):
        assert _digest(store.frame(index)) == sequential[index]


def test_a_seek_skips_the_non_reference_frames_before_the_wanted_one(tmp_path: Path,
                                                                    monkeypatch) -> None:
    path = tmp_path / "bframes.mp4"
    _b_frame_heavy_video(path)
    store, _ = _store(path)
    decoded: list[int] = []
    plain_decode_from = video._decode_from

    def counting(container, vs, first_pts):  # noqa: ANN001, ANN202
        for frame in plain_decode_from(container, vs, first_pts):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video, "_decode_from", counting)
    store.frame(115)  # 55 frames after the keyframe at 60
    first = int(store.source_pts[115])
    plain = int(((store.source_pts >= store.keyframe_pts[1]) & (store.source_pts < first)).sum())
    before = [p for p in decoded if p < first]
    # Only the reference frames before 115 are decoded (the I- and P-frames and the
    # pyramid's middle B-frames): measured 30 of the 55 a plain decode gives.
    assert plain == 55 and 0 < len(before) <= 0.6 * plain, len(before)
    assert decoded[-1] == first


def test_a_cursor_skipping_forward_converts_only_the_frames_it_is_asked_for(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bframes.mp4"
    _b_frame_heavy_video(path)
    store, _ = _store(path)
    sequential = [_digest(image) for _, image in store.iter_frames()]
    converted: list[int] = []
    plain_upright = video.upright

    def counting(image: np.ndarray, rotation: int) -> np.ndarray:
        converted.append(1)
        return plain_upright(image, rotation)

    monkeypatch.setattr(video, "upright", counting)
    cursor = video.FrameCursor(store)
    # Forward skips (decoded through), repeats (cached), a long jump (a seek, the old decoder
    # closed) and a frame cached from before it (decoded, converted after the close), a
    # backward jump (a seek).
    wanted = [3, 3, 10, 30, 31, 31, 29, 77, 140, 76, 20]
    got = [_digest(cursor[k]) for k in wanted]
    assert got == [sequential[k] for k in wanted]
    assert len(converted) == len(set(wanted))  # each frame converted once, no other


def test_frames_read_at_once_are_byte_identical_and_cost_one_pass(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """``iter_decoded_at``: scattered frames in any order come back ascending, each the
    bytes a sequential decode gives, one decoder pass per keyframe interval holding a
    wanted frame (no packet decoded twice), non-reference frames not wanted dropped."""
    path = tmp_path / "bframes.mp4"
    _b_frame_heavy_video(path)
    store, _ = _store(path)
    sequential = [_digest(image) for _, image in store.iter_frames()]
    decoded: list[int] = []
    opened: list[int] = []
    plain_skipping, plain_open = video._decode_skipping, video.open_container

    def counting(container, vs, unwanted):  # noqa: ANN001, ANN202
        for frame in plain_skipping(container, vs, unwanted):
            decoded.append(frame.pts)
            yield frame

    def counting_open(path):  # noqa: ANN001, ANN202
        opened.append(1)
        return plain_open(path)

    monkeypatch.setattr(video, "_decode_skipping", counting)
    monkeypatch.setattr(video, "open_container", counting_open)
    # Unsorted, repeated, across all three keyframe intervals (0-59, 60-119, 120-149), a
    # frame right after a keyframe, a keyframe itself and the last frame.
    wanted = [149, 7, 61, 3, 7, 115, 60, 33, 120, 2, 131]
    got = list(store.iter_decoded_at(wanted))
    assert [k for k, _ in got] == sorted(set(wanted))
    assert [_digest(d.image()) for _, d in got] == [sequential[k] for k in sorted(set(wanted))]
    assert len(opened) == 1
    assert len(decoded) == len(set(decoded))  # never a frame twice
    # Most of the clip's non-reference frames are dropped: 69 of the 150 decoded (measured).
    assert len(decoded) < 0.6 * 150, len(decoded)
    # Frame 0 (no seek), a single frame, nothing, and a frame outside the clip.
    assert [k for k, _ in store.iter_decoded_at([0, 1])] == [0, 1]
    assert list(store.iter_decoded_at([])) == []
    with pytest.raises(IndexError):
        list(store.iter_decoded_at([150]))
