"""The scene file, data/scenes/<scene>.yaml: characters, script, takes and idioms.

    characters:                 # who is in the scene, each with a reference face photo
      - {name: ANNA, face: builtin:astronaut}
      - {name: BEN, face: photos/ben.jpg}     # a path from the project root
    script:                     # the lines in order, each with its character
      - [ANNA, "Did you lock the front door?"]
      - [BEN, "I thought you had the keys."]
    takes: [t1, t2, t3]         # data/scenes/<scene>/<take>.mp4 + <take>.txt (what was said)
    idioms:                     # film-editing idioms and their weights (stages/scene/idioms.py)
      speaker_visible: 10
      start_wide: 4
      avoid_jump_cuts: 6
      performance: {weight: 1, prefer: fast}
      emphasize: {weight: 0, character: ANNA}
      short_shots: {weight: 2, min_s: 1.5}

Each key is read by the stages that need it only (dvc.yaml names them as params of the
scene file), so changing an idiom weight reruns the cut choice, not alignment or labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from talkedit.artifacts import ScenePaths
from talkedit.errors import TalkeditError
from talkedit.params import check_name

BUILTIN_FACES = ("builtin:astronaut", "builtin:carphone")


@dataclass(frozen=True)
class SceneCharacter:
    name: str
    face: str  # builtin:astronaut | builtin:carphone | a photo path from the project root


@dataclass(frozen=True)
class ScriptLine:
    index: int
    character: str
    text: str


@dataclass(frozen=True)
class Scene:
    name: str
    path: Path
    characters: tuple[SceneCharacter, ...]
    script: tuple[ScriptLine, ...]
    takes: tuple[str, ...]
    idioms: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.characters]


def read_scene_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TalkeditError(path, "scene file not found",
                            "write it (see stages/scene/spec.py) and list the scene in params.yaml "
                            "scenes:")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TalkeditError(path, f"is not valid YAML ({' '.join(str(exc).split())})",
                            "correct the syntax") from exc
    if not isinstance(data, dict):
        raise TalkeditError(path, "must be a mapping (characters, script, takes, idioms)",
                            "see stages/scene/spec.py")
    return data


def parse_scene(scene: str, data: dict[str, Any], path: Path) -> Scene:
    unknown = sorted(set(data) - {"characters", "script", "takes", "idioms"})
    if unknown:
        raise TalkeditError(f"{path} {unknown[0]}", "is not a scene key",
                            "use characters, script, takes and idioms")
    characters = []
    for k, entry in enumerate(data.get("characters") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TalkeditError(f"{path} characters[{k}]", "needs a name",
                                "write {name: ANNA, face: builtin:astronaut}")
        characters.append(SceneCharacter(entry["name"], str(entry.get("face") or "")))
    if len(characters) < 1:
        raise TalkeditError(f"{path} characters", "is empty", "list the scene's characters")
    seen: dict[str, str] = {}
    for c in characters:
        if c.name.casefold() in seen:
            raise TalkeditError(f"{path} characters", f"two characters are named {c.name!r}",
                                "give each character its own name")
        seen[c.name.casefold()] = c.name
        if not c.face:
            raise TalkeditError(f"{path} character {c.name}", "has no reference face",
                                f"set face: to a photo path or one of {', '.join(BUILTIN_FACES)}")
    script = []
    for k, entry in enumerate(data.get("script") or []):
        if (not isinstance(entry, list) or len(entry) != 2
                or not all(isinstance(v, str) for v in entry)):
            raise TalkeditError(f"{path} script[{k}]", "is not [CHARACTER, text]",
                                'write - [ANNA, "Did you lock the door?"]')
        if entry[0] not in seen.values():
            raise TalkeditError(f"{path} script[{k}]", f"names {entry[0]!r}, not a character",
                                f"use one of {', '.join(seen.values())}")
        if not entry[1].strip():
            raise TalkeditError(f"{path} script[{k}]", "has no text", "write the line")
        script.append(ScriptLine(k, entry[0], entry[1]))
    if not script:
        raise TalkeditError(f"{path} script", "is empty", "write the scene's lines")
    takes = tuple(check_name(str(t), "take") for t in data.get("takes") or [])
    if not takes:
        raise TalkeditError(f"{path} takes", "is empty", "list the takes (files in "
                            f"data/scenes/{scene}/)")
    if len(set(takes)) != len(takes):
        raise TalkeditError(f"{path} takes", "lists a take twice", "list each take once")
    idioms = data.get("idioms") or {}
    if not isinstance(idioms, dict):
        raise TalkeditError(f"{path} idioms", "is not a mapping", "write idiom: weight lines")
    return Scene(scene, path, tuple(characters), tuple(script), takes, dict(idioms))


def load_scene(scene: str, root: Path, need_takes: bool = True) -> Scene:
    paths = ScenePaths.of(scene, root)
    out = parse_scene(scene, read_scene_yaml(paths.spec), paths.spec)
    if need_takes:
        for take in out.takes:
            for file in (paths.take_video(take), paths.take_transcript(take)):
                if not file.is_file():
                    raise TalkeditError(file, f"take {take!r} of scene {scene!r} is missing",
                                        "put the take's video and its transcript (what was said) "
                                        f"in {paths.takes_dir}")
    return out
