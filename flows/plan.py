"""plan stage flow: an edit spec into a frame-by-frame plan of the edited video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.common import stage_flow
from stages.plan import run_plan
from talkedit.params import section


def plan_with_clip_lexicon(edit: str, params: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """New words are pronounced with the clip's lexicon (and timed by a recording if given)."""
    return run_plan(edit, params, root, align_params=section("align"), audio_params=section("audio"))


plan_flow = stage_flow("plan", plan_with_clip_lexicon)
