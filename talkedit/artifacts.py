"""The artifact contracts: every file a stage reads or writes, and its schema.

Every stage reads and writes through this module, so a name or a column is
defined exactly once. ``docs/artifacts.md`` is the human-readable twin of this
file; keep them in step.

Per-frame arrays (landmarks, expression...) are stored as flat
``fixed_size_list<float32>`` columns: they read ~10x faster than nested lists
through pandas, and ``column_array`` turns one back into a 2-D numpy array.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from talkedit.atomic import atomic_path, write_json
from talkedit.errors import TalkeditError
from talkedit.params import check_name, repo_root

# --- where artifacts live -------------------------------------------------------------


def data_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "data"


@dataclass(frozen=True)
class ClipPaths:
    """All per-clip artifacts. ``clip`` is validated (no path characters)."""

    clip: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, clip: str, root: Path | None = None) -> ClipPaths:
        return cls(check_name(clip, "clip"), data_dir(root))

    # inputs (data/raw)
    @property
    def video(self) -> Path:
        return self.data / "raw" / f"{self.clip}.mp4"

    @property
    def transcript(self) -> Path:
        return self.data / "raw" / f"{self.clip}.txt"

    @property
    def truth_phones(self) -> Path:
        """Generator ground truth (only for clips made by ``talkedit demo``)."""
        return self.data / "raw" / f"{self.clip}.truth_phones.parquet"

    @property
    def truth_frames(self) -> Path:
        return self.data / "raw" / f"{self.clip}.truth_frames.parquet"

    # extract
    @property
    def interim(self) -> Path:
        return self.data / "interim" / self.clip

    @property
    def frames(self) -> Path:
        return self.interim / "frames.parquet"

    @property
    def video_meta(self) -> Path:
        return self.interim / "video.json"

    @property
    def audio(self) -> Path:
        return self.interim / "audio.wav"

    # align
    @property
    def words(self) -> Path:
        return self.interim / "words.parquet"

    @property
    def phones(self) -> Path:
        return self.interim / "phones.parquet"

    @property
    def speaker_rate(self) -> Path:
        return self.interim / "speaker_rate.parquet"

    # fit
    @property
    def face(self) -> Path:
        return self.interim / "face.parquet"

    @property
    def face_model(self) -> Path:
        return self.interim / "face_model.safetensors"

    @property
    def crops(self) -> Path:
        return self.interim / "crops"

    @property
    def crops_video(self) -> Path:
        """Aligned face crops, crop frame k = clip frame k (see stages/fit/crops.py)."""
        return self.crops / "crops.mp4"

    @property
    def crops_meta(self) -> Path:
        """The crops video's size, frame rate and codec (JSON, written by fit)."""
        return self.crops / "crops.json"

    # index
    @property
    def visemes(self) -> Path:
        return self.interim / "visemes.parquet"

    # train
    @property
    def model_dir(self) -> Path:
        return self.data / "models" / self.clip

    # evaluate
    @property
    def metrics_dir(self) -> Path:
        return self.data / "metrics" / self.clip


@dataclass(frozen=True)
class VideoMeta:
    """``video.json`` (extract): the clip's constant-rate timeline and its audio."""

    clip: str
    source: str  # the video file, relative to the project root when inside it
    fps: float  # output (constant) frame rate...
    fps_rational: str  # ...exactly, e.g. "30000/1001"
    width: int  # after rotation
    height: int
    rotation: int  # display rotation applied on decode, degrees
    n_frames: int  # frames on the constant-rate timeline
    n_source_frames: int  # frames decoded from the file
    duration_s: float
    variable_frame_rate: bool
    source_codec: str
    time_base: str  # the video stream's time base, e.g. "1/12800"
    audio_rate: int  # audio.wav's sample rate
    audio_samples: int  # audio.wav's samples (after the start offset was padded or trimmed)
    audio_offset_s: float  # audio start minus video start in the source (corrected in audio.wav)

    def write(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, paths: ClipPaths) -> VideoMeta:
        """The clip's video.json; a clear error when extract has not run or is outdated."""
        path = paths.video_meta
        if not path.is_file():
            raise TalkeditError(path, "not found", f"run extract@{paths.clip} first (dvc repro)")
        try:
            values = json.loads(path.read_text())
            return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})
        except (ValueError, KeyError, TypeError) as exc:
            raise TalkeditError(path, f"is not a video.json of this version ({exc})",
                                f"re-run extract@{paths.clip}") from exc


@dataclass(frozen=True)
class EditPaths:
    edit: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, edit: str, root: Path | None = None) -> EditPaths:
        return cls(check_name(edit, "edit"), data_dir(root))

    @property
    def inputs(self) -> Path:
        """The edit's folder: its spec and anything it names (a recording). DVC tracks it whole."""
        return self.data / "edits" / self.edit

    @property
    def spec(self) -> Path:
        """The edit spec (talkedit/edits.py)."""
        return self.inputs / "edit.yaml"

    @property
    def plan_dir(self) -> Path:
        return self.data / "plans" / self.edit

    @property
    def plan(self) -> Path:
        return self.plan_dir / "plan.parquet"

    @property
    def segments(self) -> Path:
        return self.plan_dir / "segments.parquet"

    @property
    def new_phones(self) -> Path:
        return self.plan_dir / "new_phones.parquet"

    @property
    def summary(self) -> Path:
        """The plan in words; its lines starting PLAN_WARNING / PLAN_QUALITY are the
        plan's warnings and quality screen (the edit report shows them)."""
        return self.plan_dir / "summary.md"

    @property
    def recording_dir(self) -> Path:
        """The user's recording as plan aligned it, read by audio: empty for other sources."""
        return self.plan_dir / "recording"

    @property
    def recording_audio(self) -> Path:
        """The recording at 16 kHz mono (16-bit PCM WAV)."""
        return self.recording_dir / "audio.wav"

    @property
    def recording_words(self) -> Path:
        """Its aligned words (WORDS columns)."""
        return self.recording_dir / "words.parquet"

    @property
    def recording_phones(self) -> Path:
        """Its aligned phones and pauses (PHONES columns)."""
        return self.recording_dir / "phones.parquet"

    @property
    def recording_meta(self) -> Path:
        """JSON: the user's file it came from, what it says, conversions done on reading."""
        return self.recording_dir / "recording.json"

    @property
    def audio(self) -> Path:
        return self.plan_dir / "audio.wav"

    @property
    def render_dir(self) -> Path:
        return self.data / "renders" / self.edit

    @property
    def output(self) -> Path:
        return self.data / "outputs" / f"{self.edit}.mp4"

    @property
    def provenance(self) -> Path:
        return self.data / "outputs" / f"{self.edit}.provenance.json"


@dataclass(frozen=True)
class ModelPaths:
    """The train stage's files for one clip (stages/render), under data/models/<clip>/."""

    clip: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, clip: str, root: Path | None = None) -> ModelPaths:
        return cls(check_name(clip, "clip"), data_dir(root))

    @property
    def dir(self) -> Path:
        return self.data / "models" / self.clip

    @property
    def generator(self) -> Path:
        """The trained generator (EMA weights) + metadata: clip, config hash, box, fit hash."""
        return self.dir / "generator.safetensors"

    @property
    def references(self) -> Path:
        """Appearance exemplars the generator was trained with: crops, frames, expressions."""
        return self.dir / "references.safetensors"

    @property
    def checkpoints(self) -> Path:
        """Resumable training state, one file per config hash (``<hash>.safetensors``)."""
        return self.dir / "checkpoints"

    def checkpoint(self, config_hash: str) -> Path:
        return self.checkpoints / f"{config_hash}.safetensors"

    @property
    def losses(self) -> Path:
        """Loss curves, one row per logged step (DVC plots; columns: LOSSES_COLUMNS)."""
        return self.dir / "losses.tsv"

    @property
    def metrics(self) -> Path:
        """Held-out quality against two baselines (DVC metrics)."""
        return self.dir / "metrics.json"

    @property
    def preview(self) -> Path:
        """Held-out frames: real | conditioning | nearest-expression frame | network."""
        return self.dir / "preview.png"


@dataclass(frozen=True)
class RenderPaths:
    """The render stage's files for one edit (stages/render), under data/renders/<edit>/.

    Generated crops are stored in chunks of ``render.chunk_frames`` frames, each a
    safetensors file with ``crops`` (n, S, S, 3) uint8 RGB and ``alpha`` (n, S, S)
    uint8 (255 = generated pixel, 0 = background); ``index.parquet`` (RENDER_INDEX)
    says which output frame is which chunk row and how to put the crop back into
    the frame. Frames the plan leaves unedited are not rendered by default (they are
    the original footage). Read them with ``stages.render.RenderStore``.
    """

    edit: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, edit: str, root: Path | None = None) -> RenderPaths:
        return cls(check_name(edit, "edit"), data_dir(root))

    @property
    def dir(self) -> Path:
        return self.data / "renders" / self.edit

    @property
    def index(self) -> Path:
        return self.dir / "index.parquet"

    @staticmethod
    def chunk_name(k: int) -> str:
        return f"crops-{k:05d}.safetensors"

    def chunk(self, k: int) -> Path:
        return self.dir / self.chunk_name(k)

    @property
    def summary(self) -> Path:
        return self.dir / "render.json"


@dataclass(frozen=True)
class LipModelPaths:
    """The lipmodel stage's files for one clip (stages/lipsync), under data/models/<clip>/lipsync/."""

    clip: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, clip: str, root: Path | None = None) -> LipModelPaths:
        return cls(check_name(clip, "clip"), data_dir(root))

    @property
    def dir(self) -> Path:
        return self.data / "models" / self.clip / "lipsync"

    @property
    def model(self) -> Path:
        """The kept audio-to-expression network (safetensors; its kind and features in metadata)."""
        return self.dir / "model.safetensors"

    @property
    def losses(self) -> Path:
        """Loss curves of both networks (DVC plots; columns: LIP_LOSSES_COLUMNS)."""
        return self.dir / "losses.tsv"

    @property
    def metrics(self) -> Path:
        """Held-out scores of both networks and the baselines (DVC metrics)."""
        return self.dir / "metrics.json"


@dataclass(frozen=True)
class LipsyncPaths:
    """A lip-sync job's inputs, data/lipsync/<job>/ (job.yaml and any audio file it names).

    Its plan, soundtrack, renders and output share the edit contracts and places
    (``EditPaths.of(job)``: data/plans/<job>/, data/renders/<job>/, data/outputs/<job>.mp4),
    so render and composite read a job as they read an edit; a job may not share an
    edit's name.
    """

    job: str
    data: Path

    @classmethod
    def of(cls, job: str, root: Path | None = None) -> LipsyncPaths:
        return cls(check_name(job, "job"), data_dir(root))

    @property
    def inputs(self) -> Path:
        return self.data / "lipsync" / self.job

    @property
    def spec(self) -> Path:
        return self.inputs / "job.yaml"

    @property
    def outputs(self) -> EditPaths:
        return EditPaths(self.job, self.data)

    @property
    def expression(self) -> Path:
        """The predicted expression track on the new audio's timeline (LIP_TRACK)."""
        return self.outputs.plan_dir / "lipsync.parquet"

    @property
    def report(self) -> Path:
        """What the job did: audio read, length, re-timing, model (JSON)."""
        return self.outputs.plan_dir / "lipsync.json"


@dataclass(frozen=True)
class ReenactPaths:
    """A reenactment job's spec, data/reenact/<job>.yaml (stages/reenact/spec.py).

    Like a lip-sync job's, its plan, soundtrack, renders and output share the edit
    contracts and places (``EditPaths.of(job)``), so render and composite read it as an
    edit; a job may not share an edit's or a lip-sync job's name.
    """

    job: str
    data: Path

    @classmethod
    def of(cls, job: str, root: Path | None = None) -> ReenactPaths:
        return cls(check_name(job, "job"), data_dir(root))

    @property
    def spec(self) -> Path:
        return self.data / "reenact" / f"{self.job}.yaml"

    @property
    def outputs(self) -> EditPaths:
        return EditPaths(self.job, self.data)

    @property
    def track(self) -> Path:
        """Per output frame: the source frame driving it and what was transferred (REENACT_TRACK)."""
        return self.outputs.plan_dir / "reenact.parquet"

    @property
    def report(self) -> Path:
        """What the job did: spans, neutrals, scales, clipping (JSON)."""
        return self.outputs.plan_dir / "reenact.json"


# --- the plan summary's marked lines (EditPaths.summary) -----------------------------------

PLAN_WARNING = "> warning: "  # one line per warning the plan raised
PLAN_QUALITY = "Quality screen: "  # the plan's quality estimate and what it rests on


# --- schemas ------------------------------------------------------------------------------


def vec(n: int) -> pa.DataType:
    """A fixed-length float32 vector per row (e.g. 64 expression coefficients)."""
    return pa.list_(pa.float32(), n)


# extract: one row per output (constant-rate) frame
FRAMES = pa.schema(
    [
        ("frame", pa.int32()),  # output frame index, 0..n-1
        ("time_s", pa.float64()),  # frame / fps on the constant-rate timeline
        ("source_index", pa.int32()),  # decode-order index of the source frame shown
        ("source_pts", pa.int64()),  # that frame's pts in the stream's time base
        ("keyframe", pa.bool_()),  # the source frame is a keyframe (seek target)
        ("width", pa.int32()),  # after rotation
        ("height", pa.int32()),
    ]
)

# demo generator ground truth
TRUTH_PHONES = pa.schema(
    [
        ("word_index", pa.int32()),  # -1 for pauses
        ("word", pa.string()),
        ("phone", pa.string()),  # ARPAbet without stress; "sil" for pauses
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
    ]
)
TRUTH_FRAMES = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("jaw_open", pa.float32()),  # 0 closed .. 1 wide open
        ("lip_width", pa.float32()),  # -1 rounded .. 0 neutral .. 1 spread
        ("lip_closure", pa.float32()),  # 0 free .. 1 lips pressed (p/b/m)
        ("head_yaw_deg", pa.float32()),
        ("head_pitch_deg", pa.float32()),
        ("head_roll_deg", pa.float32()),
        ("head_tx_px", pa.float32()),
        ("head_ty_px", pa.float32()),
        ("light_gain", pa.float32()),
    ]
)
# A hard demo clip (demo.stress in params.yaml) also gets <clip>.truth_stress.parquet: where
# the face is on the canvas and what hides or disturbs it, per frame.
TRUTH_STRESS = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("eye_left_x", pa.float32()),  # outer eye corners (FaceMesh 33, 263) in frame px: exact
        ("eye_left_y", pa.float32()),  # (the rig moves the eyes rigidly with the head)
        ("eye_right_x", pa.float32()),
        ("eye_right_y", pa.float32()),
        ("eye_px", pa.float32()),  # their distance
        ("mouth_x", pa.float32()),  # the closed mouth's centre, frame px
        ("mouth_y", pa.float32()),
        ("occluded_share", pa.float32()),  # share of the mouth box an object or a second person covers
        ("blink", pa.float32()),  # eyelid closure, 0 open .. 1 shut
        ("second_person", pa.float32()),  # a second person in frame, 0 out .. 1 fully in
        ("gaze_yaw_deg", pa.float32()),  # eye-in-head gaze, + = towards image right (demo.stress.gaze_deg)
        ("gaze_pitch_deg", pa.float32()),  # + = down; both 0 = looking along the head's axis
    ]
)

# align (stages/align). Times are seconds on the clip's audio timeline.
WORDS = pa.schema(
    [
        ("word_index", pa.int32()),  # index into the spoken (normalized) word sequence
        ("written_index", pa.int32()),  # index of the written transcript token (text.split())
        ("word", pa.string()),  # as written in the transcript ("$150" for each of its words)
        ("normalized", pa.string()),  # spoken form, lower case; "u." is the letter U
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("score", pa.float32()),  # acoustic confidence 0..1 (0.5 at align.mismatch_z SDs below typical)
        ("pron", pa.string()),  # the pronunciation aligned, ARPAbet with stress ("HH AH0 L OW1")
        ("pron_source", pa.string()),  # cmudict | espeak | user
        ("low_confidence", pa.bool_()),  # flagged as a transcript/audio mismatch
        ("issue", pa.string()),  # why it was flagged; "" when fine
    ]
)
PHONES = pa.schema(
    [
        ("word_index", pa.int32()),  # -1 for silence rows
        ("phone", pa.string()),  # ARPAbet without stress; "sil" for pauses
        ("stress", pa.int8()),  # 0/1/2, -1 for consonants and silence
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("score", pa.float32()),  # acoustic confidence 0..1, as for words
        ("low_confidence", pa.bool_()),  # its word (or this pause) is flagged
    ]
)
SPEAKER_RATE = pa.schema(  # per-phone durations of confidently aligned phones
    [
        ("phone", pa.string()),  # ARPAbet, or "sil" for pauses
        ("count", pa.int32()),
        ("mean_s", pa.float64()),
        ("std_s", pa.float64()),
        ("median_s", pa.float64()),
    ]
)


# fit: one row per frame of the constant-rate timeline. Pose and expression are the
# smoothed values later stages use; rebuild the model's landmarks from them with
# stages.fit.rebuild_landmarks. Frames with neither `detected` nor `interpolated` lie in
# a long gap with no face: their parameters are only filled in for continuity.
N_FACE_LANDMARKS = 478  # MediaPipe FaceMesh with irises, the default landmarker
N_EXPRESSION = 64  # expression components, as in Fried et al.
N_MASK_POINTS = 40  # the lower-face mask polygon, resampled to a fixed point count


def face_schema(n_landmarks: int = N_FACE_LANDMARKS) -> pa.Schema:
    """The FACE schema for a landmarker with ``n_landmarks`` points (68 for FAN)."""
    return pa.schema(
        [
            ("frame", pa.int32()),
            ("time_s", pa.float64()),
            ("detected", pa.bool_()),  # the landmarker found the main face here
            ("interpolated", pa.bool_()),  # short gap: parameters interpolated from neighbours
            ("n_faces", pa.int8()),  # faces the landmarker saw (the main one is followed)
            ("landmarks_2d", vec(2 * n_landmarks)),  # x0, y0, x1, ... px; the model's if not detected
            ("rotation", vec(3)),  # axis-angle (rad), canonical head frame -> image axes
            ("translation", vec(3)),  # px (x, y; z = depth offset in the same scale)
            ("scale", pa.float32()),  # px per canonical unit (= inter-ocular distance)
            ("expression", vec(N_EXPRESSION)),  # coefficients on the person model's basis
            ("illumination", vec(27)),  # 2nd-order SH, 9 per channel: R0..R8, G0..G8, B0..B8
            ("residual", pa.float32()),  # mean 2-D landmark error / inter-ocular dist.; NaN if not detected
            ("crop_transform", vec(6)),  # 2x3 image -> aligned-crop similarity, row-major
            ("mask_polygon", vec(2 * N_MASK_POINTS)),  # lower-face outline in crop px
        ]
    )


FACE = face_schema()

# index (stages/index.py): one row per aligned phone of the clip, silences included, in
# time order; the row number is the phone's position in the clip's viseme string.
VISEMES = pa.schema(
    [
        ("phone_index", pa.int32()),  # row number: position in the viseme string
        ("word_index", pa.int32()),  # into words.parquet; -1 for silence
        ("word", pa.string()),  # the spoken (normalized) word; "" for silence
        ("phone", pa.string()),  # ARPAbet without stress, or "sil"
        ("stress", pa.int8()),
        ("viseme", pa.string()),  # class name (stages/visemes.py)
        ("viseme_id", pa.int8()),  # its position in stages.visemes.VISEME_NAMES
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("start_frame", pa.int32()),  # frames [start_frame, end_frame) lie nearest to the phone;
        ("end_frame", pa.int32()),  # empty for a phone shorter than about half a frame
        ("prev_phone", pa.string()),  # neighbours in the clip; "sil" beyond its ends
        ("next_phone", pa.string()),
        ("prev_viseme", pa.string()),
        ("next_viseme", pa.string()),
        ("usable", pa.bool_()),  # confidently aligned and of plausible length: searchable
        # The suffix array of the viseme_id string: row r holds the start (phone_index) of
        # the r-th smallest suffix; suffixes running off the end sort before longer ones.
        # Every occurrence of a viseme sequence is one contiguous run of it.
        ("suffix_array", pa.int32()),
    ]
)

# plan (stages/plan): one row per output frame of the edited video.
PLAN = pa.schema(
    [
        ("frame", pa.int32()),  # output frame, 0..n-1
        ("time_s", pa.float64()),  # frame / fps on the output timeline
        ("segment", pa.int32()),  # the segments.parquet row whose audio plays at time_s
        ("edited", pa.bool_()),  # inside a retimed region around an edit
        ("source_frame", pa.int32()),  # background: clip frame shown outside the lower face
        # Where the expression came from: -1 kept footage, else the matched piece
        # (new_phones.parquet `piece`); when cross-faded, the piece with the larger weight.
        ("piece", pa.int32()),
        ("expression_source_frame", pa.int32()),  # clip frame nearest to that piece's source time
        ("blend_weight", pa.float32()),  # share of the expression from other pieces (cross-fade)
        ("rotation", vec(3)),  # pose of source_frame
        ("translation", vec(3)),
        ("scale", pa.float32()),
        ("expression", vec(N_EXPRESSION)),  # retimed pieces, cross-faded at joins
        ("illumination", vec(27)),  # interpolated across each retimed region
        # Background instant in clip seconds: a whole frame (source_frame / fps) outside the
        # retimed regions; inside them it may fall between frames, which composite
        # interpolates (optical flow) rather than showing a frame twice.
        ("source_time_s", pa.float64()),
    ]
)

# The output timeline as consecutive segments: `kept` copies the clip's audio
# source_start_s..source_end_s to out_start_s..out_end_s; `new` is spoken anew, its
# phones timed in NEW_PHONES.
SEGMENTS = pa.schema(
    [
        ("segment", pa.int32()),
        ("kind", pa.string()),  # kept | new
        ("span", pa.int32()),  # the edited span a `new` segment says; -1 for kept
        ("source_start_s", pa.float64()),  # NaN for new
        ("source_end_s", pa.float64()),
        ("out_start_s", pa.float64()),
        ("out_end_s", pa.float64()),
        ("words", pa.string()),  # spoken words, space-separated
        ("text", pa.string()),  # as written (the edited transcript's tokens for `new`)
    ]
)
NEW_PHONES = pa.schema(
    [
        ("segment", pa.int32()),  # the `new` segment it belongs to
        ("word_position", pa.int32()),  # index in the edited spoken word sequence; -1 pause
        ("word", pa.string()),  # spoken form; "" for a pause
        ("phone", pa.string()),  # ARPAbet without stress, or "sil"
        ("stress", pa.int8()),
        ("out_start_s", pa.float64()),  # where the new audio must say it
        ("out_end_s", pa.float64()),
        ("tts_duration_s", pa.float64()),  # espeak-ng's duration before rescaling to the speaker
        ("piece", pa.int32()),  # matched piece covering it (PLAN `piece`)
        ("source_phone", pa.int32()),  # visemes.parquet row it was matched to
        ("source_start_s", pa.float64()),  # that phone's whole span in the clip (a piece's
        ("source_end_s", pa.float64()),  # edge phone may be trimmed: plan.max_edge_speed)
        ("viseme", pa.string()),
        ("source_viseme", pa.string()),
        ("source_phone_label", pa.string()),  # the matched clip phone (== phone when exact)
    ]
)

# render (stages/render): one row per rendered output frame, in frame order. The crop
# of row r is row `row` of chunk file `chunk` (RenderPaths.chunk). To put it back:
# warp crop and alpha into the frame with the inverse of `transform`.
RENDER_INDEX = pa.schema(
    [
        ("frame", pa.int32()),  # output frame (PLAN `frame`)
        ("chunk", pa.int32()),  # crops-<chunk>.safetensors
        ("row", pa.int32()),  # row in that chunk
        ("source_frame", pa.int32()),  # the clip frame behind it (PLAN `source_frame`)
        ("transform", vec(6)),  # 2x3 source-frame image px -> render-crop px, row-major
        ("edited", pa.bool_()),  # PLAN `edited`
    ]
)
# lipsync (stages/lipsync): one row per output frame of a lip-sync job, the model's
# prediction before it is written into the plan (PLAN), kept to score and plot it.
LIP_TRACK = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("source_frame", pa.int32()),  # re-timed background frame
        ("opening", pa.float32()),  # planned mouth opening (inner-lip gap / eye distance)
        ("energy_db", pa.float32()),  # the new audio's level re. its speech level
        ("expression", vec(N_EXPRESSION)),  # planned expression (the plan's)
        ("predicted_opening", pa.float32()),  # the model's own (= opening without retrieval)
        ("retrieved_frame", pa.int32()),  # clip frame whose expression was retrieved (-1: none)
    ]
)
# reenact (stages/reenact): one row per reenacted output frame, before it is written into
# the plan (PLAN), kept to score and plot the transfer.
REENACT_MESH_POINTS = 478  # portrait mode needs the refined FaceMesh (irises)
REENACT_TRACK = pa.schema(
    [
        ("frame", pa.int32()),  # output frame
        ("time_s", pa.float64()),
        ("target_frame", pa.int32()),  # the target's frame behind it (pose, light, background)
        ("source_frame", pa.int32()),  # the source's frame driving it
        ("source_opening", pa.float32()),  # the source's mouth opening (inner-lip gap / eye dist.)
        ("opening", pa.float32()),  # the transferred face's mouth opening on the target's model
        ("clipped", pa.int8()),  # coefficients held at max_extrapolation target SDs
        ("expression", vec(N_EXPRESSION)),  # transferred, on the target's basis
        # The head and eyes shown (portrait mode transfers them; expression mode: the
        # target frame's own, and the picture is left as it is).
        ("head_deg", vec(3)),  # yaw, pitch, roll relative to the target's neutral pose
        ("gaze_deg", vec(2)),  # transferred gaze yaw, pitch relative to the resting gaze
        ("lid_close", pa.float32()),  # share of the lid gap closed over the target's eyes
        ("pose_flagged", pa.bool_()),  # head pose beyond the target's range: clamped
        ("eyes_flagged", pa.bool_()),  # the target's eyes shut where the source's are open
        ("warp", vec(9)),  # target frame px -> output px homography turning the head
        ("mesh_from", vec(2 * REENACT_MESH_POINTS)),  # the face's landmarks in the target frame
        ("mesh_to", vec(2 * REENACT_MESH_POINTS)),  # ...and turned (px): the relief's parallax
        ("head_ellipse", vec(5)),  # the turned region: centre x, y, half-axes, angle (rad)
        ("eye_points", vec(16)),  # per eye: outer, inner corner, upper, lower lid (output px)
        ("iris_shift_px", vec(4)),  # left x, y, right x, y
    ]
)
LIP_LOSSES_COLUMNS = ["step", "lstm_train", "lstm_validation", "tcn_train", "tcn_validation"]

# No wall-clock column: losses.tsv is tracked, so it must be the same on every run
# (times go to the run report, talkedit.runreport).
LOSSES_COLUMNS = ["step", "l1", "adversarial", "temporal_adversarial",
                  "feature_matching", "d_spatial", "d_temporal"]

# evaluate (stages/evaluate): self-reenactment of held-out sentences, under
# ClipPaths.metrics_dir. One row per held-out sentence; a score column per method and
# measure, named "<method>_<score>" (DVC plots: x = sentence).
EVALUATE_METHODS = ("talkedit", "naive_cut", "conditioning", "real")
EVALUATE_SCORES = ("mouth_psnr_db", "mouth_ssim", "lmd", "opening_r", "opening_r_model", "mcd_db",
                   "sync_offset_ms", "sync_error_ms", "sync_offset_model_ms",
                   "sync_error_model_ms", "jaw_error", "opening_r_model_at_time",
                   "opening_r_truth")
EVALUATE_INFO_COLUMNS = ["sentence", "start_s", "end_s", "frames", "out_frames", "pieces"]


def evaluate_metrics_path(paths: ClipPaths) -> Path:
    """Per-method means and ratios against the baselines (DVC metrics)."""
    return paths.metrics_dir / "evaluate.json"


def evaluate_scores_path(paths: ClipPaths) -> Path:
    """Per-sentence scores (DVC plots), columns EVALUATE_INFO_COLUMNS + method_score."""
    return paths.metrics_dir / "evaluate.tsv"


def evaluate_summary_path(paths: ClipPaths) -> Path:
    """The run's markdown summary (published as a Prefect artifact)."""
    return paths.metrics_dir / "evaluate.md"

# --- reading and writing ------------------------------------------------------------------


def column_array(df: pd.DataFrame | pa.Table, name: str) -> np.ndarray:
    """A per-row vector column as an (n_rows, width) array.

    Reads a pyarrow table's fixed_size_list column without copies per row, and a
    ``pd.read_parquet`` frame's column too (pandas hands those back as arrays per row).
    """
    if isinstance(df, pa.Table):
        col = df.column(name)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        width = col.type.list_size
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), width)
    values = df[name].to_numpy()
    if not len(values):
        return np.zeros((0, 0), np.float32)
    return np.stack([np.asarray(v) for v in values])


def fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    """A (n_rows, width) array as a fixed_size_list<float32> column."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def to_table(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema``'s columns; 2-D arrays become fixed lists."""
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise ValueError(f"missing columns {missing} for schema {schema.names}")
    arrays = []
    for field in schema:
        value = columns[field.name]
        if pa.types.is_fixed_size_list(field.type) and not isinstance(value, pa.Array):
            arrays.append(fixed_list(np.asarray(value)))
        else:
            arrays.append(pa.array(np.asarray(value) if not isinstance(value, list) else value,
                                   type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_parquet(data: pd.DataFrame | dict[str, Any] | pa.Table, schema: pa.Schema,
                  path: str | Path) -> Path:
    """Validate against ``schema`` and write atomically."""
    if isinstance(data, pd.DataFrame):
        data = {c: (data[c].to_list() if pa.types.is_fixed_size_list(schema.field(c).type)
                    else data[c].to_numpy()) for c in data.columns}
    table = data if isinstance(data, pa.Table) else to_table(data, schema)
    table = table.select(schema.names).cast(schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def release_arrow_pages() -> None:
    """Hand the pages arrow's allocator (mimalloc) keeps after frees back to the system: a
    stage reading or writing a long file block by block otherwise grows by each block's
    decoding buffers (plan: +20 MB over a 31-minute plan's 24 blocks)."""
    pa.default_memory_pool().release_unused()


def write_parquet_blocks(blocks: Iterable[dict[str, Any]], schema: pa.Schema,
                         path: str | Path) -> Path:
    """``write_parquet`` of the rows of consecutive blocks, one row group each, written as
    they come (a long plan is never whole in memory); one block gives write_parquet's bytes."""
    with atomic_path(path) as tmp:
        writer = None
        try:
            for data in blocks:
                table = to_table(data, schema).select(schema.names).cast(schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                del table
                release_arrow_pages()
            if writer is None:
                pq.write_table(schema.empty_table(), tmp, compression="zstd")
        finally:
            if writer is not None:
                writer.close()
    return Path(path)


class RowGroupRows:
    """Some columns of a parquet file, read a row group at a time as rows are asked for
    (``column(name)[rows]``), the last ``keep`` groups kept: a long clip's face parameters
    are read where a stage looks, never whole."""

    def __init__(self, path: str | Path, columns: list[str], keep: int = 16,
                 stage_hint: str = "the stage that makes it") -> None:
        path = Path(path)
        if not path.is_file():
            raise TalkeditError(path, "not found", f"run {stage_hint} first (dvc repro)")
        self._file = pq.ParquetFile(path)
        missing = [c for c in columns if c not in self._file.schema_arrow.names]
        if missing:
            raise TalkeditError(path, f"lacks columns {missing}",
                                f"re-run {stage_hint}; it was written by another version")
        meta = self._file.metadata
        self.starts = np.cumsum([0] + [meta.row_group(g).num_rows
                                       for g in range(meta.num_row_groups)])
        self.columns, self.keep = columns, keep
        self._groups: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        schema = self._file.schema_arrow
        self._width = {c: (schema.field(c).type.list_size
                           if pa.types.is_fixed_size_list(schema.field(c).type) else 0)
                       for c in columns}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _group(self, g: int) -> dict[str, np.ndarray]:
        group = self._groups.pop(g, None)
        if group is None:
            table = self._file.read_row_group(g, columns=self.columns, use_threads=False)
            group = {c: column_array(table, c) if self._width[c] else
                     table.column(c).to_numpy() for c in self.columns}
        self._groups[g] = group
        while len(self._groups) > self.keep:
            self._groups.popitem(last=False)
            release_arrow_pages()
        return group

    def take(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows of one column, as numpy's indexing of the whole column gives them."""
        rows = np.asarray(rows, np.int64)
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"rows out of range for {n}")
        rows = np.where(rows < 0, rows + n, rows)
        groups = np.searchsorted(self.starts, rows, "right") - 1
        out = None
        for g in np.unique(groups):
            values = self._group(int(g))[name]
            if out is None:
                out = np.empty(rows.shape + values.shape[1:], values.dtype)
            at = groups == g
            out[at] = values[rows[at] - self.starts[g]]
        if out is None:  # no rows asked: the column's dtype and width from its first group
            first = self._group(0)[name] if len(self.starts) > 1 else np.zeros((0,))
            out = np.empty(rows.shape + first.shape[1:], first.dtype)
        return out

    def column(self, name: str) -> RowGroupColumn:
        return RowGroupColumn(self, name)


@dataclass(frozen=True)
class RowGroupColumn:
    """One column of ``RowGroupRows``, indexed like the (n, width) array it stands for."""

    rows: RowGroupRows
    name: str

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        width = self.rows._width[self.name]
        return (len(self),) + ((width,) if width else ())

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return self.rows.take(self.name, np.arange(*key.indices(len(self))))
        if np.ndim(key) == 0:
            return self.rows.take(self.name, np.array([int(key)]))[0]
        return self.rows.take(self.name, key)


def read_parquet(path: str | Path, schema: pa.Schema | None = None, *, arrow: bool = False,
                 stage_hint: str = "the stage that makes it",
                 columns: list[str] | None = None) -> Any:
    """Read an artifact, checking it has the schema's columns; with ``columns``, only
    those are read (a long clip's face.parquet is mostly landmarks few readers need)."""
    path = Path(path)
    if not path.is_file():
        raise TalkeditError(path, "not found", f"run {stage_hint} first (dvc repro)")
    present = None if columns is None else set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=None if present is None else
                          [c for c in columns if c in present])  # missing: refused below
    if schema is not None:
        wanted = schema.names if columns is None else [n for n in schema.names if n in columns]
        missing = [n for n in wanted if n not in table.column_names]
        if missing:
            raise TalkeditError(path, f"lacks columns {missing}",
                                f"re-run {stage_hint}; it was written by another version")
    return table if arrow else table.to_pandas()


# --- audio (stages/audio) -------------------------------------------------------------------
# data/plans/<edit>/audio.wav is the edited video's sound (EditPaths.audio). Beside it,
# where every half of every new phone's sound came from, and the stage's report.

AUDIO_UNITS = pa.schema(
    [
        ("segment", pa.int32()),  # the `new` segment (segments.parquet)
        ("phone_position", pa.int32()),  # the phone's place among the segment's new phones
        ("half", pa.int8()),  # 0 first half, 1 second half
        ("phone", pa.string()),  # ARPAbet without stress, or "sil"
        ("word", pa.string()),  # spoken form; "" for a pause
        ("out_start_s", pa.float64()),  # where the output says it
        ("out_end_s", pa.float64()),
        ("source", pa.string()),  # clip (the speaker) | tts (espeak-ng) | recording
        ("source_start_s", pa.float64()),  # the stretch of that source said here
        ("source_end_s", pa.float64()),
        ("source_phone", pa.int32()),  # clip units: visemes.parquet row; else -1
        ("stretch", pa.float32()),  # output duration / source duration
        ("note", pa.string()),  # why espeak-ng said it ("diphone R-W never said"); "" otherwise
    ]
)


def audio_units_path(paths: EditPaths) -> Path:
    return paths.plan_dir / "audio_units.parquet"


def audio_report_path(paths: EditPaths) -> Path:
    """The audio stage's summary (JSON): source, speaker share, loudness, join measures."""
    return paths.plan_dir / "audio.json"


# --- edit with truth (stages/pairs/; quality/dvc.yaml) ------------------------------------


@dataclass(frozen=True)
class PairPaths:
    """The edit-with-truth pairs' files: each case built in a project root of its own,
    data/pairs/<case>/ (its data/ holds the clip's, model's and edit's usual artifacts,
    truth/ the truth clip, scoring/ the truth drawn again), scored into
    data/metrics/pairs/; the pooled summary beside."""

    case: str | None
    data: Path  # the project's data/ folder

    @property
    def root(self) -> Path:
        """The case's own project root (``ClipPaths.of(case, root)`` etc. work inside it)."""
        return self.data / "pairs" / str(self.case)

    @property
    def drawn_truth(self) -> Path:
        """The truth drawn again at the point of the text each edited frame shows (the
        pairedit stage's; the pairclip stage owns the case root's truth/)."""
        return self.root / "scoring" / f"{self.case}.at.mp4"

    @property
    def folder(self) -> Path:
        return self.data / "metrics" / "pairs"

    @property
    def metrics(self) -> Path:
        """The case's figures (DVC metrics, JSON); the summary applies the targets."""
        return self.folder / f"{self.case}.json"

    @property
    def plots(self) -> Path:
        """One row per edit (DVC plots, TSV; columns: stages.pairs.edit.PLOT_COLUMNS)."""
        return self.folder / f"{self.case}.tsv"

    @property
    def edits(self) -> Path:
        """Every score of every edit, kept footage's beside (JSON; the summary pools these)."""
        return self.folder / f"{self.case}.edits.json"

    @property
    def summary(self) -> Path:
        """Every case pooled against pair_targets (DVC metrics, JSON)."""
        return self.data / "metrics" / "pair_summary.json"

    @property
    def summary_md(self) -> Path:
        return self.data / "metrics" / "pair_summary.md"


def pair_paths(case: str | None, root: Path | None = None) -> PairPaths:
    """The files of pair ``case`` (None: only the shared folder and summary)."""
    return PairPaths(None if case is None else check_name(case, "pair case"), data_dir(root))


# --- detect (stages/detect): edited-mouth forensics ----------------------------------------


@dataclass(frozen=True)
class DetectPaths:
    """What ``detect`` writes: data/detect/<clip>/ for a clip of the project (the DVC
    stage), or any folder given to ``talkedit detect VIDEO --out DIR``."""

    folder: Path

    @classmethod
    def of(cls, clip: str, root: Path | None = None) -> DetectPaths:
        return cls(data_dir(root) / "detect" / check_name(clip, "clip"))

    @classmethod
    def in_folder(cls, folder: Path) -> DetectPaths:
        return cls(Path(folder))

    @property
    def windows(self) -> Path:
        return self.folder / "windows.parquet"

    @property
    def spans(self) -> Path:
        return self.folder / "spans.parquet"

    @property
    def verdict_json(self) -> Path:
        return self.folder / "verdict.json"

    @property
    def verdict_md(self) -> Path:
        return self.folder / "verdict.md"


# One row per analysis window (NaN where a check could not be made there).
DETECT_WINDOWS = pa.schema(
    [
        ("window", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("closure", pa.float64()),  # worst M/B/P, corroborated: mouth opening left, share of range
        ("sync_lag_ms", pa.float64()),  # best lag of mouth opening vs the phones (+ = mouth late)
        ("sync_r", pa.float64()),  # the correlation at that lag
        ("sync_gain", pa.float64()),  # sync_r minus the correlation at the clip's typical lag
        ("sync_offset_ms", pa.float64()),  # the lag's departure from the clip's typical lag (and 0)
        ("pace_ratio", pa.float64()),  # soundtrack pace / mouth pace best matching them (clip)
        ("pace", pa.float64()),  # correlation gained by that pace over 1 (clip; speech windows)
        ("seam", pa.float64()),  # largest frame-to-frame jump, robust z over the clip
        ("texture", pa.float64()),  # mouth/upper-face detail ratio vs the clip's, robust z
        ("ratio_closure", pa.float64()),  # each score between typical (0) and threshold (1)
        ("ratio_sync_offset_ms", pa.float64()),
        ("ratio_pace", pa.float64()),
        ("ratio_seam", pa.float64()),
        ("ratio_texture", pa.float64()),
        ("score", pa.float64()),  # the largest ratio
        ("flagged", pa.bool_()),
        ("evidence", pa.string()),  # comma-separated evidence types over threshold
    ]
)

# One row per flagged span (overlapping flagged windows merged).
DETECT_SPANS = pa.schema(
    [
        ("span", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("evidence", pa.string()),  # evidence types, most decisive first
        ("score", pa.float64()),
        ("detail", pa.string()),  # one readable line per evidence type
    ]
)


# --- dialogue scenes (stages/scene) ---------------------------------------------------------
# data/scenes/<scene>.yaml is the scene (script, characters, takes, idioms); the takes'
# media sit in data/scenes/<scene>/ (<take>.mp4 + <take>.txt, what was said). Derived
# tables go to data/interim/scenes/<scene>/, the cut to data/outputs/scenes/<scene>/.


@dataclass(frozen=True)
class ScenePaths:
    scene: str
    data: Path  # the project's data/ folder

    @classmethod
    def of(cls, scene: str, root: Path | None = None) -> ScenePaths:
        return cls(check_name(scene, "scene"), data_dir(root))

    @property
    def spec(self) -> Path:
        """The scene file (stages/scene/spec.py)."""
        return self.data / "scenes" / f"{self.scene}.yaml"

    @property
    def takes_dir(self) -> Path:
        return self.data / "scenes" / self.scene

    def take_video(self, take: str) -> Path:
        return self.takes_dir / f"{check_name(take, 'take')}.mp4"

    def take_transcript(self, take: str) -> Path:
        return self.takes_dir / f"{check_name(take, 'take')}.txt"

    @property
    def interim(self) -> Path:
        return self.data / "interim" / "scenes" / self.scene

    @property
    def lines(self) -> Path:
        """Each take aligned to the script line by line (SCENE_LINES)."""
        return self.interim / "lines.parquet"

    @property
    def words(self) -> Path:
        """Every take's words with their times (SCENE_WORDS)."""
        return self.interim / "words.parquet"

    @property
    def labels(self) -> Path:
        """Each line of each take labelled (SCENE_LABELS)."""
        return self.interim / "labels.parquet"

    @property
    def out_dir(self) -> Path:
        return self.data / "outputs" / "scenes" / self.scene

    @property
    def cut(self) -> Path:
        """The chosen cut, one row per shot (SCENE_CUT)."""
        return self.out_dir / "cut.parquet"

    @property
    def cut_markdown(self) -> Path:
        return self.out_dir / "cut.md"

    @property
    def otio(self) -> Path:
        """The cut as an OpenTimelineIO timeline (opens in editors that import .otio)."""
        return self.out_dir / "cut.otio"

    @property
    def video(self) -> Path:
        return self.out_dir / f"{self.scene}.mp4"

    @property
    def provenance(self) -> Path:
        return self.out_dir / f"{self.scene}.provenance.json"


SCENE_TRUTH_LINES = pa.schema(  # generator truth: <take>.truth_lines.parquet
    [
        ("utterance", pa.int32()),  # order said in the take
        ("line", pa.int32()),  # the script line said; -1 for an ad-lib said instead of one
        ("character", pa.string()),  # who says it
        ("text", pa.string()),
        ("start_s", pa.float64()),  # first phone start / last phone end
        ("end_s", pa.float64()),
        ("adlib", pa.bool_()),
    ]
)
SCENE_TRUTH_WORDS = pa.schema(  # generator truth: <take>.truth_words.parquet
    [
        ("utterance", pa.int32()),
        ("word_index", pa.int32()),  # within the utterance
        ("word", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
    ]
)
SCENE_LINES = pa.schema(
    [
        ("take", pa.string()),
        ("line", pa.int32()),  # script line; -1 for an ad-lib (words said that no line has)
        ("character", pa.string()),  # the script's character of the line ("" for an ad-lib)
        ("status", pa.string()),  # said | partial | skipped | adlib
        ("script_words", pa.int32()),  # words of the script line
        ("matched_words", pa.int32()),  # of them said in the take
        ("start_s", pa.float64()),  # in the take; NaN when skipped
        ("end_s", pa.float64()),
        ("text", pa.string()),  # what the take says there
    ]
)
SCENE_WORDS = pa.schema(
    [
        ("take", pa.string()),
        ("line", pa.int32()),  # script line the word belongs to; -1 for an ad-lib word
        ("word", pa.string()),  # spoken form, lower case
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
    ]
)
SCENE_LABELS = pa.schema(
    [
        ("take", pa.string()),
        ("line", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("faces", pa.int32()),  # faces seen (median over the sampled frames)
        ("visible", pa.string()),  # characters on screen, comma-separated, left to right
        ("shot", pa.string()),  # wide | medium | close: from the largest face's height / frame
        ("face_height", pa.float32()),  # that share
        ("setup", pa.string()),  # camera setup: shot + visible ("wide:A,B", "close:A")
        ("speaker", pa.string()),  # who speaks, from mouth motion vs speech energy
        ("speaker_visible", pa.bool_()),
        ("speaker_score", pa.float32()),  # mouth-motion/speech correlation of the chosen face
        ("loudness_db", pa.float32()),  # RMS level of the line's speech, dBFS
        ("tempo_wps", pa.float32()),  # words per second
    ]
)
SCENE_CUT = pa.schema(
    [
        ("shot", pa.int32()),  # 0, 1, ... in the order they play
        ("first_line", pa.int32()),  # script lines the shot covers
        ("last_line", pa.int32()),
        ("take", pa.string()),
        ("setup", pa.string()),
        ("source_in", pa.int32()),  # frames of the take [in, out)
        ("source_out", pa.int32()),
        ("record_in", pa.int32()),  # frames of the scene [in, out)
        ("record_out", pa.int32()),
        ("audio_in", pa.int32()),  # the shot's sound, in take frames: source_in/out moved by
        ("audio_out", pa.int32()),  # the J/L-cut offset at each cut (scenecut.j_cut_s)
        ("cost", pa.float32()),  # the idiom cost of the shot's lines and its entry
        ("reasons", pa.string()),  # the idioms that cost something here
    ]
)

# --- reports (stages/report) and the before/after video (stages/composite/compare.py) -----
# reports/clip-<clip>.html and reports/edit-<edit>.html: one self-contained page each
# (images embedded as base64 PNG; no network when opened).

REPORTS_DIR = "reports"


def report_path(kind: str, item: str, root: Path | None = None) -> Path:
    """reports/<kind>-<item>.html, kind ``clip`` or ``edit``."""
    if kind not in ("clip", "edit"):
        raise ValueError(f"report kind {kind!r} is neither clip nor edit")
    return (root or repo_root()) / REPORTS_DIR / f"{kind}-{check_name(item, kind)}.html"


def compare_video_path(paths: EditPaths) -> Path:
    """data/outputs/<edit>.compare.mp4: original | edit side by side, watermarked and signed
    like the output; its manifest beside it as <edit>.compare.provenance.json."""
    return paths.output.with_name(f"{paths.edit}.compare.mp4")


def compare_metrics_path(paths: EditPaths) -> Path:
    """data/outputs/<edit>.compare.json (DVC metrics): frames, edited share, and the
    watermark detector's verdict on the output and on the compare video."""
    return paths.output.with_name(f"{paths.edit}.compare.json")


# --- DVC metrics of the clip's stages (`dvc metrics show/diff`): small JSON files, git-tracked
# (cache: false), numbers only, never a time.


def align_metrics_path(paths: ClipPaths) -> Path:
    """data/interim/<clip>/align.json: words, phones, acoustic scores, low-confidence words."""
    return paths.interim / "align.json"


def fit_metrics_path(paths: ClipPaths) -> Path:
    """data/interim/<clip>/fit.json: detection share, gaps, landmark residuals, model variance."""
    return paths.interim / "fit.json"
