"""Reproducible to the bit (issue 21): the same inputs and params give the same bytes.

Two fresh project folders run every per-clip stage (demo, extract, align, fit, index,
train with a few steps, evaluate, detect) and the demo edit through the edit stages
(plan, audio, render, composite), each folder in one long-lived `talkedit` process
(``app([stage, "demo"])``, exactly as `talkedit <stage> demo`) under its own thread
count: OMP_NUM_THREADS and OpenCV's, 1 against 2. After each group of stages every file
under data/ must be byte-identical between the folders; the first one (in the order the
1-thread folder wrote them) that is not is named. The demo clip is also compared with
the same clip made in this process, with the default threads (conftest's short demo).
The clip is that short demo (4 sentences, 14 s at 256 px) and the renderer small (64 px,
10 steps), so that each group stays well under a minute; every stage still runs its
whole code path. The run reports (data/runs/) are the one place times may go; they are
checked to be there, and left out of the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
from tests.conftest import REPO, SHORT_DEMO_SIZE, SHORT_SCRIPT, use_prefect_server

# One process per folder runs the stages named on its stdin, one a line, and answers each
# on the pipe it is given ("<stage> <exit status>"): the imports happen once, not once a
# stage, and the flows run against the session's Prefect server (conftest), none started.
DRIVER = """
import os, sys
from talkedit.cli import app
answers = os.fdopen(int(sys.argv[1]), "w", buffering=1)
for line in sys.stdin:
    stage = line.strip()
    try:
        code = app([stage] if stage == "demo" else [stage, "demo"], standalone_mode=False)
    except BaseException as exc:  # reported to the test, which fails with the log
        code = repr(exc)
    answers.write(f"{stage} {code or 0}\\n")
"""


def _project(root: Path) -> Path:
    """A project folder whose params make the clip, training, evaluation and encoding short."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["demo"].update(text="script.txt", size=SHORT_DEMO_SIZE)
    params["train"]["cpu"].update(steps=10, size=64, max_minutes=None)
    params["train"].update(log_every=5, eval_frames=50)
    params["evaluate"]["sentences"] = 1
    params["composite"]["preset"] = "ultrafast"
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copytree(REPO / "data" / "edits", root / "data" / "edits")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "script.txt").write_text(SHORT_SCRIPT)
    return root


class Talkedit:
    """One project folder and the `talkedit` process that runs its stages."""

    def __init__(self, root: Path, threads: int, prefect_home: Path) -> None:
        self.root = _project(root)
        use_prefect_server(root, prefect_home)  # a running server: none started per process
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "OPENCV_FOR_THREADS_NUM": str(threads), "PYTHONPATH": str(REPO),
               "PREFECT_HOME": str(root / ".prefect")}
        for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SOURCE_DATE_EPOCH"):
            env.pop(name, None)  # talkedit pins the BLAS threads itself; no manifest time
        self.log = root / "talkedit.log"
        read, write = os.pipe()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(write)], cwd=root,
                                         env=env, stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, text=True, pass_fds=(write,))
        os.close(write)
        self.answers = os.fdopen(read)

    def start(self, stages: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{stage}\n" for stage in stages))
        self.proc.stdin.flush()

    def wait(self, stages: list[str]) -> None:
        for stage in stages:
            answer = self.answers.readline().split()
            if answer != [stage, "0"]:
                tail = self.log.read_text()[-4000:]
                pytest.fail(f"talkedit {stage} demo in {self.root}: {answer or 'no answer'}\n{tail}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.answers.close()


@pytest.fixture(scope="module")
def folders(prefect_server: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Talkedit, Talkedit]]:
    """The 1-thread and the 2-thread project, their processes started (both against the
    session's Prefect server)."""
    base = tmp_path_factory.mktemp("reproducible")
    one, two = Talkedit(base / "one", 1, prefect_server), Talkedit(base / "two", 2, prefect_server)
    yield one, two
    one.close()
    two.close()


def _run(folders: tuple[Talkedit, Talkedit], *stages: str) -> tuple[Path, Path]:
    """``stages`` in both folders at once; the two roots."""
    for folder in folders:
        folder.start(list(stages))
    for folder in folders:
        folder.wait(list(stages))
    return folders[0].root, folders[1].root


@pytest.fixture(scope="module")
def made(folders: tuple[Talkedit, Talkedit]) -> tuple[Path, Path]:
    return _run(folders, "demo")


@pytest.fixture(scope="module")
def fitted(made: tuple[Path, Path], folders: tuple[Talkedit, Talkedit]) -> tuple[Path, Path]:
    return _run(folders, *CLIP_STAGES)


@pytest.fixture(scope="module")
def trained(fitted: tuple[Path, Path], folders: tuple[Talkedit, Talkedit]) -> tuple[Path, Path]:
    return _run(folders, *MODEL_STAGES)


@pytest.fixture(scope="module")
def edited(trained: tuple[Path, Path], folders: tuple[Talkedit, Talkedit]) -> tuple[Path, Path]:
    return _run(folders, *EDIT_STAGES)


CLIP_STAGES = ["extract", "align", "fit", "index", "detect"]
MODEL_STAGES = ["train", "evaluate"]
EDIT_STAGES = ["plan", "audio", "render", "composite"]  # on the edit `demo` of the clip


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


def _same_bytes(roots: tuple[Path, Path], stages: list[str], expected: list[str]) -> None:
    """Both folders hold the same artifacts, ``expected`` among them; each stage left a run
    report with its time."""
    one, two = roots
    written = {name.as_posix() for name in _artifacts(one)}
    assert set(expected) <= written, sorted(set(expected) - written)
    assert first_difference(one, two) is None, \
        f"1 vs 2 threads: first artifact that differs: {first_difference(one, two)}"
    for stage in stages:
        report = json.loads((one / RUNS_DIR / f"{stage}-demo.json").read_text())
        assert report["wall_seconds"] > 0 and report["machine"]["cpu_count"] >= 1


def test_the_demo_clip_is_the_same_bytes_at_1_and_2_threads_and_in_process(
        made: tuple[Path, Path], short_demo_root: Path) -> None:
    _same_bytes(made, ["demo"], ["data/raw/demo.mp4", "data/raw/demo.txt",
                                 "data/raw/demo.truth_frames.parquet"])
    for name in sorted(p.name for p in (short_demo_root / "data" / "raw").iterdir()):
        assert (made[0] / "data" / "raw" / name).read_bytes() == \
            (short_demo_root / "data" / "raw" / name).read_bytes(), f"demo: {name} differs"


def test_extract_align_fit_index_detect_give_the_same_bytes_at_1_and_2_threads(
        fitted: tuple[Path, Path]) -> None:
    _same_bytes(fitted, CLIP_STAGES, ["data/interim/demo/face_model.safetensors",
                                      "data/interim/demo/face.parquet",
                                      "data/interim/demo/phones.parquet",
                                      "data/interim/demo/visemes.parquet"])


def test_train_and_evaluate_give_the_same_bytes_at_1_and_2_threads(
        trained: tuple[Path, Path]) -> None:
    _same_bytes(trained, MODEL_STAGES, ["data/interim/demo/crops/crops.mp4",
                                        "data/models/demo/generator.safetensors",
                                        "data/models/demo/losses.tsv",
                                        "data/metrics/demo/evaluate.json"])
    one = trained[0]
    train = json.loads((one / RUNS_DIR / "train-demo.json").read_text())["summary"]
    assert train["train_seconds"] > 0 and train["steps"] == 10
    metrics = json.loads((one / "data" / "models" / "demo" / "metrics.json").read_text())
    assert not {"train_seconds", "train_cpu_seconds", "steps_per_s", "seconds"} & set(metrics)
    losses = (one / "data" / "models" / "demo" / "losses.tsv").read_text().splitlines()
    assert "seconds" not in losses[0].split("\t") and len(losses) == 3  # header + steps 5, 10
    assert not {"seconds", "frames_per_s"} & set(json.loads(
        (one / "data" / "metrics" / "demo" / "evaluate.json").read_text()))


def test_the_edit_stages_give_the_same_bytes_at_1_and_2_threads(
        edited: tuple[Path, Path]) -> None:
    _same_bytes(edited, EDIT_STAGES, ["data/plans/demo/plan.parquet", "data/plans/demo/audio.json",
                                      "data/renders/demo/render.json", "data/outputs/demo.mp4",
                                      "data/outputs/demo.provenance.json"])
    one = edited[0]
    for report in ("plans/demo/audio.json", "renders/demo/render.json"):
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
