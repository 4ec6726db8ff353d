"""demo stage: a deterministic synthetic talking head with known ground truth.

A real face photo (default: skimage's astronaut) speaks text voiced by
espeak-ng. The synthesizer's own phoneme events time the phones, so the
truth tables are exact; the lower face is animated from those phones
(``mouth.articulation_track``), with slight head motion and a slow lighting
change so later stages meet realistic variation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.demo.face_rig import FaceRig, HeadPose, load_face
from stages.demo.mouth import articulation_track
from stages.demo.stress import HEAD_AMPLITUDE_DEG, StressParams, stress_clip
from stages.demo.timing import borrow_motion, borrow_speech
from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, ClipPaths, write_parquet
from talkedit.atomic import atomic_path, write_text
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize
from talkedit.params import Section, bad_param, check_name
from talkedit.phonemes import SILENCE
from talkedit.video import VideoWriter

log = logging.getLogger(__name__)
DEFAULT_SCRIPT = Path(__file__).with_name("script.txt")
LEAD_S = 0.5  # silence before and after the speech, as in a real recording


@dataclass(frozen=True)
class DemoParams(Section):
    """The ``demo:`` section of params.yaml (the command's options override it)."""

    SECTION = "demo"

    name: str = "demo"
    face: str | None = None
    text: str | None = None  # a text file
    voice: str = "en-us"
    rate_wpm: int = 150
    seed: int = 0
    size: int = 512
    fps: int = 25
    crf: int = 18
    stress: StressParams = field(default_factory=StressParams)  # hard-clip options (stress.py)
    timing_from: str | None = None  # another generated clip's video: say its words with its
    # phone timings and sound (timing.py), instead of ``text``...
    motion_from: str | None = None  # another generated clip's video: move the head (and, with
    # its eye truth, gaze and blink) as it does (timing.py)...
    timing_at_s: float = 0.0  # ...both starting this far into the new clip

    def check(self, where: str) -> None:
        check_name(self.name, "clip")
        if self.size < 128 or self.size % 2:
            raise bad_param(where, "size", f"is {self.size}: must be an even number of pixels "
                            ">= 128", "use 512")
        if not 1 <= self.fps <= 120 or self.rate_wpm <= 0 or not 0 <= self.crf <= 51:
            raise bad_param(where, "fps", "fps must lie in 1..120, rate_wpm > 0, crf in 0..51",
                            "use the defaults in params.yaml")


def _head_motion(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slow, smooth head motion: sums of a few random sinusoids per axis."""
    amplitude = np.array([*HEAD_AMPLITUDE_DEG, 5.0, 3.0])  # yaw, pitch, roll (deg), tx, ty (px)
    out = np.zeros((len(times), 5))
    for axis in range(5):
        for _ in range(3):
            freq = rng.uniform(0.05, 0.4)
            phase = rng.uniform(0, 2 * np.pi)
            out[:, axis] += np.sin(2 * np.pi * freq * times + phase) / 3
        out[:, axis] *= amplitude[axis]
    return out


def _clip_motion(times: np.ndarray, opts: DemoParams
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clip's head motion (n, 5) and light's gain and tilt (n,) at ``times``: smooth
    laws of time drawn from the clip's seed, so any instant can be drawn again."""
    rng = np.random.default_rng(opts.seed)
    head = _head_motion(times * opts.stress.head_speed, rng)
    light_phase = rng.uniform(0, 2 * np.pi)
    light_gain = 1.0 + 0.08 * np.sin(2 * np.pi * times / 24.0 + light_phase)
    light_tilt = 0.10 * np.sin(2 * np.pi * times / 31.0 + light_phase / 2)
    return head, light_gain, light_tilt


def render_clip_at(demo: DemoParams, phones: list[tuple[str, float, float]],
                   times: np.ndarray, path: Path, motion_times: np.ndarray | None = None
                   ) -> None:
    """Write to ``path`` (silent) the frames a plain generated clip (no stress, no borrowed
    timing or motion) shows at any ``times`` (s, one frame each), its mouth saying the
    timed ``phones`` (phone, start_s, end_s), its head and light at ``motion_times``
    (default ``times``): e.g. a truth clip drawn at the exact point of the text an edited
    video's frames show, with the head where that video's background has it
    (``stages.demo.pairs.truth_at``)."""
    if demo.stress.active or demo.timing_from or demo.motion_from:
        raise ValueError("render_clip_at draws plain clips only (no stress, timing_from, "
                         "motion_from)")
    times = np.asarray(times, np.float64)
    head, light_gain, light_tilt = _clip_motion(
        times if motion_times is None else np.asarray(motion_times, np.float64), demo)
    rig = FaceRig(load_face(demo.face), demo.size, source=demo.face or "skimage astronaut",
                  relief=demo.stress.head_3d)
    sr = 16000
    silence = np.zeros(int(round(len(times) / demo.fps * sr)), np.int16)
    with atomic_path(path) as tmp:
        _encode(tmp, rig, articulation_track(phones, times), head, light_gain, light_tilt,
                silence, sr, demo)


def read_script(path: str | Path | None) -> str:
    path = Path(path) if path else DEFAULT_SCRIPT
    if not path.is_file():
        raise TalkeditError(path, "text file not found", "give a UTF-8 text file to speak")
    text = " ".join(path.read_text(encoding="utf-8").split())
    if not text:
        raise TalkeditError(path, "text file is empty", "write the sentences the demo should say")
    return text


def generate_demo(root: Path, demo: DemoParams, out_dir: Path | None = None) -> dict[str, Any]:
    """Write <name>.mp4, <name>.txt and the two truth tables (into ``root``'s data/raw, or
    ``out_dir``); return a summary."""
    opts = demo
    opts.check("demo")
    raw_dir = ClipPaths.of(opts.name, root).video.parent if out_dir is None else Path(out_dir)
    video_path, text_path = raw_dir / f"{opts.name}.mp4", raw_dir / f"{opts.name}.txt"
    truth_phones_path = raw_dir / f"{opts.name}.truth_phones.parquet"
    truth_frames_path = raw_dir / f"{opts.name}.truth_frames.parquet"

    if opts.timing_from:  # another clip's words, phone timings and sound (timing.py)
        borrowed = borrow_speech(opts.timing_from, opts.timing_at_s)
        text, sr, n_words = borrowed.text, borrowed.sample_rate, borrowed.words
        audio, rows = borrowed.audio, borrowed.rows
        speech_span = (int(round(opts.timing_at_s * sr)), len(audio))
    else:
        text = read_script(opts.text)
        audio, sr, rows, n_words = _own_speech(text, opts)
        speech_span = (int(LEAD_S * sr), len(audio) - int(LEAD_S * sr))
    duration = len(audio) / sr
    n_frames = int(np.ceil(duration * opts.fps))
    audio = np.concatenate([audio, np.zeros(int(round(n_frames / opts.fps * sr)) - len(audio),
                                            dtype=np.int16)])
    duration = len(audio) / sr
    end_speech = rows[-1][4]
    if rows[-1][2] == SILENCE:
        rows[-1] = (*rows[-1][:4], duration)
    else:
        rows.append((-1, "", SILENCE, end_speech, duration))
    phone_cols = list(zip(*rows, strict=True))

    times = np.arange(n_frames) / opts.fps
    mouth = articulation_track([(r[2], r[3], r[4]) for r in rows], times)
    head, light_gain, light_tilt = _clip_motion(times, opts)

    motion = borrow_motion(opts.motion_from, opts.timing_at_s, times) if opts.motion_from \
        else None
    if motion is not None:
        head = motion.head_over(head)

    rig = FaceRig(load_face(opts.face), opts.size, source=opts.face or "skimage astronaut",
                  relief=opts.stress.head_3d)
    if opts.stress.active or (motion is not None and motion.gaze is not None):
        # a hard clip (degraded picture and sound), or borrowed eyes: its own truth table
        head, light_gain, stress_facts = stress_clip(
            video_path, raw_dir / f"{opts.name}.truth_stress.parquet", rig, mouth, head,
            light_gain, light_tilt, audio, sr, speech_span, opts, motion)
    else:
        stress_facts = {}
        with atomic_path(video_path) as tmp:
            _encode(tmp, rig, mouth, head, light_gain, light_tilt, audio, sr, opts)
    write_text(text_path, text + "\n")
    write_parquet({"word_index": phone_cols[0], "word": list(phone_cols[1]),
                   "phone": list(phone_cols[2]), "start_s": phone_cols[3],
                   "end_s": phone_cols[4]}, TRUTH_PHONES, truth_phones_path)
    write_parquet({"frame": np.arange(n_frames), "time_s": times,
                   "jaw_open": mouth[:, 0], "lip_width": mouth[:, 1], "lip_closure": mouth[:, 2],
                   "head_yaw_deg": head[:, 0], "head_pitch_deg": head[:, 1],
                   "head_roll_deg": head[:, 2], "head_tx_px": head[:, 3], "head_ty_px": head[:, 4],
                   "light_gain": light_gain}, TRUTH_FRAMES, truth_frames_path)
    summary = {"clip": opts.name, "video": str(video_path), "frames": n_frames,
               "duration_s": round(duration, 3), "words": n_words,
               "phones": sum(1 for r in rows if r[2] != SILENCE), "size": opts.size,
               "fps": opts.fps, "voice": opts.voice, "rate_wpm": opts.rate_wpm,
               **({"stress": stress_facts} if stress_facts else {})}
    log.info("demo clip %s: %d frames, %.1f s, %d words", opts.name, n_frames, duration, n_words)
    return summary


def _own_speech(text: str, opts: DemoParams
                ) -> tuple[np.ndarray, int, list[tuple[int, str, str, float, float]], int]:
    """espeak-ng says ``text``: int16 audio with a silent lead-in, its rate, the truth phone
    rows (shifted by the lead-in, silence rows tiling the gaps) and the word count."""
    speech = synthesize(text, voice=opts.voice, rate_wpm=opts.rate_wpm)
    sr = speech.sample_rate
    lead = np.zeros(int(LEAD_S * sr), dtype=np.int16)
    audio = np.concatenate([lead, speech.samples, lead])
    words = [re.sub(r"[^\w'-]+", "", w.text) for w in speech.words]
    rows = [(-1, "", SILENCE, 0.0, LEAD_S)]
    for ph in speech.phones:
        row = (ph.word_index, words[ph.word_index] if ph.word_index >= 0 else "", ph.phone,
               ph.start_s + LEAD_S, ph.end_s + LEAD_S)
        if ph.phone == SILENCE and rows[-1][2] == SILENCE:
            rows[-1] = (*rows[-1][:4], row[4])
        else:
            rows.append(row)
    return audio, sr, rows, len(speech.words)


def _encode(path: Path, rig: FaceRig, mouth: np.ndarray, head: np.ndarray,
            light_gain: np.ndarray, light_tilt: np.ndarray, audio: np.ndarray, sr: int,
            opts: DemoParams) -> None:
    """Render frames one at a time straight into H.264 + AAC (nothing held in memory)."""
    with VideoWriter(path, opts.size, opts.size, opts.fps, crf=opts.crf, audio_rate=sr) as out:
        for k in range(len(mouth)):
            out.write(rig.render(float(mouth[k, 0]), float(mouth[k, 1]), float(mouth[k, 2]),
                                 HeadPose(*head[k]), float(light_gain[k]), float(light_tilt[k])))
        out.write_audio(audio)
