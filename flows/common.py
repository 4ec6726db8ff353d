"""What every stage flow shares: retry policy, the summary artifact, the flow shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow, flow, task
from prefect.artifacts import create_markdown_artifact

from talkedit.errors import TalkeditError
from talkedit.params import section
from talkedit.runreport import run_report

StageFunction = Callable[[str, dict[str, Any]], dict[str, Any]]


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures (I/O, a busy machine), never a user's bad input."""
    try:
        state.result()
    except TalkeditError:
        return False
    except Exception:  # noqa: BLE001 - any other failure may be transient
        return True
    return False


def publish_summary(stage: str, item: str, summary: dict[str, Any]) -> None:
    """A markdown table of the stage's summary, shown in the Prefect UI."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    create_markdown_artifact(
        key=f"{stage}-{item}".lower().replace("_", "-"),
        markdown=f"# {stage}: {item}\n\n| field | value |\n|---|---|\n{rows}\n",
        description=f"talkedit {stage} stage summary for {item}",
    )


def stage_flow(stage: str, run: StageFunction) -> Flow:
    """The flow of a per-clip or per-edit stage: one task calling ``run(item, params[stage])``.

    The task retries once on a transient failure; the flow publishes the
    stage's summary as a markdown artifact and writes it, with the run's times
    and machine, to the run report (talkedit.runreport).
    """

    @task(name=f"{stage}-task", retries=1, retry_condition_fn=retry_unless_user_error)
    def run_stage(item: str) -> dict[str, Any]:
        return run(item, section(stage))

    @flow(name=stage, log_prints=True)
    def run_flow(item: str) -> dict[str, Any]:
        with run_report(stage, item) as report:
            summary = report["summary"] = run_stage(item)
        publish_summary(stage, item, summary)
        return summary

    return run_flow
