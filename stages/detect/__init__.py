"""detect: find the traces edited mouths leave in a talking-head video, without trusting
any watermark or manifest (talkedit's own included).

The instruments are the pipeline's own: ``stages/extract`` decodes, ``stages/align``
times the phones (from a transcript, or from offline recognition when there is none),
``stages/fit`` tracks the face. ``scores.py`` scores short windows for bilabial closure
failures, audio-visual offset drift, frame seams and a mouth texture mismatch;
``verdict.py`` turns the windows that cross the calibrated thresholds into spans with
their evidence.

Entry points:
- ``run_detect(clip, root, detect)``: the DVC stage, on a clip the pipeline already
  extracted, aligned and fitted; writes data/detect/<clip>/.
- ``detect_video(video, transcript, detect, out_dir)``: any video file (the
  ``talkedit detect VIDEO`` command), processed in a scratch folder.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.detect.scores import EVIDENCE, LOWEST_RATIO, Calibration, score_windows
from stages.detect.signals import (
    FaceSignals,
    TextureSignals,
    face_signals,
    frame_loudness,
    read_wav_16k,
    texture_signals,
)
from stages.detect.verdict import Verdict, flag_spans
from talkedit.artifacts import (
    DETECT_SPANS,
    DETECT_WINDOWS,
    PHONES,
    ClipPaths,
    DetectPaths,
    VideoMeta,
    read_parquet,
    write_parquet,
)
from talkedit.atomic import write_json, write_text
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.video import FrameStore, probe

__all__ = ["ClipSignals", "DetectParams", "Verdict", "analyze_clip", "clip_signals",
           "detect_video", "judge", "run_detect", "video_signals", "EVIDENCE"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectParams(Section):
    """The ``detect:`` section of params.yaml. The thresholds and typical levels come from
    ``python -m benchmarks.detect --calibrate`` on generated clean training clips (never
    the evaluation cases): per evidence type, a normal fit (on the log for skewed scores)
    to each clip's highest window score; ``<type>_typical`` is the fit's mean and
    ``<type>`` the level a clean clip stays under with probability
    1 - false_alarm_rate / 6 (six evidence types), so a clean clip is flagged with
    probability about false_alarm_rate."""

    SECTION = "detect"

    window_s: float = 1.0
    hop_s: float = 0.5
    sync_window_s: float = 2.0  # lag search needs more context than the other checks
    max_lag_ms: float = 400.0
    closure_slack_s: float = 0.04  # alignment error allowed around an M/B/P
    sync_min_gain: float = 0.1  # a window's own lag counts when it raises r by this much
    sync_persist: int = 3  # ...and as far as this many consecutive windows drift alike
    false_alarm_rate: float = 0.04  # the calibration's target per clean clip (the goal: <= 5 %)
    closure: float = 0.25
    sync_offset_ms: float = 80.0
    pace: float = 0.05
    seam: float = 4.0
    texture: float = 1.51
    closure_typical: float = -0.268
    sync_offset_ms_typical: float = 0.0
    pace_typical: float = 0.00401
    seam_typical: float = 2.03
    texture_typical: float = 0.606

    def check(self, where: str) -> None:
        if self.sync_persist < 1:
            raise bad_param(where, "sync_persist", "must be at least 1", "use 3")
        if not 0 < self.hop_s <= self.window_s <= self.sync_window_s:
            raise bad_param(where, "window_s", "needs 0 < hop_s <= window_s <= sync_window_s",
                            "use hop_s 0.5, window_s 1.0, sync_window_s 2.0")
        for kind in EVIDENCE:
            if not getattr(self, kind) > getattr(self, f"{kind}_typical"):
                raise bad_param(where, kind, f"must exceed {kind}_typical (a clean clip's "
                                "typical level)", "rerun python -m benchmarks.detect --calibrate")

    def calibration(self) -> Calibration:
        return Calibration({k: getattr(self, f"{k}_typical") for k in EVIDENCE},
                           {k: getattr(self, k) for k in EVIDENCE})


@dataclass
class ClipSignals:
    """Everything the scores read off a clip: the fitted face, the pixel statistics, the
    aligned phones and words (None / empty without audio). Computing it is the slow part
    (decode, fit, align); scoring it is quick, so the benchmark keeps these."""

    name: str
    fps: float
    duration_s: float
    face: FaceSignals
    texture: TextureSignals
    phones: pd.DataFrame | None
    words: list[str]
    loudness: np.ndarray | None = None  # (n,) the soundtrack's dB level at each frame

    @property
    def has_audio(self) -> bool:
        return self.phones is not None


def clip_signals(clip: str, root: Path, has_audio: bool = True) -> ClipSignals:
    """The signals of an extracted, aligned (when ``has_audio``) and fitted clip of the
    project at ``root``."""
    paths = ClipPaths.of(clip, root)
    meta = VideoMeta.read(paths)
    face = face_signals(paths, clip)
    texture = texture_signals(FrameStore.for_clip(clip, root), face)
    phones = (read_parquet(paths.phones, PHONES, stage_hint=f"align@{clip}") if has_audio
              else None)
    words = (read_parquet(paths.words, stage_hint=f"align@{clip}")["normalized"].tolist()
             if has_audio and paths.words.is_file() else [])
    loudness = (frame_loudness(*read_wav_16k(paths.audio), face.time_s, 1.0 / meta.fps)
                if has_audio else None)
    return ClipSignals(clip, float(meta.fps), float(meta.duration_s), face, texture, phones,
                       words, loudness)


def judge(signals: ClipSignals, detect: DetectParams
          ) -> tuple[pd.DataFrame, pd.DataFrame, Verdict]:
    """Windows, spans and verdict from a clip's signals."""
    windows, bilabials = score_windows(signals.face, signals.texture, signals.phones,
                                       signals.fps, detect.window_s, detect.hop_s,
                                       detect.sync_window_s, detect.max_lag_ms,
                                       detect.closure_slack_s, detect.sync_min_gain,
                                       signals.loudness, detect.sync_persist)
    ratios = detect.calibration().ratios(windows)
    windows = pd.concat([windows, ratios.add_prefix("ratio_")], axis=1)
    windows["score"] = ratios.max(axis=1, skipna=True).fillna(LOWEST_RATIO)
    windows["flagged"] = windows["score"] > 1.0
    windows["evidence"] = [",".join(k for k in EVIDENCE if r[k] > 1.0)
                           for _, r in ratios.iterrows()]
    spans = flag_spans(windows, bilabials, signals.words)
    verdict = Verdict(signals.name, signals.duration_s, signals.has_audio, spans, windows,
                      detect)
    return windows, spans, verdict


def analyze_clip(clip: str, root: Path, detect: DetectParams, has_audio: bool = True
                 ) -> tuple[pd.DataFrame, pd.DataFrame, Verdict]:
    """Windows, spans and verdict for an extracted, aligned (when ``has_audio``) and
    fitted clip of the project at ``root``."""
    return judge(clip_signals(clip, root, has_audio), detect)


def write_outputs(out: DetectPaths, windows: pd.DataFrame, spans: pd.DataFrame,
                  verdict: Verdict) -> None:
    write_parquet(windows[[f.name for f in DETECT_WINDOWS]], DETECT_WINDOWS, out.windows)
    write_parquet(spans[[f.name for f in DETECT_SPANS]], DETECT_SPANS, out.spans)
    write_json(out.verdict_json, verdict.to_json())
    write_text(out.verdict_md, verdict.render() + "\n")


def run_detect(clip: str, root: Path, detect: DetectParams) -> dict[str, Any]:
    """The DVC stage: judge a clip of the project; write data/detect/<clip>/."""
    windows, spans, verdict = analyze_clip(clip, root, detect)
    write_outputs(DetectPaths.of(clip, root), windows, spans, verdict)
    return {"clip": clip, "manipulated": verdict.manipulated, "spans": len(spans),
            "windows": len(windows), "flagged_windows": int(windows["flagged"].sum()),
            "verdict": verdict.render()}


def _with_silent_track(video: Path, dst: Path) -> None:
    """A near-lossless copy (CRF 8) of a video that has no audio track, with a silent one,
    so the extract stage reads it like any clip; only the visual checks use it."""
    from talkedit.video import VideoWriter, open_container

    info = probe(video)
    width, height = info.width + info.width % 2, info.height + info.height % 2
    with open_container(video) as src, VideoWriter(dst, width, height, info.average_rate,
                                                   crf=8, audio_rate=16000) as out:
        n = 0
        for frame in src.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            out.write(np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]),
                                     (0, 0)), mode="edge"))
            n += 1
        out.write_audio(np.zeros(int(n / float(info.average_rate) * 16000), np.int16))


# The fit as the detector runs it: one face followed (the speaker judged; thresholds were
# calibrated so). Before the fit learnt that phantom faces come and go (tracking.py,
# OTHER_PERSON_MIN_S), its second-person check left out 22-37 % of the frames of some
# clean generated clips, the closed-lip ones among them, and the closure check read the
# open neighbours of every M, B and P it lost (trb32, trb35, cal06 in training).
DETECT_FIT_CHANGES = {"max_faces": 1}


MAX_UNFOLLOWED_WORDS = 0.5  # more words than this the aligner cannot place: not speech


def check_speech(video: Path, words: pd.DataFrame, transcript: Path | None) -> None:
    """Music, noise or another language: the aligner cannot follow most of the words it
    was given (recognised or from the transcript), so lip sync cannot be judged."""
    share = float(words["low_confidence"].mean()) if len(words) else 1.0
    if share > MAX_UNFOLLOWED_WORDS:
        given = "its transcript" if transcript else "the words recognised in it"
        raise TalkeditError(video, f"has no clear speech: the aligner cannot follow "
                            f"{share:.0%} of {given} (music or noise?)",
                            "give a video of someone speaking, with --transcript FILE if the "
                            "recogniser misses the words, or one with no audio track for the "
                            "visual checks alone")


def video_signals(video: Path, transcript: Path | None) -> ClipSignals:
    """The signals of any video file, processed in a scratch folder. Without a transcript
    the speech is recognised offline; a video with no audio track has no phones."""
    from stages.align import AlignParams, run_align
    from stages.detect.speech import recognize
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from talkedit.scale import ScaleParams

    detect_fit = dataclasses.replace(FitParams(), **DETECT_FIT_CHANGES)
    video = Path(video)
    info = probe(video)  # a missing or unreadable file fails here, with one line
    if transcript is not None and not Path(transcript).is_file():
        raise TalkeditError(transcript, "transcript not found",
                            "give the text file of what is said, or leave --transcript out")
    with tempfile.TemporaryDirectory(prefix="talkedit-detect-") as scratch:
        root = Path(scratch)
        clip = "video"
        paths = ClipPaths.of(clip, root)
        paths.video.parent.mkdir(parents=True)
        if info.has_audio:
            paths.video.symlink_to(video.resolve())
        else:
            _with_silent_track(video, paths.video)
        # extract checks a transcript exists; its text is only read by align (below)
        text = Path(transcript).read_text(encoding="utf-8", errors="replace") if transcript \
            else "unknown"
        paths.transcript.write_text(text, encoding="utf-8")
        extract_clip(clip, root, ExtractParams())
        try:  # the face first: a video with no face cannot be judged at all
            run_fit(clip, root, detect_fit, ScaleParams())  # one process, no chunks
        except TalkeditError as exc:
            raise TalkeditError(video, exc.problem, exc.fix) from None
        if info.has_audio:
            if transcript is None:
                samples, rate = read_wav_16k(paths.audio)
                paths.transcript.write_text(recognize(samples, rate, str(video)),
                                            encoding="utf-8")
            try:
                run_align(clip, root, dataclasses.replace(AlignParams(), on_mismatch="mark"))
            except TalkeditError as exc:
                raise TalkeditError(video, exc.problem, exc.fix) from None
            check_speech(video, read_parquet(paths.words, stage_hint="align"), transcript)
        signals = clip_signals(clip, root, info.has_audio)
    return dataclasses.replace(signals, name=str(video))


def detect_video(video: Path, transcript: Path | None, detect: DetectParams,
                 out_dir: Path | None = None) -> Verdict:
    """Judge any video file (``video_signals`` says how it is read). ``out_dir``, when
    given, receives the windows, spans and verdict files."""
    windows, spans, verdict = judge(video_signals(video, transcript), detect)
    if out_dir is not None:
        write_outputs(DetectPaths.in_folder(Path(out_dir)), windows, spans, verdict)
    return verdict
