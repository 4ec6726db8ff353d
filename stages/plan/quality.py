"""A rough quality estimate of a planned edit, so a poor one says so instead of looking done.

Three things the plan already knows predict a visibly worse result:
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
  the estimate by its ratio to the threshold.
The estimate is their product, 1 = as good as the plan can tell. It is a screen,
not a measurement of the output (evaluate measures that).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quality_estimate(viseme_costs: Sequence[float], max_join_change: float,
                     natural_p99: float, low_confidence_share: float,
                     snr_db: float | None = None, noisy_snr_db: float = 20.0
                     ) -> tuple[float, list[str]]:
    """(estimate in 0..1, the reasons it is below 1). ``snr_db``: the clip's speech over
    its noise floor as align measured it (None: not measured)."""
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
    return exact * joins * aligned * heard, reasons
