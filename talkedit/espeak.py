"""espeak-ng through ctypes: speech with exact per-phoneme timings, and G2P.

The ``espeakng-loader`` wheel bundles libespeak-ng and its data, so this works
offline with no apt package. Synthesis runs with phoneme events on: each
phoneme's start sample is reported by the synthesizer itself, so the timings
are the truth of the audio it returns, not an estimate. Used as the demo
clip's voice, as the G2P fallback for words CMUdict lacks, and as the speech
synthesizer that times query phonemes for edits.
"""

from __future__ import annotations

import _ctypes
import bisect
import ctypes
import os
import re
import threading
from dataclasses import dataclass, field

import espeakng_loader
import numpy as np

from talkedit.phonemes import SILENCE, ipa_to_arpabet

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_EV_END_LIST, _EV_WORD, _EV_END, _EV_MSG_END, _EV_PHONEME = 0, 1, 5, 6, 7
_PUNCT = "\"'.,;:!?()[]{}\u201c\u201d\u2018\u2019"
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass
class SpokenPhone:
    phone: str  # ARPAbet without stress, or "sil"
    stress: int
    start_s: float
    end_s: float
    word_index: int  # index into Synthesis.words, -1 for pauses


@dataclass
class SpokenWord:
    text: str  # the token of the input text, without surrounding punctuation
    char_start: int  # 0-based character offset in the input text
    start_s: float
    end_s: float


@dataclass
class Synthesis:
    samples: np.ndarray  # int16 mono
    sample_rate: int
    words: list[SpokenWord] = field(default_factory=list)
    phones: list[SpokenPhone] = field(default_factory=list)
    n_samples: int | None = None  # set when ``samples`` were not kept (timings only)

    @property
    def duration_s(self) -> float:
        n = len(self.samples) if self.n_samples is None else self.n_samples
        return n / self.sample_rate


class _Engine:
    """One loaded espeak-ng library (it keeps its state in globals: one at a time)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                                   ctypes.c_int]
        data_parent = os.path.dirname(espeakng_loader.get_data_path()).encode()
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise from the espeakng-loader wheel")
        self._chunks: list[bytes] = []
        self._keep_audio, self._n_samples = True, 0
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._cb = _Callback(self._on_audio)  # keep a reference: ctypes would free it
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:  # noqa: ANN001 - ctypes signature
        if n > 0:
            self._n_samples += n
            if self._keep_audio:
                self._chunks.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EV_END_LIST:
            ev = events[i]
            payload = bytes(ev.id.string).rstrip(b"\0") if ev.type == _EV_PHONEME else b""
            self._events.append((ev.type, ev.text_position, ev.length, ev.sample, payload))
            i += 1
        return 0

    def set_voice(self, voice: str, rate_wpm: int, pitch: int, pitch_range: int) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (try en-us, en-gb, en-us+f3)")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)

    def synth(self, text: str, keep_audio: bool = True
              ) -> tuple[bytes, int, list[tuple[int, int, int, int, bytes]]]:
        """The audio (empty unless ``keep_audio``), its length in samples, the events."""
        self._chunks, self._events = [], []
        self._keep_audio, self._n_samples = keep_audio, 0
        # Voice variants (en-us+f3...) add noise from espeak-ng's own generator, seeded from
        # the clock: a fixed seed gives the same samples on every run (plain voices use none).
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
        data = text.encode("utf-8")
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks), self._n_samples, self._events

    def unload(self) -> None:
        self.lib.espeak_Terminate()
        dlclose = getattr(_ctypes, "dlclose", None)  # POSIX; elsewhere the state stays
        if dlclose is not None:
            dlclose(self.lib._handle)


_engine: _Engine | None = None
_engine_lock = threading.Lock()  # held for every call into the library


def _fresh_engine() -> _Engine:
    """espeak-ng as just loaded, with nothing left from earlier calls. Hold _engine_lock.

    The library keeps its waveform generator's state in static variables that
    espeak_Terminate/espeak_Initialize leave as they are, so its output depended on
    what the process had spoken before (measured: a sentence came out 8 samples
    longer, other samples too, after the demo script): a stage's audio and timings
    then depended on the order of its calls (evaluate's second sentence on its
    first). Unloading the library and loading it again resets them (about 1 ms).
    """
    global _engine
    if _engine is not None:
        _engine.unload()
    _engine = _Engine()
    return _engine


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50,
               pitch_range: int = 50, timings_only: bool = False) -> Synthesis:
    """Speak ``text``; return int16 audio and its word and ARPAbet phone timings
    (``timings_only``: no audio kept, ``samples`` empty and ``n_samples`` its length; the
    plan's rate model times 600 words, 4 minutes of audio copied three times).

    Phones tile the audio: each ends where the next begins; the stretches
    espeak marks as pauses (and the lead-in before the first phone) are "sil".
    """
    with _engine_lock:
        eng = _fresh_engine()
        eng.set_voice(voice, rate_wpm, pitch, pitch_range)
        pcm, n_samples, events = eng.synth(text, keep_audio=not timings_only)
        sr = eng.sample_rate
    samples = np.frombuffer(pcm, dtype=np.int16).copy()
    total = n_samples / sr
    # Words are the text's own tokens: espeak emits no word event for some function
    # words ("the" in "from the lab"), but each phoneme event carries the character
    # position of the word it belongs to.
    tokens = [m for m in re.finditer(r"\S+", text) if any(c.isalnum() for c in m.group())]
    token_starts = [m.start() for m in tokens]
    words = [SpokenWord(m.group().strip(_PUNCT), m.start(), 0.0, 0.0) for m in tokens]
    marks: list[tuple[float, str, int]] = []  # (start_s, ipa or "" for pause, word)
    for etype, pos, _length, sample, payload in events:
        if etype == _EV_PHONEME:
            word = bisect.bisect_right(token_starts, pos - 1) - 1 if tokens else -1
            marks.append((min(sample / sr, total), payload.decode("utf-8", "replace"), max(word, 0)))

    phones: list[SpokenPhone] = []
    if marks and marks[0][0] > 0:
        phones.append(SpokenPhone(SILENCE, -1, 0.0, marks[0][0], -1))
    for k, (start, ipa, word) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else total
        if end <= start:
            continue
        units = ipa_to_arpabet(ipa) if ipa else []
        if not units:
            phones.append(SpokenPhone(SILENCE, -1, start, end, -1))
            continue
        # An IPA unit standing for several phones shares its span equally.
        step = (end - start) / len(units)
        for j, (phone, stress) in enumerate(units):
            phones.append(SpokenPhone(phone, stress, start + j * step, start + (j + 1) * step, word))
    phones = _merge_silences(phones)
    _split_merged_words(phones, words, voice)
    for p in phones:
        if p.word_index >= 0:
            w = words[p.word_index]
            if w.end_s == 0.0:
                w.start_s = p.start_s
            w.end_s = p.end_s
    return Synthesis(samples, sr, words, phones, n_samples if timings_only else None)


def _split_merged_words(phones: list[SpokenPhone], words: list[SpokenWord], voice: str) -> None:
    """Give words espeak spoke as one group ("of the") their own phones.

    The group's phones all carry the first word's position; each word's own
    pronunciation length (from espeak's G2P) says where to cut. When the
    lengths disagree with the group, cut in proportion to them.
    """
    voiced = {p.word_index for p in phones if p.word_index >= 0}
    w = 0
    while w < len(words):
        run_end = w + 1
        while run_end < len(words) and run_end not in voiced:
            run_end += 1
        if run_end - w > 1 and w in voiced:
            group = [p for p in phones if p.word_index == w]
            sizes = [max(1, len(phonemize(words[k].text, voice))) for k in range(w, run_end)]
            if sum(sizes) != len(group):
                cuts = np.round(np.cumsum(sizes) / sum(sizes) * len(group)).astype(int)
                sizes = list(np.diff(np.r_[0, cuts]))
            k = 0
            for offset, size in enumerate(sizes):
                for p in group[k:k + size]:
                    p.word_index = w + offset
                k += size
        w = run_end


def _merge_silences(phones: list[SpokenPhone]) -> list[SpokenPhone]:
    merged: list[SpokenPhone] = []
    for p in phones:
        if merged and p.phone == SILENCE and merged[-1].phone == SILENCE:
            merged[-1].end_s = p.end_s
        else:
            merged.append(p)
    return merged


def phonemize(word: str, voice: str = "en-us") -> list[tuple[str, int]]:
    """G2P: espeak-ng's pronunciation of ``word`` as ARPAbet (phone, stress) pairs."""
    with _engine_lock:
        eng = _fresh_engine()
        eng.set_voice(voice, 160, 50, 50)
        buf = ctypes.c_char_p(word.encode("utf-8"))
        out: list[str] = []
        while buf.value:
            chunk = eng.lib.espeak_TextToPhonemes(ctypes.byref(buf), _CHARS_UTF8, 0x02)
            if chunk:
                out.append(chunk.decode("utf-8", "replace"))
    return [u for part in out for u in ipa_to_arpabet(part.replace(" ", ""))]
