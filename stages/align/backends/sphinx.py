"""pocketsphinx 5.1.1 backend: two-pass forced alignment with the wheel's en-us model.

Pass one aligns words with a grammar (FSG) of the transcript, pass two aligns
phones and HMM states inside those word spans (``set_alignment``). Settings
that matter, learnt the hard way with this version:
- ``bestpath`` off: the lattice pass can give a phone fewer frames than its
  HMM has states, and the second pass then fails (upstream PR #500).
- ``beam == wbeam == pbeam``: unequal defaults make the align FSG lose its
  final state ("Final result does not match the grammar", upstream PR #464).
- a fresh decoder per chunk, with the cepstral mean reset, so a chunk's result
  depends on its audio and words only, not on what a worker decoded before.
The decoder's dictionary holds exactly the pronunciations we chose.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence

import numpy as np
import pocketsphinx

from stages.align.backends import (
    AlignedPhone,
    AlignerBackend,
    AlignmentFailed,
    ChunkAlignment,
    WordSpec,
    register,
)
from talkedit.phonemes import SILENCE

_CMN_INIT = "40,3,-1,0,0,0,0,0,0,0,0,0,0"  # the model's default initial cepstral mean
# Prior probability of a pause after a word: where the text has punctuation a pause is
# likely; elsewhere rare. Without it a diphthong before a sentence break can swallow
# the next word ("today. I" aligned as "today I <pause>").
_PAUSE_AT_BREAK, _PAUSE_ELSEWHERE = 0.3, 0.001
_VARIANT = re.compile(r"^(.*)\((\d+)\)$")


class SphinxDecoder:
    """A pocketsphinx decoder whose dictionary holds exactly the given words.

    Built fresh for every chunk (it takes milliseconds: the model is memory-mapped).
    Reusing one would make results depend on history: cross-word triphone
    contexts are derived from every word in the dictionary, so a word added for
    an earlier chunk shifts later alignments by a frame here and there.
    """

    def __init__(self, beam: float, words: Sequence[WordSpec]) -> None:
        fd, seed = tempfile.mkstemp(suffix=".dict")
        with os.fdopen(fd, "w") as f:
            f.write("_seed_ SIL\n")  # the dictionary file cannot be empty
        try:
            # FATAL: failures come back as exceptions and are logged by the pipeline.
            # No automatic fillers: pauses are added per word with their own priors.
            self.decoder = pocketsphinx.Decoder(
                loglevel="FATAL", lm=None, dict=seed, bestpath=False, fsgusefiller=False,
                beam=beam, wbeam=beam, pbeam=beam, lpbeam=beam, lponlybeam=beam)
        finally:
            os.unlink(seed)
        config = self.decoder.config
        self.frame_s = 1.0 / config["frate"]
        # Frame k's window is centred at k*hop + wlen/2; a boundary between frames
        # k-1 and k therefore sits half a hop before that centre.
        self.offset_s = config["wlen"] / 2 - self.frame_s / 2
        self.words = list(words)
        self.names = {w.text for w in self.words}
        prons = {w.text: [p.plain for p in w.prons] for w in self.words}
        entries = [(name if v == 0 else f"{name}({v + 1})", pron)
                   for name in sorted(self.names) for v, pron in enumerate(prons[name])]
        for k, (entry, pron) in enumerate(entries):  # rebuild the decoder's tables once, at the end
            self.decoder.add_word(entry, pron, update=k == len(entries) - 1)

    def time(self, frame: int) -> float:
        return frame * self.frame_s + self.offset_s

    def _decode(self, samples: np.ndarray) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(np.ascontiguousarray(samples, dtype="<i2").tobytes(),
                                 full_utt=False)
        self.decoder.end_utt()

    def _is_word(self, name: str) -> bool:
        return _VARIANT.sub(r"\1", name) in self.names

    def _grammar(self, name: str, ends: Sequence[int] = ()) -> None:
        """Activate a grammar for the words in order, pauses allowed between them.

        ``ends`` lists word counts after which the grammar may stop early (the
        planner's search); without it all words must be said.
        """
        d, n = self.decoder, len(self.words)
        final = n + 1 if ends else n
        transitions = [(i, i + 1, 1.0, w.text) for i, w in enumerate(self.words)]
        transitions += [(i, final, 1.0) for i in sorted(set(ends)) if 1 <= i <= n]
        fsg = d.create_fsg(name, 0, final, transitions)
        for state in range(n + 1):
            edge = state in (0, n) or self.words[state - 1].break_after > 0
            fsg.add_silence("<sil>", state, _PAUSE_AT_BREAK if edge else _PAUSE_ELSEWHERE)
        d.add_fsg(name, fsg)
        d.activate_search(name)

    def align(self, samples: np.ndarray) -> ChunkAlignment:
        d = self.decoder
        try:
            self._grammar("_words")
            d.set_cmn(_CMN_INIT)
            self._decode(samples)
            d.set_alignment()
            self._decode(samples)
            alignment = d.get_alignment()
        except RuntimeError as exc:
            raise AlignmentFailed(str(exc)) from exc
        if alignment is None:
            raise AlignmentFailed("no alignment produced")
        duration = len(samples) / 16000
        phones: list[AlignedPhone] = []
        variants: list[int] = []
        for entry in alignment:
            is_word = self._is_word(entry.name)
            if is_word:
                m = _VARIANT.match(entry.name)
                variants.append(int(m.group(2)) - 1 if m else 0)
            for ph in entry:
                start = max(0.0, self.time(ph.start))
                end = min(duration, self.time(ph.start + ph.duration))
                score = ph.score / max(1, ph.duration)
                if not is_word or ph.name == "SIL":
                    if phones and phones[-1].phone == SILENCE:  # one row per pause
                        phones[-1].end_s = end
                        continue
                    phones.append(AlignedPhone(-1, SILENCE, start, end, score))
                else:
                    phones.append(AlignedPhone(len(variants) - 1, ph.name, start, end, score))
        if len(variants) != len(self.words):
            raise AlignmentFailed(f"aligned {len(variants)} of {len(self.words)} words")
        if phones:
            phones[0].start_s, phones[-1].end_s = 0.0, duration
        return ChunkAlignment(phones, variants)

    def count_spoken(self, samples: np.ndarray, ends: Sequence[int]) -> list[tuple[float, float]]:
        """Start and end times of the prefix of the words said in ``samples``.

        A word-level pass over a grammar that may stop after any number of
        words listed in ``ends``: the planner uses it to find where a window of
        audio ends in the text. Empty if nothing fits.
        """
        d = self.decoder
        try:
            self._grammar("_plan", ends)
            d.set_cmn(_CMN_INIT)
            self._decode(samples)
            segs = [s for s in d.seg() or () if self._is_word(s.word)]
        except RuntimeError:
            return []
        return [(self.time(s.start_frame), self.time(s.end_frame + 1)) for s in segs]


@register
class PocketsphinxBackend(AlignerBackend):
    name = "pocketsphinx"

    def align_chunk(self, samples: np.ndarray, words: Sequence[WordSpec],
                    attempt: int = 0) -> ChunkAlignment:
        return SphinxDecoder(self.params.beams[attempt], words).align(samples)
