"""reenactcomposite: a reenactment job's video through the edit path's compositor
(``composite_plan``): watermarked, labelled and signed as an edit's, its manifest's action
saying "Reenacted" and naming both inputs (the target as the source video, the source
clip's video as an ingredient; not the target's transcript, whose words it does not use:
a clip without speech has none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.composite.compose import CompositeParams, composite_plan
from stages.composite.watermark import WatermarkParams
from stages.reenact.repose import portrait_reposer
from stages.reenact.spec import load_reenact
from talkedit.artifacts import ClipPaths, ReenactPaths


def run_reenactcomposite(job: str, root: Path, composite: CompositeParams,
                         watermark: WatermarkParams) -> dict[str, Any]:
    """Composite the job: data/outputs/<job>.mp4 and its provenance ("Reenacted")."""
    spec = load_reenact(job, root)
    paths = ReenactPaths.of(job, root)
    source_video = ClipPaths.of(spec.source, root).video
    reposer = portrait_reposer(spec, paths)
    what = (f"expressions ({spec.mode} transfer after Thies et al. 2016, Face2Face)"
            if reposer is None else f"head motion, expressions, gaze and blinks ({spec.mode} "
            "transfer after Kim et al. 2018, Deep Video Portraits; the head turned by a "
            "picture warp)")
    return composite_plan(
        spec.target, paths.outputs, spec.path, composite, watermark,
        description=f"Reenacted: clip {spec.target}'s face made to follow clip {spec.source}'s "
                    f"{what} and re-synthesized by {spec.target}'s own renderer; the span's "
                    f"sound is {spec.source}'s.",
        ingredients=(("source video", source_video),), stages=("reenact", "reenact"),
        # portrait: the frame turned (and its eyes moved) with the face pasted at the
        # target's own pose, so face and head turn as one picture (no seam between them)
        frame_after=None if reposer is None else reposer.frame,
        with_transcript=False)  # the target's words are not used (it may have none)
