"""The phone-opening prior the co-articulation model reads: other speakers' openings per phone.

A clip's co-articulation model (``articulation.py``) learns each phone's opening target
from the clip alone. A phone it says for two or three frames gets those frames' context as
its target: on the development pairs dev-astronaut's UW came from one reduced "to" (+0.52
in its openness units where its truth is near 0), dev-carphone2's from three frames
(+0.98), dev-lfw4's ER from two (+0.58 against the truth's +0.06). How far a phone opens
the mouth relative to a speaker's own range is largely shared between speakers, so the
targets of other speakers' clips (the generated corpus of ``stages.demo.corpus``) are
pooled into one value per phone, in standard units (``stages.phone_prior``); a clip's
model maps them into its own units by a line fitted on the phones it says, and holds each
phone's target towards it as strongly as ``plan.phone_prior`` frames of its own would
(``articulation.PhonePrior``). A phone the clip says for many frames keeps its own.

The table (``PHONE_OPENINGS``) is shipped with the code, as a model's weights are, with
the corpus clips' own targets and frames beside the pooled values so that the pooling can
be checked (tests/test_phone_prior.py). ``talkedit phone-prior --work DIR`` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stages.plan.articulation import PhonePrior
from stages.plan.search import PHONE_CODES
from talkedit.errors import TalkeditError

PHONE_OPENINGS = Path(__file__).with_name("phone_openings.json")


def load_phone_prior(frames: float, path: Path = PHONE_OPENINGS) -> PhonePrior | None:
    """The shipped table as the co-articulation model's prior, weighing as ``frames`` frames
    of a clip's own phone; None when ``frames`` is 0 (off)."""
    if frames <= 0:
        return None
    if not path.is_file():
        raise TalkeditError(path, "not found (the phone-opening prior)",
                            "rebuild it (talkedit phone-prior --work DIR), or set "
                            "plan.phone_prior: 0 in params.yaml")
    table = json.loads(path.read_text())["openings"]
    values = np.full(len(PHONE_CODES), np.nan)
    for phone, value in table.items():
        values[PHONE_CODES[phone]] = value
    return PhonePrior(values, float(frames))
