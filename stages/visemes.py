"""The phoneme-to-viseme table, in one place: which ARPAbet phones look alike on the lips.

Grouping: the 14-class ARPAbet viseme map of Lee & Yook (2002), "Audio-to-Visual
Conversion Using Hidden Markov Models" (PRICAI 2002, LNCS 2417, pp. 563-570), as
tabulated by Cappelletta & Harte (2012), "Phoneme-to-viseme mapping for visual speech
recognition" (ICPRAM 2012) and compared by Bear & Harvey (2017). Its consonant classes
follow the lip-reading confusions of Fisher (1968), "Confusions among visually
perceived consonants" (J. Speech Hearing Res. 11:796-804): bilabials p/b/m and
labiodentals f/v each form one class. The source lists "ah" under both AA and AH;
here it is only AH (the map must be a function).

The search also needs how far apart two classes look, so that a near miss (IY for
EH) costs less than a far one (P for AA). That distance is not part of the published
table: it is an L1 distance between coarse articulatory descriptions of each class
(lip closure, rounding, jaw opening) set by hand from standard phonetics, scaled so
the farthest pair is 1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from talkedit.phonemes import ARPABET, SILENCE

# class name -> ARPAbet phones (Lee & Yook 2002); "SIL" holds pauses.
VISEME_CLASSES: dict[str, tuple[str, ...]] = {
    "P": ("B", "P", "M"),
    "T": ("D", "T", "S", "Z", "TH", "DH"),
    "K": ("G", "K", "N", "NG", "L", "Y", "HH"),
    "CH": ("JH", "CH", "SH", "ZH"),
    "F": ("F", "V"),
    "W": ("R", "W"),
    "IY": ("IY", "IH"),
    "EH": ("EH", "EY", "AE"),
    "AA": ("AA", "AW", "AY"),
    "AH": ("AH",),
    "AO": ("AO", "OY", "OW"),
    "UH": ("UH", "UW"),
    "ER": ("ER",),
    "SIL": (SILENCE,),
}
VISEME_NAMES: tuple[str, ...] = tuple(VISEME_CLASSES)  # a class's id is its position here
VISEME_ID: dict[str, int] = {v: k for k, v in enumerate(VISEME_NAMES)}
PHONE_TO_VISEME: dict[str, str] = {p: v for v, phones in VISEME_CLASSES.items() for p in phones}
SIL_ID = VISEME_ID["SIL"]

# (lip closure 0..1, rounding -1 spread .. 1 rounded, jaw opening 0..1) per class: the
# hand-set description behind the mismatch distance (see the module doc).
_FEATURES: dict[str, tuple[float, float, float]] = {
    "P": (1.0, 0.0, 0.0), "F": (0.6, -0.2, 0.1), "T": (0.0, -0.2, 0.2), "K": (0.0, 0.0, 0.3),
    "CH": (0.0, 0.6, 0.2), "W": (0.0, 1.0, 0.2), "IY": (0.0, -0.8, 0.3),
    "EH": (0.0, -0.5, 0.6), "AA": (0.0, 0.0, 1.0), "AH": (0.0, 0.0, 0.7),
    "AO": (0.0, 0.7, 0.7), "UH": (0.0, 1.0, 0.35), "ER": (0.0, 0.5, 0.4),
    "SIL": (0.4, 0.0, 0.05),
}

assert set(PHONE_TO_VISEME) == ARPABET | {SILENCE}, "every ARPAbet phone needs a viseme"
assert set(_FEATURES) == set(VISEME_NAMES)


def viseme_of(phone: str) -> str:
    """The viseme class of an ARPAbet phone (without stress) or "sil"."""
    try:
        return PHONE_TO_VISEME[phone]
    except KeyError:
        raise ValueError(f"{phone!r} is not an ARPAbet phone (without stress) or 'sil'") from None


def viseme_ids(phones: list[str] | np.ndarray) -> np.ndarray:
    """Class ids (int8) of a sequence of phones."""
    return np.fromiter((VISEME_ID[viseme_of(p)] for p in phones), dtype=np.int8,
                       count=len(phones))


@lru_cache(maxsize=1)
def viseme_distance() -> np.ndarray:
    """(n, n) float32 mismatch distance between classes: 0 on the diagonal, 1 at most."""
    f = np.array([_FEATURES[v] for v in VISEME_NAMES], dtype=np.float64)
    weight = np.array([1.0, 0.5, 1.0])  # rounding spans -1..1, so it counts half
    d = (np.abs(f[:, None, :] - f[None, :, :]) * weight).sum(axis=-1)
    out = (d / d.max()).astype(np.float32)
    out.setflags(write=False)
    return out
