"""Speaker-independent phonetic features: the phones a pretrained recogniser hears, no transcript.

The lip model learns from some 20 s of one person's voice, so MFCCs alone generalise
poorly to another voice (its formants, rate and timbre are new). A phone recogniser
trained on many speakers hears the same phones in either voice. pocketsphinx's US-English
acoustic model with its phone language model (both ship in its wheel; offline) decodes
phones with times from the audio alone ("allphone" search); each 10 ms step then gets
its phone's viseme class (stages/visemes.py) as a one-hot, smoothed over time (the
recogniser's boundaries are a few steps off, and a smoothed indicator says how near a
class is), and each video frame the value at its time.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from stages.visemes import PHONE_TO_VISEME, VISEME_ID, VISEME_NAMES

RATE = 16000  # pocketsphinx's en-us model expects 16 kHz; so does features.py
STEP_S = 0.01  # pocketsphinx's frame (its segments' start/end are in these)
N_CLASSES = len(VISEME_NAMES)
# The phone language model's weight: heavier than pocketsphinx's default (the phone
# bigrams then keep the decode from splitting vowels into runs of short phones). Frame-level
# viseme-class agreement with the generator's phones on the demo's training share (its
# first 65 %): default 0.41, lw 1.0 0.55, 2.0 0.52, 4.0 0.47. (2.0 was first picked on the
# whole clip, tail included: 0.42 -> 0.53; the training share alone would pick 1.0; session
# 10 measured the lip model with 2.0.) The decode costs ~1.4 CPU s per 20 s of audio (~15x
# real time on one core; ds 2 / topn 2 save ~15 %, losing agreement).
LANGUAGE_WEIGHT = 2.0


def _model_dir() -> str:
    import pocketsphinx

    return os.path.join(os.path.dirname(pocketsphinx.__file__), "model", "en-us")


@lru_cache(maxsize=1)
def _decoder():  # noqa: ANN202 - pocketsphinx.Decoder, imported lazily
    from pocketsphinx import Decoder

    model = _model_dir()
    return Decoder(hmm=os.path.join(model, "en-us"),
                   allphone=os.path.join(model, "en-us-phone.lm.bin"), lm=None,
                   lw=LANGUAGE_WEIGHT, loglevel="ERROR")


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(np.asarray(samples, np.float64), -1.0, 32767 / 32768) * 32768.0
            ).round().astype("<i2").tobytes()


@lru_cache(maxsize=16)  # training decodes the same audio for each feature copy it makes
def _decode(pcm: bytes) -> tuple[tuple[str, int, int], ...]:
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return tuple((seg.word, int(seg.start_frame), int(seg.end_frame) + 1)
                 for seg in decoder.seg())


def forget_decodes() -> None:
    """Empty the decode cache (a speed measurement must decode every time)."""
    _decode.cache_clear()


def recognized_phones(samples: np.ndarray) -> list[tuple[str, float, float]]:
    """(ARPAbet phone or "sil", start s, end s) of 16 kHz speech, in time order; noise,
    breath and filler units read as silence."""
    return [(word if word in PHONE_TO_VISEME else "sil", start * STEP_S, end * STEP_S)
            for word, start, end in _decode(_pcm16(samples))]


def class_steps(samples: np.ndarray, n_steps: int, smooth_ms: float) -> np.ndarray:
    """(n_steps, N_CLASSES) float32: per 10 ms step (step k at k * 10 ms, as features.py's),
    the one-hot viseme class of the phone recognised there, smoothed by a Gaussian of
    ``smooth_ms``; steps the decode does not cover are silence."""
    held = np.zeros((n_steps, N_CLASSES))
    held[:, VISEME_ID["SIL"]] = 1.0
    for phone, start, end in recognized_phones(samples):
        a, b = int(round(start / STEP_S)), min(int(round(end / STEP_S)), n_steps)
        if b > a:
            held[a:b] = 0.0
            held[a:b, VISEME_ID[PHONE_TO_VISEME[phone]]] = 1.0
    if smooth_ms > 0:
        held = gaussian_filter1d(held, smooth_ms / 1000 / STEP_S, axis=0, mode="nearest")
    return held.astype(np.float32)


MAP_OFFSETS = (-2, -1, 0, 1, 2)  # frames around each frame whose classes the map reads
MAP_RIDGE = 1.0  # ridge of the map's weights (its inputs are shares 0..1; thousands of rows)


def map_design(classes: np.ndarray) -> np.ndarray:
    """(n, len(MAP_OFFSETS) * N_CLASSES + 1): each frame's smoothed classes at the frames
    around it (the lips move before and after the sound: co-articulation), and 1."""
    n = len(classes)
    index = np.clip(np.arange(n)[:, None] + np.array(MAP_OFFSETS), 0, max(n - 1, 0))
    return np.hstack([classes[index].reshape(n, -1), np.ones((n, 1))])


def fit_map(classes: list[np.ndarray], targets: list[np.ndarray]) -> np.ndarray:
    """Ridge least squares from ``map_design`` of each sequence's (n, N_CLASSES) classes to
    its (n, k) targets (sequences designed apart: no offset reads across two): the
    (columns, k) weights, float64."""
    x = np.vstack([map_design(c) for c in classes])
    y = np.vstack(targets)
    reg = np.full(x.shape[1], MAP_RIDGE)
    reg[-1] = 0.0  # the constant is not shrunk
    return np.linalg.solve(x.T @ x + np.diag(reg), x.T @ y)
