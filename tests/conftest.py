"""Shared fixtures: small synthetic videos and one demo clip per test session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]


def frame_pattern(k: int, width: int, height: int) -> np.ndarray:
    """A frame whose index can be read back after lossy coding: a grey level per frame."""
    image = np.zeros((height, width, 3), np.uint8)
    image[...] = (k * 7) % 200 + 20
    image[: height // 4, : width // 4] = (255, 0, 0)  # a marker to check rotation
    return image


def make_video(path: Path, n_frames: int = 50, fps: int = 25, size: tuple[int, int] = (64, 48),
               audio: bool = True, video: bool = True, pts_list: list[int] | None = None,
               rotation: int = 0, tone_hz: float = 440.0, faststart: bool = False) -> Path:
    """Write a small H.264 (+ AAC) file. ``pts_list`` (in 1/fps/10 units) makes it variable-rate."""
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        if video:
            vs = out.add_stream("libx264", rate=Fraction(fps))
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"crf": "10", "g": "10"}
            if pts_list is not None:
                vs.codec_context.time_base = Fraction(1, fps * 10)
            if rotation:
                vs.set_display_rotation(rotation)
        if audio:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        if video:
            for k in range(n_frames):
                frame = av.VideoFrame.from_ndarray(frame_pattern(k, width, height), format="rgb24")
                frame.pts = pts_list[k] if pts_list is not None else k
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if audio:
            n = int(16000 * n_frames / fps)
            t = np.arange(n) / 16000
            pcm = (0.3 * 32767 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16)
            for start in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="s16",
                                                layout="mono")
                af.sample_rate, af.pts = 16000, start
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root (params.yaml + data/raw) as the working directory."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo clip, generated once per session into its own project root."""
    from stages.demo import DemoParams, generate_demo

    root = tmp_path_factory.mktemp("demo_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    generate_demo(root, DemoParams())
    return root


# A short demo clip for tests that run many stages as `talkedit` does (test_reproducible,
# test_watch): 4 sentences (14.4 s, 360 frames) at 256 px, with both phrases the bundled
# demo edit replaces ("small research team", "promising"), the last sentence held out.
SHORT_SCRIPT = ("Good morning from our small research team. We built a tool that edits a video "
                "by editing its words. The results look promising, but there is more to do. "
                "Thank you for watching, and see you next week.\n")
SHORT_DEMO_SIZE = 256


@pytest.fixture(scope="session")
def short_demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The short demo clip (SHORT_SCRIPT at SHORT_DEMO_SIZE px), generated once per session
    in this process, into its own project root."""
    from stages.demo import DemoParams, generate_demo

    root = tmp_path_factory.mktemp("short_demo_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "script.txt").write_text(SHORT_SCRIPT)
    generate_demo(root, DemoParams(text=str(root / "script.txt"), size=SHORT_DEMO_SIZE))
    return root


FIT_SUMMARY = "fit_summary.json"  # in an indexed root: what run_fit returned (no stage reads it)


def copy_project(source: Path, root: Path, parts: tuple[str, ...] = ("raw", "interim", "models")
                 ) -> Path:
    """``root`` made a copy of ``source``'s project: its params.yaml and ``parts`` of data/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "params.yaml", root / "params.yaml")
    for part in parts:
        if (source / "data" / part).exists():
            shutil.copytree(source / "data" / part, root / "data" / part)
    return root


def _indexed_copy(source: Path, root: Path) -> Path:
    """``source``'s demo clip (its raw files copied into ``root``) extracted, aligned,
    fitted and indexed there (with ``root``'s params.yaml: the project's)."""
    import dataclasses

    from stages.align import AlignParams, run_align
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from stages.index import IndexParams, run_index
    from talkedit.params import load_section
    from talkedit.scale import ScaleParams

    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copytree(source / "data" / "raw", root / "data" / "raw")
    extract_clip("demo", root, load_section(ExtractParams, root))
    # The demo's synthetic voice reads one "a" unusually; mark it instead of failing.
    align = dataclasses.replace(load_section(AlignParams, root), on_mismatch="mark")
    run_align("demo", root, align)
    summary = run_fit("demo", root, load_section(FitParams, root), ScaleParams())
    (root / FIT_SUMMARY).write_text(json.dumps(summary))
    run_index("demo", root, load_section(IndexParams, root))
    return root


@pytest.fixture(scope="session")
def indexed_demo_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo clip extracted, aligned, fitted and indexed in a root of its own.

    A copy of demo_root's raw files, so other tests' runs in demo_root cannot interfere.
    """
    return _indexed_copy(demo_root, tmp_path_factory.mktemp("indexed_demo_project"))


@pytest.fixture(scope="session")
def indexed_short_demo_root(short_demo_root: Path, tmp_path_factory: pytest.TempPathFactory
                            ) -> Path:
    """The short demo clip (SHORT_SCRIPT) extracted, aligned, fitted and indexed in a root of
    its own."""
    return _indexed_copy(short_demo_root, tmp_path_factory.mktemp("indexed_short_demo_project"))


@pytest.fixture(scope="session")
def audio_demo_root(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the indexed demo project for the audio stage's edits (its own plans and specs)."""
    root = copy_project(indexed_demo_root, tmp_path_factory.mktemp("audio_demo_project"),
                        ("raw", "interim"))
    (root / "data" / "edits").mkdir()
    return root


# The lip model's training in tests: short (the tests check behaviour, not the best r).
LIP_FAST = {"steps": 150, "eval_every": 50}


@pytest.fixture(scope="session")
def lipmodel_demo_root(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> Path:
    """The indexed demo with its lip model trained (LipModelParams with LIP_FAST), once per
    session, in a root of its own: tests that use the model copy this root
    (``copy_project``), since training is slow and copying is not."""
    import dataclasses

    from stages.lipsync import LipModelParams
    from stages.lipsync.train import run_lipmodel

    root = copy_project(indexed_demo_root, tmp_path_factory.mktemp("lipmodel_demo_project"),
                        ("raw", "interim"))
    run_lipmodel("demo", root, dataclasses.replace(LipModelParams(), **LIP_FAST))
    return root


# torch's OpenMP threads spin while they wait; on a busy shared machine that makes a
# 2-thread training step ~8x slower (stages/render/__init__.py). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def evaluate_demo_root(indexed_short_demo_root: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> Path:
    """A copy of the indexed short demo project for the evaluate stage (its own model and
    metrics): the short clip keeps each evaluation (plan, render, two composites of the
    whole clip, the scoring) a fraction of the 30 s demo's."""
    root = tmp_path_factory.mktemp("evaluate_demo_project")
    return copy_project(indexed_short_demo_root, root, ("raw", "interim"))


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Prefect server (``talkedit server start``), started once per session (a
    start, with its fresh database, takes ~20 s): its PREFECT_HOME. A project runs its
    `talkedit` commands against it, as DVC would, through ``use_prefect_server``."""
    import socket

    home = tmp_path_factory.mktemp("prefect_home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    with socket.socket() as probe:  # a free port (each pytest-xdist worker starts its own)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "talkedit", "server"]
    started = subprocess.run([*command, "start", "--port", str(port)], cwd=home, env=env,
                             capture_output=True, text=True, timeout=180, check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    yield home
    subprocess.run([*command, "stop"], cwd=home, env=env, capture_output=True, timeout=60,
                   check=False)


def use_prefect_server(root: Path, home: Path) -> Path:
    """``root``/.prefect made a link to the session's server's PREFECT_HOME (its
    server.json, its logs/): `talkedit` run with PREFECT_HOME=``root``/.prefect uses that
    server. The link's path."""
    link = root / ".prefect"
    link.symlink_to(home, target_is_directory=True)
    return link


def write_edit(root: Path, name: str, spec: dict | str) -> Path:
    """data/edits/<name>/edit.yaml in ``root`` (a mapping is dumped as YAML)."""
    import yaml

    from talkedit.artifacts import EditPaths

    path = EditPaths.of(name, root).spec
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def repo_section(cls: type, **overrides: object) -> object:
    """A params section as the project's params.yaml sets it, with ``overrides`` applied."""
    import dataclasses

    from talkedit.params import build, load_section

    section = load_section(cls, REPO)
    return build(cls, {**dataclasses.asdict(section), **overrides}, cls.SECTION) if overrides \
        else section
