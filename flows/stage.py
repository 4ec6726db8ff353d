"""The one flow shape every stage runs: load its params sections, call its entry, report.

``run_stage_flow(spec, item, root)`` is what ``talkedit <stage> <item>`` and so
``dvc repro <stage>@<item>`` run. The flow run is named after the stage and its item
(``fit-demo``); a user's input mistake (``TalkeditError``) ends it as Failed with the
error's one line as its message, not a traceback, and is never retried; other
failures are retried once only when they look transient (I/O). How long it ran and
on what machine goes to the run report (talkedit/runreport.py), never into artifacts.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State

from flows.registry import PROJECT, StageSpec
from flows.runners import chunk_map, task_runner
from talkedit.errors import TalkeditError
from talkedit.params import Section, build, check_name, load_section
from talkedit.runreport import run_report
from talkedit.scale import ScaleParams


def retry_transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry an I/O failure (a busy disk, a dropped mount); never bad input or a bug."""
    try:
        state.result()
    except TalkeditError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - a programming error: rerunning repeats it
        return False
    return False


def publish_summary(stage: str, item: str, summary: Mapping[str, Any]) -> None:
    """A markdown table of the stage's summary, shown in the Prefect UI."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    create_markdown_artifact(
        key=f"{stage}-{item}".lower().replace("_", "-"),
        markdown=f"# {stage}: {item}\n\n| field | value |\n|---|---|\n{rows}\n",
        description=f"talkedit {stage} stage summary for {item}",
    )


def load_sections(spec: StageSpec, root: Path,
                  overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Section]:
    """The typed sections ``spec``'s entry reads, from ``root``'s params.yaml (with overrides)."""
    out = {}
    for name, cls in spec.sections().items():
        section = load_section(cls, root)
        if overrides and overrides.get(name):
            section = build(cls, {**dataclasses.asdict(section), **overrides[name]}, name)
        out[name] = section
    return out



def make_flow(spec: StageSpec) -> Flow:
    run_name = spec.name if spec.kind == PROJECT else f"{spec.name}-{{item}}"  # e.g. fit-demo

    @task(name=spec.name, task_run_name=run_name, retries=1, retry_condition_fn=retry_transient)
    def run_entry(item: str | None, root: Path, sections: dict[str, Section]) -> dict[str, Any]:
        entry = spec.entry_function()
        args = (root,) if spec.kind == PROJECT else (item, root)
        extra = {}
        if "map_chunks" in inspect.signature(entry).parameters:  # frame-chunked stages
            extra["map_chunks"] = chunk_map(sections[ScaleParams.SECTION])
        return entry(*args, **sections, **extra)

    @flow(name=spec.name, flow_run_name=run_name, log_prints=True, validate_parameters=False)
    def run_flow(item: str | None, root: Path,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
        try:
            sections = load_sections(spec, root, overrides)
            with run_report(spec.name, item or spec.name, root) as report:
                summary = report["summary"] = run_entry(item, root, sections)
        except TalkeditError as exc:
            get_run_logger().error("error: %s", exc)
            return Failed(message=f"error: {exc}", data=exc)
        publish_summary(spec.name, item or spec.name, summary)
        return summary

    return run_flow


def run_stage_flow(spec: StageSpec, item: str | None, root: Path,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``spec``'s flow for ``item``; a user error raises ``TalkeditError`` here."""
    if spec.kind != PROJECT:
        check_name(item, spec.kind)
    run_flow = make_flow(spec)
    if ScaleParams.SECTION in spec.sections():
        runner = task_runner(load_sections(spec, Path(root), overrides)[ScaleParams.SECTION])
        if runner is not None:
            run_flow = run_flow.with_options(task_runner=runner)
    state = run_flow(item, Path(root), overrides, return_state=True)
    return state.result()  # raises the stage's exception (a TalkeditError: one line)
