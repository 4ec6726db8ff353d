"""Montreal Forced Aligner backend: runs the ``mfa`` command and reads its TextGrids.

MFA cannot be installed on the project's machines (its kalpy-kaldi dependency
needs Kaldi from conda-forge, its models come from GitHub), so it is looked up
on PATH at run time. We hand it our own dictionary, so its pronunciations are
the ones the lexicon chose, and read the "words" and "phones" tiers back.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.align.backends import (
    AlignedPhone,
    AlignerBackend,
    AlignmentFailed,
    ChunkAlignment,
    WordSpec,
    register,
)
from stages.align.config import AlignParams
from stages.align.textgrid import Interval, read_textgrid
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE, split_stress

# Labels MFA uses for silence, spoken noise and empty intervals.
_SILENT_LABELS = {"", "sil", "sp", "spn", "<eps>", "<unk>"}
_UTTERANCE = "chunk"


def _tier(tiers: dict[str, list[Interval]], kind: str, source: Path) -> list[Interval]:
    # Single-speaker output names tiers "words"/"phones"; multi-speaker "<speaker> - words".
    for name, intervals in tiers.items():
        if name == kind or name.endswith(f" - {kind}"):
            return intervals
    raise TalkeditError(source, f"has no {kind!r} tier (tiers: {sorted(tiers)})",
                        "check that it was written by Montreal Forced Aligner")


def textgrid_to_chunk(tiers: dict[str, list[Interval]], words: Sequence[WordSpec],
                      source: Path, duration_s: float) -> ChunkAlignment:
    """MFA's word and phone tiers -> our phones, matched to ``words`` in order."""
    spoken = [iv for iv in _tier(tiers, "words", source) if iv.text.lower() not in _SILENT_LABELS]
    if len(spoken) != len(words):
        raise AlignmentFailed(f"MFA aligned {len(spoken)} of {len(words)} words")
    phones: list[AlignedPhone] = []
    per_word: list[list[str]] = [[] for _ in words]
    k = 0
    for iv in _tier(tiers, "phones", source):
        label = iv.text.strip()
        if label.lower() in _SILENT_LABELS:
            if phones and phones[-1].phone == SILENCE:
                phones[-1].end_s = iv.end_s
            else:
                phones.append(AlignedPhone(-1, SILENCE, iv.start_s, iv.end_s))
            continue
        mid = (iv.start_s + iv.end_s) / 2
        while k < len(spoken) - 1 and mid >= spoken[k].end_s:
            k += 1
        phone = split_stress(label.upper())[0]
        per_word[k].append(phone)
        phones.append(AlignedPhone(k, phone, iv.start_s, iv.end_s))
    if phones and phones[-1].end_s < duration_s:
        if phones[-1].phone == SILENCE:
            phones[-1].end_s = duration_s
        else:
            phones.append(AlignedPhone(-1, SILENCE, phones[-1].end_s, duration_s))
    # Which of the allowed pronunciations MFA used: the one whose phones it emitted.
    variants = []
    for word, used in zip(words, per_word, strict=True):
        plain = [p.plain for p in word.prons]
        variants.append(plain.index(" ".join(used)) if " ".join(used) in plain else 0)
    return ChunkAlignment(phones, variants)


@register
class MfaBackend(AlignerBackend):
    name = "mfa"
    parallel = False  # mfa runs its own jobs; one subprocess at a time

    def __init__(self, params: AlignParams) -> None:
        super().__init__(params)
        exe = shutil.which(params.mfa_command)
        if exe is None:
            raise TalkeditError(
                f"align.backend 'mfa' (command {params.mfa_command!r})", "is not on PATH",
                "install Montreal Forced Aligner (conda install -c conda-forge "
                "montreal-forced-aligner; mfa model download acoustic english_us_arpa) or set "
                "align.backend: pocketsphinx in params.yaml")
        self.exe = exe

    def command(self, corpus: Path, dictionary: Path, out: Path, attempt: int) -> list[str]:
        beam = 10 * 4 ** attempt  # MFA's default beam is 10, retry_beam 40
        return [self.exe, "align", str(corpus), str(dictionary), self.params.mfa_acoustic_model,
                str(out), "--clean", "--single_speaker", "--output_format", "long_textgrid",
                "--beam", str(beam), "--retry_beam", str(beam * 4)]

    def align_chunk(self, samples: np.ndarray, words: Sequence[WordSpec],
                    attempt: int = 0) -> ChunkAlignment:
        with tempfile.TemporaryDirectory(prefix="talkedit-mfa-") as tmp:
            root = Path(tmp)
            corpus, out = root / "corpus", root / "out"
            corpus.mkdir()
            with wave.open(str(corpus / f"{_UTTERANCE}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
            (corpus / f"{_UTTERANCE}.lab").write_text(" ".join(w.text for w in words) + "\n")
            dictionary = root / "dictionary.txt"
            lines = {f"{w.text}\t{p}" for w in words for p in w.prons}
            dictionary.write_text("\n".join(sorted(lines)) + "\n")
            cmd = self.command(corpus, dictionary, out, attempt)
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            grid = out / f"{_UTTERANCE}.TextGrid"
            if proc.returncode != 0 or not grid.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise AlignmentFailed(f"mfa exited {proc.returncode}: {' | '.join(tail)}")
            return textgrid_to_chunk(read_textgrid(grid), words, grid, len(samples) / 16000)
