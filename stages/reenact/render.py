"""reenactrender: a reenactment job's plan through the target's renderer (``render_plan``);
in portrait mode the target frames behind it turned to the new head pose first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.reenact.repose import portrait_reposer
from stages.reenact.spec import load_reenact
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import render_plan
from talkedit.artifacts import ReenactPaths


def run_reenactrender(job: str, root: Path, render: RenderParams, mouth: MouthParams
                      ) -> dict[str, Any]:
    """Render the job's plan with its target's generator: data/renders/<job>/."""
    spec = load_reenact(job, root)
    paths = ReenactPaths.of(job, root)
    return render_plan(spec.target, paths.outputs, render, plan_stage="reenact", mouth=mouth,
                       reposer=portrait_reposer(spec, paths))
