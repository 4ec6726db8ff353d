"""align stage: word and phone timings of a clip's speech, from its audio and transcript.

Entry points:
- ``run_align(clip, root, align)``: data/interim/<clip>/audio.wav + data/raw/<clip>.txt ->
  words.parquet, phones.parquet, speaker_rate.parquet; returns a summary.
- ``align_audio(samples_16k, text, params)``: the same on an in-memory recording.
- ``normalize_text(text)`` and ``pronounce(word)``: the text and lexicon front end, shared
  with edit planning so edited text is read the same way.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.align.config import AlignParams  # light; the entry's params type

if TYPE_CHECKING:  # the public names below are loaded on first use (see __getattr__)
    import pandas as pd

    from stages.align.backends import BACKENDS, AlignerBackend, get_backend, register
    from stages.align.lexicon import Pron, pronounce, pronunciations
    from stages.align.normalize import SpokenWord, normalize_text, spoken_text
    from stages.align.pipeline import Alignment, speaker_rate

# Worker processes import this package to unpickle their job; loading pandas and
# pyarrow there would cost each of them ~100 MB and a second for nothing.
_LAZY = {
    "BACKENDS": "backends", "AlignerBackend": "backends", "get_backend": "backends",
    "register": "backends", "Pron": "lexicon", "pronounce": "lexicon",
    "pronunciations": "lexicon", "SpokenWord": "normalize", "normalize_text": "normalize",
    "spoken_text": "normalize", "Alignment": "pipeline", "speaker_rate": "pipeline",
}

__all__ = [
    "BACKENDS", "AlignParams", "Alignment", "AlignerBackend", "Pron", "SpokenWord", "align_audio",
    "get_backend", "normalize_text", "pronounce", "pronunciations", "register", "run_align",
    "speaker_rate", "spoken_text",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"stages.align.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


log = logging.getLogger(__name__)


def align_audio(samples_16k: np.ndarray, text: str,
                params: Mapping[str, Any] | AlignParams | None = None,
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align ``text`` to a 16 kHz mono recording held in memory: (words, phones) tables.

    ``samples_16k`` is int16, or float in [-1, 1]. The tables have the WORDS and
    PHONES columns of talkedit.artifacts. Mismatches raise TalkeditError, or are
    marked low-confidence under ``on_mismatch: mark``.
    """
    from stages.align.audio import ArrayAudio
    from stages.align.pipeline import align_recording, prepare_words

    p = AlignParams.from_dict(params)
    spoken, specs = prepare_words(text, p, "text")
    result = align_recording(ArrayAudio(samples_16k, "samples_16k"), spoken, specs, p,
                             "samples_16k")
    return result.words, result.phones


def run_align(clip: str, root: Path, align: AlignParams) -> dict[str, Any]:
    """Align one clip and write its three artifacts atomically; return a summary for display."""
    from stages.align.audio import open_wav
    from stages.align.pipeline import align_recording, prepare_words, speaker_rate
    from stages.align.voices import other_voices
    from talkedit.artifacts import (
        PHONES,
        SPEAKER_RATE,
        WORDS,
        ClipPaths,
        align_metrics_path,
        write_parquet,
    )
    from talkedit.atomic import write_json
    from talkedit.errors import TalkeditError

    p = align
    paths = ClipPaths.of(clip, root)
    if not paths.transcript.is_file():
        raise TalkeditError(paths.transcript, f"clip {clip!r} has no transcript",
                            "write what is said in the video to this text file")
    text = paths.transcript.read_text(encoding="utf-8", errors="replace")
    spoken, specs = prepare_words(text, p, str(paths.transcript))
    with open_wav(paths.audio) as (audio, notes):  # a converted copy goes to the system temp dir
        result = align_recording(audio, spoken, specs, p, str(paths.audio))
        duration = audio.duration_s
        voices = other_voices(audio, result.words, p.other_voice_z, p.other_voice_words,
                              p.other_voice_window_s)
    if voices:
        log.warning("%s: another voice may be speaking at %s (words whose pitch is not the "
                    "speaker's); the alignment there is of the transcript, not of who spoke",
                    clip, ", ".join(f"{v.start_s:.1f}-{v.end_s:.1f} s" for v in voices))
    rates = speaker_rate(result.phones)
    # Written only after everything succeeded: a failure leaves no new artifact behind.
    write_parquet(result.words, WORDS, paths.words)
    write_parquet(result.phones, PHONES, paths.phones)
    write_parquet(rates, SPEAKER_RATE, paths.speaker_rate)
    words = result.words
    summary = {
        "clip": clip,
        "backend": p.backend,
        "duration_s": round(duration, 3),
        "words": len(words),
        "phones": int((result.phones["word_index"] >= 0).sum()),
        "pauses": int((result.phones["word_index"] < 0).sum()),
        "mean_score": round(float(np.nanmean(words["score"])), 4) if words["score"].notna().any()
        else None,
        "low_confidence_words": int(words["low_confidence"].sum()),
        "snr_db": round(min(result.snr_db, 99.0), 1),
        "noisy": bool(result.snr_db < p.noisy_snr_db),
        "mismatches": result.mismatches[:10],
        # the acoustic-fit check's worst run of phones and the bar it must stay under
        "worst_span": _rounded(result.worst_span),
        "span_bar": _rounded(result.span_bar),
        "pron_sources": {k: int(v) for k, v in words["pron_source"].value_counts().items()},
        "chunks": result.n_chunks,
        "retried_chunks": result.retried_chunks,
        "failed_chunks": result.failed_chunks,
        "audio_notes": notes,
        # runs of words whose pitch is not the speaker's (stages/align/voices.py)
        "other_voice_words": sum(v.words for v in voices),
        "other_voice_ranges": ", ".join(f"{v.start_s:.2f}-{v.end_s:.2f} s" for v in voices),
    }
    write_json(align_metrics_path(paths), align_metrics(words, result.phones, result.snr_db))
    log.info("aligned %s: %d words, %d chunks", clip, len(words), result.n_chunks)
    return summary


def _rounded(value: float) -> float | None:
    """2 decimals; None (JSON null) for NaN (a recording too short to have a run)."""
    return round(float(value), 2) if np.isfinite(value) else None


def align_metrics(words: Any, phones: Any, snr_db: float) -> dict[str, Any]:
    """The alignment's numbers for `dvc metrics` (no time, no path: the same bytes each run);
    the plan reads ``snr_db`` (speech over the noise floor) for its quality estimate."""
    scores = words["score"].to_numpy(dtype=float)
    spoken = phones[phones["word_index"] >= 0]
    return {
        "words": int(len(words)), "phones": int(len(spoken)),
        "pauses": int(len(phones) - len(spoken)),
        "word_score_mean": round(float(np.nanmean(scores)), 4) if len(scores) else None,
        "word_score_p10": round(float(np.nanpercentile(scores, 10)), 4) if len(scores) else None,
        "low_confidence_words": int(words["low_confidence"].sum()),
        "low_confidence_share": round(float(words["low_confidence"].mean()), 4)
        if len(words) else 0.0,
        "snr_db": round(min(snr_db, 99.0), 1),
    }
