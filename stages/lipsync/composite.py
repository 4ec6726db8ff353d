"""lipcomposite: a lip-sync job's video through the edit path's own compositor
(``composite_plan``): watermarked, labelled and signed as an edit's, its manifest naming
the new audio and the lip model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.composite.compose import CompositeParams, composite_plan
from stages.composite.watermark import WatermarkParams
from stages.lipsync.spec import load_job
from talkedit.artifacts import ClipPaths, LipModelPaths, LipsyncPaths


def run_lipcomposite(job: str, root: Path, composite: CompositeParams, watermark: WatermarkParams
                     ) -> dict[str, Any]:
    """Composite the job: data/outputs/<job>.mp4 and its provenance ("lip-synced")."""
    spec = load_job(job, root)
    paths = LipsyncPaths.of(job, root)
    audio = spec.audio_file or (ClipPaths.of(spec.audio_clip, root).audio
                                if spec.audio_clip else None)
    return composite_plan(
        spec.clip, paths.outputs, spec.path, composite, watermark,
        description=f"Lip-synced: the clip's lower face re-synthesized from new speech "
                    f"({spec.audio_label}) by a per-person audio-to-expression model "
                    f"(after Suwajanakorn et al. 2017); background re-timed to the new audio.",
        model_files=(LipModelPaths.of(spec.clip, root).model,),
        ingredients=(("audio", audio),) if audio is not None else (),
        stages=("lipplan", "lipplan"))
