"""A user's recording of the new words: read, checked, aligned, and its timings for the plan.

``load_recording`` reads any PCM/float WAV (other rates and stereo are converted to
16 kHz mono, and the conversion is logged), rejects silent and clipped takes, and
aligns it with the align stage's own code (``align_audio``), so a recording that does
not say the words fails with the aligner's reason.

``RecordingTimer`` is what the plan stage calls instead of the synthesizer when an
edit's audio source is a recording: the new words' phones with the durations the
recording gives them, so the face is timed to the voice the viewer will hear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from stages.align import AlignParams, align_audio
from stages.align.audio import RATE, frame_energy_db, open_wav
from stages.align.chunks import speech_level
from stages.align.normalize import SpokenWord
from stages.align.pipeline import DBFS_REF
from stages.audio.config import AUDIO_SPEC_KEY, RECORDING, SPEAKER, AudioSpec, audio_spec
from talkedit.artifacts import EditPaths
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

if TYPE_CHECKING:  # the plan stage imports this module: no import of the plan at load time
    from stages.plan.timing import QueryPhone

log = logging.getLogger(__name__)

CLIP_LEVEL = 0.99  # samples this close to full scale...
CLIP_RUN = 3  # ...this many in a row are clipped
MIN_RECORDING_S = 0.2


@dataclass
class Recording:
    path: Path
    samples: np.ndarray  # float in [-1, 1], 16 kHz mono
    text: str  # what it says
    words: pd.DataFrame  # the WORDS columns (talkedit.artifacts): aligned words
    phones: pd.DataFrame  # the PHONES columns: aligned phones and pauses
    notes: list[str] = field(default_factory=list)  # conversions done on reading
    sample_rate: int = RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def locate(self, words: Sequence[str], start: int = 0) -> int:
        """Where the spoken ``words`` begin among the recording's words, at or after ``start``."""
        said = [str(w) for w in self.words["normalized"]]
        want = list(words)
        for i in range(start, len(said) - len(want) + 1):
            if said[i:i + len(want)] == want:
                return i
        raise TalkeditError(self.path, f"does not say {' '.join(want)!r} (it was aligned as "
                            f"{' '.join(said)!r})", "record the new words, or give the words "
                            "it says as audio: text in the edit spec")


def clipped_share(samples: np.ndarray) -> float:
    """Share of samples in runs of at least CLIP_RUN at (nearly) full scale."""
    hot = np.abs(samples) >= CLIP_LEVEL
    if not hot.any():
        return 0.0
    edges = np.flatnonzero(np.diff(np.r_[0, hot.astype(np.int8), 0]))
    runs = edges[1::2] - edges[::2]
    return float(runs[runs >= CLIP_RUN].sum() / len(samples))


def load_recording(path: Path, text: str, align_params: Mapping[str, Any] | AlignParams | None,
                   max_clipped_share: float = 0.001) -> Recording:
    """Read, check and align a recording of ``text``."""
    path = Path(path)
    with open_wav(path) as (audio, notes):  # converts rate/channels/format, logging each
        samples = audio.read(0, audio.n_samples).astype(np.float64) / 32768.0
    for note in notes:
        log.info("recording %s: %s", path.name, note)
    if len(samples) < MIN_RECORDING_S * RATE:
        raise TalkeditError(path, f"lasts {len(samples) / RATE:.2f} s, too short to hold words",
                            "record the new words again")
    params = AlignParams.from_dict(align_params)
    level = speech_level(frame_energy_db(np.round(samples * 32767).astype(np.int16))) - DBFS_REF
    if level < params.silence_dbfs:
        raise TalkeditError(path, f"is silent (speech level {level:.0f} dBFS, below "
                            f"{params.silence_dbfs:.0f})",
                            "check the microphone and record the new words again")
    share = clipped_share(samples)
    if share > max_clipped_share:
        raise TalkeditError(path, f"is clipped: {share:.2%} of its samples sit at full scale "
                            f"(more than audio.max_clipped_share {max_clipped_share:.2%})",
                            "record again with the input gain lowered")
    try:
        words, phones = align_audio(samples, text, replace(params, on_mismatch="error"))
    except TalkeditError as exc:
        raise TalkeditError(path, f"does not say {text!r}: {exc.problem}",
                            "record exactly these words (or give what it says as audio: text "
                            "in the edit spec)") from exc
    return Recording(path, samples, text, words, phones, list(notes))


def read_audio_spec(edit: str, root: Path | None = None,
                    default_source: str = SPEAKER) -> AudioSpec:
    """The edit spec's ``audio:`` choice (the params default where it has none)."""
    path = EditPaths.of(edit, root).spec
    if not path.is_file():
        raise TalkeditError(path, "edit spec not found", "write it (see data/edits/demo.yaml)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    value = data.get(AUDIO_SPEC_KEY) if isinstance(data, dict) else None
    return audio_spec(value, path, default_source)


class RecordingTimer:
    """An edit's new words, timed by the user's recording of them.

    Built once per edit from the spans' new words (edited spoken-word ranges, in
    order); each span's words are found in the recording in that order.
    """

    def __init__(self, recording: Recording, edited: Sequence[SpokenWord],
                 spans: Sequence[tuple[int, int]]) -> None:
        self.recording = recording
        self.starts: dict[tuple[int, int], int] = {}
        at = 0
        for first, end in spans:
            if end <= first:
                continue
            at = recording.locate([w.text for w in edited[first:end]], at)
            self.starts[(first, end)] = at
            at += end - first

    @classmethod
    def for_edit(cls, edit: str, root: Path | None, edited: Sequence[SpokenWord],
                 spans: Sequence[tuple[int, int]], default_source: str = SPEAKER,
                 align_params: Mapping[str, Any] | AlignParams | None = None,
                 max_clipped_share: float = 0.001) -> RecordingTimer | None:
        """The timer for an edit whose audio source is a recording; None for other sources."""
        spec = read_audio_spec(edit, root, default_source)
        if spec.source != RECORDING or spec.recording is None:
            return None
        text = spec.text or " ".join(w.text for first, end in spans for w in edited[first:end])
        if not text.split():
            return None  # deletions only: nothing to record
        rec = load_recording(spec.recording, text, align_params, max_clipped_share)
        return cls(rec, edited, spans)

    def word_map(self, first: int, end: int) -> dict[int, int]:
        """Edited word position -> the recording's word index, for words [first, end)."""
        start = self.starts[(first, end)]
        return {first + k: start + k for k in range(end - first)}

    def query_phones(self, edited: Sequence[SpokenWord], first: int, end: int) -> list[QueryPhone]:
        """The new words [first, end) as the plan's timed query phones, with the recording's
        durations and the pauses it makes between them."""
        from stages.plan.timing import QueryPhone  # deferred: the plan imports this module

        phones = self.recording.phones.sort_values("start_s").reset_index(drop=True)
        mapping = self.word_map(first, end)
        rec_words = list(mapping.values())
        inside = phones[(phones["word_index"] >= rec_words[0])
                        | (phones["word_index"] < 0)]
        out: list[QueryPhone] = []
        started = False
        for row in inside.itertuples():
            w = int(row.word_index)
            if w > rec_words[-1]:
                break
            d = float(row.end_s - row.start_s)
            if w >= 0:
                started = True
                pos = first + (w - rec_words[0])
                out.append(QueryPhone(str(row.phone), int(row.stress), d, d, pos,
                                      edited[pos].text))
            elif started and row.phone == SILENCE:  # a pause between two of the new words
                out.append(QueryPhone(SILENCE, -1, d, d, -1, ""))
        while out and out[-1].phone == SILENCE:
            out.pop()
        return out
