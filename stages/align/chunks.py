"""Long recordings: cut into chunks at pauses, align each chunk on its own, in parallel.

Planning walks the recording once, in order. For each window (about
``chunk_s`` long, ending in the middle of a pause) a cheap word-level pass
with a grammar that may stop after any word tells how many transcript words
the window holds; the next window starts where this one ended. Each chunk
(audio span + its words) then goes to a worker process for the full
two-pass alignment, refinement and per-phone energy measures, and is
retried with wider beams if it fails. Memory is bounded by the chunk size,
not the recording's length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from stages.align.audio import HOP, RATE, WIN, Audio16k, frame_energy_db
from stages.align.backends import (
    AlignedPhone,
    AlignerBackend,
    AlignmentFailed,
    WordSpec,
    get_backend,
)
from stages.align.backends.sphinx import SphinxDecoder
from stages.align.config import AlignParams
from stages.align.refine import refine_boundaries

log = logging.getLogger(__name__)

FRAME_S = HOP / RATE


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first sample
    stop: int  # one past the last sample
    first_word: int  # index of its first word in the transcript's spoken words
    n_words: int

    @property
    def span(self) -> str:
        return f"{self.start / RATE:.1f}-{self.stop / RATE:.1f} s"


@dataclass
class ChunkResult:
    chunk: Chunk
    phones: list[AlignedPhone] = field(default_factory=list)
    variants: list[int] = field(default_factory=list)
    speech: list[float] = field(default_factory=list)  # per phone: fraction of speech-level frames
    attempts: int = 0
    error: str | None = None  # set when every attempt failed
    fits_until: int | None = None  # then: how many of its words still fit the audio


def speech_level(env: np.ndarray) -> float:
    """The recording's speech level: a high percentile of its frame energies (dB re 1 LSB²)."""
    return float(np.percentile(env, 95)) if len(env) else 0.0


def find_pauses(env: np.ndarray, threshold_db: float, min_frames: int) -> list[tuple[int, int]]:
    """Runs of at least ``min_frames`` frames below ``threshold_db``, as (first, stop) frames."""
    quiet = np.concatenate([[False], env < threshold_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = edges.reshape(-1, 2)
    return [(int(a), int(b)) for a, b in runs if b - a >= min_frames]


def _frame_sample(frame: float) -> int:
    return int(frame * HOP + WIN // 2)


def plan_chunks(audio: Audio16k, env: np.ndarray, words: Sequence[WordSpec],
                params: AlignParams, level_db: float) -> Iterator[Chunk]:
    """Chunks covering the whole recording and every word, in order.

    Chunks end where the text pauses (sentence or clause end) when it has
    punctuation, so an error in placing a cut is a whole clause, which the
    energy checks see, not a single word.
    """
    n_words = len(words)
    if audio.duration_s <= params.max_chunk_s:
        yield Chunk(0, 0, audio.n_samples, 0, n_words)
        return
    # Loud frames (vowels, near the speech level), unlike decaying tails and breaths,
    # tell whether a stretch of audio holds words.
    loud = env >= level_db - _LOUD_DB
    pauses = find_pauses(env, level_db - params.pause_db,
                         max(1, round(params.min_pause_s / FRAME_S)))
    cuts = np.array([_frame_sample((a + b) / 2) for a, b in pauses])
    lengths = np.array([(b - a) * FRAME_S for a, b in pauses])
    # Seconds per phone, from the speech (non-pause) time: predicts how many words fit a window.
    speech_s = max(1.0, audio.duration_s - float(lengths.sum()))
    phones = np.array([len(w.prons[0].phones) for w in words], dtype=float)
    s_per_phone = speech_s / max(1.0, phones.sum())
    t0, w0, index = 0, 0, 0
    while True:
        if audio.n_samples - t0 <= params.max_chunk_s * RATE or w0 >= n_words - 1:
            yield Chunk(index, t0, audio.n_samples, w0, n_words - w0)
            return
        stop = _choose_cut(env, cuts, lengths, t0, params)
        expected = np.cumsum(phones[w0:]) * s_per_phone
        n_pred = int(np.searchsorted(expected, (stop - t0) / RATE)) + 1
        k = _count_words(audio.read(t0, stop), words, w0, n_pred, params,
                         loud[t0 // HOP:stop // HOP], s_per_phone)
        if k is None:
            log.warning("could not place the chunk end at %.1f s by decoding; estimating from "
                        "the speaking rate", stop / RATE)
            k = n_pred
        k = max(1, min(k, n_words - w0))
        if w0 + k >= n_words:
            # The transcript ends here: the rest of the audio joins this last chunk.
            yield Chunk(index, t0, audio.n_samples, w0, n_words - w0)
            return
        yield Chunk(index, t0, stop, w0, k)
        t0, w0, index = stop, w0 + k, index + 1


def _choose_cut(env: np.ndarray, cuts: np.ndarray, lengths: np.ndarray, t0: int,
                params: AlignParams) -> int:
    """The end of the window starting at ``t0``: the middle of a good pause near chunk_s."""
    target = t0 + params.chunk_s * RATE
    lo, hi = t0 + 0.5 * params.chunk_s * RATE, t0 + params.max_chunk_s * RATE
    ok = (cuts > lo) & (cuts < hi)
    if ok.any():
        # Longer pauses are likelier sentence ends; stay near the target length.
        score = lengths[ok] - np.abs(cuts[ok] - target) / (params.chunk_s * RATE)
        return int(cuts[ok][np.argmax(score)])
    # No pause at all (music, noise, run-on speech): cut at the quietest 10 ms.
    a, b = int((target - WIN // 2) // HOP), int((hi - WIN // 2) // HOP)
    return _frame_sample(a + int(np.argmin(env[a:b]))) if b > a else int(hi)


_INSERT_PAUSE_S = 0.1  # a quiet stretch this long at a word boundary is a pause of its own
_LOUD_DB = 12.0  # frames within this of the speech level are loud (vowels)
_MAX_LOUD_LEFT_S = 0.1  # this much loud audio after the last counted word: words were left out


def _count_words(window: np.ndarray, words: Sequence[WordSpec], w0: int, n_pred: int,
                 params: AlignParams, loud: np.ndarray, s_per_phone: float) -> int | None:
    """How many words from ``w0`` the window holds.

    The grammar may stop at a clause end (or after any word when the text has
    none), and the silence model is cheap: the decoder can end early and call
    the rest "silence", or squeeze words into the final pause. Both are
    checked against the energy: loud audio left after the last word means
    count more; a last word with nothing loud under it means count fewer.
    """
    n_offer = min(len(words) - w0, math.ceil(n_pred * 1.5) + 10)
    for beam in params.beams:
        min_words = 1
        for _ in range(4):
            stops = [i + 1 for i in range(n_offer) if words[w0 + i].break_after > 0]
            ends = [i for i in stops if i >= min_words] or list(range(min_words, n_offer + 1))
            spans = SphinxDecoder(beam, words[w0:w0 + n_offer]).count_spoken(window, ends)
            if not spans:
                break
            k = len(spans)
            if k == n_offer and w0 + n_offer < len(words):
                n_offer = min(len(words) - w0, n_offer * 2)  # it used all it was offered
                continue
            last_start, last_end = (int(t / FRAME_S) for t in spans[-1])
            left_s = loud[last_end:].sum() * FRAME_S
            if left_s > _MAX_LOUD_LEFT_S and k < n_offer:
                # Ask for at least as many more words as that audio would hold.
                more = np.cumsum([len(w.prons[0].phones) * s_per_phone
                                  for w in words[w0 + k:w0 + n_offer]])
                min_words = k + max(1, int(np.searchsorted(more, left_s)))
                continue
            if k > 1 and not loud[last_start:max(last_start + 1, last_end)].any():
                return k - 1
            return k
    return None


@dataclass
class ChunkJob:
    chunk: Chunk
    samples: np.ndarray  # int16, the chunk's audio
    words: list[WordSpec]
    params: AlignParams
    speech_threshold_db: float
    denoise: bool = False  # a noisy recording: the aligner hears the chunk denoised


def heard(samples: np.ndarray, strength: float) -> np.ndarray:
    """What the aligner is given of a noisy chunk: its steady noise removed by spectral
    gating (noisereduce, noise estimated from the chunk itself), ``strength`` of it.
    Under white noise at 10 dB the phone boundary error drops from 25.5 to 19.7 ms on the
    stress clip (benchmarks/stress.py); the energy checks still read the samples as
    recorded (their thresholds come from its levels)."""
    import noisereduce  # deferred: only noisy recordings need it

    cleaned = noisereduce.reduce_noise(y=samples.astype(np.float32), sr=RATE, stationary=True,
                                       prop_decrease=strength, n_jobs=1)
    return np.clip(np.round(cleaned), -32768, 32767).astype(np.int16)


@lru_cache(maxsize=4)
def _backend(params: AlignParams) -> AlignerBackend:
    return get_backend(params)


def align_job(job: ChunkJob) -> ChunkResult:
    """Align one chunk (in a worker process or in line): retries, refinement, energy measures."""
    backend = _backend(job.params)
    result = ChunkResult(job.chunk)
    samples = heard(job.samples, job.params.denoise) if job.denoise else job.samples
    for attempt in range(backend.attempts):
        result.attempts = attempt + 1
        try:
            aligned = backend.align_chunk(samples, job.words, attempt)
            break
        except AlignmentFailed as exc:
            result.error = str(exc)
            log.info("chunk %d (%s) failed on attempt %d: %s", job.chunk.index, job.chunk.span,
                     attempt + 1, exc)
    else:
        # Say where it goes wrong: the longest prefix of the words that the audio can hold.
        n = len(job.words)
        spans = SphinxDecoder(job.params.beams[-1], job.words).count_spoken(samples,
                                                                           range(1, n + 1))
        result.fits_until = len(spans)
        return result
    result.error = None
    if job.params.refine:
        aligned.phones = refine_boundaries(aligned.phones, samples,
                                           job.params.refine_window_ms / 1000,
                                           job.speech_threshold_db, _INSERT_PAUSE_S)
    result.phones, result.variants = aligned.phones, aligned.variants
    speaking = frame_energy_db(job.samples) >= job.speech_threshold_db
    result.speech = [_fraction(speaking, ph.start_s, ph.end_s) for ph in aligned.phones]
    return result


def _fraction(flags: np.ndarray, start_s: float, end_s: float) -> float:
    """Mean of per-frame ``flags`` over the frames whose centres lie in [start_s, end_s]."""
    centre = WIN / 2 / RATE
    a = max(0, math.ceil((start_s - centre) / FRAME_S))
    b = min(len(flags), max(a + 1, math.floor((end_s - centre) / FRAME_S) + 1))
    return float(flags[a:b].mean()) if b > a else 0.0
