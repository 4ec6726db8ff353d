"""The scene generator's takes are byte-identical when generated again.

The scenedemo stage gave different close-up takes on every run: the rendered frames were
identical, but libx264's AVX-512 code made the encode depend on memory it had not
written (talkedit.video.X264_ASM_WITHOUT_AVX512). A close-up of one line, generated four
times in one process, gave 2-3 different files before the fix. (On a CPU without
AVX-512 x264 never took that path, so there this test passes either way.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np

from stages.scene.demo import demo_plan
from stages.scene.takes import TakePlan, _Rigs, generate_take


def _decoded_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_close_up_take_is_byte_identical_when_generated_again(tmp_path: Path) -> None:
    characters, script, _ = demo_plan()
    rigs = _Rigs(characters)  # one rig, as in the stage: the frames fed to x264 are equal
    plan = TakePlan("ben_line1", "close_BEN", (1,), rate_wpm=160, seed=5)
    digests, frames = [], []
    for k in range(4):
        out_dir = tmp_path / f"run{k}"
        generate_take(plan, script, characters, out_dir, rigs=rigs)
        video = out_dir / f"{plan.name}.mp4"
        digests.append(hashlib.sha256(video.read_bytes()).hexdigest())
        frames.append(_decoded_frames(video))
    assert len(frames[0]) > 50  # the line is spoken: a couple of seconds of frames
    worst = max(int(np.abs(f.astype(np.int16) - frames[0]).max()) for f in frames[1:])
    assert worst == 0, f"decoded frames differ between runs by up to {worst} levels"
    assert len(set(digests)) == 1, "the same take encoded to different files"
