"""Audio features for the audio-to-expression model: MFCCs with deltas, one vector per video frame.

MFCCs (as in Suwajanakorn et al. 2017) over 25 ms windows every 10 ms, computed
with scipy (STFT, DCT, Savitzky-Golay deltas) on a mel filter bank that stops
at ``fmax_hz`` (4 kHz by default: the formants that shape the mouth lie below
it, and telephone-band 8 kHz audio keeps everything the model listens to).
c0 is replaced by the frame's log energy relative to the recording's speech
level, and every coefficient is normalised by the recording's own speech-frame
mean and spread, so a different voice or microphone lands in the same range.
Each video frame gets the analysis frames within ``context`` steps of its time,
stacked, so the sequence model runs at the video's frame rate.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import dct
from scipy.signal import savgol_filter, stft

from stages.lipsync.phones import N_CLASSES, class_steps
from talkedit.errors import TalkeditError

RATE = 16000  # what every clip's audio.wav and a job's audio are read at
HOP = 160  # 10 ms
WIN = 400  # 25 ms
N_FFT = 512
N_MELS = 26
FMIN_HZ = 80.0
SPEECH_SPAN_DB = 35.0  # analysis frames within this much of the speech level count as speech
FLOOR = 1e-10  # power floor: digital silence stays finite
WARPS = np.round(np.arange(0.75, 1.4001, 0.025), 3)  # VTLN: frequency scalings searched
MIN_AUDIO_S = 0.3  # shorter new audio cannot drive a mouth
PAUSE_DB = 20.0  # 10 ms frames this far under the speech level are pauses


@dataclass(frozen=True)
class FeatureConfig:
    n_mfcc: int = 13  # c0 (log energy) .. c12
    fmax_hz: float = 4000.0
    context: int = 3  # analysis frames either side of a video frame's time
    lifter_ms: float = 0.0  # > 0: the spectrum's envelope only (envelope()); 0: as it is
    cmvn_window_s: float = 0.0  # > 0: normalised over the speech this long around each step
    phones: bool = False  # + the recognised phones' viseme classes at the frame (phones.py)
    phone_smooth_ms: float = 30.0  # ...smoothed by a Gaussian this wide

    @property
    def per_step(self) -> int:
        return 2 * self.n_mfcc  # coefficients and their deltas

    @property
    def dim(self) -> int:
        return (2 * self.context + 1) * self.per_step + (N_CLASSES if self.phones else 0)


def mel_bank(fmax_hz: float, n_mels: int = N_MELS, warp: float = 1.0) -> np.ndarray:
    """Triangular filters on the mel scale, (n_mels, N_FFT // 2 + 1); ``warp`` scales every
    filter's frequencies (a voice whose formants lie ``warp`` times higher then fills the
    filters as the reference voice does: vocal tract length normalisation)."""
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    edges_mel = np.linspace(*(2595 * np.log10(1 + np.array([FMIN_HZ, fmax_hz]) / 700)), n_mels + 2)
    hz = np.minimum(700 * (10 ** (edges_mel / 2595) - 1) * warp, RATE / 2)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)


def speech_level_db(energy_db: np.ndarray) -> float:
    """A recording's speech level: a high percentile of its frame energies."""
    return float(np.percentile(energy_db, 95)) if len(energy_db) else 0.0


def power_spectrogram(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_steps, bins) power every 10 ms (step k centred on sample k * HOP), energy in dB."""
    x = np.asarray(samples, dtype=np.float64)
    _, _, spec = stft(x, fs=RATE, window="hann", nperseg=WIN, noverlap=WIN - HOP, nfft=N_FFT,
                      boundary="zeros", padded=True)
    power = np.abs(spec.T) ** 2
    return power, 10 * np.log10(power.sum(axis=1) + FLOOR)


def envelope(power: np.ndarray, lifter_ms: float) -> np.ndarray:
    """``power``'s spectral envelope: its log spectrum smoothed by keeping the quefrencies
    below ``lifter_ms`` (a voice's pitch harmonics sit at its pitch period, 4-10 ms, and
    above: gone), so a higher voice's harmonics do not read as other formants. 0: as it is."""
    if lifter_ms <= 0:
        return power
    cepstrum = np.fft.irfft(np.log(power + FLOOR), n=N_FFT, axis=1)
    keep = int(round(lifter_ms / 1000 * RATE))
    cepstrum[:, keep + 1:N_FFT - keep] = 0.0
    return np.exp(np.fft.rfft(cepstrum, axis=1).real)


def _speech_frames(energy_db: np.ndarray) -> np.ndarray:
    speech = energy_db > speech_level_db(energy_db) - SPEECH_SPAN_DB
    return speech if speech.sum() >= 2 else np.ones(len(energy_db), bool)


def voice_spectrum(power: np.ndarray, energy_db: np.ndarray, cfg: FeatureConfig,
                   warp: float = 1.0) -> np.ndarray:
    """The voice's mean log-mel spectrum over its speech frames, less its mean level: the
    spectral envelope shape that tells one vocal tract from another."""
    log_mel = np.log(envelope(power[_speech_frames(energy_db)], cfg.lifter_ms)
                     @ mel_bank(cfg.fmax_hz, warp=warp).T + FLOOR).mean(axis=0)
    return log_mel - log_mel.mean()


def choose_warp(samples: np.ndarray, cfg: FeatureConfig, reference: np.ndarray) -> float:
    """The frequency warp (VTLN, in WARPS) bringing the voice's spectrum nearest the reference
    voice's (the person's own, which the model was trained on)."""
    power, energy_db = power_spectrogram(samples)
    distances = [float(np.linalg.norm(voice_spectrum(power, energy_db, cfg, w) - reference))
                 for w in WARPS]
    return float(WARPS[int(np.argmin(distances))])


CMVN_PRIOR_STEPS = 50.0  # a window's statistics lean on the recording's, as if 0.5 s of it


def normalisers(ceps: np.ndarray, speech: np.ndarray, window: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The mean and spread each step's coefficients are normalised by: over the recording's
    speech steps (window 0: (per_step,) arrays), or over those within ``window`` steps
    centred on each step ((n, per_step): sliding CMVN, so a training clip and a few
    seconds of new audio are both normalised over a few seconds of speech; a window with
    little speech in it leans on the whole recording's statistics)."""
    mean, spread = ceps[speech].mean(axis=0), ceps[speech].std(axis=0) + 1e-3
    if window <= 0:
        return mean, spread
    weight = speech.astype(np.float64)[:, None]
    sums = [np.concatenate([np.zeros((1, ceps.shape[1])), np.cumsum(weight * ceps ** p, axis=0)])
            for p in (0, 1, 2)]
    index = np.arange(len(ceps))
    lo, hi = np.clip(index - window // 2, 0, len(ceps)), np.clip(index + window // 2 + 1, 0,
                                                                len(ceps))
    count, total, squares = (s[hi] - s[lo] for s in sums)
    local_mean = (total + CMVN_PRIOR_STEPS * mean) / (count + CMVN_PRIOR_STEPS)
    local_square = ((squares + CMVN_PRIOR_STEPS * (spread ** 2 + mean ** 2))
                    / (count + CMVN_PRIOR_STEPS))
    return local_mean, np.sqrt(np.maximum(local_square - local_mean ** 2, 0.0)) + 1e-3


def mfcc_steps(samples: np.ndarray, cfg: FeatureConfig, warp: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """(n_steps, per_step) normalised MFCCs + deltas every 10 ms, and each step's energy in dB.

    Step k is centred on sample k * HOP.
    """
    power, energy_db = power_spectrogram(samples)
    log_mel = np.log(envelope(power, cfg.lifter_ms) @ mel_bank(cfg.fmax_hz, warp=warp).T + FLOOR)
    ceps = dct(log_mel, type=2, norm="ortho", axis=1)[:, :cfg.n_mfcc]
    level = speech_level_db(energy_db)
    ceps[:, 0] = (energy_db - level) / 10.0  # loudness relative to the recording's own speech
    speech = _speech_frames(energy_db)
    mean, spread = normalisers(ceps, speech, int(round(cfg.cmvn_window_s * RATE / HOP)))
    mean[..., 0], spread[..., 0] = 0.0, 1.0  # c0 is already relative to the speech level
    ceps = (ceps - mean) / spread
    window = min(5, len(ceps) - (1 - len(ceps) % 2))  # odd, at most the length
    deltas = (savgol_filter(ceps, window, 2, deriv=1, axis=0) if window >= 3
              else np.zeros_like(ceps))
    return np.hstack([ceps, deltas]).astype(np.float32), energy_db


def frame_features(samples: np.ndarray, n_frames: int, fps: float, cfg: FeatureConfig,
                   warp: float = 1.0) -> np.ndarray:
    """(n_frames, cfg.dim) features: the analysis steps around each video frame's time."""
    steps, _ = mfcc_steps(samples, cfg, warp)
    centre = np.round(np.arange(n_frames) / fps * RATE / HOP).astype(np.int64)
    index = np.clip(centre[:, None] + np.arange(-cfg.context, cfg.context + 1), 0, len(steps) - 1)
    mfcc = steps[index].reshape(n_frames, (2 * cfg.context + 1) * cfg.per_step)
    if not cfg.phones:
        return mfcc
    # The recogniser hears the audio as it is: the warp is for the MFCCs' filter bank.
    classes = class_steps(samples, len(steps), cfg.phone_smooth_ms)
    return np.hstack([mfcc, classes[np.clip(centre, 0, len(steps) - 1)]])


def frame_energy_db(samples: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Each video frame's audio energy (dB, relative to the speech level): the baseline's input."""
    x = np.asarray(samples, dtype=np.float64)
    per = RATE / fps
    starts = np.round(np.arange(n_frames) * per).astype(np.int64)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(starts, 0, len(x))
    hi = np.clip(starts + int(round(per)), 0, len(x))
    energy = 10 * np.log10((c[hi] - c[lo]) / np.maximum(hi - lo, 1) + FLOOR)
    return energy - speech_level_db(energy)


def read_clip_wav(path: Path) -> np.ndarray:
    """A clip's audio.wav (the extract stage's 16 kHz mono 16-bit) as floats in [-1, 1]."""
    if not Path(path).is_file():
        raise TalkeditError(path, "not found", "run the extract stage first (dvc repro)")
    with wave.open(str(path), "rb") as wav:
        if (wav.getsampwidth(), wav.getnchannels(), wav.getframerate()) != (2, 1, RATE):
            raise TalkeditError(path, "is not 16 kHz mono 16-bit PCM", "re-run the extract stage")
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32768.0


def check_speech(samples: np.ndarray, where: Path, silence_dbfs: float,
                 min_pause_share: float = 0.0) -> float:
    """Refuse audio too short or silent to drive a mouth, or with no pauses (speech stops
    between phrases and before plosives: sustained sound such as music does not); return
    its speech level (dBFS)."""
    if len(samples) < MIN_AUDIO_S * RATE:
        raise TalkeditError(where, f"the new audio lasts {len(samples) / RATE:.2f} s, too short "
                            "to drive a mouth", f"give at least {MIN_AUDIO_S} s of speech")
    hop = RATE // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    energy = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    level = speech_level_db(energy)
    if level < silence_dbfs:
        raise TalkeditError(where, f"the new audio is silent (speech level {level:.0f} dBFS, "
                            f"below lipsync.silence_dbfs {silence_dbfs:.0f})",
                            "give a recording with speech in it")
    pauses = float((energy < level - PAUSE_DB).mean())
    if pauses < min_pause_share:
        raise TalkeditError(where, f"the new audio has no pauses ({pauses:.1%} of it is "
                            f"{PAUSE_DB:.0f} dB under its level; speech has some "
                            f"{min_pause_share:.0%} or more): it sounds like music or noise, "
                            "not speech", "give a recording of speech (or lower "
                            "lipsync.min_pause_share to drive the mouth with it anyway)")
    return level

