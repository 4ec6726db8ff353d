"""The align stage end to end: words -> chunks -> aligned phones -> checked tables."""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stages.align.audio import Audio16k, envelope, high_band_db
from stages.align.backends import AlignedPhone, WordSpec, get_backend
from stages.align.chunks import ChunkJob, ChunkResult, align_job, plan_chunks, speech_level
from stages.align.config import AlignParams
from stages.align.fillers import filler_spans
from stages.align.lexicon import Pron, pronunciations
from stages.align.normalize import SpokenWord, normalize_text
from stages.align.scoring import FIT, UNTRANSCRIBED, Assessment, assess
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE, VOWELS
from talkedit.progress import bar

log = logging.getLogger(__name__)

DBFS_REF = 20 * np.log10(32768.0)  # dB re 1 LSB² of a full-scale int16 signal


@dataclass
class Alignment:
    words: pd.DataFrame  # the WORDS columns
    phones: pd.DataFrame  # the PHONES columns
    mismatches: list[dict] = field(default_factory=list)  # first issues, in time order
    snr_db: float = float("inf")  # speech level over the noise floor (see noise_floor)
    n_chunks: int = 0
    retried_chunks: int = 0
    failed_chunks: int = 0
    worst_span: float = float("nan")  # the acoustic-fit check's highest run (span_z: mismatch)
    span_bar: float = float("nan")  # the run badness over which it is a mismatch (span_threshold)
    # per filler in the transcript (stages/align/fillers.py): (first word, stop word, its
    # phones' mean length over the recording's median; under align.filler_min_share: not said)
    fillers: list[tuple[int, int, float]] = field(default_factory=list)


def prepare_words(text: str, params: AlignParams,
                  source: str = "transcript") -> tuple[list[SpokenWord], list[WordSpec]]:
    """Spoken words of ``text`` and the pronunciations each may be aligned with."""
    spoken = normalize_text(text, source)
    if not spoken:
        raise TalkeditError(source, "has no words to align (it is empty or only punctuation)",
                            "write what is said in the recording into it")
    cache: dict[str, tuple[Pron, ...]] = {}
    specs = []
    for w in spoken:
        if w.text not in cache:
            try:
                cache[w.text] = tuple(pronunciations(w.text, params.user_lexicon,
                                                     params.g2p_voice))
            except TalkeditError as exc:
                raise TalkeditError(f"{source}: {exc.what} (from {w.written!r})", exc.problem,
                                    exc.fix) from exc
        specs.append(WordSpec(w.text, cache[w.text], w.break_after))
    return spoken, specs


def noise_floor(env: np.ndarray) -> float:
    """The noise floor (dB, as ``env``): the 2nd percentile of the 10 ms frame energies.

    Below any speech sound even in a recording without a pause (stop closures lie
    30-40 dB under the speech level), and about the noise level when noise fills it.
    """
    return float(np.percentile(env, 2)) if len(env) else 0.0


def _check_audio(env: np.ndarray, audio: Audio16k, specs: Sequence[WordSpec],
                 params: AlignParams, name: str) -> float:
    level = speech_level(env)
    if level - DBFS_REF < params.silence_dbfs:
        raise TalkeditError(
            name, f"is silent (speech level {level - DBFS_REF:.0f} dBFS, below "
                  f"align.silence_dbfs {params.silence_dbfs:.0f})",
            "check that the video has its speech track and that it is not muted")
    n_phones = sum(len(s.prons[0].phones) for s in specs)
    needed = n_phones / params.max_phones_per_s
    if audio.duration_s < needed:
        raise TalkeditError(
            name, f"lasts {audio.duration_s:.1f} s but the transcript's {len(specs)} words "
                  f"({n_phones} phones) need at least {needed:.1f} s of speech",
            "give the transcript of this recording only (it may be for a longer video), or the "
            "full recording")
    return level


def _run_jobs(jobs: Iterator[ChunkJob], n_workers: int) -> Iterator[ChunkResult]:
    """Chunk results in order; planning of later chunks overlaps aligning earlier ones."""
    if n_workers <= 1:
        yield from map(align_job, jobs)
        return
    # spawn, not fork: the parent may hold threads (Prefect, espeak) that fork would copy.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
        pending: deque[Future[ChunkResult]] = deque()
        for job in jobs:
            pending.append(pool.submit(align_job, job))
            while len(pending) > 2 * n_workers:  # bound the audio held in flight
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Stitcher:
    """Chunk results, in order, joined into one phone sequence on the recording's timeline."""

    COLUMNS = ("word", "phone", "start", "end", "score", "speech", "failed")

    def __init__(self, specs: Sequence[WordSpec], params: AlignParams, audio_name: str) -> None:
        self.specs, self.params, self.audio_name = specs, params, audio_name
        self.cols: dict[str, list] = {k: [] for k in self.COLUMNS}
        self.variants = np.zeros(len(specs), dtype=int)
        self.n_chunks = self.retried = self.failed = 0

    def add(self, res: ChunkResult) -> None:
        chunk = res.chunk
        self.n_chunks += 1
        self.retried += res.attempts > 1
        phones, speech = res.phones, res.speech
        if res.error is not None:
            self.failed += 1
            phones = self._failed(res)
            speech = [1.0] * len(phones)
        else:
            self.variants[chunk.first_word:chunk.first_word + chunk.n_words] = res.variants
        offset = chunk.start / 16000
        c = self.cols
        for ph, sp in zip(phones, speech, strict=True):
            word = chunk.first_word + ph.word_pos if ph.word_pos >= 0 else -1
            if word < 0 and c["word"] and c["word"][-1] < 0:  # a pause across a chunk cut
                before, after = c["end"][-1] - c["start"][-1], ph.end_s - ph.start_s
                c["speech"][-1] = (c["speech"][-1] * before + sp * after) / max(1e-9,
                                                                                before + after)
                c["end"][-1] = offset + ph.end_s
                continue
            for key, value in zip(self.COLUMNS, (word, ph.phone, offset + ph.start_s,
                                                 offset + ph.end_s, ph.score, sp,
                                                 res.error is not None), strict=True):
                c[key].append(value)

    def _failed(self, res: ChunkResult) -> list[AlignedPhone]:
        """A chunk no attempt could align: an error, or (mark) its phones spread evenly."""
        chunk = res.chunk
        words = self.specs[chunk.first_word:chunk.first_word + chunk.n_words]
        if self.params.on_mismatch == "error":
            k = min(res.fits_until or 0, len(words) - 1)
            near = " ".join(w.text for w in words[max(0, k - 1):k + 3])
            raise TalkeditError(
                self.audio_name,
                f"does not match its transcript at {chunk.span}: the audio stops following the "
                f"text around {near!r} (word {chunk.first_word + k + 1} of {len(self.specs)}); "
                f"the aligner failed even with the widest beam ({res.error})",
                "check the transcript against the audio there, or set align.on_mismatch: mark "
                "to keep going with those words marked low-confidence")
        phones = [(i, p) for i, s in enumerate(words) for p, _ in s.prons[0].pairs()]
        step = (chunk.stop - chunk.start) / 16000 / max(1, len(phones))
        return [AlignedPhone(i, p, k * step, (k + 1) * step) for k, (i, p) in enumerate(phones)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.cols.items()}


def align_recording(audio: Audio16k, spoken: Sequence[SpokenWord], specs: Sequence[WordSpec],
                    params: AlignParams, audio_name: str = "audio") -> Alignment:
    """Align the words to the recording; check the result; build the two tables."""
    backend = get_backend(params)  # fails early, with a clear message, if it is unavailable
    env = envelope(audio)
    level = _check_audio(env, audio, specs, params, audio_name)
    floor = noise_floor(env)
    # In a noisy room the noise alone can lie within pause_db of the speech: then frames
    # near the noise floor are the pauses, or the noise would count as untranscribed speech.
    threshold = max(level - params.pause_db, floor + params.noise_margin_db)
    noisy = level - floor < params.noisy_snr_db

    def jobs() -> Iterator[ChunkJob]:
        for chunk in plan_chunks(audio, env, specs, params, level):
            words = list(specs[chunk.first_word:chunk.first_word + chunk.n_words])
            yield ChunkJob(chunk, audio.read(chunk.start, chunk.stop), words, params, threshold,
                           denoise=noisy and params.denoise > 0)

    # Short recordings stay in one process: spawned workers re-import the main program
    # (a Prefect flow: a second or two each) before they do any work.
    parallel = backend.parallel and audio.duration_s >= params.parallel_min_s
    stitcher = _Stitcher(specs, params, audio_name)
    with bar(len(specs), f"align {audio_name}", unit="word") as shown:
        for res in _run_jobs(jobs(), params.n_workers if parallel else 1):
            stitcher.add(res)
            shown.update(res.chunk.n_words)

    arr = stitcher.arrays()
    fillers = filler_spans([s.text for s in specs])
    verdict = assess(arr["word"].astype(int), arr["phone"].astype(str),
                     arr["start"].astype(float), arr["end"].astype(float), arr["score"].astype(float),
                     arr["speech"].astype(float), arr["failed"].astype(bool), len(specs), params,
                     fillers)
    words, phones = _tables(spoken, specs, stitcher.variants, arr, verdict)
    result = Alignment(words, phones, _mismatches(words, phones), level - floor,
                       stitcher.n_chunks, stitcher.retried, stitcher.failed, verdict.worst_span,
                       verdict.span_bar,
                       [(a, b, share) for (a, b), share in zip(fillers, verdict.filler_share,
                                                               strict=True)])
    noisy = level - floor < params.noisy_snr_db
    if noisy:
        log.warning("%s: noisy recording, speech %.0f dB over the noise floor (align.noisy_snr_"
                    "db %.0f): timings are less certain; %d words marked low-confidence",
                    audio_name, level - floor, params.noisy_snr_db,
                    int(words["low_confidence"].sum()))
    # Noise masks quiet phones (nasals, closures) and a telephone band removes fricatives'
    # sound: there a poor acoustic fit marks its words low-confidence but does not by itself
    # refuse the transcript (the acoustic model and the fit check know full-band audio).
    band_db = high_band_db(audio) if result.mismatches else 0.0
    degraded = noisy or band_db < params.narrowband_db
    if band_db < params.narrowband_db:
        log.warning("%s: narrowband recording (%.0f dB of its power over 4.2 kHz, align."
                    "narrowband_db %.0f): words that fit poorly are marked, not refused",
                    audio_name, band_db, params.narrowband_db)
    refusing = [m for m in result.mismatches if not (degraded and m["issue"] == FIT)]
    if refusing and params.on_mismatch == "error":
        shown = "; ".join(_describe(m) for m in refusing[:3])
        more = len(refusing) - 3
        # Music or a noisy room under the speech is heard as speech in the pauses: the
        # transcript may be right, and the fix is then the recording, not the words.
        background = (f" (the recording has sound under its speech, {level - floor:.0f} dB "
                      "down: music or noise in a pause is heard as speech)"
                      if level - floor < params.background_db
                      and any(m["issue"] == UNTRANSCRIBED for m in refusing)
                      else "")
        raise TalkeditError(
            audio_name, f"does not match its transcript: {shown}"
                        + (f" and {more} more" if more > 0 else "") + background,
            "correct the transcript there (wrong, missing, extra or reordered words), or set "
            "align.on_mismatch: mark to keep going with those words marked low-confidence"
            + ("; with a correct transcript, give a recording without that sound" if background
               else ""))
    return result


def _tables(spoken: Sequence[SpokenWord], specs: Sequence[WordSpec], variants: np.ndarray,
            arr: dict[str, np.ndarray], verdict: Assessment) -> tuple[pd.DataFrame, pd.DataFrame]:
    word_idx = arr["word"].astype(int)
    n = len(specs)
    prons = [s.prons[min(v, len(s.prons) - 1)] for s, v in zip(specs, variants, strict=True)]
    # Stress comes from the pronunciation used, phone by phone; a backend that changed
    # the phones (it should not) falls back to "vowels unstressed".
    stress = np.full(len(word_idx), -1, dtype=np.int8)
    pos, prev = 0, -1
    for r, w in enumerate(word_idx):
        if w < 0:
            continue
        pos, prev = (pos + 1 if w == prev else 0), w
        pairs = prons[w].pairs()
        phone = arr["phone"][r]
        stress[r] = (pairs[pos][1] if pos < len(pairs) and pairs[pos][0] == phone
                     else 0 if phone in VOWELS else -1)
    speech_rows = word_idx >= 0
    starts = np.full(n, np.nan)
    ends = np.full(n, np.nan)
    np.fmin.at(starts, word_idx[speech_rows], arr["start"][speech_rows])
    np.fmax.at(ends, word_idx[speech_rows], arr["end"][speech_rows])
    words = pd.DataFrame({
        "word_index": np.arange(n, dtype=np.int32),
        "written_index": np.array([w.written_index for w in spoken], dtype=np.int32),
        "word": [w.written for w in spoken],
        "normalized": [w.text for w in spoken],
        "start_s": starts,
        "end_s": ends,
        "score": verdict.word_score.astype(np.float32),
        "pron": [str(p) for p in prons],
        "pron_source": [p.source for p in prons],
        "low_confidence": np.array([bool(x) for x in verdict.word_issue]),
        "issue": verdict.word_issue,
    })
    phones = pd.DataFrame({
        "word_index": word_idx.astype(np.int32),
        "phone": arr["phone"].astype(str),
        "stress": stress,
        "start_s": arr["start"].astype(float),
        "end_s": arr["end"].astype(float),
        "score": verdict.phone_score.astype(np.float32),
        "low_confidence": np.array([bool(x) for x in verdict.phone_issue]),
    })
    return words, phones


def _mismatches(words: pd.DataFrame, phones: pd.DataFrame) -> list[dict]:
    """Runs of flagged words, and pauses holding untranscribed speech, in time order."""
    out: list[dict] = []
    flagged = words[words["low_confidence"]]
    run: list[int] = []
    for i in [*flagged["word_index"].tolist(), None]:
        if run and (i is None or i != run[-1] + 1
                    or words.at[i, "issue"] != words.at[run[0], "issue"]):
            out.append({"word_index": int(run[0]), "time_s": float(words.at[run[0], "start_s"]),
                        "end_s": float(words.at[run[-1], "end_s"]),
                        "words": " ".join(words.loc[run, "normalized"]),
                        "issue": words.at[run[0], "issue"]})
            run = []
        if i is not None:
            run.append(i)
    for row in phones[(phones["word_index"] < 0) & phones["low_confidence"]].itertuples():
        out.append({"word_index": -1, "time_s": float(row.start_s), "end_s": float(row.end_s),
                    "words": "", "issue": UNTRANSCRIBED})
    return sorted(out, key=lambda m: m["time_s"])


def _describe(m: dict) -> str:
    if not m["words"]:
        return f"speech with no transcript words at {m['time_s']:.1f}-{m['end_s']:.1f} s"
    return f"{m['words']!r} at ~{m['time_s']:.1f} s ({m['issue']})"


def speaker_rate(phones: pd.DataFrame) -> pd.DataFrame:
    """Per-phone duration statistics of the confidently aligned phones (pauses as "sil")."""
    ok = phones[~phones["low_confidence"]]
    dur = (ok["end_s"] - ok["start_s"]).rename("dur")
    g = dur.groupby(ok["phone"])
    out = pd.DataFrame({
        "count": g.size().astype(np.int32),
        "mean_s": g.mean(),
        "std_s": g.std(ddof=0),
        "median_s": g.median(),
    }).reset_index(names="phone")
    return out.sort_values("phone", key=lambda s: s == SILENCE).reset_index(drop=True)
