"""liprender: a lip-sync job's plan through the edit path's own renderer (``render_plan``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.lipsync.spec import load_job
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import render_plan
from talkedit.artifacts import LipsyncPaths


def run_liprender(job: str, root: Path, render: RenderParams, mouth: MouthParams
                  ) -> dict[str, Any]:
    """Render the job's plan with its clip's generator: data/renders/<job>/."""
    spec = load_job(job, root)
    return render_plan(spec.clip, LipsyncPaths.of(job, root).outputs, render, plan_stage="lipplan",
                       mouth=mouth)
