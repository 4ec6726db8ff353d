"""ARPAbet phone set and the espeak-ng IPA -> ARPAbet mapping, in one place.

ARPAbet here is the 39-phone CMU set without stress digits; pauses are "sil".
espeak-ng reports phonemes in IPA (with stress marks and length marks); an IPA
event can stand for two ARPAbet phones (r-coloured vowels such as "ɑːɹ").
"""

from __future__ import annotations

import difflib

import numpy as np

SILENCE = "sil"

VOWELS = frozenset(
    ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
)
CONSONANTS = frozenset(
    ["B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH"]
)
ARPABET = VOWELS | CONSONANTS

# Longest match first: multi-character IPA units are listed before their parts.
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # r-coloured vowels and diphthongs (espeak often emits them as one event)
    "ɑːɹ": ("AA", "R"), "ɔːɹ": ("AO", "R"), "oːɹ": ("AO", "R"), "ɛɹ": ("EH", "R"),
    "ɪɹ": ("IH", "R"), "ʊɹ": ("UH", "R"), "aɪɚ": ("AY", "ER"), "aɪə": ("AY", "AH"),
    "aʊɚ": ("AW", "ER"), "iə": ("IY", "AH"),
    "aɪ": ("AY",), "aʊ": ("AW",), "eɪ": ("EY",), "oʊ": ("OW",), "əʊ": ("OW",),
    "ɔɪ": ("OY",), "tʃ": ("CH",), "dʒ": ("JH",),
    "ɜː": ("ER",), "ɝ": ("ER",), "ɚ": ("ER",), "ɜ": ("ER",),
    "ɑː": ("AA",), "ɑ": ("AA",), "ɒ": ("AA",), "a": ("AE",), "æ": ("AE",),
    "ʌ": ("AH",), "ə": ("AH",), "ɐ": ("AH",), "ᵻ": ("IH",),
    "ɔː": ("AO",), "ɔ": ("AO",), "oː": ("OW",), "o": ("OW",),
    "ɛ": ("EH",), "e": ("EH",), "ɪ": ("IH",), "iː": ("IY",), "i": ("IY",),
    "ʊ": ("UH",), "uː": ("UW",), "u": ("UW",),
    "n̩": ("AH", "N"), "l̩": ("AH", "L"), "m̩": ("AH", "M"),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "ɡ": ("G",), "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",), "s": ("S",),
    "z": ("Z",), "ʃ": ("SH",), "ʒ": ("ZH",), "h": ("HH",), "m": ("M",), "n": ("N",),
    "ŋ": ("NG",), "l": ("L",), "ɫ": ("L",), "ɹ": ("R",), "r": ("R",), "w": ("W",),
    "j": ("Y",), "ɾ": ("T",), "ʔ": ("T",), "x": ("K",), "ç": ("HH",),
}
_IPA_KEYS = sorted(IPA_TO_ARPABET, key=len, reverse=True)
# Marks that carry no phone of their own.
_IPA_MARKS = {"ˈ": "stress1", "ˌ": "stress2", "ː": None, "-": None, "‿": None, "̃": None,
              "ʲ": None, "ʰ": None, "̩": None, "'": None}


def ipa_to_arpabet(ipa: str) -> list[tuple[str, int]]:
    """Tokenize one espeak IPA string into ARPAbet phones with stress.

    Stress is 1/2 for a vowel after a primary/secondary stress mark, 0 for other
    vowels and -1 for consonants (CMU convention without digits). Unknown
    symbols are skipped rather than guessed.
    """
    out: list[tuple[str, int]] = []
    pending_stress = 0
    i = 0
    while i < len(ipa):
        ch = ipa[i]
        if ch in _IPA_MARKS:
            if _IPA_MARKS[ch] == "stress1":
                pending_stress = 1
            elif _IPA_MARKS[ch] == "stress2":
                pending_stress = 2
            i += 1
            continue
        for key in _IPA_KEYS:
            if ipa.startswith(key, i):
                for phone in IPA_TO_ARPABET[key]:
                    if phone in VOWELS:
                        out.append((phone, pending_stress))
                        pending_stress = 0
                    else:
                        out.append((phone, -1))
                i += len(key)
                break
        else:
            i += 1
    return out


def split_stress(cmu_phone: str) -> tuple[str, int]:
    """'AH0' -> ('AH', 0); 'K' -> ('K', -1)."""
    if cmu_phone and cmu_phone[-1].isdigit():
        return cmu_phone[:-1], int(cmu_phone[-1])
    return cmu_phone, -1


def matched_phone_knots(said: list[tuple[str, float, float]], reference: list[tuple[str, float, float]]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Knots (said s, reference s), increasing, through the phones two readings of the same
    words share, matched in order (pauses skipped): each matched phone's start and end.
    Each item is (ARPAbet phone, start s, end s)."""
    said = [p for p in said if p[0] != SILENCE]
    reference = [p for p in reference if p[0] != SILENCE]
    matcher = difflib.SequenceMatcher(None, [p[0] for p in said], [p[0] for p in reference],
                                      autojunk=False)
    k_said, k_ref = [], []
    for i, j, size in matcher.get_matching_blocks():
        for q in range(size):
            k_said += [said[i + q][1], said[i + q][2]]
            k_ref += [reference[j + q][1], reference[j + q][2]]
    order = np.argsort(k_said, kind="stable")
    return (np.asarray(k_said, np.float64)[order],
            np.maximum.accumulate(np.asarray(k_ref, np.float64)[order]))
