"""Reproducible to the bit (issue 21): the same inputs and params give the same bytes.

The end-to-end test carries the demo clip through every per-clip stage (extract,
align, fit, index, train with a few steps, evaluate) and the demo edit through
the edit stages (plan, audio, render, composite) twice, in two fresh project
folders, with the `talkedit` command under different thread counts
(OMP_NUM_THREADS and OpenCV's, 1 against 2), and asserts that every file under
data/ is byte-identical, naming the first one (in the order run 1 wrote them)
that is not. The demo clip is made once, by the command in the first folder (1
thread), copied to the second, and compared with the session's demo, made
in-process with the default threads.
The run reports (data/runs/) are the one place times may go; they are checked
to be there, and left out of the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors import safe_open
from safetensors.numpy import load, save

from stages.composite.provenance import manifest_time, stream_digest
from stages.render.train import read_losses
from talkedit.atomic import canonical_safetensors
from talkedit.errors import TalkeditError
from talkedit.espeak import phonemize, synthesize
from talkedit.runreport import RUNS_DIR
from tests.conftest import REPO

CLIP_STAGES = ["extract", "align", "fit", "index", "train", "evaluate", "detect"]
EDIT_STAGES = ["plan", "audio", "render", "composite"]  # on the edit `demo` of the clip
# All stages in one process per folder (Prefect's temporary server starts once, not once
# a stage), each through the command's own entry point, exactly as `talkedit <stage> demo`.
DRIVER = """
import sys
from talkedit.cli import app
for stage in sys.argv[1:]:
    code = app([stage] if stage == "demo" else [stage, "demo"], standalone_mode=False)
    if code:
        sys.exit(f"talkedit {stage} demo exited with {code}")
"""


def _project(root: Path) -> Path:
    """A project folder whose params make training, evaluation and encoding short."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["cpu"].update(steps=10, max_minutes=None)
    params["train"]["log_every"] = 5
    params["evaluate"]["sentences"] = 1
    params["composite"]["preset"] = "ultrafast"
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copytree(REPO / "data" / "edits", root / "data" / "edits")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _talkedit(root: Path, threads: int, *stages: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENCV_FOR_THREADS_NUM": str(threads),
           "PYTHONPATH": str(REPO), "PREFECT_HOME": str(root / ".prefect")}
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SOURCE_DATE_EPOCH"):
        env.pop(name, None)  # talkedit pins the BLAS threads itself; no manifest time
    done = subprocess.run([sys.executable, "-c", DRIVER, *stages], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{stages} in {root} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _artifacts(root: Path) -> list[Path]:
    """Every file under data/ except the run reports, in the order it was written."""
    data = root / "data"
    files = [p for p in data.rglob("*") if p.is_file() and not p.is_relative_to(root / RUNS_DIR)]
    return [p.relative_to(root) for p in sorted(files, key=lambda p: (p.stat().st_mtime_ns, p))]


def _signed_video(name: Path) -> bool:
    return name.parts[:2] == ("data", "outputs") and name.suffix == ".mp4"


def first_difference(a: Path, b: Path) -> str | None:
    """The first artifact of ``a`` (in writing order) that ``b`` lacks or holds other bytes in."""
    names_b = set(_artifacts(b))
    for name in _artifacts(a):
        if name not in names_b:
            return f"{name} (missing in the second run)"
        if _signed_video(name):
            # Its C2PA signature is salted at random (and each project signs with its own
            # local CA): the encoded streams are what must be the same.
            if stream_digest(a / name) != stream_digest(b / name):
                return f"{name} (different encoded streams)"
        elif (a / name).read_bytes() != (b / name).read_bytes():
            return f"{name} (different bytes)"
    extra = names_b - set(_artifacts(a))
    return f"{sorted(extra)[0]} (only in the second run)" if extra else None


def test_every_clip_stage_gives_the_same_bytes_at_1_and_2_threads(
        demo_root: Path, tmp_path: Path) -> None:
    one, two = _project(tmp_path / "one"), _project(tmp_path / "two")
    _talkedit(one, 1, "demo", *CLIP_STAGES, *EDIT_STAGES)
    for name in sorted(p.name for p in (demo_root / "data" / "raw").iterdir()):
        assert (one / "data" / "raw" / name).read_bytes() == \
            (demo_root / "data" / "raw" / name).read_bytes(), f"demo: {name} differs"
    shutil.copytree(one / "data" / "raw", two / "data" / "raw", dirs_exist_ok=True)  # shared
    _talkedit(two, 2, *CLIP_STAGES, *EDIT_STAGES)
    written = {name.as_posix() for name in _artifacts(one)}
    for expected in ("data/interim/demo/face_model.safetensors", "data/interim/demo/crops/crops.mp4",
                     "data/models/demo/generator.safetensors", "data/models/demo/losses.tsv",
                     "data/metrics/demo/evaluate.json", "data/plans/demo/audio.json",
                     "data/renders/demo/render.json", "data/outputs/demo.mp4",
                     "data/outputs/demo.provenance.json"):
        assert expected in written
    assert first_difference(one, two) is None, \
        f"1 vs 2 threads: first artifact that differs: {first_difference(one, two)}"

    # The times are in the run reports, and in no tracked output.
    for stage in ["demo", *CLIP_STAGES, *EDIT_STAGES]:
        report = json.loads((one / RUNS_DIR / f"{stage}-demo.json").read_text())
        assert report["wall_seconds"] > 0 and report["machine"]["cpu_count"] >= 1
    train = json.loads((one / RUNS_DIR / "train-demo.json").read_text())["summary"]
    assert train["train_seconds"] > 0 and train["steps"] == 10
    metrics = json.loads((one / "data" / "models" / "demo" / "metrics.json").read_text())
    assert not {"train_seconds", "train_cpu_seconds", "steps_per_s", "seconds"} & set(metrics)
    losses = (one / "data" / "models" / "demo" / "losses.tsv").read_text().splitlines()
    assert "seconds" not in losses[0].split("\t") and len(losses) == 3  # header + steps 5, 10
    for report in ("metrics/demo/evaluate.json", "plans/demo/audio.json",
                   "renders/demo/render.json"):
        assert not {"seconds", "frames_per_s"} & set(json.loads((one / "data" / report)
                                                              .read_text())), report
    manifest = json.loads((one / "data" / "outputs" / "demo.provenance.json").read_text())
    assert manifest["created"] is None and "when" not in manifest["actions"][0]


def test_first_difference_names_the_file(tmp_path: Path) -> None:
    for run in ("a", "b"):
        (tmp_path / run / "data" / "x").mkdir(parents=True)
        (tmp_path / run / "data" / "x" / "same.txt").write_text("same")
        (tmp_path / run / "data" / "x" / "other.txt").write_text(run)
        (tmp_path / run / RUNS_DIR).mkdir(parents=True)
        (tmp_path / run / RUNS_DIR / "fit-demo.json").write_text(run)  # ignored: times
    assert first_difference(tmp_path / "a", tmp_path / "b") == "data/x/other.txt (different bytes)"
    (tmp_path / "b" / "data" / "x" / "other.txt").write_text("a")
    assert first_difference(tmp_path / "a", tmp_path / "b") is None


def test_safetensors_bytes_do_not_depend_on_metadata_order() -> None:
    tensors = {"b": np.arange(5, dtype=np.float32), "a": np.ones((2, 3), np.int32)}
    meta = {f"key{i}": str(i) for i in range(12)}
    blobs = {canonical_safetensors(save(tensors, metadata=dict(reversed(meta.items())))),
             canonical_safetensors(save(tensors, metadata=meta))}
    assert len(blobs) == 1
    blob = blobs.pop()
    assert blob.index(b'"__metadata__":{"key0":"0","key1":"1","key10":"10"') == 9
    assert {k: v.tolist() for k, v in load(blob).items()} == \
        {"a": [[1, 1, 1], [1, 1, 1]], "b": [0.0, 1.0, 2.0, 3.0, 4.0]}
    assert int.from_bytes(blob[:8], "little") % 8 == 0  # tensor data stays 8-byte aligned


def test_safetensors_metadata_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(canonical_safetensors(save({"x": np.zeros(3, np.float64)},
                                                metadata={"z": "1", "a": "2"})))
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"a": "2", "z": "1"}


def test_speech_does_not_depend_on_what_was_spoken_before() -> None:
    sentence = "We built a weekly video lab over the summer."
    first = synthesize(sentence, rate_wpm=150)
    synthesize("A longer and different text, at another rate, spoken first. " * 4, rate_wpm=190)
    phonemize("extraordinary")
    again = synthesize(sentence, rate_wpm=150)
    # Before issue 21 the second one came out 8 samples longer, other samples changed too.
    assert len(again.samples) == len(first.samples) > 0
    assert again.samples.tobytes() == first.samples.tobytes()
    assert [(p.phone, p.start_s) for p in again.phones] == [(p.phone, p.start_s) for p in first.phones]


def test_losses_from_before_issue_21_resume_without_their_seconds(tmp_path: Path) -> None:
    path = tmp_path / "losses.tsv"
    path.write_text("step\tseconds\tl1\tadversarial\ttemporal_adversarial\tfeature_matching\t"
                    "d_spatial\td_temporal\n25\t10.6\t0.09\t0.3\t0.35\t0.009\t0.27\t0.29\n"
                    "50\t19.8\t0.08\t0.2\t0.25\t0.006\t0.25\t0.25\n")
    rows = read_losses(path, up_to=25)
    assert rows == [{"step": 25.0, "l1": 0.09, "adversarial": 0.3, "temporal_adversarial": 0.35,
                     "feature_matching": 0.009, "d_spatial": 0.27, "d_temporal": 0.29}]


def test_manifest_time_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert manifest_time() is None
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    assert manifest_time() == "1970-01-02T00:00:00+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(TalkeditError, match="SOURCE_DATE_EPOCH"):
        manifest_time()
