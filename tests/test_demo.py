"""demo stage: the synthetic talking head and its ground truth agree with what it shows and says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from stages.demo import read_script
from stages.demo.face_rig import FaceRig, load_face
from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, read_parquet
from tests.conftest import REPO


@pytest.fixture(scope="module")
def truth(demo_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = demo_root / "data" / "raw"
    return (read_parquet(raw / "demo.truth_phones.parquet", TRUTH_PHONES),
            read_parquet(raw / "demo.truth_frames.parquet", TRUTH_FRAMES))


def _decode_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float64), stream.codec_context.sample_rate


def test_container_is_h264_aac_512_25fps_20_to_40_s(demo_root: Path) -> None:
    with av.open(str(demo_root / "data" / "raw" / "demo.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert video.codec_context.width >= 512 and video.codec_context.height >= 512
        assert video.average_rate == 25
        duration = container.duration / av.time_base
    assert 20 <= duration <= 40


def test_truth_phones_tile_the_clip_in_word_order(truth) -> None:
    phones, frames = truth
    starts, ends = phones["start_s"].to_numpy(), phones["end_s"].to_numpy()
    assert starts[0] == 0 and np.allclose(starts[1:], ends[:-1]) and (ends > starts).all()
    assert abs(ends[-1] - (frames["time_s"].iloc[-1] + 0.04)) < 0.05
    spoken = phones[phones["word_index"] >= 0]
    assert spoken["word_index"].is_monotonic_increasing
    text_words = read_script(None).split()
    assert spoken["word_index"].nunique() == len(text_words)


def test_truth_timings_are_the_audio_s_own(demo_root: Path, truth) -> None:
    """Speech starts where the truth says each pause ends (10 ms energy, within 20 ms)."""
    phones, _ = truth
    audio, sr = _decode_audio(demo_root / "data" / "raw" / "demo.mp4")
    loud = np.abs(audio) > 0.01 * np.abs(audio).max()
    pauses = phones[(phones["phone"] == "sil") & (phones["end_s"] - phones["start_s"] > 0.15)]
    onsets_ms = []
    for start, end in pauses[["start_s", "end_s"]].to_numpy()[:-1]:
        lo, hi = int((start + 0.05) * sr), int((end + 0.1) * sr)
        first = lo + int(np.argmax(loud[lo:hi]))
        assert loud[first], f"no speech onset near {end:.2f} s"
        onsets_ms.append((first / sr - end) * 1000)
    assert len(onsets_ms) >= 5
    assert np.abs(onsets_ms).max() <= 20, onsets_ms
    # Inside pauses the audio is silent: at least 40 dB under the peak.
    peak = np.abs(audio).max()
    for start, end in pauses[["start_s", "end_s"]].to_numpy()[1:-1]:
        inner = audio[int((start + 0.03) * sr):int((end - 0.03) * sr)]
        assert 20 * np.log10(np.abs(inner).max() / peak + 1e-12) < -40


def test_truth_is_reproducible_across_runs() -> None:
    """espeak-ng keeps its glottal phase between utterances, so compare fresh processes."""
    code = ("from talkedit.espeak import synthesize; import hashlib; "
            "s = synthesize('We measured every step of the way.', rate_wpm=150); "
            "print(hashlib.sha256(s.samples.tobytes()).hexdigest(), "
            "[(p.phone, p.word_index, round(p.start_s, 6)) for p in s.phones])")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=REPO).stdout for _ in range(2)]
    assert runs[0] == runs[1] and "('DH', 5" in runs[0]


def test_bilabials_close_the_lips(truth) -> None:
    phones, frames = truth
    times = frames["time_s"].to_numpy()
    checked = 0
    for _, row in phones[phones["phone"].isin(["P", "B", "M"])].iterrows():
        mid = (row.start_s + row.end_s) / 2
        k = int(np.argmin(np.abs(times - mid)))
        if abs(times[k] - mid) < 0.25 * (row.end_s - row.start_s):
            assert frames["lip_closure"].iloc[k] > 0.95 and frames["jaw_open"].iloc[k] < 0.05
            checked += 1
    assert checked >= 5


def test_video_shows_the_truth_jaw_opening(demo_root: Path, truth) -> None:
    """The dark mouth cavity in the frames follows the truth's jaw opening (r >= 0.8)."""
    _, frames = truth
    rig = FaceRig(load_face(None), 512)
    cx = int(rig.cx)
    cy = int(np.interp(rig.cx, rig.line_x, rig.line_y))
    half_w, half_h = int(rig.mouth_half * 1.3), int(rig.eye_dist * 0.5)
    dark = []
    with av.open(str(demo_root / "data" / "raw" / "demo.mp4")) as container:
        for frame in container.decode(video=0):
            roi = frame.to_ndarray(format="rgb24")[cy - half_h // 2:cy + half_h, cx - half_w:cx + half_w]
            dark.append(float((roi.mean(axis=2) < 80).mean()))
    r = np.corrcoef(dark, frames["jaw_open"].to_numpy()[: len(dark)])[0, 1]
    assert r >= 0.8, r
