"""Frame-parallel fit, render and composite on Dask (issue 20): the same bytes as one
process, chunk for chunk.

A short generated clip (about 5 s) is fitted three times: in one tracked pass
(``scale.chunk_frames: 0``), in chunks of 40 frames in this process, and through the
fit flow with prefect-dask's runner on a 2-worker local cluster it starts itself. The two
chunked runs write byte-identical artifacts; the chunked fit stays within a pixel of the
tracked one. The render and composite flows run on one 2-worker local cluster the module
starts and names by its address (``scale.dask_address``), so its workers start and import
the stages once for both.
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from flows.registry import BY_NAME
from flows.stage import run_stage_flow
from stages.composite.compose import CompositeParams, run_composite
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkParams
from stages.demo import DemoParams, generate_demo
from stages.extract import ExtractParams, extract_clip
from stages.fit import FitParams, run_fit
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import run_render
from talkedit.artifacts import (
    ClipPaths,
    EditPaths,
    RenderPaths,
    VideoMeta,
    column_array,
    read_parquet,
)
from talkedit.errors import TalkeditError
from talkedit.params import build, load_section
from talkedit.scale import ScaleParams
from tests.conftest import REPO
from tests.test_render import CLIP as RENDER_CLIP
from tests.test_render import fitted, trained, write_plan  # noqa: F401 - fixtures used here

CHUNK = 40
FIT_OUTPUTS = ("face.parquet", "face_model.safetensors", "crops/crops.mp4", "crops/crops.json")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale_clip")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    script = root / "script.txt"
    script.write_text("We met at the harbour before the storm rolled in.\n")
    generate_demo(root, DemoParams(name="short", text=str(script), size=256))
    extract_clip("short", root, ExtractParams())
    return root


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    shutil.copy(src / "params.yaml", dst / "params.yaml")
    for part in ("raw", "interim"):
        shutil.copytree(src / "data" / part, dst / "data" / part)
    return dst


def _outputs(root: Path) -> dict[str, bytes]:
    interim = ClipPaths.of("short", root).interim
    return {name: (interim / name).read_bytes() for name in FIT_OUTPUTS}


@pytest.fixture(scope="module")
def local_fits(short_clip: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, Path, dict]:
    """The short clip fitted in this process twice: tracked through (one chunk), and in
    chunks of CHUNK frames; the two roots and the chunked run's summary."""
    base = tmp_path_factory.mktemp("scale_fits")
    tracked, local = _copy(short_clip, base / "tracked"), _copy(short_clip, base / "local")
    assert not (ClipPaths.of("short", local).interim / "crops").exists()
    run_fit("short", tracked, FitParams(), ScaleParams())
    summary = run_fit("short", local, FitParams(),
                      build(ScaleParams, {"chunk_frames": CHUNK}, "scale"))
    return tracked, local, summary


def test_fitting_in_chunks_moves_the_landmarks_well_under_a_pixel(
        local_fits: tuple[Path, Path, dict]) -> None:
    tracked, local, summary = local_fits
    assert summary["detection_chunks"] == -(-summary["frames"] // CHUNK) >= 3
    # restarting the landmark tracking at each chunk moves the fit by well under a pixel
    a = read_parquet(ClipPaths.of("short", tracked).face, arrow=True)
    b = read_parquet(ClipPaths.of("short", local).face, arrow=True)
    gap = np.abs(column_array(a, "landmarks_2d") - column_array(b, "landmarks_2d"))
    assert float(np.median(gap)) < 0.5 and float(np.percentile(gap, 99)) < 3.0, \
        (np.median(gap), np.percentile(gap, 99))


def test_dask_fit_equals_the_single_process_fit(short_clip: Path, local_fits: tuple[Path, Path, dict],
                                                tmp_path: Path) -> None:
    _, local, summary = local_fits
    dask = _copy(short_clip, tmp_path / "dask")
    on_dask = run_stage_flow(BY_NAME["fit"], "short", dask, {"scale": {
        "task_runner": "dask", "dask_workers": 2, "chunk_frames": CHUNK, "in_flight": 2}})
    assert on_dask["detection_chunks"] == summary["detection_chunks"]
    ours, theirs = _outputs(local), _outputs(dask)
    for name in FIT_OUTPUTS:
        assert ours[name] == theirs[name], f"{name} differs between the local and Dask runs"


def test_scale_params_are_checked() -> None:
    with pytest.raises(TalkeditError, match=r"params.yaml scale.chunk_frames"):
        build(ScaleParams, {"task_runner": "dask"}, "scale")
    with pytest.raises(TalkeditError, match=r"params.yaml scale.task_runner"):
        build(ScaleParams, {"task_runner": "ray"}, "scale")
    assert ScaleParams(chunk_frames=100).spans(250) == [(0, 100), (100, 200), (200, 250)]
    assert ScaleParams().spans(250) == [(0, 250)]


def _render_bytes(root: Path, edit: str) -> dict[str, bytes]:
    folder = RenderPaths.of(edit, root).dir
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def on_dask() -> Iterator[dict]:
    """Overrides that run a flow in chunks of 8 rows on a 2-worker local Dask cluster,
    started once for this module's render and composite runs (scale.dask_address)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        yield {"scale": {"task_runner": "dask", "dask_address": cluster.scheduler_address,
                         "chunk_frames": 8, "in_flight": 2}, "render": {"warmup_frames": 3}}


@pytest.fixture(scope="module")
def rendered(trained: tuple[Path, dict]) -> tuple[Path, str, dict[str, bytes]]:  # noqa: F811
    """An edit of 20 generated rows (a silent soundtrack), rendered in this process in chunks
    of 8 rows: its root, name and the render's bytes."""
    root, _ = trained
    edit = "chunked"
    edited = write_plan(root, edit)
    paths = EditPaths.of(edit, root)
    fps = VideoMeta.read(ClipPaths.of(RENDER_CLIP, root)).fps
    with wave.open(str(paths.audio), "wb") as wav:  # the soundtrack composite expects
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000)
        wav.writeframes(np.zeros(round(len(edited) / fps * 16000), "<i2").tobytes())
    chunked = build(ScaleParams, {"chunk_frames": 8}, "scale")
    summary = run_render(edit, root, RenderParams(warmup_frames=3), MouthParams(), chunked)
    assert summary["frames"] == int(edited.sum()) == 20
    return root, edit, _render_bytes(root, edit)


def test_dask_render_equals_the_local_run(rendered: tuple[Path, str, dict[str, bytes]],
                                          on_dask: dict) -> None:
    """Render: chunks of 8 rows on 2 Dask workers write the same bytes as in this process."""
    root, edit, local = rendered
    run_stage_flow(BY_NAME["render"], edit, root, on_dask)
    assert _render_bytes(root, edit) == local


def test_dask_composite_equals_the_local_run(rendered: tuple[Path, str, dict[str, bytes]],
                                             on_dask: dict) -> None:
    """Composite: frames painted in chunks on Dask are the frames of the one-pass run, so
    the encoded videos decode to identical pictures."""
    root, edit, _ = rendered
    paths = EditPaths.of(edit, root)
    composite = build(CompositeParams, {"preset": "ultrafast"}, "composite")
    run_composite(edit, root, composite, load_section(WatermarkParams, root), ScaleParams())
    one_pass = _decoded(paths.output)
    run_stage_flow(BY_NAME["composite"], edit, root,
                   on_dask | {"composite": {"preset": "ultrafast"}})
    painted = _decoded(paths.output)
    plan = read_parquet(paths.plan, arrow=True)
    assert len(painted) == len(one_pass) == plan.num_rows
    assert all(np.array_equal(a, b) for a, b in zip(one_pass, painted, strict=True))
    assert verify_video(paths.output, load_section(WatermarkParams, root)).watermark.found
