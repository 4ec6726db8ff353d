"""demo stage flow: generate the synthetic talking-head clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import publish_summary, retry_unless_user_error
from stages.demo import DemoOptions, generate_demo
from talkedit.runreport import run_report


@task(retries=1, retry_condition_fn=retry_unless_user_error)
def render_demo(opts: DemoOptions, out_dir: Path | None) -> dict[str, Any]:
    return generate_demo(opts, out_dir)


@flow(name="demo", log_prints=True)
def demo_flow(opts: DemoOptions, out_dir: Path | None = None) -> dict[str, Any]:
    with run_report("demo", opts.name) as report:
        summary = report["summary"] = render_demo(opts, out_dir)
    publish_summary("demo", opts.name, summary)
    return summary
