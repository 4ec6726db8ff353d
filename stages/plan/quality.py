"""A rough quality estimate of a planned edit, so a poor one says so instead of looking done.

Things the plan already knows that predict a visibly worse result:
- the share of the new phones' pieces whose visemes match exactly (an approximate
  viseme is a wrong mouth shape);
- how the largest expression jump at a join compares with the clip's own 99th
  percentile frame-to-frame change (a larger one is a visible pop);
- how much of the clip's alignment is low-confidence (noise, a wrong transcript):
  the timing every piece rests on is then less certain;
- how noisy the clip's sound is (align's speech-over-noise-floor ratio): below
  align.noisy_snr_db every boundary is less certain, words flagged or not. On the
  stress clip (benchmarks/stress.py: the same picture and renderer, only the sound
  degraded) the edit's mouth-opening r fell from 0.78 to 0.72 with white noise at a
  measured 16 dB, and re-planning with the clean sound's alignment brought it back to
  0.79: the loss is the alignment's. A noisy clip is named in the reasons and scales
  the estimate by its ratio to the threshold;
- how much of the new phone sequence the usable footage rarely shows: the share of the
  new phones the clip says fewer than ``plan.min_phone_examples`` times outside the
  excluded and unusable frames (``rare_phone_share``). The viseme search and the
  co-articulation model both learn a phone from its examples, so an edit asking for
  phones the footage hardly has is drawn from guesses. Measured by re-creating each
  sentence of the demo clip from 6-26 s of its footage (the other sentences excluded in
  turn; plan opening vs the generator's truth; benchmarks/footage.py,
  benchmarks/results/footage.md): this share tracked the plan's r at -0.75 (footage
  seconds +0.74; the estimate's other factors, over this and the check clip, +0.10);
  every plan under r 0.8 had a share >= 0.29, and 4 of 21 above 0.8 did.
  ``plan.max_rare_share`` 0.25 was chosen there; on the stress clip's 12 re-creations
  (not used to choose) it flags 6 of the 7 under 0.8 and 2 of the 5 above. A share at
  or over it scales the estimate by (1 - share) and always says so.
- the self-check (stages/plan/selfcheck.py): ``plan.self_check.spans`` stretches of the
  clip's own speech hidden and re-created by the same planner from the rest, scored
  against the clip's fitted opening (one r over their frames). On the demo's 30
  re-creations (benchmarks/footage.py) its r tracked the plan's r vs truth at +0.71 (no
  room to hide a stretch counted as r 0; +0.65 where there was room), about as well as
  the rare share. Every ``min_r`` in (0.814, 0.837] there warns on 8 of the 9 plans under
  r 0.8 and 3 of the 21 above (the best it does alone; session 8 chose 0.825). With the
  footage screen below, though, it tells nothing more there: every development plan it
  flags at any ``min_r`` up to 0.838 is flagged already, and a least-squares fit of the
  plan's r on log footage, rare share and self-check r weighs the self-check at 0.05 (0.1
  of self-check r moves the predicted r 0.005). Its r is noise around 0.883 (sd 0.019,
  lowest 0.838) on the development plans with >= 16.4 s, whose r vs truth all reached
  0.82. So it stays as a floor for a clip whose planner clearly fails:
  ``plan.self_check.min_r`` 0.80, 4 sd under that mean (the same development verdicts as
  0.825). The 30 s stress clip's reverb 0.8 s row (self-check 0.820, edit r 0.889) was
  known to warn falsely before this was revisited: not a clean check of it. No room to
  hide a stretch (footage under ~8 s) always warned there on a plan under 0.8. A
  self-check under ``min_r`` scales the estimate by r / min_r and always says so; no
  room halves it.
- how much usable footage the pieces are drawn from (``footage_s``: the frames the plan
  may read, after ``exclude_s`` and unusable frames). On the demo's 30 re-creations
  (benchmarks/footage.py, the development set) the plans from 15-17 s of footage ranged
  r 0.82-0.93 vs truth and nothing else the plan sees (rare share, self-check r) told
  which; the edit's rendered opening scores ~0.02 under its plan against the real frames
  (benchmarks/results/render_opening.md, the demo's held-out sentences: 0.027, 0.011), so
  a plan needs r ~0.82 for an edit at 0.8. Every ``min_footage_s`` in (16.28, 16.44] warns
  on all 11 development plans under r 0.82 with the other screens and on 5 of the 19 above
  (16.28 s planned 0.818, 16.44 s 0.83-0.91); ``plan.min_footage_s`` 16.4 is in it. Not used
  to choose: the 18 s stress clip's scored sentence has ~15 s, and every robustness row
  there now warns (benchmarks/results/stress.md: the 7 under r 0.8, noise at 20 dB that
  had no warning among them, and the 2 at 0.83-0.84); the 30 s clip's (~26 s) it leaves be.
  Under it the estimate is scaled by footage / min_footage_s and always says so. It was
  chosen on whole-sentence re-creations (45-55 new phones): a few words need less.
The estimate is their product, 1 = as good as the plan can tell. It is a screen,
not a measurement of the output (evaluate measures that).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from talkedit.phonemes import SILENCE


def quality_estimate(viseme_costs: Sequence[float], max_join_change: float,
                     natural_p99: float, low_confidence_share: float,
                     snr_db: float | None = None, noisy_snr_db: float = 20.0,
                     rare_share: float = 0.0, max_rare_share: float = 1.0,
                     min_examples: int = 0, self_check_r: float | None = None,
                     min_self_check_r: float = -1.0, self_check_room: bool = True,
                     footage_s: float | None = None, min_footage_s: float = 0.0
                     ) -> tuple[float, list[str]]:
    """(estimate in 0..1, the reasons it is below 1). ``snr_db``: the clip's speech over
    its noise floor as align measured it (None: not measured); ``rare_share``: the share
    of the new phones the usable footage has fewer than ``min_examples`` examples of
    (``rare_phone_share``), counted when at least ``max_rare_share``; ``self_check_r``: the
    self-check's r (stages/plan/selfcheck.py; None: not run), counted under
    ``min_self_check_r``; ``self_check_room``: False when it found nothing to hide;
    ``footage_s``: the seconds of usable footage the plan draws from (None: not counted),
    counted under ``min_footage_s``."""
    reasons = []
    exact = float(np.mean([c == 0 for c in viseme_costs])) if len(viseme_costs) else 1.0
    if exact < 1:
        reasons.append(f"{1 - exact:.0%} of the pieces only approximate the visemes")
    joins = min(1.0, natural_p99 / max_join_change) if max_join_change > 0 else 1.0
    if joins < 1:
        reasons.append(f"the largest join changes the face {1 / joins:.1f}x the clip's own "
                       "99th-percentile frame-to-frame change")
    aligned = 1.0 - float(np.clip(low_confidence_share, 0.0, 1.0))
    if aligned < 1:
        reasons.append(f"{1 - aligned:.0%} of the clip's words are aligned with low confidence")
    heard = 1.0
    if snr_db is not None and snr_db < noisy_snr_db:
        heard = float(np.clip(snr_db / noisy_snr_db, 0.0, 1.0))
        reasons.append(f"the clip's sound is noisy (speech {snr_db:.0f} dB over the noise "
                       f"floor, under align.noisy_snr_db {noisy_snr_db:.0f}): every phone "
                       "boundary the new mouth is timed by is less certain")
    covered = 1.0
    if rare_share >= max_rare_share:
        covered = 1.0 - float(np.clip(rare_share, 0.0, 1.0))
        reasons.append(f"{rare_share:.0%} of the new phones occur fewer than {min_examples} "
                       "times in the clip's usable footage (plan.max_rare_share "
                       f"{max_rare_share:.2f}): the new mouth is drawn from too few examples; "
                       "a longer clip of the speaker helps")
    rehearsed = 1.0
    if not self_check_room:
        rehearsed = 0.5
        reasons.append("the usable footage away from the edit has no stretch as long as the "
                       "new words to re-create as a self-check (plan.self_check): too little "
                       "footage; a longer clip of the speaker helps")
    elif self_check_r is not None and self_check_r < min_self_check_r:
        rehearsed = float(np.clip(self_check_r / min_self_check_r, 0.0, 1.0))
        reasons.append(f"re-creating stretches of the clip's own speech from the rest of its "
                       f"footage gives an opening r of {self_check_r:.3f} with the clip's "
                       f"(plan.self_check.min_r {min_self_check_r:.2f}): the new words are "
                       "likely as far off")
    stocked = 1.0
    if footage_s is not None and footage_s < min_footage_s:
        stocked = float(np.clip(footage_s / min_footage_s, 0.0, 1.0))
        reasons.append(f"the edit is drawn from {footage_s:.1f} s of usable footage (under "
                       f"plan.min_footage_s {min_footage_s:.1f}): re-creations from this little "
                       "footage range from good to visibly off and nothing the plan sees tells "
                       "which; a longer clip of the speaker helps")
    return exact * joins * aligned * heard * covered * rehearsed * stocked, reasons


def rare_phone_share(new_phones: Sequence[str], clip_phones: Sequence[str],
                     usable: np.ndarray, min_examples: int) -> float:
    """The share of ``new_phones`` (silences left out) that the clip's phones marked
    ``usable`` say fewer than ``min_examples`` times (0 when no phone is new)."""
    said = [p for p in new_phones if p != SILENCE]
    if not said:
        return 0.0
    names, counts = np.unique(np.asarray(clip_phones)[np.asarray(usable, bool)],
                              return_counts=True)
    examples = dict(zip(names.tolist(), counts.tolist(), strict=True))
    return float(np.mean([examples.get(p, 0) < min_examples for p in said]))
