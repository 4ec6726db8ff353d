"""scenedemo stage: the generated two-character scene, takes with exact truth.

Reads the bundled plan (stages/scene/demo_scene.yaml: characters, script, takes with
their camera setup, tempo, skipped lines and ad-libs) and writes every take into
data/scenes/<name>/ through ``stages.scene.takes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stages.scene.takes import Character, TakePlan, generate_takes
from talkedit.artifacts import ScenePaths
from talkedit.params import Section, bad_param, check_name

PLAN = Path(__file__).with_name("demo_scene.yaml")
BUILTIN = {"builtin:astronaut": None, "builtin:carphone": "carphone"}


@dataclass(frozen=True)
class SceneDemoParams(Section):
    """The ``scenedemo:`` section of params.yaml: the generated two-character scene."""

    SECTION = "scenedemo"

    name: str = "demo_scene"  # writes data/scenes/<name>/
    fps: int = 25
    crf: int = 23

    def check(self, where: str) -> None:
        check_name(self.name, "scene")
        if not 1 <= self.fps <= 60 or not 0 <= self.crf <= 51:
            raise bad_param(where, "fps", "fps must lie in 1..60 and crf in 0..51", "use 25 and 23")


def demo_plan(path: Path = PLAN) -> tuple[dict[str, Character], list[tuple[str, str]],
                                           list[TakePlan]]:
    """(characters, script, take plans) of a generation plan file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    characters = {c["name"]: Character(c["name"], BUILTIN.get(c["face"], c["face"]), c["pitch"])
                  for c in data["characters"]}
    script = [(who, text) for who, text in data["script"]]
    plans = []
    for take in data["takes"]:
        skip = set(take.get("skip", []))
        lines = tuple(k for k in range(take.get("first", 0), len(script)) if k not in skip)
        plans.append(TakePlan(take["name"], take["setup"], lines, take["rate_wpm"],
                              {int(k): v for k, v in take.get("adlib", {}).items()},
                              take["seed"]))
    return characters, script, plans


def run_scenedemo(root: Path, scenedemo: SceneDemoParams) -> dict[str, Any]:
    """Write the demo scene's takes (video, transcript, truth) into data/scenes/<name>/."""
    characters, script, plans = demo_plan()
    out_dir = ScenePaths.of(scenedemo.name, root).takes_dir
    takes = generate_takes(plans, script, characters, out_dir, scenedemo.fps, scenedemo.crf)
    return {"scene": scenedemo.name, "takes": len(takes), "lines": len(script),
            "frames": sum(t["frames"] for t in takes), "folder": str(out_dir)}
