"""Checks of a reenactment's two clips before anything is written or run (the CLI's
pre-flight): both videos readable, one frame rate, a target long enough to have trained
a renderer on, a face in the source. Cheap: a probe of each file and a face search in a
few of the source's frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.reenact import ReenactParams
from talkedit.artifacts import ClipPaths
from talkedit.errors import TalkeditError
from talkedit.video import open_container, probe

FACE_PROBES = 6  # source frames, evenly spread, searched for a face


def _sample_frames(video: Path, total: int, count: int) -> list[np.ndarray]:
    """About ``count`` frames spread over the first ``total``, decoded in one streaming pass."""
    wanted = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
    frames = []
    with open_container(video) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
            if k >= max(wanted):
                break
    return frames


def has_face(images: list[np.ndarray]) -> bool:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         min_detection_confidence=0.5) as mesh:
        return any(mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
                   for image in images)


def check_clips(target: str, source: str, root: Path, opts: ReenactParams) -> None:
    """Raise a TalkeditError naming the input and the fix when the pair cannot work."""
    videos = {role: ClipPaths.of(name, root).video for role, name in (("target", target),
                                                                       ("source", source))}
    for role, video in videos.items():
        if not video.is_file():
            raise TalkeditError(video, f"not found (the {role} clip's video)",
                                "put the clip there (or run talkedit demo)")
    info = {role: probe(video) for role, video in videos.items()}
    if info["target"].average_rate != info["source"].average_rate:
        raise TalkeditError(videos["source"], f"runs at {float(info['source'].average_rate):g} "
                            f"fps and the target at {float(info['target'].average_rate):g} fps",
                            "convert one to the other's rate, e.g. ffmpeg -i in.mp4 -r 25 out.mp4")
    frames = (info["target"].duration_s or 0.0) * float(info["target"].average_rate)
    if frames < opts.min_target_frames:
        raise TalkeditError(videos["target"], f"has about {frames:.0f} frames, fewer than "
                            f"reenact.min_target_frames ({opts.min_target_frames}): too short "
                            "to train its renderer on", "give a longer target clip")
    source_frames = int((info["source"].duration_s or 0.0) * float(info["source"].average_rate))
    if not has_face(_sample_frames(videos["source"], source_frames, FACE_PROBES)):
        raise TalkeditError(videos["source"], f"shows no face in any of {FACE_PROBES} frames "
                            "spread over it", "give a source clip with a face in view")
