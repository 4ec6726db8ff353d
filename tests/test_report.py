"""report and compare stages on a small real case: the demo clip with a tiny renderer and a
one-word edit ("promising" -> "remarkable") through plan, audio, render and composite.

The pages are checked against the artifacts they show (row counts, join pictures, every
image a PNG that decodes, nothing fetched from outside the file); the before/after video
against the clip and the output it puts side by side, and against `verify`.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from stages.align import AlignParams
from stages.audio.config import AudioParams
from stages.audio.stage import run_audio
from stages.composite.compare import NEW_WORDS, CompareParams, run_compare
from stages.composite.compose import CompositeParams, run_composite
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkParams
from stages.plan import PlanParams, run_plan
from stages.render.config import RenderParams, TrainParams
from stages.render.interior import MouthParams
from stages.render.render import run_render
from stages.render.train import run_train
from stages.report import ReportParams, run_clip_report, run_edit_report
from talkedit.artifacts import (
    ClipPaths,
    EditPaths,
    audio_units_path,
    compare_metrics_path,
    compare_video_path,
)
from talkedit.errors import TalkeditError
from talkedit.scale import ScaleParams
from talkedit.video import FrameStore
from tests.conftest import REPO, repo_section, write_edit
from tests.test_render import tiny

sys_path_tools = REPO / "tools"


@pytest.fixture(scope="module")
def edited(indexed_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the demo clip indexed, a tiny renderer trained, and edit `word` made."""
    root = tmp_path_factory.mktemp("report_project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for part in ("raw", "interim"):
        shutil.copytree(indexed_demo_root / "data" / part, root / "data" / part)
    write_edit(root, "word", {"clip": "demo", "operations": [
        {"replace": "promising", "with": "remarkable"}]})
    run_plan("word", root, repo_section(PlanParams), repo_section(AlignParams),
             repo_section(AudioParams))
    run_audio("word", root, repo_section(AudioParams))
    run_train("demo", root, TrainParams.from_dict(tiny()))
    run_render("word", root, repo_section(RenderParams), repo_section(MouthParams),
               repo_section(ScaleParams))
    run_composite("word", root, repo_section(CompositeParams, preset="ultrafast"),
                  repo_section(WatermarkParams), repo_section(ScaleParams))
    return root


def _images(page: str) -> list[np.ndarray]:
    """Every embedded image, decoded (a broken one fails the test)."""
    out = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.size > 0
        out.append(image)
    return out


def _self_contained(page: str) -> None:
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page fetches from the network"
    assert "<script" not in page
    assert not re.findall(r'<img[^>]+src="(?!data:image/png;base64,)', page)


def _rows(page: str, css_class: str) -> int:
    return len(re.findall(rf'<tr class="{css_class}[ "]', page))


def test_clip_report_shows_every_phone_word_and_the_training(edited: Path) -> None:
    summary = run_clip_report("demo", edited, ReportParams())
    path = Path(summary["report"])
    page = path.read_text()
    _self_contained(page)
    clip = ClipPaths.of("demo", edited)
    phones, words = pd.read_parquet(clip.phones), pd.read_parquet(clip.words)
    assert _rows(page, "phone") == len(phones) == summary["phones"] > 250
    assert _rows(page, "word") == len(words) == summary["words"]
    assert f"Alignment: {len(words)} words, {len(phones)} phones" in page
    # waveform, overlays, curves, losses, held-out preview: each a real picture
    images = _images(page)
    assert len(images) == 5
    assert min(im.shape[1] for im in images) >= 100
    assert 'alt="training loss curves"' in page and 'class="preview"' in page
    held_out = re.search(r'<table id="heldout">(.*?)</table>', page, re.S).group(1)
    assert held_out.count("<tr>") - 1 == 3  # conditioning, nearest_frame, network
    assert path.stat().st_size < 10e6


def test_edit_report_pictures_every_join_and_lists_every_new_phone(edited: Path) -> None:
    summary = run_edit_report("word", edited, ReportParams())
    page = Path(summary["report"]).read_text()
    _self_contained(page)
    paths = EditPaths.of("word", edited)
    plan = pd.read_parquet(paths.plan)
    new_phones = pd.read_parquet(paths.new_phones)
    units = pd.read_parquet(audio_units_path(paths))
    # joins counted here from the plan's own columns: where the mouth's source piece changes
    piece = plan["piece"].to_numpy()
    joins = int((piece[1:] != piece[:-1]).sum())
    assert joins >= 2
    assert page.count('<figure class="join">') == joins == summary["joins_pictured"]
    assert _rows(page, "newphone") == len(new_phones) == summary["new_phones"] > 0
    assert _rows(page, "unit") == len(units) > 0
    assert _rows(page, "segment") == len(pd.read_parquet(paths.segments))
    assert "remarkable" in page and "promising" in page
    # the join pictures are three mouth crops side by side, at the configured size
    joins_pics = _images(page)[-joins - 1:-1]  # the audio plot follows the joins
    assert all(im.shape[:2] == (160, 480) for im in joins_pics)
    # fewer pictures than joins when capped
    capped = run_edit_report("word", edited, ReportParams(max_joins=1))
    assert Path(capped["report"]).read_text().count('<figure class="join">') == 1


def test_edit_report_shows_the_plans_warnings_and_quality_screen(edited: Path) -> None:
    """A plan that doubts its edit says so at the top of the edit report, not only in its
    summary; a plan that does not shows its screen without a warning."""
    page = Path(run_edit_report("word", edited, ReportParams())["report"]).read_text()
    plan_summary = EditPaths.of("word", edited).summary.read_text()
    screen = [ln for ln in plan_summary.splitlines() if ln.startswith("Quality screen: ")]
    assert len(screen) == 1 and "self-check r 0." in screen[0]
    assert html.escape(screen[0]) in page and 'class="warning"' not in page
    # The same edit planned with a self-check bar its clip cannot reach: the plan warns.
    write_edit(edited, "doubted", {"clip": "demo", "operations": [
        {"replace": "promising", "with": "remarkable"}]})
    opts = repo_section(PlanParams)
    strict = replace(opts, self_check=replace(opts.self_check, min_r=0.999))
    planned = run_plan("doubted", edited, strict, repo_section(AlignParams),
                       repo_section(AudioParams))
    assert planned["quality_estimate"] < 1 and len(planned["warnings"]) == 1
    run_audio("doubted", edited, repo_section(AudioParams))
    page = Path(run_edit_report("doubted", edited, ReportParams())["report"]).read_text()
    assert page.count('class="warning"') == 1
    assert html.escape(planned["warnings"][0]) in page
    assert f"estimate {planned['quality_estimate']:.2f}" in page


def test_edit_report_names_the_missing_stage(edited: Path) -> None:
    write_edit(edited, "unplanned", {"clip": "demo", "operations": [
        {"replace": "promising", "with": "good"}]})
    with pytest.raises(TalkeditError, match="plan@unplanned"):
        run_edit_report("unplanned", edited, ReportParams())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_compare_video_is_side_by_side_time_aligned_and_verifies(edited: Path) -> None:
    params = repo_section(CompareParams, preset="ultrafast")
    summary = run_compare("word", edited, params, repo_section(WatermarkParams))
    paths = EditPaths.of("word", edited)
    video = compare_video_path(paths)
    plan = pd.read_parquet(paths.plan)
    segments = pd.read_parquet(paths.segments)
    store = FrameStore.for_clip("demo", edited)
    clip_h, clip_w = store.frame(0).shape[:2]
    new_frames = plan.segment.isin(segments.loc[segments.kind == "new", "segment"]).to_numpy()
    with av.open(str(video)) as cont, av.open(str(paths.output)) as out:
        pairs = list(zip(cont.decode(video=0), out.decode(video=0), strict=True))
    assert len(pairs) == len(plan) == summary["frames"]
    first = np.flatnonzero(new_frames)[0]
    for k in (5, len(plan) - 5, int(first)):  # kept start, kept end, inside the new word
        both = pairs[k][0].to_ndarray(format="rgb24")
        assert both.shape[1] == 2 * clip_w and both.shape[0] >= clip_h + params.bar_px
        left, right = both[:clip_h, :clip_w], both[:clip_h, clip_w:2 * clip_w]
        source = store.frame(int(plan.source_frame[k]))
        assert _psnr(left, source) > 30
        assert _psnr(right, pairs[k][1].to_ndarray(format="rgb24")) > 30
        band = both[clip_h + 4:clip_h + params.bar_px - 4, clip_w + 2:clip_w + 8].reshape(-1, 3)
        marked = np.abs(band.mean(axis=0) - NEW_WORDS).max() < 40
        assert marked == bool(new_frames[k])
    report = verify_video(video, repo_section(WatermarkParams))
    assert report.edited and report.watermark.found
    assert report.sidecar.state == "bound"
    metrics = compare_metrics_path(paths).read_text()
    assert '"detected": true' in metrics and '"payload_matches": true' in metrics


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium_without_console_errors(edited: Path,
                                                                    tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(sys_path_tools))
    from screenshot_report import screenshot

    page = Path(run_edit_report("word", edited, ReportParams())["report"])
    shot = tmp_path / "edit.png"
    messages = screenshot(page, shot, height=8000)
    assert messages == []
    image = cv2.imread(str(shot))
    # the page drew: a tall screenshot, most of it not the background colour
    assert image.shape[0] > 2000
    assert (np.abs(image.astype(int) - image[-1, -1].astype(int)).max(axis=2) > 6).mean() > 0.3


def test_clip_report_shows_the_forensic_check(edited: Path, tmp_path: Path) -> None:
    """Without detect's verdict the page says which stage to run; with one, its spans."""
    import json

    from talkedit.artifacts import DetectPaths

    verdict_path = DetectPaths.of("demo", edited).verdict_json
    assert not verdict_path.exists()
    page = Path(run_clip_report("demo", edited, ReportParams())["report"]).read_text()
    assert "dvc repro detect@&lt;clip&gt;" in page or "dvc repro detect@<clip>" in page
    spans = [{"start_s": 3.2, "end_s": 4.6, "evidence": "seam"},
             {"start_s": 20.1, "end_s": 21.0, "evidence": "bilabial closure"}]
    verdict_path.parent.mkdir(parents=True)
    verdict_path.write_text(json.dumps({"manipulated": True, "spans": spans, "checks": ["seams"],
                                        "max_window_score": 3.1, "false_alarm_rate": 0.05}))
    try:
        summary = run_clip_report("demo", edited, ReportParams())
        page = Path(summary["report"]).read_text()
    finally:
        shutil.rmtree(verdict_path.parent)
    assert summary["detect_spans"] == 2
    assert "Forensic check: 2 flagged span(s)" in page
    rows = re.search(r'<table id="detect-spans">(.*?)</table>', page, re.S).group(1)
    assert rows.count("<tr>") - 1 == 2 and "bilabial closure" in rows
