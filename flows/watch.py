"""Scheduled runs: one Prefect flow that takes in the watched folder and runs what changed.

A pass (``watch_inbox``) takes new clips and edits in from the inbox
(``talkedit.inbox``), then, for every clip and edit listed in params.yaml, asks DVC
whether its target (``watch.clip_target`` / ``watch.edit_target``) is up to date and
runs ``dvc repro`` for it when it is not. Each target is its own task run, so a clip
that fails (bad video, wrong transcript) fails alone, its error line as the task's
message, and the others still run; the pass ends Failed, naming every item that
failed or was refused. An unchanged project runs no stage at all.

``serve`` deploys the pass on a cron schedule with ``Flow.serve`` (the process stays
up and starts a run at each tick; the Prefect UI shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from talkedit import dvcrun
from talkedit.errors import TalkeditError
from talkedit.inbox import Intake, WatchParams, take_in
from talkedit.params import load_params, load_section

UP_TO_DATE, REPRODUCED = "up to date", "reproduced"
DEPLOYMENT = "talkedit-watch"


@task(name="take-in", task_run_name="take-in")
def take_in_task(root: Path, params: WatchParams) -> Intake:
    return take_in(root, params)


@task(name="repro", task_run_name="repro-{target}")
def repro_task(root: Path, target: str) -> str:
    """Bring one target up to date; a failure raises with the stage's own error line."""
    if dvcrun.up_to_date(root, target):
        return UP_TO_DATE
    log = root / "data" / "runs" / f"watch-{target.replace('@', '-')}.log"
    code, errors = dvcrun.repro(root, target, log)
    if code != 0:
        raise TalkeditError(target, dvcrun.first_cause(errors, code),
                            f"fix it and the next pass retries (dvc's log: {log.relative_to(root)})")
    return REPRODUCED


def targets(root: Path, params: WatchParams) -> list[str]:
    """Every registered clip's and edit's target, in params.yaml's order."""
    listed = load_params(root)
    clips = [f"{params.clip_target}@{c}" for c in listed.get("clips") or []]
    edits = [f"{params.edit_target}@{e}" for e in listed.get("edits") or {}]
    return clips + edits


def _table(outcome: dict[str, str]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in outcome.items())
    return f"# talkedit watch\n\n| item | outcome |\n|---|---|\n{rows}\n"


@flow(name="watch", flow_run_name="watch", validate_parameters=False)
def watch_inbox(root: str) -> Any:
    """One pass: take in the inbox, then bring every clip and edit up to date."""
    project = Path(root)
    logger = get_run_logger()
    params = load_section(WatchParams, project)
    intake = take_in_task(project, params)
    outcome: dict[str, str] = {f"new {k}": "taken in" for k in
                               [*(f"clip {c}" for c in intake.clips),
                                *(f"edit {e}" for e in intake.edits)]}
    failed = {item: f"refused: {why}" for item, why in intake.refused.items()}
    for target in targets(project, params):
        state: State = repro_task(project, target, return_state=True)
        if state.is_completed():
            outcome[target] = state.result()
        else:
            cause = state.message or "failed"
            try:
                state.result()
            except TalkeditError as exc:
                cause = str(exc)
            except Exception as exc:  # noqa: BLE001 - reported, and the other items go on
                cause = f"{type(exc).__name__}: {exc}"
            failed[target] = cause
            logger.error("error: %s", cause)
    outcome.update(failed)
    create_markdown_artifact(key="talkedit-watch", markdown=_table(outcome),
                             description="talkedit scheduled pass: what each item did")
    if failed:
        names = ", ".join(failed)
        return Failed(message=f"{len(failed)} item(s) failed: {names}", data=outcome)
    return Completed(message="all items up to date", data=outcome)


def serve(root: Path, cron: str) -> None:
    """Run ``watch_inbox`` on ``cron`` until interrupted (needs a running Prefect server)."""
    watch_inbox.serve(name=DEPLOYMENT, cron=cron, parameters={"root": str(root)})
