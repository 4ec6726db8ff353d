"""Edit with truth as pipeline stages: generated pairs built, edited and scored; pooled.

Each case listed under ``pair_cases:`` (a case of ``stages.demo.pairs``) lives in a project
root of its own, data/pairs/<case>/, built by two stages:

- ``pairclip@<case>`` (``stages.pairs.clip.run_pairclip``): the clip and its truth clip
  (the same face and voice saying the edited text), the clip stages (extract, align, fit,
  index) and the renderer, trained on the clip's own frames, its last
  ``pair.holdout_share`` held out.
- ``pairedit@<case>`` (``stages.pairs.edit.run_pairedit``): the normal edit path (plan,
  audio, render, composite) on the case's edit, every new segment scored against the
  truth (``stages.evaluate.edit_truth.score_pair``). It writes
  data/metrics/pairs/<case>.json (the case's figures: DVC metrics), <case>.tsv (one row
  per edit: DVC plots) and <case>.edits.json (every score, read by the summary).

Kept apart (clip.py imports nothing of the edit path), a change to the plan, audio or
composite settings or code, or to the render settings, re-runs the edits (seconds a
case) and never retrains a renderer. ``pair-summary``
(``stages.pairs.edit.run_pair_summary``) pools every case scored under
data/metrics/pairs/ and applies issue 13's targets (``pair_targets:``):
data/metrics/pair_summary.json (metrics) and pair_summary.md.

The stages live in quality/dvc.yaml, a pipeline of their own: each case trains a renderer
(12-15 minutes on 2 CPU cores), so ``dvc repro`` (dvc.yaml) leaves them out;
``dvc repro quality/dvc.yaml`` runs them.
"""

