"""Run reports: how long a stage ran and on what machine, kept out of its artifacts.

Every stage's artifacts are the same bytes for the same inputs, params and
package versions, so ``dvc repro`` on another machine reproduces ``dvc.lock``.
What does change from run to run (wall and CPU seconds, speeds, thread counts,
the host) goes to ``data/runs/<stage>-<item>.json`` instead: the stage's summary
plus those facts. Nothing reads these files. They are neither DVC outs (even a
``cache: false`` out has its hash in dvc.lock, which would then change on every
run) nor tracked by git (data/runs/ is ignored).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from talkedit.atomic import write_json
from talkedit.params import repo_root

RUNS_DIR = Path("data") / "runs"
# Packages whose versions decide the artifacts' bytes (numerics, codecs, file formats).
PACKAGES = ("numpy", "scipy", "torch", "av", "opencv-python", "mediapipe", "pyarrow",
            "safetensors", "pocketsphinx", "espeakng-loader")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_report_path(stage: str, item: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / RUNS_DIR / f"{stage}-{item}.json"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """What a run's speed depends on, and the package versions its bytes depend on."""
    return {
        "host": platform.node(), "platform": platform.platform(),
        "machine": platform.machine(), "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
    }


@contextlib.contextmanager
def run_report(stage: str, item: str, root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Time the block; then write the report with what the block put in the yielded dict.

    The block stores the stage's summary under ``"summary"``. A failed run writes
    no report (its summary does not exist).
    """
    report: dict[str, Any] = {"stage": stage, "item": item,
                              "started": datetime.now(UTC).isoformat(timespec="seconds")}
    wall, cpu = time.perf_counter(), time.process_time()
    yield report
    report.update({"wall_seconds": round(time.perf_counter() - wall, 2),
                   "cpu_seconds": round(time.process_time() - cpu, 2),
                   "machine": machine_facts()})
    write_json(run_report_path(stage, item, root), report)
