"""What every stage flow shares: retry policy and the summary artifact."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from talkedit.errors import TalkeditError


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
