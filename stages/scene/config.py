"""The ``dialogue:`` section of params.yaml, read by every scene stage but the render."""

from __future__ import annotations

from dataclasses import dataclass

from talkedit.params import Section, bad_param


@dataclass(frozen=True)
class DialogueParams(Section):
    """How takes are aligned to the script and labelled (stages/scene/)."""

    SECTION = "dialogue"

    said_share: float = 0.8  # a line with at least this share of its words said is "said", else "partial"
    min_match_share: float = 0.3  # fewer of a take's words in the script: a take of another scene
    sample_fps: float = 12.5  # frames a second looked at for faces and mouth motion
    max_faces: int = 2  # faces looked for per frame
    close_face: float = 0.5  # face height / frame height at or above this: close-up
    wide_face: float = 0.35  # below this: wide (between: medium); generated scenes: 0.30 wide, 0.60 close
    min_mouth_std: float = 0.01  # mouth opening (per eye distance) varying less: not speaking
    min_speaker_score: float = 0.2  # mouth/speech correlation below this: the speaker is off screen
    pad_s: float = 0.25  # each cut keeps up to this much of the pause before and after a line

    def check(self, where: str) -> None:
        if not 0 < self.said_share <= 1 or not 0 <= self.min_match_share < 1:
            raise bad_param(where, "said_share", "said_share must lie in (0, 1] and "
                            "min_match_share in [0, 1)", "use 0.8 and 0.3")
        if self.sample_fps <= 0 or self.max_faces < 1:
            raise bad_param(where, "sample_fps", "sample_fps must be > 0 and max_faces >= 1",
                            "use 12.5 and 2")
        if not 0 < self.wide_face < self.close_face < 1:
            raise bad_param(where, "close_face", "needs 0 < wide_face < close_face < 1",
                            "use 0.35 and 0.5")
        if self.pad_s < 0:
            raise bad_param(where, "pad_s", f"is {self.pad_s}: must be >= 0", "use 0.25")
