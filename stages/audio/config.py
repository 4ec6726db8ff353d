"""The ``audio:`` section of params.yaml, typed and checked.

An edit spec's own ``audio:`` choice is part of the edit contract (talkedit/edits.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from talkedit.edits import AUDIO_SOURCES, RECORDING, SPEAKER, SYNTHETIC
from talkedit.params import Section, bad_param

__all__ = ["AUDIO_SOURCES", "RECORDING", "SPEAKER", "SYNTHETIC", "AudioParams", "UnitWeights"]


@dataclass(frozen=True)
class UnitWeights(Section):
    """Unit-selection costs (params.yaml audio.units); see stages/audio/units.py."""

    SECTION = "audio.units"

    context: float = 1.0  # a half-phone whose neighbour (on the side it faces) differs
    stress: float = 0.5  # a vowel's stress differs (stressed vs unstressed)
    duration: float = 1.0  # per unit of |log(target duration / unit duration)|
    pitch: float = 0.15  # join: per semitone of pitch jump
    voicing: float = 1.0  # join: voiced against unvoiced
    energy: float = 0.05  # join: per dB of level jump
    spectrum: float = 0.15  # join: per dB of cepstral distance
    boundary: float = 1.0  # a join at a phone boundary (not mid-phone) that the speaker never made
    tts: float = 2.0  # an espeak-ng half, offered only around a diphone the speaker never said
    candidates: int = 40  # speaker units kept per phone (best target cost) before the search

    def check(self, where: str) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < (1 if f.name == "candidates" else 0):
                raise bad_param(where, f.name, "must be >= 0 (candidates >= 1)",
                                "use the defaults in params.yaml")


@dataclass(frozen=True)
class AudioParams(Section):
    """The ``audio:`` section of params.yaml (see the comments there)."""

    SECTION = "audio"

    source: str = SPEAKER
    tts_voice: str = "en-us"
    tts_rate_wpm: int = 150
    context_words: int = 6
    border_ms: float = 8.0
    join_ms: float = 10.0
    smooth_ms: float = 80.0
    surround_s: float = 3.0
    loudness_block_s: float = 0.4
    max_clipped_share: float = 0.001
    units: UnitWeights = field(default_factory=UnitWeights)

    def check(self, where: str) -> None:
        if self.source not in AUDIO_SOURCES:
            raise bad_param(where, "source", f"is {self.source!r}, not one of {AUDIO_SOURCES}")
        for name in ("border_ms", "join_ms", "smooth_ms", "surround_s", "tts_rate_wpm"):
            if getattr(self, name) <= 0:
                raise bad_param(where, name, "must be > 0")
        if not 0.05 <= self.loudness_block_s <= 3.0:
            raise bad_param(where, "loudness_block_s", "must lie in 0.05..3 s (BS.1770 momentary: 0.4)")
        if not 0 <= self.max_clipped_share < 1:
            raise bad_param(where, "max_clipped_share", "must be a share in [0, 1)")
