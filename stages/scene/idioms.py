"""Film-editing idioms as costs (after Leake et al. 2017), combined by the scene file's weights.

An idiom is a small cost function over the choices the cut makes. It may cost

* ``line_cost(option)``: playing one line from one take (0 = what the idiom wants, 1 =
  what it avoids);
* ``cut_cost(before, after)``: a cut from one take to another between two lines;
* ``shot_cost(duration_s)``: a finished shot of this length.

The cut (``stages.scene.cut``) minimises the weighted sum over the whole scene by dynamic
programming. In the scene file an idiom is ``name: weight`` or ``name: {weight: w, option:
value}``; weight 0 (or leaving it out) turns it off. Adding an idiom = one class here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from talkedit.errors import TalkeditError

SHOT_TIGHTNESS = {"wide": 0.0, "medium": 0.5, "close": 1.0, "none": 0.0}


@dataclass(frozen=True)
class Option:
    """One take's version of one script line, as the labels describe it."""

    take: str
    line: int
    character: str  # the script's character of the line
    setup: str  # camera setup: "wide:ANNA,BEN", "close:BEN"
    shot: str  # wide | medium | close | none
    visible: tuple[str, ...]
    speaker: str
    tempo_wps: float
    tempo_rank: float  # 0 = the slowest version of this line .. 1 = the fastest
    position: float  # 0 = the scene's first line .. 1 = its last
    in_s: float  # the stretch of the take the line plays (pauses included)
    out_s: float


class Idiom:
    """Base class: zero cost everywhere; subclasses override what they judge."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}  # option -> default

    def __init__(self, weight: float, **options: Any) -> None:
        self.weight = float(weight)
        self.settings = {**self.options, **options}

    def line_cost(self, option: Option) -> float:
        return 0.0

    def cut_cost(self, before: Option, after: Option) -> float:
        return 0.0

    def shot_cost(self, duration_s: float) -> float:
        return 0.0


IDIOMS: dict[str, type[Idiom]] = {}


def idiom(cls: type[Idiom]) -> type[Idiom]:
    IDIOMS[cls.name] = cls
    return cls


@idiom
class SpeakerVisible(Idiom):
    """Show whoever speaks: 1 when the line's speaker is not on screen."""

    name = "speaker_visible"

    def line_cost(self, option: Option) -> float:
        return 0.0 if option.speaker and option.speaker in option.visible else 1.0


@idiom
class StartWide(Idiom):
    """Establish the scene: 1 when the first line is not a wide shot."""

    name = "start_wide"

    def line_cost(self, option: Option) -> float:
        return float(option.line == 0 and option.shot != "wide")


@idiom
class AvoidJumpCuts(Idiom):
    """No cut between two takes of the same camera setup (the picture jumps in place)."""

    name = "avoid_jump_cuts"

    def cut_cost(self, before: Option, after: Option) -> float:
        return float(before.setup == after.setup)


@idiom
class Performance(Idiom):
    """Prefer the fast (or slow) performances: the line's tempo rank among its takes."""

    name = "performance"
    options: ClassVar[dict[str, Any]] = {"prefer": "fast"}

    def line_cost(self, option: Option) -> float:
        rank = option.tempo_rank
        return 1.0 - rank if self.settings["prefer"] == "fast" else rank


@idiom
class Emphasize(Idiom):
    """Keep a character on screen, the closer the better: 0 close, 0.5 wider, 1 unseen."""

    name = "emphasize"
    options: ClassVar[dict[str, Any]] = {"character": ""}

    def line_cost(self, option: Option) -> float:
        if self.settings["character"] not in option.visible:
            return 1.0
        return 0.0 if option.shot == "close" else 0.5


@idiom
class Intensify(Idiom):
    """Move in as the scene goes on: shot tightness should follow the line's position."""

    name = "intensify"

    def line_cost(self, option: Option) -> float:
        return abs(SHOT_TIGHTNESS.get(option.shot, 0.0) - option.position)


@idiom
class ShortShots(Idiom):
    """No shot shorter than ``min_s``: 1 - duration / min_s for a shorter one."""

    name = "short_shots"
    options: ClassVar[dict[str, Any]] = {"min_s": 1.5}

    def shot_cost(self, duration_s: float) -> float:
        return max(0.0, 1.0 - duration_s / float(self.settings["min_s"]))


@idiom
class FewerCuts(Idiom):
    """Every cut costs 1: fewer, longer shots."""

    name = "fewer_cuts"

    def cut_cost(self, before: Option, after: Option) -> float:
        return 1.0


def build_idioms(config: dict[str, Any], where: str | Path) -> list[Idiom]:
    """The weighted idioms of a scene file's ``idioms:`` mapping (weight 0 ones dropped)."""
    out = []
    for name, value in config.items():
        if name not in IDIOMS:
            raise TalkeditError(f"{where} idioms.{name}", "is not a known idiom",
                                f"use one of {', '.join(sorted(IDIOMS))}")
        cls = IDIOMS[name]
        settings = dict(value) if isinstance(value, dict) else {"weight": value}
        weight = settings.pop("weight", 1.0)
        unknown = sorted(set(settings) - set(cls.options))
        if unknown:
            raise TalkeditError(f"{where} idioms.{name}.{unknown[0]}", "is not an option of "
                                "the idiom", f"use weight{''.join(', ' + o for o in cls.options)}")
        if not isinstance(weight, int | float) or weight < 0:
            raise TalkeditError(f"{where} idioms.{name}", f"has weight {weight!r}",
                                "give a number >= 0")
        if weight > 0:
            out.append(cls(weight, **settings))
    return out
