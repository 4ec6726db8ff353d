"""reenactrender: a reenactment job's plan through the target's renderer (``render_plan``),
at the target frames' own head pose in either mode (portrait mode turns the composited
frame afterwards: reenactcomposite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.reenact.spec import load_reenact
from stages.render.config import RenderParams
from stages.render.interior import MouthParams
from stages.render.render import render_plan
from talkedit.artifacts import ReenactPaths


def run_reenactrender(job: str, root: Path, render: RenderParams, mouth: MouthParams
                      ) -> dict[str, Any]:
    """Render the job's plan with its target's generator: data/renders/<job>/."""
    spec = load_reenact(job, root)
    return render_plan(spec.target, ReenactPaths.of(job, root).outputs, render,
                       plan_stage="reenact", mouth=mouth)
