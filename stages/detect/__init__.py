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

from stages.detect.scores import EVIDENCE, Thresholds, score_windows
from stages.detect.signals import face_signals, read_wav_16k, texture_signals
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

__all__ = ["DetectParams", "Verdict", "analyze_clip", "detect_video", "run_detect", "EVIDENCE"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectParams(Section):
    """The ``detect:`` section of params.yaml. The thresholds come from
    ``python -m benchmarks.detect --calibrate`` on generated clean clips (never the
    evaluation cases): each is the level a clean clip's highest window score stays under
    with probability 1 - false_alarm_rate / 5 (five evidence types; a normal or log-normal
    fit to 60 clean clips), raised to the highest clean calibration score where that is
    higher, so a clean clip is flagged with probability about false_alarm_rate or less."""

    SECTION = "detect"

    window_s: float = 1.0
    hop_s: float = 0.5
    sync_window_s: float = 2.0  # lag search needs more context than the other checks
    max_lag_ms: float = 400.0
    closure_slack_s: float = 0.04  # alignment error allowed around an M/B/P
    sync_min_gain: float = 0.1  # a window's own lag counts when it raises r by this much
    false_alarm_rate: float = 0.05  # the calibration's target, per clip
    closure: float = 0.488
    sync_offset_ms: float = 312.0
    sync_gain: float = 0.231
    seam: float = 6.78
    texture: float = 1.24

    def check(self, where: str) -> None:
        if not 0 < self.hop_s <= self.window_s <= self.sync_window_s:
            raise bad_param(where, "window_s", "needs 0 < hop_s <= window_s <= sync_window_s",
                            "use hop_s 0.5, window_s 1.0, sync_window_s 2.0")
        if not 0 < self.sync_gain < 2:
            raise bad_param(where, "sync_gain", "is a gain in correlation: must lie in (0, 2)")

    def thresholds(self) -> Thresholds:
        return Thresholds(self.closure, self.sync_offset_ms, self.sync_gain, self.seam,
                          self.texture)


def analyze_clip(clip: str, root: Path, detect: DetectParams, has_audio: bool = True
                 ) -> tuple[pd.DataFrame, pd.DataFrame, Verdict]:
    """Windows, spans and verdict for an extracted, aligned (when ``has_audio``) and
    fitted clip of the project at ``root``."""
    paths = ClipPaths.of(clip, root)
    meta = VideoMeta.read(paths)
    face = face_signals(paths, clip)
    texture = texture_signals(FrameStore.for_clip(clip, root), face)
    phones = (read_parquet(paths.phones, PHONES, stage_hint=f"align@{clip}") if has_audio
              else None)
    windows, bilabials = score_windows(face, texture, phones, meta.fps, detect.window_s,
                                       detect.hop_s, detect.sync_window_s, detect.max_lag_ms,
                                       detect.closure_slack_s, detect.sync_min_gain)
    ratios = detect.thresholds().ratios(windows)
    windows = pd.concat([windows, ratios.add_prefix("ratio_")], axis=1)
    windows["score"] = ratios.max(axis=1, skipna=True).fillna(0.0)
    windows["flagged"] = windows["score"] > 1.0
    windows["evidence"] = [",".join(k for k in EVIDENCE if r[k] > 1.0)
                           for _, r in ratios.iterrows()]
    words = (read_parquet(paths.words, stage_hint=f"align@{clip}")["normalized"].tolist()
             if has_audio and paths.words.is_file() else [])
    spans = flag_spans(windows, bilabials, words)
    verdict = Verdict(clip, float(meta.duration_s), has_audio, spans, windows, detect)
    return windows, spans, verdict


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


def detect_video(video: Path, transcript: Path | None, detect: DetectParams,
                 out_dir: Path | None = None) -> Verdict:
    """Judge any video file. Without a transcript the speech is recognised offline; a
    video with no audio track gets the visual checks alone. ``out_dir``, when given,
    receives the windows, spans and verdict files."""
    from stages.align import AlignParams, run_align
    from stages.detect.speech import recognize
    from stages.extract import ExtractParams, extract_clip
    from stages.fit import FitParams, run_fit
    from talkedit.scale import ScaleParams

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
            run_fit(clip, root, FitParams(), ScaleParams())  # one process, no chunks
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
        windows, spans, verdict = analyze_clip(clip, root, detect, info.has_audio)
    verdict = dataclasses.replace(verdict, name=str(video))
    if out_dir is not None:
        write_outputs(DetectPaths.in_folder(Path(out_dir)), windows, spans, verdict)
    return verdict
