"""extract stage flow: a clip's constant-rate frame timeline and 16 kHz audio."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import publish_summary, retry_unless_user_error
from stages.extract import extract_clip
from talkedit.params import section


@task(retries=1, retry_condition_fn=retry_unless_user_error)
def extract_task(clip: str) -> dict[str, Any]:
    return extract_clip(clip, section("extract"))


@flow(name="extract", log_prints=True)
def extract_flow(clip: str) -> dict[str, Any]:
    summary = extract_task(clip)
    publish_summary("extract", clip, summary)
    return summary
