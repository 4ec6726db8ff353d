"""Hard-clip options for the demo generator: degradations applied with the truth kept exact.

Real footage is not a frontal face in a quiet studio. These options (params.yaml
``demo.stress``) make the synthetic clip harder in the ways phone footage is,
while the truth tables stay exact, because every degradation is applied by the
generator that knows what it did:

* audio: background noise (white, pink or synthetic music) at a given SNR over
  the speech, synthetic reverberation (an exponentially decaying noise room
  response with the given RT60 behind a unit direct path, so phone times do not
  move), and a low-bitrate phone codec (8 kHz, AAC 32 kbps, its delay measured
  and removed), plus a second voice saying words that are not in the transcript;
* picture: a wide canvas (e.g. 1280x720) with the face scaled so its eyes are a
  given distance apart, camera noise, motion blur along the head's motion,
  faster and larger head motion and fast turns, an object crossing the mouth,
  lighting flicker and a strong side light, blinks, and a second person
  entering the frame.

How far the head can turn: the rig turns a flat photo (a homography), so a yaw
is a card turning, not a head showing its profile; ``turn_deg`` is limited to
40 degrees, past which the photo is foreshortened beyond anything a head does.

Everything here is off by default, and nothing here draws from the main
generator's random stream, so a default clip is byte-identical with or without
this module.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from scipy import signal

from stages.demo.face_rig import rig_rotation
from talkedit.params import Section, bad_param

if TYPE_CHECKING:
    from stages.demo import DemoParams
    from stages.demo.face_rig import FaceRig, HeadPose
    from stages.demo.timing import BorrowedMotion

NOISE_KINDS = ("none", "white", "pink", "music")
CODECS = ("none", "aac32k8")
MAX_TURN_DEG = 40.0
MAX_GAZE_DEG = 30.0  # past this the iris would leave a photo's eye opening
SACCADE_S = 0.04  # a gaze shift takes about 40 ms
EYE_RADIUS = 0.45  # eyeball radius / eye-corner distance: the iris moves this x sin(angle)
LEFT_IRIS, RIGHT_IRIS = 468, 473  # FaceMesh refined points (iris centres)
LEFT_LIDS, RIGHT_LIDS = (159, 145), (386, 374)  # upper / lower lid middles
LEFT_EYE, LEFT_EYE_INNER, RIGHT_EYE, RIGHT_EYE_INNER = 33, 133, 263, 362
LIP_TOP, LIP_BOTTOM, MOUTH_LEFT, MOUTH_RIGHT = 0, 17, 61, 291
HEAD_AMPLITUDE_DEG = np.array([2.5, 1.5, 1.5])  # the rig's own yaw, pitch, roll (demo._head_motion)
BLINK_S = 0.24  # a blink: lids close and open in about a quarter second
SECOND_VOICE_TEXT = "Sorry to interrupt, could I just add one small thing here?"


@dataclass(frozen=True)
class StressParams(Section):
    """params.yaml ``demo.stress``: degradations of the demo clip (all off by default)."""

    SECTION = "demo.stress"

    noise: str = "none"             # none | white | pink | music, mixed at snr_db under the speech
    snr_db: float = 20.0
    reverb_rt60_s: float = 0.0      # synthetic room response; 0 = dry
    codec: str = "none"             # none | aac32k8 (8 kHz, AAC 32 kbps: a phone call)
    width: int = 0                  # canvas size; 0 = the square demo frame
    height: int = 0
    eye_px: float = 0.0             # outer eye corners this far apart on the canvas; 0 = as rendered
    camera_noise: float = 0.0       # sensor noise SD, 8-bit levels
    motion_blur: float = 0.0        # shutter share: blur length = this x the face's motion per frame
    head_scale: float = 1.0         # head motion amplitude x
    head_speed: float = 1.0         # head motion speed x
    head_deg: float = 0.0           # head wanders up to this far in yaw and pitch (roll half);
    # 0 = the rig's own small motion (x head_scale)
    head_3d: bool = False           # the head turns as a 3-D relief about a pivot behind the
    # face (parallax: a face fit reads the turn); false: the flat picture turns as the camera
    # would (its pan undone when head_deg is set)
    turn_deg: float = 0.0           # fast head turns to this yaw and back, every turn_every_s
    turn_every_s: float = 4.0
    occlude_at_s: float = -1.0      # an object crosses the mouth from here...; < 0 = never
    occlude_s: float = 0.5          # ...taking this long
    flicker: float = 0.0            # lighting gain flicker amplitude (0.2 = +-20 %)
    side_light: float = 0.0         # left-right light gradient (rig tilt; 0.8 = strong)
    blink_every_s: float = 0.0      # mean time between blinks; 0 = never
    gaze_deg: float = 0.0           # eye-in-head gaze wanders up to this far (yaw; pitch half); 0 = ahead
    gaze_every_s: float = 1.5       # mean time between gaze shifts (saccades)
    second_person_at_s: float = -1.0  # a second person enters and speaks from here; < 0 = never

    def check(self, where: str) -> None:
        if self.noise not in NOISE_KINDS:
            raise bad_param(where, "noise", f"is {self.noise!r}", f"use one of {NOISE_KINDS}")
        if self.codec not in CODECS:
            raise bad_param(where, "codec", f"is {self.codec!r}", f"use one of {CODECS}")
        if (self.width or self.height) and (self.width < 128 or self.height < 128
                                            or self.width % 2 or self.height % 2):
            raise bad_param(where, "width", f"canvas {self.width}x{self.height}: both must be even "
                            "and >= 128, or both 0", "use 1280 x 720, or 0 for the square frame")
        if not 0 <= self.turn_deg <= MAX_TURN_DEG or not 0 <= self.head_deg <= MAX_TURN_DEG:
            raise bad_param(where, "turn_deg", f"is {self.turn_deg}: the rig turns a flat photo, "
                            f"which looks nothing like a head past {MAX_TURN_DEG:g} degrees",
                            f"use 0..{MAX_TURN_DEG:g}")
        if (min(self.reverb_rt60_s, self.camera_noise, self.motion_blur, self.flicker,
                self.blink_every_s, self.eye_px) < 0 or self.head_scale <= 0
                or self.head_speed <= 0 or self.gaze_every_s <= 0):
            raise bad_param(where, "head_scale", "amounts must be >= 0 (scales and speeds > 0)",
                            "use the defaults in params.yaml")
        if not 0 <= self.gaze_deg <= MAX_GAZE_DEG:
            raise bad_param(where, "gaze_deg", f"is {self.gaze_deg}: past {MAX_GAZE_DEG:g} degrees "
                            "the iris leaves a photo's eye opening", f"use 0..{MAX_GAZE_DEG:g}")

    @property
    def active(self) -> bool:
        return self != StressParams()

    @property
    def canvas(self) -> bool:
        return bool(self.width)


# --- audio ----------------------------------------------------------------------------------


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    spectrum /= np.sqrt(np.maximum(f, 1.0))
    return np.fft.irfft(spectrum, n)


def _music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic music: harmonic chords changing every half second over a soft beat."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    beat = int(0.5 * sr)
    roots = 110.0 * 2 ** (rng.integers(0, 12, n // beat + 1) / 12)
    for b, start in enumerate(range(0, n, beat)):
        seg = slice(start, min(n, start + beat))
        env = np.exp(-3.0 * (t[seg] - t[start]))
        for ratio in (1.0, 1.26, 1.5):  # a major triad
            for h in range(1, 5):
                out[seg] += env * np.sin(2 * np.pi * roots[b] * ratio * h * t[seg]) / h
        kick = min(n, start + int(0.08 * sr)) - start
        out[start:start + kick] += 2.0 * np.sin(2 * np.pi * 60 * t[:kick]) * np.exp(-40 * t[:kick])
    return out


def _room_response(rt60_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A unit direct path, then diffuse reflections decaying 60 dB in ``rt60_s``.

    The direct path stays the strongest tap at lag 0, so speech timing is unchanged.
    """
    n = int(rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60_s)
    tail[: int(0.003 * sr)] = 0.0  # first reflections after ~3 ms
    # Reverberant energy about equal to the direct sound: a small, live room.
    tail *= 1.0 / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def _codec_round_trip(x: np.ndarray, sr: int) -> np.ndarray:
    """Down to 8 kHz, through AAC at 32 kbps, back to ``sr``; the codec delay is removed."""
    import av

    lo = signal.resample_poly(x, 8000, sr)
    pcm = np.clip(lo * 32767, -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout, stream.bit_rate = "mono", 32000
        for s in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, s
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as inp:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)])
    decoded = decoded.astype(np.float64)
    if np.abs(decoded).max() > 2.0:  # integer samples
        decoded /= 32768.0
    # The encoder's priming delay: find it by cross-correlation and cut it off.
    lag = int(np.argmax(signal.correlate(decoded[: len(lo) + 4096], lo, mode="valid",
                                         method="fft")))
    decoded = decoded[lag:lag + len(lo)]
    decoded = np.pad(decoded, (0, len(lo) - len(decoded)))
    return signal.resample_poly(decoded, sr, 8000)[: len(x)]


def second_voice(voice: str) -> tuple[np.ndarray, int]:
    """A different voice (higher, faster) saying words that are not in the transcript."""
    from talkedit.espeak import synthesize

    speech = synthesize(SECOND_VOICE_TEXT, voice=voice, rate_wpm=175, pitch=85)
    return speech.samples.astype(np.float64) / 32768.0, speech.sample_rate


def degrade_audio(audio: np.ndarray, sr: int, speech_span: tuple[int, int], stress: StressParams,
                  voice: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """The recording as the microphone would hear it; int16 in, int16 out, same length."""
    x = audio.astype(np.float64) / 32768.0
    facts: dict[str, Any] = {}
    if stress.second_person_at_s >= 0:
        other, other_sr = second_voice(voice)
        if other_sr != sr:
            other = signal.resample_poly(other, sr, other_sr)
        at = int(round((stress.second_person_at_s + 1.0) * sr))  # speaks once in frame
        end = min(len(x), at + len(other))
        if at < len(x):
            x[at:end] += 0.8 * other[: end - at]
            facts["second_voice_s"] = [round(at / sr, 3), round(end / sr, 3)]
    if stress.reverb_rt60_s > 0:
        dry_rms = np.sqrt(np.mean(x ** 2))
        x = signal.fftconvolve(x, _room_response(stress.reverb_rt60_s, sr, rng))[: len(x)]
        x *= dry_rms / max(np.sqrt(np.mean(x ** 2)), 1e-12)
        facts["rt60_s"] = stress.reverb_rt60_s
    if stress.noise != "none":
        a, b = speech_span
        speech_power = float(np.mean(audio[a:b].astype(np.float64) ** 2)) / 32768.0 ** 2
        noise = {"white": lambda: rng.standard_normal(len(x)), "pink": lambda: _pink(len(x), rng),
                 "music": lambda: _music(len(x), sr, rng)}[stress.noise]()
        noise *= np.sqrt(speech_power / 10 ** (stress.snr_db / 10) / np.mean(noise ** 2))
        x = x + noise
        facts["snr_db"] = stress.snr_db
    if stress.codec == "aac32k8":
        x = _codec_round_trip(x, sr)
        facts["codec"] = "8 kHz AAC 32 kbps"
    peak = np.abs(x).max()
    if peak > 0.99:  # a recorder's gain would have been set lower; keep the shape, not a clip
        x *= 0.99 / peak
    return np.round(x * 32767).astype(np.int16), facts


# --- motion and light -----------------------------------------------------------------------


def head_track(head: np.ndarray, times: np.ndarray, stress: StressParams, focal_px: float
               ) -> np.ndarray:
    """The head motion scaled, plus fast turns (yaw and back in 0.8 s), alternating sides.

    The rig's yaw is a camera rotation, which also pans the picture by f tan(yaw); a turn
    is shifted back by that much so the face turns in place rather than leaving the frame.
    """
    out = head * stress.head_scale
    if stress.head_deg > 0:
        # The rig's motion (each axis within its own amplitude) stretched to +-head_deg in yaw
        # and pitch, +-head_deg / 2 in roll; the picture's pan that comes with a camera
        # rotation (the face centre moves by f R[:2, 2] / R[2, 2]) is shifted back.
        out[:, :3] = head[:, :3] / HEAD_AMPLITUDE_DEG * stress.head_deg * np.array([1, 1, 0.5])
        if not stress.head_3d:
            centre_moves = np.stack([rig_rotation(*a)[:, 2] for a in out[:, :3]])
            out[:, 3:5] -= focal_px * centre_moves[:, :2] / centre_moves[:, 2:3]
    if stress.turn_deg > 0:
        period = stress.turn_every_s
        turn = np.zeros(len(times))
        for k, centre in enumerate(np.arange(period / 2, times[-1], period)):
            x = (times - centre) / 0.4  # -1..1 over 0.8 s
            bump = np.where(np.abs(x) < 1, 0.5 * (1 + np.cos(np.pi * x)), 0.0)
            turn += (1 if k % 2 == 0 else -1) * stress.turn_deg * bump
        out[:, 0] += turn
        out[:, 3] -= focal_px * np.tan(np.radians(turn))
    return out


def lighting(gain: np.ndarray, tilt: np.ndarray, times: np.ndarray, stress: StressParams,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flicker (a fast irregular gain change) and a strong side light on the rig's own light."""
    if stress.flicker > 0:
        wobble = np.sin(2 * np.pi * 3.3 * times) + 0.5 * rng.uniform(-1, 1, len(times))
        gain = gain * (1 + stress.flicker * wobble / 1.5)
    return gain, tilt + stress.side_light


def blink_track(times: np.ndarray, stress: StressParams, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame, 0 open .. 1 shut."""
    closure = np.zeros(len(times))
    if stress.blink_every_s <= 0:
        return closure
    t = rng.uniform(0.3, stress.blink_every_s)
    while t < times[-1]:
        x = (times - t) / (BLINK_S / 2)
        closure = np.maximum(closure, np.clip(1 - np.abs(x), 0, 1))
        t += rng.uniform(0.5, 1.5) * stress.blink_every_s
    return closure


def gaze_track(times: np.ndarray, stress: StressParams) -> np.ndarray:
    """(n, 2) eye-in-head gaze yaw, pitch in degrees (+ = towards image right / down):
    fixations held for about ``gaze_every_s``, joined by ~40 ms saccades."""
    gaze = np.zeros((len(times), 2))
    if stress.gaze_deg <= 0 or not len(times):
        return gaze
    rng = np.random.default_rng(2000)  # its own stream: other options' draws stay as they were
    t, target = 0.0, np.zeros(2)
    while t < times[-1]:
        new = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5)]) * stress.gaze_deg
        ramp = np.clip((times - t) / SACCADE_S, 0, 1)[:, None]
        gaze = np.where(times[:, None] >= t, target + (new - target) * ramp, gaze)
        target = new
        t += rng.uniform(0.5, 1.5) * stress.gaze_every_s
    return gaze


def occluder_track(times: np.ndarray, stress: StressParams) -> np.ndarray:
    """The occluder's progress across the mouth per frame: 0..1 while crossing, NaN otherwise."""
    if stress.occlude_at_s < 0:
        return np.full(len(times), np.nan)
    p = (times - stress.occlude_at_s) / stress.occlude_s
    return np.where((p >= 0) & (p <= 1), p, np.nan)


# --- the picture ----------------------------------------------------------------------------


def _points(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = np.c_[xy, np.ones(len(xy))] @ h.T
    return p[:, :2] / p[:, 2:3]


class Picture:
    """Turns each rendered rig frame into the stressed camera frame, and records its truth."""

    def __init__(self, rig: FaceRig, stress: StressParams, fps: int, rng: np.random.Generator
                 ) -> None:
        self.rig, self.stress, self.fps, self.rng = rig, stress, fps, rng
        n = rig.size
        self.width, self.height = (stress.width, stress.height) if stress.canvas else (n, n)
        scale = stress.eye_px / rig.eye_dist if stress.eye_px else (
            min(self.width, self.height) / n if stress.canvas else 1.0)
        self.scale = scale
        # The face's square goes to the canvas centre, a little high, as people frame
        # themselves; without a canvas the rendered frame is the picture.
        ox, oy = self.width / 2 - scale * n / 2, self.height * 0.45 - scale * n / 2
        self.place = (np.array([[scale, 0, ox], [0, scale, oy], [0, 0, 1.0]]) if stress.canvas
                      else np.eye(3))
        self.background = self._room() if stress.canvas else None
        if stress.canvas:
            yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
            r = np.hypot((xx - n / 2) / (0.5 * n), (yy - n / 2) / (0.5 * n))
            self._mask = np.clip((1.0 - r) / 0.12, 0, 1)[..., None]  # soft round vignette
        self._prev_centre: np.ndarray | None = None
        self._second: np.ndarray | None = None

    def _room(self) -> np.ndarray:
        """A plain room behind the speaker: a wall gradient and a few shelves (no faces)."""
        h, w = self.height, self.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        wall = np.stack([150 + 40 * xx / w, 140 + 30 * yy / h, 120 + 20 * (1 - xx / w)], -1)
        rng = np.random.default_rng(7)
        for _ in range(6):
            x0, y0 = int(rng.uniform(0, w - 200)), int(rng.uniform(0, h - 60))
            colour = rng.uniform(60, 200, 3)
            cv2.rectangle(wall, (x0, y0), (x0 + int(rng.uniform(80, 200)), y0 + 14),
                          colour.tolist(), -1)
        return wall

    def frame(self, image: np.ndarray, pose: HeadPose, blink: float,
              occluder: float, second_in: float, gaze: tuple[float, float] = (0.0, 0.0)
              ) -> tuple[np.ndarray, dict[str, float]]:
        """The camera frame for rig render ``image`` and the truth it holds."""
        s = self.stress
        lm = self.rig.landmarks[:, :2]
        eyes = _points(self.place, self.rig.project(
            lm[[LEFT_EYE, RIGHT_EYE, LEFT_EYE_INNER, RIGHT_EYE_INNER]], pose))
        mouth = _points(self.place, self.rig.project(
            lm[[LIP_TOP, LIP_BOTTOM, MOUTH_LEFT, MOUTH_RIGHT]], pose))
        out = image.astype(np.float32)
        if gaze != (0.0, 0.0):  # before the lids, which close over the moved iris
            out = self._gaze(out, self.rig.project(lm[[
                LEFT_EYE, LEFT_EYE_INNER, *LEFT_LIDS, RIGHT_EYE, RIGHT_EYE_INNER, *RIGHT_LIDS]],
                pose), gaze)
        if blink > 0:
            out = self._blink(out, self.rig.project(lm[[
                LEFT_EYE, LEFT_EYE_INNER, RIGHT_EYE, RIGHT_EYE_INNER]], pose), blink)
        if s.canvas:
            warped = cv2.warpAffine(out, self.place[:2], (self.width, self.height),
                                    flags=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
            mask = cv2.warpAffine(self._mask, self.place[:2], (self.width, self.height))[..., None]
            out = warped * mask + self.background * (1 - mask)
        occluded_share = 0.0
        if second_in > 0:
            out, occluded_share = self._second_person(out, second_in, mouth)
        if np.isfinite(occluder):
            out, share = self._occlude(out, mouth, occluder)
            occluded_share = max(occluded_share, share)
        centre = eyes[:2].mean(axis=0)
        if s.motion_blur > 0 and self._prev_centre is not None:
            out = self._blur(out, (centre - self._prev_centre) * s.motion_blur)
        self._prev_centre = centre
        if s.camera_noise > 0:
            out = out + self.rng.normal(0, s.camera_noise, out.shape).astype(np.float32)
        truth = {"eye_left_x": eyes[0, 0], "eye_left_y": eyes[0, 1], "eye_right_x": eyes[1, 0],
                 "eye_right_y": eyes[1, 1], "eye_px": float(np.linalg.norm(eyes[0] - eyes[1])),
                 "mouth_x": float(mouth[2:, 0].mean()), "mouth_y": float(mouth[:2, 1].mean()),
                 "occluded_share": occluded_share, "blink": blink,
                 "second_person": second_in, "gaze_yaw_deg": gaze[0], "gaze_pitch_deg": gaze[1]}
        return np.clip(out, 0, 255).astype(np.uint8), truth

    def _blink(self, image: np.ndarray, eyes: np.ndarray, closure: float) -> np.ndarray:
        """Lids over each eye: skin colour from just above the eye, closing downwards."""
        for outer, inner in ((eyes[0], eyes[1]), (eyes[2], eyes[3])):
            centre = (outer + inner) / 2
            width = float(np.linalg.norm(outer - inner))
            skin_at = np.clip((centre + [0, -0.45 * width]).astype(int), 0, image.shape[0] - 1)
            skin = image[skin_at[1], skin_at[0]].copy()
            mask = np.zeros(image.shape[:2], np.float32)
            axes = (int(0.62 * width), max(1, int(0.4 * width * closure)))
            top = (int(centre[0]), int(centre[1] - 0.4 * width + axes[1]))
            cv2.ellipse(mask, top, axes, 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 0.08 * width + 0.5)[..., None]
            image = image * (1 - mask) + skin * mask
        return image

    @staticmethod
    def _gaze(image: np.ndarray, eyes: np.ndarray, gaze: tuple[float, float]) -> np.ndarray:
        """Turn each eye: the eye opening's content (iris, pupil) slides by the rotation's
        projection, the shift fading to nothing at the opening's rim (the lids stay)."""
        h, w = image.shape[:2]
        for outer, inner, top, bottom in (eyes[:4], eyes[4:]):
            centre = (outer + inner) / 2
            half_w = float(np.linalg.norm(outer - inner)) / 2
            half_h = max(float(np.linalg.norm(top - bottom)) / 2, 0.25 * half_w)
            shift = 2 * half_w * EYE_RADIUS * np.sin(np.radians(gaze))
            x0, y0 = (np.floor(centre - [half_w, half_h]) - 2).astype(int).clip(0)
            x1, y1 = np.ceil(centre + [half_w, half_h] + 3).astype(int)
            x1, y1 = min(x1, w), min(y1, h)
            if x1 <= x0 or y1 <= y0:
                continue
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            r = np.hypot((xs - centre[0]) / half_w, (ys - centre[1]) / half_h)
            weight = np.clip((1.0 - r) / 0.45, 0, 1)
            weight = weight * weight * (3 - 2 * weight)
            map_x, map_y = xs - shift[0] * weight, ys - shift[1] * weight
            image[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REFLECT101)
        return image

    def _occlude(self, image: np.ndarray, mouth: np.ndarray, progress: float
                 ) -> tuple[np.ndarray, float]:
        """A hand-sized skin-toned object sweeping left to right across the mouth."""
        width = float(np.linalg.norm(mouth[3] - mouth[2]))
        centre_y = float(mouth[:2, 1].mean())
        x = float(mouth[2, 0]) - 1.6 * width + progress * 4.2 * width
        mask = np.zeros(image.shape[:2], np.float32)
        cv2.ellipse(mask, (int(x), int(centre_y)), (int(0.7 * width), int(1.3 * width)), 15, 0,
                    360, 1.0, -1)
        box = mask[int(mouth[0, 1]):int(mouth[1, 1]) + 1, int(mouth[2, 0]):int(mouth[3, 0]) + 1]
        share = float(box.mean()) if box.size else 0.0
        soft = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
        hand = np.array([205, 150, 120], np.float32)
        shade = 0.85 + 0.15 * cv2.GaussianBlur(mask, (0, 0), 0.3 * width)[..., None]
        return image * (1 - soft) + hand * shade * soft, share

    def _blur(self, image: np.ndarray, motion: np.ndarray) -> np.ndarray:
        length = float(np.linalg.norm(motion))
        if length < 1.0:
            return image
        size = int(np.ceil(length)) | 1
        kernel = np.zeros((size, size), np.float32)
        d = motion / length * (size - 1) / 2
        c = size // 2
        cv2.line(kernel, (int(round(c - d[0])), int(round(c - d[1]))),
                 (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
        return cv2.filter2D(image, -1, kernel / kernel.sum())

    def _second_person(self, image: np.ndarray, progress: float, mouth: np.ndarray
                       ) -> tuple[np.ndarray, float]:
        """The photo, mirrored and recoloured, slides in from the right edge (0.6x size);
        also the share of the speaker's mouth box it covers (its disk in front of the lips)."""
        if self._second is None:
            other = cv2.flip(self.rig.image, 1).astype(np.float32)
            other = other[..., ::-1] * 0.6 + other * 0.4  # a different complexion and clothes
            side = int(0.6 * self.rig.size * self.scale)
            self._second = cv2.resize(other, (side, side), interpolation=cv2.INTER_AREA)
        sprite = self._second
        side = sprite.shape[0]
        h, w = image.shape[:2]
        x0 = int(w - progress * 0.85 * side)
        y0 = h - side
        x1 = min(w, x0 + side)
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        r = np.hypot((xx - side / 2) / (0.5 * side), (yy - side / 2) / (0.5 * side))
        mask = np.clip((1.0 - r) / 0.1, 0, 1)[..., None]
        region = image[y0:h, x0:x1]
        part = sprite[: h - y0, : x1 - x0]
        m = mask[: h - y0, : x1 - x0]
        image = image.copy()
        image[y0:h, x0:x1] = region * (1 - m) + part * m
        cover = np.zeros((h, w), np.float32)
        cover[y0:h, x0:x1] = m[..., 0] > 0.5
        box = cover[int(mouth[0, 1]):int(mouth[1, 1]) + 1, int(mouth[2, 0]):int(mouth[3, 0]) + 1]
        return image, float(box.mean()) if box.size else 0.0


def second_person_track(times: np.ndarray, stress: StressParams) -> np.ndarray:
    """How far the second person has come in: 0 out .. 1 fully in (over 1 s)."""
    if stress.second_person_at_s < 0:
        return np.zeros(len(times))
    return np.clip(times - stress.second_person_at_s, 0, 1)


def stress_clip(video_path: Path, truth_path: Path, rig: FaceRig, mouth: np.ndarray,
                head: np.ndarray, light_gain: np.ndarray, light_tilt: np.ndarray,
                audio: np.ndarray, sr: int, speech_span: tuple[int, int], opts: DemoParams,
                motion: BorrowedMotion | None = None,
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Write the hard clip and its per-frame truth; return the head and light truth as
    rendered (motion and flicker change them) and a summary of what was done. ``motion``
    (another clip's, timing.py) replaces the gaze and blinks where it is active."""
    from stages.demo.face_rig import HeadPose
    from talkedit.artifacts import TRUTH_STRESS, write_parquet
    from talkedit.atomic import atomic_path
    from talkedit.video import VideoWriter

    stress = opts.stress
    rng = np.random.default_rng(opts.seed + 1000)  # apart from the clean clip's stream
    times = np.arange(len(mouth)) / opts.fps
    head = head_track(head, times, stress, 2.0 * rig.size)  # the rig's focal length
    light_gain, light_tilt = lighting(light_gain, light_tilt, times, stress, rng)
    blinks = blink_track(times, stress, rng)
    gaze = gaze_track(times, stress)
    if motion is not None and motion.gaze is not None and motion.blink is not None:
        gaze = np.where(motion.active[:, None], motion.gaze, gaze)
        blinks = np.where(motion.active, motion.blink, blinks)
    occluder = occluder_track(times, stress)
    second = second_person_track(times, stress)
    sound, facts = degrade_audio(audio, sr, speech_span, stress, opts.voice, rng)
    picture = Picture(rig, stress, opts.fps, rng)
    rows: list[dict[str, float]] = []
    with atomic_path(video_path) as tmp, VideoWriter(
            tmp, picture.width, picture.height, opts.fps, crf=opts.crf, audio_rate=sr) as out:
        for k in range(len(mouth)):
            pose = HeadPose(*head[k])
            image = rig.render(float(mouth[k, 0]), float(mouth[k, 1]), float(mouth[k, 2]), pose,
                               float(light_gain[k]), float(light_tilt[k]))
            frame, truth = picture.frame(image, pose, float(blinks[k]), float(occluder[k]),
                                         float(second[k]), (float(gaze[k, 0]), float(gaze[k, 1])))
            out.write(frame)
            rows.append(truth)
        out.write_audio(sound)
    columns = {"frame": np.arange(len(rows)), "time_s": times}
    for name in TRUTH_STRESS.names[2:]:
        columns[name] = np.array([r[name] for r in rows], np.float32)
    write_parquet(columns, TRUTH_STRESS, truth_path)
    occluded = columns["occluded_share"] > 0
    facts.update({"width": picture.width, "height": picture.height,
                  "eye_px_median": round(float(np.median(columns["eye_px"])), 1),
                  "max_yaw_deg": round(float(np.abs(head[:, 0]).max()), 1),
                  "max_face_speed_px_per_frame": round(float(np.nanmax(np.hypot(
                      np.diff(columns["eye_left_x"]), np.diff(columns["eye_left_y"])))), 1)
                      if len(rows) > 1 else 0.0,
                  "occluded_frames": int(occluded.sum()), "blink_frames": int((blinks > 0).sum()),
                  "gaze_shifts": int((np.abs(np.diff(gaze, axis=0)).sum(axis=1) > 0.5).sum()),
                  "second_person_frames": int((second > 0).sum())})
    return head, light_gain, facts
