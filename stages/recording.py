"""A user's recording of the new words: read, checked, aligned once, shared by plan and audio.

``load_recording`` reads any PCM/float WAV (other rates and stereo are converted to
16 kHz mono, and the conversion is logged), rejects silent and clipped takes, and
aligns it with the align stage's own code (``align_audio``), so a recording that does
not say the words fails with the aligner's reason. The plan stage does this once and
writes the result (``Recording.write``: data/plans/<edit>/recording/); the audio stage
reads it back (``Recording.read``) instead of aligning it again.

``RecordingTimer`` maps the edit's new words onto the recording's words: the plan
times the face by it, the audio stage cuts the new words' sound by it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from stages.align import AlignParams, align_audio
from stages.align.audio import RATE, frame_energy_db, open_wav
from stages.align.chunks import speech_level
from stages.align.normalize import SpokenWord
from stages.align.pipeline import DBFS_REF
from talkedit.artifacts import PHONES, WORDS, EditPaths, read_parquet, write_parquet
from talkedit.atomic import atomic_path, write_json
from talkedit.edits import RECORDING, AudioChoice
from talkedit.errors import TalkeditError

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

    def write(self, paths: EditPaths) -> None:
        """The aligned recording as artifacts (16 kHz WAV, words, phones) for the audio stage."""
        import wave

        with atomic_path(paths.recording_audio) as tmp, wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            pcm = np.round(np.clip(self.samples, -1, 1) * 32767).astype("<i2")
            wav.writeframes(pcm.tobytes())
        write_parquet(self.words, WORDS, paths.recording_words)
        write_parquet(self.phones, PHONES, paths.recording_phones)
        write_json(paths.recording_meta, {"file": self.path.name, "text": self.text,
                                          "notes": list(self.notes)})

    @classmethod
    def read(cls, paths: EditPaths, text: str) -> Recording:
        """The recording the plan stage aligned (``write``)."""
        hint = f"plan@{paths.edit}"
        if not paths.recording_audio.is_file():
            raise TalkeditError(paths.recording_audio, "not found", f"run {hint} first (dvc repro)")
        with open_wav(paths.recording_audio) as (audio, _):
            samples = audio.read(0, audio.n_samples).astype(np.float64) / 32768.0
        meta = json.loads(paths.recording_meta.read_text())
        return cls(paths.recording_audio, samples, text,
                   read_parquet(paths.recording_words, WORDS, stage_hint=hint),
                   read_parquet(paths.recording_phones, PHONES, stage_hint=hint),
                   list(meta["notes"]))

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


def load_recording(path: Path, text: str, align_params: AlignParams,
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
    params = align_params
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



    def word_map(self, first: int, end: int) -> dict[int, int]:
        """Edited word position -> the recording's word index, for words [first, end)."""
        start = self.starts[(first, end)]
        return {first + k: start + k for k in range(end - first)}


def recorded_text(choice: AudioChoice, edited: Sequence[SpokenWord],
                  spans: Sequence[tuple[int, int]]) -> str:
    """What the recording says: the spec's ``audio: text``, else the edit's new words."""
    if choice.source != RECORDING:
        return ""
    return choice.text or " ".join(w.text for first, end in spans for w in edited[first:end])
