"""Reenactment (Face2Face, Thies et al. 2016): drive a target clip's face with a source clip's.

- ``reenact@<job>`` (plan.py): a job (data/reenact/<job>.yaml, spec.py) names a target
  and a source clip, both fitted (fit@<clip>). The source's expressions are transferred
  onto the target's person model through a shared space (transfer.py: per-vertex
  displacement from each person's robust neutral on the common topology, projected into
  the target's expression basis), and written on the edit path's contracts (PLAN and a
  soundtrack under data/plans/<job>/) with the target's own pose and illumination, so
- ``reenactrender@<job>`` / ``reenactcomposite@<job>`` run the target's trained renderer
  (``render_plan``) and the compositor (``composite_plan``: watermark, label, signed
  manifest whose action says reenacted and names both inputs) unchanged.

Mode ``expression`` carries the expressions over; ``portrait`` (after Deep Video
Portraits) the head motion, gaze and blinks too (portrait.py), the target's picture turned
to the new pose by the renderer and the compositor alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from talkedit.params import Section, bad_param


@dataclass(frozen=True)
class ReenactParams(Section):
    """The ``reenact:`` section of params.yaml: reenactment jobs (data/reenact/<job>.yaml)."""

    SECTION = "reenact"

    neutral_share: float = 0.2  # a person's neutral: the median face over this share of their
    # usable frames with the least mouth opening (robust to a few wide or pressed mouths)
    region: str = "lower"  # lower: carry over the lower face only (what the renderer redraws;
    # the upper face keeps the target frame's own shape) | whole: the whole face
    scale_to_target: bool = True  # displacements scaled by the ratio of the two neutral mouths'
    # width (x, z) and nose-to-chin height (y): a small mouth moves less than a large one
    min_target_frames: int = 200  # a target with fewer usable frames is too short to have
    # trained its renderer on (= train.min_train_frames)
    max_extrapolation: float = 3.0  # transferred coefficients are kept within this many of the
    # target's own standard deviations (a shape the target never showed renders badly)
    max_pose_offset_deg: float = 20.0  # portrait mode: head angles (relative to each neutral)
    # beyond the target's own range by more than this are clamped there and the frame flagged

    def check(self, where: str) -> None:
        if self.region not in ("lower", "whole"):
            raise bad_param(where, "region", f"is {self.region!r}", "use lower or whole")
        if not 0 < self.neutral_share <= 1:
            raise bad_param(where, "neutral_share", f"is {self.neutral_share}, not in (0, 1]",
                            "use 0.2")
        if self.min_target_frames < 1:
            raise bad_param(where, "min_target_frames", f"is {self.min_target_frames}", "use 200")
        if self.max_pose_offset_deg < 0:
            raise bad_param(where, "max_pose_offset_deg", f"is {self.max_pose_offset_deg}",
                            "use 20")
        if self.max_extrapolation <= 0:
            raise bad_param(where, "max_extrapolation", f"is {self.max_extrapolation}", "use 3")
