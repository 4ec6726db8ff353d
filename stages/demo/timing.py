"""Speak (and move) like another clip: truth clips for reenactment.

``demo.timing_from`` names a generated clip's video (``<dir>/<name>.mp4``, with its
``<name>.txt`` and ``<name>.truth_phones.parquet`` beside it). The new clip then says
that clip's words with exactly its phone timings, shifted to start ``timing_at_s``
into the new clip, over the source's own soundtrack: "face A saying the source's
words with the source's timing", which is what a reenactment of A driven by the
source should show. Head motion and lighting still follow the new clip's seed, so
with the target's seed the truth's frames are the target's frames, but for the mouth.

``demo.motion_from`` does the same for the head (rotation and shift) and, when the
other clip has a truth_stress table, its gaze and blinks: the truth of a portrait
reenactment (the rig's resting pose is frontal for every face, so the source's pose
relative to its rest is its pose).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from talkedit.artifacts import TRUTH_FRAMES, TRUTH_PHONES, TRUTH_STRESS, read_parquet
from talkedit.errors import TalkeditError
from talkedit.phonemes import SILENCE

PhoneRow = tuple[int, str, str, float, float]  # word_index, word, phone, start_s, end_s


@dataclass(frozen=True)
class BorrowedSpeech:
    text: str
    audio: np.ndarray  # int16 mono, silence before the source's speech
    sample_rate: int
    rows: list[PhoneRow]  # the source's phones, shifted; silence rows tile the gaps
    words: int


def _decode_mono(video: Path) -> tuple[np.ndarray, int]:
    """The video's soundtrack as int16 mono at its own rate."""
    with av.open(str(video)) as container:
        if not container.streams.audio:
            raise TalkeditError(video, "has no audio track", "name a clip made by talkedit demo")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [r.to_ndarray().reshape(-1) for frame in container.decode(stream)
                  for r in resampler.resample(frame)]
        chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16), rate


def borrow_speech(video: str | Path, at_s: float) -> BorrowedSpeech:
    """The words, phones and soundtrack of the generated clip ``video``, ``at_s`` later."""
    video = Path(video)
    text_path = video.with_suffix(".txt")
    phones_path = video.with_name(f"{video.stem}.truth_phones.parquet")
    for path in (video, text_path, phones_path):
        if not path.is_file():
            raise TalkeditError(path, "not found (demo.timing_from needs a generated clip's "
                                "video, text and truth phones side by side)",
                                "name a clip written by talkedit demo")
    if at_s < 0:
        raise TalkeditError("params.yaml demo.timing_at_s", f"is {at_s}, before the clip starts",
                            "use a time >= 0")
    phones = read_parquet(phones_path, TRUTH_PHONES)
    samples, rate = _decode_mono(video)
    lead = np.zeros(int(round(at_s * rate)), np.int16)
    rows: list[PhoneRow] = [(-1, "", SILENCE, 0.0, at_s)] if at_s > 0 else []
    for r in phones.itertuples(index=False):
        row = (int(r.word_index), str(r.word), str(r.phone), float(r.start_s) + at_s,
               float(r.end_s) + at_s)
        if rows and row[2] == SILENCE and rows[-1][2] == SILENCE:
            rows[-1] = (*rows[-1][:4], row[4])
        else:
            rows.append(row)
    text = " ".join(text_path.read_text(encoding="utf-8").split())
    words = int(phones.loc[phones["word_index"] >= 0, "word_index"].nunique())
    return BorrowedSpeech(text, np.concatenate([lead, samples]), rate, rows, words)


HEAD_COLUMNS = ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "head_tx_px", "head_ty_px")


@dataclass(frozen=True)
class BorrowedMotion:
    active: np.ndarray  # (n,) frames the other clip's motion covers
    head: np.ndarray  # (n, 5) yaw, pitch, roll (deg), tx, ty (px) there
    gaze: np.ndarray | None  # (n, 2) yaw, pitch (deg), when the other clip has eye truth
    blink: np.ndarray | None  # (n,) lid closure 0..1

    def head_over(self, own: np.ndarray) -> np.ndarray:
        return np.where(self.active[:, None], self.head, own)


def borrow_motion(video: str | Path, at_s: float, times: np.ndarray) -> BorrowedMotion:
    """The generated clip ``video``'s head track (and eye truth), ``at_s`` later, sampled
    at ``times``; frames outside its span are marked inactive."""
    video = Path(video)
    frames_path = video.with_name(f"{video.stem}.truth_frames.parquet")
    if not frames_path.is_file():
        raise TalkeditError(frames_path, "not found (demo.motion_from needs a generated clip's "
                            "truth frames beside its video)", "name a clip written by talkedit demo")
    frames = read_parquet(frames_path, TRUTH_FRAMES)
    t = times - at_s
    src_t = frames["time_s"].to_numpy()
    active = (t >= 0) & (t <= src_t[-1])

    def sample(values: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(t, src_t, v) for v in np.atleast_2d(values.T)], axis=1)

    head = sample(frames[list(HEAD_COLUMNS)].to_numpy(np.float64))
    stress_path = video.with_name(f"{video.stem}.truth_stress.parquet")
    gaze = blink = None
    if stress_path.is_file():
        eyes = read_parquet(stress_path, TRUTH_STRESS)
        gaze = sample(eyes[["gaze_yaw_deg", "gaze_pitch_deg"]].to_numpy(np.float64))
        blink = sample(eyes[["blink"]].to_numpy(np.float64))[:, 0]
    return BorrowedMotion(active, head, gaze, blink)
