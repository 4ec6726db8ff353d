"""composite stage end to end on the bundled demo edit: seams, untouched frames, provenance."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.audio.stage import run_audio
from stages.composite.compose import CompositeParams, _even, run_composite
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkParams
from stages.plan import PlanParams, run_plan
from stages.render.config import RenderParams, TrainParams
from stages.render.interior import MouthParams
from stages.render.render import run_render
from stages.render.store import RenderStore
from stages.render.train import run_train
from talkedit.artifacts import PLAN, ClipPaths, EditPaths, read_parquet
from talkedit.errors import TalkeditError
from talkedit.scale import ScaleParams
from talkedit.video import FrameStore
from tests.conftest import REPO, repo_section
from tests.test_render import tiny


@pytest.fixture(scope="module")
def composited(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The demo edit through plan, audio, a few training steps, render and composite."""
    root = tmp_path_factory.mktemp("composite_project")
    params = root / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    for part in ("raw", "interim"):
        shutil.copytree(indexed_demo_root / "data" / part, root / "data" / part)
    shutil.copytree(REPO / "data" / "edits" / "demo", root / "data" / "edits" / "demo")
    run_plan("demo", root, repo_section(PlanParams), repo_section(AlignParams),
             repo_section(AudioParams))
    run_audio("demo", root, repo_section(AudioParams))
    run_train("demo", root, TrainParams.from_dict(tiny()))
    run_render("demo", root, repo_section(RenderParams), repo_section(MouthParams),
               repo_section(ScaleParams))
    summary = run_composite("demo", root, repo_section(CompositeParams),
                            repo_section(WatermarkParams), repo_section(ScaleParams))
    return root, summary


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_output_has_the_plan_s_frames_size_rate_and_audio(composited) -> None:
    root, summary = composited
    paths = EditPaths.of("demo", root)
    plan = read_parquet(paths.plan, PLAN)
    with av.open(str(paths.output)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.codec_context.width, video.codec_context.height) == (512, 512)
        assert video.average_rate == 25
        n_frames = sum(1 for _ in container.decode(video=0))
    assert n_frames == len(plan) == summary["frames"]
    with wave.open(str(paths.audio)) as wav:
        plan_audio_s = wav.getnframes() / wav.getframerate()
    assert abs(plan_audio_s - len(plan) / 25) < 0.08


def test_frames_outside_the_edit_match_the_source(composited) -> None:
    """Each kept frame is its own source frame (far closer to it than to either neighbour),
    changed only by the watermark and the encoder (away from the visible label's corner):
    the mark alone is 44.6 dB by design (RMS 1.5 levels); x264 at CRF 12 must keep the
    frame >= 39.5 dB (median >= 40.5; measured 39.99 min / 40.8 median, the minimum moving
    ~0.1 dB with the payload's pattern)."""
    root, _ = composited
    plan = read_parquet(EditPaths.of("demo", root).plan, PLAN)
    out = _decode(EditPaths.of("demo", root).output)
    store = FrameStore.for_clip("demo", root)
    kept = np.nonzero(~plan["edited"].to_numpy())[0][::25]
    label = np.zeros((512, 512), bool)
    label[:60, :200] = True  # the "EDITED" box in the top-left corner
    scores, margins = [], []
    for k in kept:
        source = int(plan["source_frame"].iloc[k])
        scores.append(_psnr(out[k][~label], store.frame(source)[~label]))
        neighbours = [_psnr(out[k][~label], store.frame(f)[~label])
                      for f in (source - 1, source + 1) if 0 <= f < len(store)]
        margins.append(scores[-1] - max(neighbours))
    assert len(scores) >= 20 and min(scores) >= 39.5 and np.median(scores) >= 40.5, scores
    assert min(margins) >= 3.0, margins  # measured >= 6 dB


def test_edited_frames_have_no_visible_seam(composited) -> None:
    """Gradient along the mask border within 1.5x of the source frame's, on every 5th edited frame."""
    root, _ = composited
    paths = EditPaths.of("demo", root)
    plan = read_parquet(paths.plan, PLAN)
    renders = RenderStore("demo", root)
    out = _decode(paths.output)
    store = FrameStore.for_clip("demo", root)

    def grad(image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))

    ratios = []
    for k in np.nonzero(plan["edited"].to_numpy())[0][::5]:
        crop = renders.read(int(k))
        hard = cv2.warpAffine((crop.alpha > 127).astype(np.uint8), crop.transform, (512, 512),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        kernel = np.ones((7, 7), np.uint8)
        band = (cv2.dilate(hard, kernel) > 0) & ~(cv2.erode(hard, kernel) > 0)
        if band.sum() < 50:
            continue
        source = store.frame(int(plan["source_frame"].iloc[k]))
        ratios.append(grad(out[k])[band].mean() / grad(source)[band].mean())
    assert len(ratios) >= 5 and max(ratios) <= 1.5, ratios


def test_verify_finds_watermark_and_matching_manifest(composited) -> None:
    root, summary = composited
    paths = EditPaths.of("demo", root)
    report = verify_video(paths.output)
    assert report.edited and report.watermark.found and report.audio.found
    assert report.metadata.state == "bound" and report.sidecar.state == "bound"
    assert report.credentials.state in ("valid", "untrusted")  # signed by the local CA
    assert report.watermark.payload_id == summary["watermark_id"]
    sidecar = json.loads(paths.provenance.read_text())
    assert sidecar["watermark"]["payload_id"] == summary["watermark_id"]
    assert verify_video(ClipPaths.of("demo", root).video).edited is False


def test_renders_that_disagree_with_the_plan_are_refused(composited) -> None:
    root, _ = composited
    paths = EditPaths.of("demo", root)
    plan = read_parquet(paths.plan, PLAN)
    shutil.copy(paths.plan, paths.plan.with_suffix(".bak"))
    try:
        # A plan 100 frames shorter than the renders were made for.
        from talkedit.artifacts import write_parquet

        write_parquet(plan.iloc[: len(plan) - 100].reset_index(drop=True), PLAN, paths.plan)
        before = paths.output.stat().st_mtime_ns
        with pytest.raises(TalkeditError, match="re-run render@demo|re-run audio@demo"):
            run_composite("demo", root, repo_section(CompositeParams),
                          repo_section(WatermarkParams), repo_section(ScaleParams))
        assert paths.output.stat().st_mtime_ns == before  # the old output is left whole
    finally:
        shutil.move(paths.plan.with_suffix(".bak"), paths.plan)


def test_odd_sized_frames_are_padded_not_cropped() -> None:
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    even = _even(image)
    assert even.shape == (6, 8, 3)
    assert np.array_equal(even[:5, :7], image) and np.array_equal(even[5, :7], image[4])
