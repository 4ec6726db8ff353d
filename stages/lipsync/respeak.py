"""Training copies of a clip's words in other voices: its transcript re-spoken by espeak-ng.

The person's lip model hears, in training, only the clip's own voice (and its speed-
perturbed copies). Other synthetic voices saying the same training words, with the
clip's fitted expressions re-timed onto each reading through the phones both say
(the clip's aligned phones, espeak-ng's own phone timings), show it what stays the
same across voices: which sounds open the mouth, not how this voice sounds. Only the
training frames' words are re-spoken (never a held-out word), each copy warped toward
the person's voice as new audio is (VTLN, features.choose_warp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from stages.lipsync.features import RATE, FeatureConfig, choose_warp, frame_features
from talkedit.phonemes import matched_phone_knots

EDGE_S = 0.04  # a word counts as inside a frame range when this far from its ends
MIN_WORDS = 3  # fewer words inside a range: no copy of it


def synthesized(text: str, voice: str, rate_wpm: int) -> tuple[np.ndarray, list]:
    """espeak-ng saying ``text``: 16 kHz samples and its phones (ValueError: no such voice)."""
    from talkedit.espeak import synthesize

    syn = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    step = math.gcd(RATE, syn.sample_rate)  # stages.audio.dsp.resample, without its imports
    return (resample_poly(syn.samples / 32768.0, RATE // step, syn.sample_rate // step),
            syn.phones)


@dataclass(frozen=True)
class ClipSpeech:
    """What the clip says and when: transcript tokens, aligned words (WORDS), phones (PHONES)."""

    tokens: list[str]
    words: pd.DataFrame
    phones: pd.DataFrame

    def inside(self, first: int, stop: int, fps: float) -> tuple[str, pd.DataFrame] | None:
        """The text of the words wholly inside frames [first, stop) and their phones."""
        w = self.words
        w = w[(w["start_s"] >= first / fps + EDGE_S) & (w["end_s"] <= stop / fps - EDGE_S)]
        if len(w) < MIN_WORDS:
            return None
        a, b = int(w["written_index"].min()), int(w["written_index"].max())
        spoken = self.phones["word_index"].between(int(w["word_index"].min()),
                                                   int(w["word_index"].max()))
        return " ".join(self.tokens[a:b + 1]), self.phones[spoken]


def respoken(part: slice, speech: ClipSpeech, target: np.ndarray, fps: float,
             cfg: FeatureConfig, voices: tuple[str, ...], rates_wpm: tuple[int, ...],
             reference: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per voice and rate, features of the words inside ``part`` said by that voice, and
    the clip's ``target`` rows re-timed to that reading (its frames between the first and
    last phone both readings share)."""
    said_part = speech.inside(part.start, part.stop, fps)
    if said_part is None:
        return [], []
    text, clip_phones = said_part
    target = target[:part.stop]  # the words lie inside the part: nothing after it is read
    reference_phones = list(zip(clip_phones["phone"], clip_phones["start_s"],
                                clip_phones["end_s"], strict=True))
    rows = np.arange(len(target))
    xs, ys = [], []
    for voice in voices:
        for rate in rates_wpm:
            audio, phones = synthesized(text, voice, rate)
            k_new, k_clip = matched_phone_knots([(p.phone, p.start_s, p.end_s) for p in phones],
                                                reference_phones)
            if len(k_new) < 4:
                continue
            n = int(round(len(audio) / RATE * fps))
            local = np.arange(n) / fps
            inside = (local >= k_new[0]) & (local <= k_new[-1])
            at = np.interp(local[inside], k_new, k_clip) * fps  # clip frame each one shows
            feats = frame_features(audio, n, fps, cfg, choose_warp(audio, cfg, reference))
            xs.append(feats[inside])
            ys.append(np.stack([np.interp(at, rows, column) for column in target.T], axis=1))
    return xs, ys
