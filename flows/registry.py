"""The pipeline's stages, defined once: the CLI, the flows and the DAG test all read this.

Each stage names its entry function in ``stages/`` as ``"module:function"``. The
function's signature is the stage's contract: ``(item, root, **sections)`` for per-clip
and per-edit stages, ``(root, **sections)`` for project stages, where every section is
a typed ``talkedit.params.Section`` named after its params.yaml section. So the params a
stage reads are its entry's parameters, and dvc.yaml must declare exactly those
(tests/test_dag.py). Entries load on first use, so ``talkedit --help`` and input checks
stay fast (no torch, no mediapipe).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from talkedit.params import Section, section_types

CLIP, EDIT, PROJECT = "clip", "edit", "project"
SCENE = "scene"  # a dialogue scene: data/scenes/<scene>.yaml, listed in params.yaml scenes:
PAIR = "pair"  # an edit-with-truth case of stages/demo/pairs.py (listed under pair_cases:)
JOB = "job"  # a lip-sync job, data/lipsync/<job>/ (listed under lipsync_jobs: in params.yaml),
# or a reenactment job, data/reenact/<job>.yaml (listed under reenact_jobs:)


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str  # clip | edit | scene | job | project: what its argument names
    help: str
    entry: str  # "module:function" in stages/
    # The pipeline file declaring it: dvc.yaml (what `dvc repro` / make demo run), or
    # quality/dvc.yaml (flows/quality.py: the edit-with-truth pairs, 40 minutes of training).
    pipeline: str = "dvc.yaml"

    @property
    def module(self) -> str:
        return self.entry.split(":")[0]

    def entry_function(self) -> Callable[..., dict[str, Any]]:
        module, function = self.entry.split(":")
        return getattr(importlib.import_module(module), function)

    def sections(self) -> dict[str, type[Section]]:
        """The params sections the stage reads (its entry's typed parameters)."""
        return section_types(self.entry_function())


STAGES: tuple[StageSpec, ...] = (
    StageSpec("demo", PROJECT, "Make the synthetic demo clip with exact ground truth.",
              "stages.demo:generate_demo"),
    StageSpec("extract", CLIP, "Decode a clip into its constant-rate frame timeline and 16 kHz "
              "audio. Reads data/raw/<clip>.mp4; writes data/interim/<clip>/frames.parquet, "
              "video.json, audio.wav.", "stages.extract:extract_clip"),
    StageSpec("align", CLIP, "Align the transcript to the audio. Reads data/raw/<clip>.txt and "
              "the clip's audio.wav; writes words.parquet, phones.parquet, speaker_rate.parquet.",
              "stages.align:run_align"),
    StageSpec("fit", CLIP, "Fit the 3D face model per frame. Reads the clip's video; writes "
              "face.parquet, face_model.safetensors, crops/.", "stages.fit:run_fit"),
    StageSpec("index", CLIP, "Index the clip's visemes for the edit search. Reads phones and "
              "words; writes visemes.parquet.", "stages.index:run_index"),
    StageSpec("plan", EDIT, "Plan an edit frame by frame. Reads data/edits/<edit>/; writes "
              "data/plans/<edit>/ (plan, segments, new_phones, summary.md, recording/).",
              "stages.plan:run_plan"),
    StageSpec("audio", EDIT, "Build the edit's soundtrack. Reads the plan and the clip's audio; "
              "writes data/plans/<edit>/audio.wav, audio_units.parquet, audio.json.",
              "stages.audio.stage:run_audio"),
    StageSpec("train", CLIP, "Train the clip's neural face renderer. Reads the fit; writes "
              "data/models/<clip>/.", "stages.render.train:run_train"),
    StageSpec("render", EDIT, "Render the generated face crops of an edit's plan. Writes "
              "data/renders/<edit>/.", "stages.render.render:run_render"),
    StageSpec("composite", EDIT, "Composite, watermark and encode the edited video. Writes "
              "data/outputs/<edit>.mp4 and its provenance.", "stages.composite.compose:run_composite"),
    StageSpec("compare", EDIT, "Make the before/after video: original and edit side by side, "
              "edited spans marked, watermarked and signed like the output. Reads the output "
              "and the clip; writes data/outputs/<edit>.compare.mp4 (+ .compare.json, "
              ".compare.provenance.json).", "stages.composite.compare:run_compare"),
    StageSpec("evaluate", CLIP, "Score held-out sentences re-created through the edit path "
              "against baselines. Writes data/metrics/<clip>/.", "stages.evaluate:run_evaluate"),
    StageSpec("detect", CLIP, "Look for edited mouths in a clip (bilabial closure, audio-visual "
              "offset drift, seams, mouth texture), ignoring watermarks. Reads the clip's video, "
              "phones and face; writes data/detect/<clip>/ (windows, spans, verdict).",
              "stages.detect:run_detect"),
    # Dialogue scenes (Leake et al. 2017): cut a scene from several takes by its script.
    StageSpec("scenedemo", PROJECT, "Make the generated two-character scene's takes with exact "
              "truth. Writes data/scenes/<scenedemo.name>/.", "stages.scene.demo:run_scenedemo"),
    StageSpec("scenealign", SCENE, "Align every take of a scene to its script line by line. "
              "Writes data/interim/scenes/<scene>/lines.parquet, words.parquet.",
              "stages.scene.align:run_scenealign"),
    StageSpec("scenelabel", SCENE, "Label each line of each take: faces, characters, shot size, "
              "speaker, loudness, tempo. Writes labels.parquet.",
              "stages.scene.label:run_scenelabel"),
    StageSpec("scenecut", SCENE, "Choose the cut by the scene's idioms. Writes "
              "data/outputs/scenes/<scene>/cut.parquet, cut.md, cut.otio.",
              "stages.scene.cut:run_scenecut"),
    StageSpec("scenerender", SCENE, "Render the cut scene, watermarked, with its provenance. "
              "Writes data/outputs/scenes/<scene>/<scene>.mp4.", "stages.scene.render:run_scenerender"),
    StageSpec("report", CLIP, "Write the clip's HTML report (alignment, face fit, training, "
              "scores). Reads the clip's artifacts; writes reports/clip-<clip>.html.",
              "stages.report:run_clip_report"),
    StageSpec("report-edit", EDIT, "Write the edit's HTML report (timeline, viseme matches, "
              "joins, audio sources, scores). Reads the edit's and its clip's artifacts; writes "
              "reports/edit-<edit>.html.", "stages.report:run_edit_report"),
    # Audio-driven lip sync (stages/lipsync): a per-clip model, then per-job plan/render/composite.
    StageSpec("lipmodel", CLIP, "Train the clip's audio-to-expression model (LSTM vs temporal "
              "conv net, the better kept) and score it on held-out frames. Writes "
              "data/models/<clip>/lipsync/.", "stages.lipsync.train:run_lipmodel"),
    StageSpec("lipplan", JOB, "Plan a lip-sync job: predict the expressions from its new audio, "
              "re-time the clip's background to it. Reads data/lipsync/<job>/; writes "
              "data/plans/<job>/ (plan, audio.wav, lipsync.parquet, lipsync.json).",
              "stages.lipsync.job:run_lipplan"),
    StageSpec("liprender", JOB, "Render a lip-sync job's faces with the clip's renderer. Writes "
              "data/renders/<job>/.", "stages.lipsync.render:run_liprender"),
    StageSpec("lipcomposite", JOB, "Composite, watermark and sign a lip-sync job's video. Writes "
              "data/outputs/<job>.mp4 and its provenance.", "stages.lipsync.composite:run_lipcomposite"),
    # Clips without speech (params.yaml video_clips:, for reenactment only): no transcript
    # and perhaps no sound, so never aligned; extract, fit and train as for a clip.
    StageSpec("videoextract", CLIP, "Decode a clip without speech (listed under video_clips:) "
              "into its constant-rate frame timeline and 16 kHz audio (silence when it has no "
              "sound); no transcript is read. Writes data/interim/<clip>/frames.parquet, "
              "video.json, audio.wav.", "stages.extract:extract_video_clip"),
    StageSpec("videofit", CLIP, "Fit the 3D face model per frame of a clip without speech "
              "(as fit). Writes face.parquet, face_model.safetensors, crops/.",
              "stages.fit:run_fit"),
    StageSpec("videotrain", CLIP, "Train the neural face renderer of a clip without speech (as "
              "train). Writes data/models/<clip>/.", "stages.render.train:run_train"),
    # Reenactment (stages/reenact, Face2Face): a source clip's face drives a target clip's.
    StageSpec("reenactplan", JOB, "Plan a reenactment job: transfer the source's expressions onto "
              "the target's face model. Reads data/reenact/<job>.yaml and both clips' fits; "
              "writes data/plans/<job>/ (plan, audio.wav, reenact.parquet, reenact.json).",
              "stages.reenact.plan:run_reenact"),
    StageSpec("reenactrender", JOB, "Render a reenactment job's faces with the target's "
              "renderer. Writes data/renders/<job>/.", "stages.reenact.render:run_reenactrender"),
    StageSpec("reenactcomposite", JOB, "Composite, watermark and sign a reenactment job's video. "
              "Writes data/outputs/<job>.mp4 and its provenance.",
              "stages.reenact.composite:run_reenactcomposite"),
)

BY_NAME = {spec.name: spec for spec in STAGES}
