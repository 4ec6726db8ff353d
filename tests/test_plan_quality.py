"""The plan's quality screen: a poor edit says why instead of looking finished."""

from __future__ import annotations

import pytest

from stages.plan import PlanParams
from stages.plan.quality import quality_estimate


def test_a_clean_plan_scores_one() -> None:
    assert quality_estimate([0.0, 0.0, 0.0], 0.5, 0.6, 0.0) == (1.0, [])


def test_each_weakness_lowers_the_estimate_and_is_named() -> None:
    quality, reasons = quality_estimate([0.0, 0.4, 0.0, 0.7], 1.2, 0.6, 0.25)
    # half the pieces approximate, a join twice the clip's p99 change, a quarter of the
    # words low-confidence: 0.5 * 0.5 * 0.75
    assert quality == pytest.approx(0.1875)
    assert len(reasons) == 3 and "50% of the pieces" in reasons[0]
    assert "2.0x" in reasons[1] and "25% of the clip's words" in reasons[2]
    assert quality < PlanParams().min_quality
