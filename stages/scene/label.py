"""scenelabel stage: each said line of each take labelled for the editor and the idioms.

Per take, frames are sampled at ``sample_fps`` and every face is found with the fit
stage's landmarker (``stages.fit.landmarks``, MediaPipe FaceMesh). Each face is
named by its landmark shape: the rigid points (forehead, nose ridge, eye corners,
cheekbones) moved into the canonical head frame (``stages.fit.geometry.canonicalize``:
no position, size or roll) are compared with each character's reference photo, and
the faces of a frame take distinct characters (the cheapest assignment). Per line:

* ``visible``: the characters seen in most of the line's sampled frames;
* ``shot``: the largest face's height / frame height: wide, medium or close-up;
* ``speaker``: audio-visual activity: each visible face's mouth opening (inner lips
  per eye distance) is correlated with the take's speech energy over the line; the
  best face speaks when it correlates at least ``min_speaker_score`` and its mouth
  moves; otherwise the speaker is off screen (the one character not seen, when there
  is exactly one);
* ``loudness_db`` (RMS of the line's sound) and ``tempo_wps`` (words per second).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.demo.face_rig import load_face
from stages.fit.geometry import canonicalize
from stages.fit.landmarks import make_landmarker
from stages.scene.config import DialogueParams
from stages.scene.media import iter_frames, read_audio, video_info
from stages.scene.spec import Scene, load_scene
from stages.scene.takes import carphone_face
from talkedit.artifacts import (
    SCENE_LABELS,
    SCENE_LINES,
    SCENE_WORDS,
    ScenePaths,
    read_parquet,
    write_parquet,
)
from talkedit.errors import TalkeditError

log = logging.getLogger(__name__)
ENERGY_RATE = 16000
WIDE, MEDIUM, CLOSE = "wide", "medium", "close"


def face_shape(points: np.ndarray, topology: Any) -> np.ndarray:
    """The identity descriptor: canonical rigid-point shape, (x, y) only (z is a guess)."""
    canon = canonicalize(points, topology)
    return canon[list(topology.rigid), :2].reshape(-1)


def mouth_opening(points: np.ndarray, topology: Any) -> float:
    """Mean inner-lip gap per eye distance."""
    upper = [u for u, _ in topology.inner_lip_pairs]
    lower = [v for _, v in topology.inner_lip_pairs]
    eye = np.linalg.norm(points[topology.eye_outer[1], :2] - points[topology.eye_outer[0], :2])
    gap = np.linalg.norm(points[lower, :2] - points[upper, :2], axis=1).mean()
    return float(gap / max(eye, 1e-6))


def load_face_photo(face: str, root: Path) -> np.ndarray:
    """A character's reference photo as RGB."""
    if face == "builtin:astronaut":
        return load_face(None)
    if face == "builtin:carphone":
        return carphone_face()
    return load_face(root / face)


def reference_shapes(scene: Scene, root: Path) -> np.ndarray:
    """(characters, D) reference shapes, from each character's photo."""
    out = []
    for character in scene.characters:
        photo = load_face_photo(character.face, root)
        with make_landmarker({"landmarker": "mediapipe", "max_faces": 1}) as landmarker:
            faces = landmarker.detect(photo)
            if not faces:
                raise TalkeditError(f"{scene.path} character {character.name}",
                                    f"no face found in its reference photo {character.face}",
                                    "give a frontal photo of the character's face")
            out.append(face_shape(faces[0].points, landmarker.topology))
    return np.stack(out)


def name_faces(shapes: list[np.ndarray], references: np.ndarray) -> list[int]:
    """The character index of each face of a frame: distinct, cheapest total distance."""
    if not shapes:
        return []
    cost = np.array([[np.linalg.norm(s - r) for r in references] for s in shapes])
    n_faces, n_chars = cost.shape
    # More faces than characters: the least like any character stay unnamed.
    keep = np.argsort(cost.min(axis=1))[:n_chars] if n_faces > n_chars else np.arange(n_faces)
    best, best_cost = None, np.inf
    for perm in itertools.permutations(range(n_chars), len(keep)):
        total = cost[keep, perm].sum()
        if total < best_cost:
            best, best_cost = perm, total
    out = [-1] * n_faces
    for face, char in zip(keep, best or (), strict=False):
        out[int(face)] = int(char)
    return out


def sample_faces(video: Path, references: np.ndarray, dialogue: DialogueParams
                 ) -> pd.DataFrame:
    """One row per (sampled frame, face): time, character, x, face height share, mouth."""
    fps, _, _, height = video_info(video)
    step = max(1, int(round(fps / dialogue.sample_fps)))
    rows = []
    with make_landmarker({"landmarker": "mediapipe", "max_faces": dialogue.max_faces}) as lm:
        for k, image in iter_frames(video, step=step):
            faces = lm.detect(image)
            names = name_faces([face_shape(f.points, lm.topology) for f in faces], references)
            for face, char in zip(faces, names, strict=True):
                rows.append((k, k / fps, char, float(face.box[0]), face.height_px / height,
                             mouth_opening(face.points, lm.topology)))
    table = pd.DataFrame(rows, columns=["frame", "time_s", "character", "x", "height", "mouth"])
    return table


def speech_energy(audio: np.ndarray, rate: int, times: np.ndarray, window_s: float = 0.08
                  ) -> np.ndarray:
    """RMS level (linear) of the sound in a window around each time."""
    half = int(window_s * rate / 2)
    x = audio.astype(np.float64) / 32768.0
    centres = np.clip((times * rate).astype(int), 0, max(len(x) - 1, 0))
    return np.array([np.sqrt(np.mean(x[max(c - half, 0):c + half + 1] ** 2)) for c in centres])


def shot_size(height_share: float, dialogue: DialogueParams) -> str:
    if height_share >= dialogue.close_face:
        return CLOSE
    return WIDE if height_share < dialogue.wide_face else MEDIUM


def label_take(scene: Scene, take: str, lines: pd.DataFrame, words: pd.DataFrame,
               faces: pd.DataFrame, audio: np.ndarray, dialogue: DialogueParams
               ) -> pd.DataFrame:
    """SCENE_LABELS rows for the said lines of one take."""
    names = scene.names
    rows = []
    times = faces.drop_duplicates("frame")["time_s"].to_numpy() if len(faces) else np.zeros(0)
    energy_by_time = dict(zip(times, speech_energy(audio, ENERGY_RATE, times), strict=True))
    for line in lines.itertuples():
        in_line = faces[(faces["time_s"] >= line.start_s) & (faces["time_s"] <= line.end_s)]
        line_frames = int(((times >= line.start_s) & (times <= line.end_s)).sum())
        seen = in_line[in_line["character"] >= 0]
        counts = seen.groupby("character")["frame"].nunique()
        visible_ids = [int(c) for c, n in counts.items() if n >= 0.5 * max(line_frames, 1)]
        visible_ids.sort(key=lambda c: seen[seen["character"] == c]["x"].median())
        face_count = int(in_line.groupby("frame").size().median()) if len(in_line) else 0
        height = float(seen["height"].max()) if len(seen) else 0.0
        shot = shot_size(height, dialogue) if visible_ids else "none"
        # Who speaks: the visible face whose mouth follows the speech energy.
        scores = {}
        for c in visible_ids:
            track = seen[seen["character"] == c].drop_duplicates("frame")
            mouth = track["mouth"].to_numpy()
            energy = np.array([energy_by_time[t] for t in track["time_s"]])
            if len(mouth) < 3 or mouth.std() < dialogue.min_mouth_std or energy.std() == 0:
                scores[c] = 0.0
            else:
                scores[c] = float(np.corrcoef(mouth, energy)[0, 1])
        best = max(scores, key=scores.get) if scores else None
        if best is not None and scores[best] >= dialogue.min_speaker_score:
            speaker, score = names[best], scores[best]
        else:
            off_screen = [n for k, n in enumerate(names) if k not in visible_ids]
            speaker = off_screen[0] if len(off_screen) == 1 else ""
            score = scores[best] if best is not None else 0.0
        visible = [names[c] for c in visible_ids]
        segment = audio[int(line.start_s * ENERGY_RATE):int(line.end_s * ENERGY_RATE)]
        rms = np.sqrt(np.mean((segment.astype(np.float64) / 32768.0) ** 2)) if len(segment) else 0.0
        n_words = int(((words["line"] == line.line) & (words["start_s"] >= line.start_s - 1e-6)
                       & (words["end_s"] <= line.end_s + 1e-6)).sum())
        duration = max(line.end_s - line.start_s, 1e-3)
        rows.append((take, line.line, line.start_s, line.end_s, face_count, ",".join(visible),
                     shot, height, f"{shot}:{','.join(visible)}", speaker, speaker in visible,
                     score, 20 * np.log10(max(rms, 1e-6)), n_words / duration))
    return pd.DataFrame(rows, columns=SCENE_LABELS.names)


def run_scenelabel(scene: str, root: Path, dialogue: DialogueParams) -> dict[str, Any]:
    """Label every said line of every take; write labels.parquet."""
    spec = load_scene(scene, root)
    paths = ScenePaths.of(scene, root)
    lines = read_parquet(paths.lines, SCENE_LINES, stage_hint=f"scenealign@{scene}")
    words = read_parquet(paths.words, SCENE_WORDS, stage_hint=f"scenealign@{scene}")
    references = reference_shapes(spec, root)
    tables, faceless = [], []
    for take in spec.takes:
        said = lines[(lines["take"] == take) & (lines["line"] >= 0)
                     & lines["status"].isin(["said", "partial"])]
        faces = sample_faces(paths.take_video(take), references, dialogue)
        if faces.empty:
            faceless.append(take)
            log.warning("take %s: no face in any sampled frame", take)
        audio = read_audio(paths.take_video(take), ENERGY_RATE)
        tables.append(label_take(spec, take, said, words[words["take"] == take], faces, audio,
                                 dialogue))
    labels = pd.concat(tables, ignore_index=True)
    write_parquet(labels, SCENE_LABELS, paths.labels)
    return {"scene": scene, "labelled_lines": len(labels),
            "setups": sorted(labels["setup"].unique().tolist()),
            "speaker_visible_share": round(float(labels["speaker_visible"].mean()), 3),
            "takes_without_faces": faceless}
