"""audio stage flow: the edited soundtrack on the plan's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.common import stage_flow
from stages.audio import run_audio
from talkedit.params import section


def audio_with_clip_lexicon(edit: str, params: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """A user's recording is aligned with the lexicon the clip was aligned with."""
    return run_audio(edit, params, root, align_params=section("align"))


audio_flow = stage_flow("audio", audio_with_clip_lexicon)
