"""Hidden-truth check: say a sentence of a clip from the rest of it, and compare with the real one.

The held-out sentence's time (and a margin) is excluded from the unit inventory, so
no unit can come from it; its aligned phones, with their real timing, are the
targets, exactly as a plan's new phones would be. Each source says them and the
result is compared with the clip's own recording of the sentence by mel-cepstral
distortion (``metrics.mcd_db``). On a project's clip: benchmarks/audio_heldout.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.align import normalize_text
from stages.align.normalize import SENTENCE_BREAK
from stages.audio.build import EditInputs, speak
from stages.audio.config import SPEAKER, SYNTHETIC, AudioParams
from stages.audio.dsp import read_clip_audio
from stages.audio.metrics import mcd_db
from stages.audio.units import CLIP, Target
from stages.index import VisemeIndex
from talkedit.artifacts import ClipPaths
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

MARGIN_S = 0.05  # excluded beyond the sentence's ends as well


def sentence_words(transcript: str) -> list[tuple[int, int]]:
    """Spoken-word ranges [first, end) of the transcript's sentences."""
    words = normalize_text(transcript)
    out, first = [], 0
    for k, w in enumerate(words):
        if w.break_after == SENTENCE_BREAK or k == len(words) - 1:
            out.append((first, k + 1))
            first = k + 1
    return out


def heldout_check(clip: str, sentence: int, opts: AudioParams, root: Path,
                  sources: tuple[str, ...] = (SPEAKER, SYNTHETIC)) -> dict[str, Any]:
    """MCD (dB) of each source's rendering of sentence ``sentence`` against the clip's own."""
    paths = ClipPaths.of(clip, root)
    audio = read_clip_audio(paths.audio)
    sr = audio.sample_rate
    index = VisemeIndex.load(clip, root)
    transcript = paths.transcript.read_text(encoding="utf-8")
    ranges = sentence_words(transcript)
    if not 0 <= sentence < len(ranges):
        raise TalkeditError(f"sentence {sentence}", f"is not one of the clip's {len(ranges)}",
                            f"pick 0..{len(ranges) - 1}")
    first, end = ranges[sentence]
    rows = np.flatnonzero((index.word_index >= first) & (index.word_index < end))
    rows = np.arange(rows.min(), rows.max() + 1)  # pauses inside the sentence too
    t0, t1 = float(index.start_s[rows[0]]), float(index.end_s[rows[-1]])
    a, b = int(round(t0 * sr)), int(round(t1 * sr))
    table = index.table.iloc[rows]
    targets = [Target(str(r.phone), int(r.stress), round(r.start_s * sr) - a,
                      round(r.end_s * sr) - a, int(r.word_index), str(r.word))
               for r in table.itertuples()]
    reach = int(round(opts.surround_s * sr))
    around = np.r_[audio.region(max(0, a - reach), a), audio.region(b, min(len(audio), b + reach))]
    truth = audio.region(a, b)
    inp = EditInputs(audio, pd.DataFrame(), pd.DataFrame(), len(audio),
                     normalize_text(transcript), SPEAKER, index,
                     ((t0 - MARGIN_S, t1 + MARGIN_S),))
    result: dict[str, Any] = {
        "clip": clip, "sentence": sentence,
        "text": " ".join(w.text for w in inp.edited[first:end]),
        "duration_s": round(t1 - t0, 3), "phones": sum(t.phone != SILENCE for t in targets),
        "tts_voice": opts.tts_voice,
    }
    for source in sources:
        said = speak(replace(inp, source=source), opts, targets, b - a, a, b, around)
        spoken = [h for h in said.halves if targets[h.target].phone != SILENCE]
        result[source] = {
            "mcd_db": round(mcd_db(truth, said.samples, sr), 3),
            "speaker_share": round(float(np.mean([h.source == CLIP for h in spoken])), 4),
            "fallbacks": len(said.fallbacks),
        }
    return result
