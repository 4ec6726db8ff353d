"""The quality pipeline's stages (quality/dvc.yaml), and every stage of both pipelines.

Listed here, not in flows/registry.py: every product stage's flow imports the registry
(and dvc.yaml declares it), so a quality stage added or changed there would re-run the
whole product pipeline. The CLI and the DAG test read ``ALL_STAGES``.
"""

from __future__ import annotations

from flows.registry import PAIR, PROJECT, STAGES, StageSpec

QUALITY = "quality/dvc.yaml"

# Edit with truth (stages/pairs/): generated pairs edited and scored against the
# same person really saying the new words (issue 13).
QUALITY_STAGES: tuple[StageSpec, ...] = (
    StageSpec("pairclip", PAIR, "Build an edit-with-truth pair: a generated clip and the same "
              "face and voice saying the edited text, its clip stages and its renderer. Writes "
              "data/pairs/<case>/ (data/raw, data/interim, data/models, truth/, pairs/).",
              "stages.pairs.clip:run_pairclip", pipeline=QUALITY),
    StageSpec("pairedit", PAIR, "Edit a built pair by the normal path and score the new words "
              "against the truth. Writes data/pairs/<case>/ (data/edits, plans, renders, "
              "outputs, scoring/) and data/metrics/pairs/<case>.{json,tsv,edits.json}.",
              "stages.pairs.edit:run_pairedit", pipeline=QUALITY),
    StageSpec("pair-summary", PROJECT, "Pool every scored pair against the targets "
              "(pair_targets:). Writes data/metrics/pair_summary.{json,md}.",
              "stages.pairs.edit:run_pair_summary", pipeline=QUALITY),
)

ALL_STAGES: tuple[StageSpec, ...] = STAGES + QUALITY_STAGES
ALL_BY_NAME = {spec.name: spec for spec in ALL_STAGES}
PIPELINES = tuple(dict.fromkeys(spec.pipeline for spec in ALL_STAGES))  # dvc.yaml first
