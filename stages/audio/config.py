"""The ``audio:`` section of params.yaml and an edit spec's ``audio:`` key, typed and checked.

An edit spec may choose the source of its new words' sound::

    audio: synthetic                # speaker (default) | synthetic | recording

    audio:                          # or, with a recording of the new words:
      source: recording
      recording: take1.wav          # relative to data/edits/; default data/edits/<edit>.wav
      text: We have a weekly video lab.   # what the recording says; default: the new words

The plan stage reads the same key (``AUDIO_SPEC_KEY``) to time the new words to a
recording instead of to the synthesizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkedit.errors import TalkeditError
from talkedit.params import reject_unknown

SPEAKER, SYNTHETIC, RECORDING = "speaker", "synthetic", "recording"
SOURCES = (SPEAKER, SYNTHETIC, RECORDING)
AUDIO_SPEC_KEY = "audio"


@dataclass(frozen=True)
class UnitWeights:
    """Unit-selection costs (params.yaml audio.units); see stages/audio/units.py."""

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

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> UnitWeights:
        params = dict(params or {})
        reject_unknown("audio.units", params, cls)
        out = cls(**{k: v for k, v in params.items() if v is not None})
        weights = [getattr(out, f.name) for f in dataclasses.fields(cls) if f.name != "candidates"]
        if min(weights) < 0 or out.candidates < 1:
            raise TalkeditError("params.yaml audio.units", "weights must be >= 0 and "
                                "candidates >= 1", "use the defaults in params.yaml")
        return out


@dataclass(frozen=True)
class AudioParams:
    """The ``audio:`` section of params.yaml (see the comments there)."""

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

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | AudioParams | None) -> AudioParams:
        if isinstance(params, AudioParams):
            return params
        params = dict(params or {})
        reject_unknown("audio", params, cls)
        params["units"] = UnitWeights.from_dict(params.get("units"))
        out = cls(**{k: v for k, v in params.items() if v is not None})

        def bad(name: str, why: str) -> TalkeditError:
            return TalkeditError(f"params.yaml audio.{name}", why, "fix the value in params.yaml")

        if out.source not in SOURCES:
            raise bad("source", f"is {out.source!r}, not one of {SOURCES}")
        if min(out.border_ms, out.join_ms, out.smooth_ms) <= 0 or out.surround_s <= 0:
            raise bad("border_ms", "border_ms, join_ms, smooth_ms and surround_s must be > 0")
        if not 0.05 <= out.loudness_block_s <= 3.0:
            raise bad("loudness_block_s", "must lie in 0.05..3 s (BS.1770 momentary: 0.4)")
        if not 0 <= out.max_clipped_share < 1 or out.tts_rate_wpm <= 0:
            raise bad("max_clipped_share", "must be a share in [0, 1); tts_rate_wpm > 0")
        return out


@dataclass(frozen=True)
class AudioSpec:
    """An edit's own audio choice (its spec's ``audio:`` key), merged with the params default."""

    source: str
    recording: Path | None = None  # the user's WAV (source: recording)
    text: str | None = None  # what the recording says; None = the edit's new words


def audio_spec(value: Any, spec_path: Path, default_source: str = SPEAKER) -> AudioSpec:
    """Parse an edit spec's ``audio:`` value (None when the spec has none)."""
    fix = ("write 'audio: speaker', 'audio: synthetic' or 'audio: {source: recording, "
           "recording: take.wav}'")
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"source": value}
    if not isinstance(value, Mapping):
        raise TalkeditError(spec_path, "audio: must be a source name or a mapping", fix)
    unknown = sorted(set(map(str, value)) - {"source", "recording", "text"})
    if unknown:
        raise TalkeditError(spec_path, f"audio: has unknown keys {unknown}",
                            "use only source, recording and text")
    source = value.get("source", default_source if "recording" not in value else RECORDING)
    if source not in SOURCES:
        raise TalkeditError(spec_path, f"audio: source {source!r} is not one of {SOURCES}", fix)
    text = value.get("text")
    if text is not None and (not isinstance(text, str) or not text.split()):
        raise TalkeditError(spec_path, "audio: text must be the words the recording says",
                            "write them as one string, or leave text out")
    recording = None
    if source == RECORDING:
        name = value.get("recording", f"{spec_path.stem}.wav")
        if not isinstance(name, str) or not name:
            raise TalkeditError(spec_path, "audio: recording must be a WAV file name", fix)
        recording = Path(name) if Path(name).is_absolute() else spec_path.parent / name
        if not recording.is_file():
            raise TalkeditError(recording, "the edit's recording was not found",
                                f"record the new words into it, or point audio: recording in "
                                f"{spec_path.name} at your WAV file")
    return AudioSpec(source, recording, text)
