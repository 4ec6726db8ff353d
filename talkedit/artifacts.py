"""The artifact contracts: every file a stage reads or writes, and its schema.

Every stage reads and writes through this module, so a name or a column is
defined exactly once. ``docs/artifacts.md`` is the human-readable twin of this
file; keep them in step.

Per-frame arrays (landmarks, expression...) are stored as flat
``fixed_size_list<float32>`` columns: they read ~10x faster than nested lists
through pandas, and ``column_array`` turns one back into a 2-D numpy array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from talkedit.atomic import atomic_path
from talkedit.errors import TalkeditError
from talkedit.params import check_name, repo_root

# --- where artifacts live -------------------------------------------------------------


def data_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "data"


@dataclass(frozen=True)
class ClipPaths:
    """All per-clip artifacts. ``clip`` is validated (no path characters)."""

    clip: str
    root: Path

    @classmethod
    def of(cls, clip: str, root: Path | None = None) -> ClipPaths:
        return cls(check_name(clip, "clip"), data_dir(root))

    # inputs (data/raw)
    @property
    def video(self) -> Path:
        return self.root / "raw" / f"{self.clip}.mp4"

    @property
    def transcript(self) -> Path:
        return self.root / "raw" / f"{self.clip}.txt"

    @property
    def truth_phones(self) -> Path:
        """Generator ground truth (only for clips made by ``talkedit demo``)."""
        return self.root / "raw" / f"{self.clip}.truth_phones.parquet"

    @property
    def truth_frames(self) -> Path:
        return self.root / "raw" / f"{self.clip}.truth_frames.parquet"

    # extract
    @property
    def interim(self) -> Path:
        return self.root / "interim" / self.clip

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

    # index
    @property
    def visemes(self) -> Path:
        return self.interim / "visemes.parquet"

    # train
    @property
    def model_dir(self) -> Path:
        return self.root / "models" / self.clip

    # evaluate
    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics" / self.clip


@dataclass(frozen=True)
class EditPaths:
    edit: str
    root: Path

    @classmethod
    def of(cls, edit: str, root: Path | None = None) -> EditPaths:
        return cls(check_name(edit, "edit"), data_dir(root))

    @property
    def spec(self) -> Path:
        return self.root / "edits" / f"{self.edit}.yaml"

    @property
    def plan_dir(self) -> Path:
        return self.root / "plans" / self.edit

    @property
    def plan(self) -> Path:
        return self.plan_dir / "plan.parquet"

    @property
    def audio(self) -> Path:
        return self.plan_dir / "audio.wav"

    @property
    def render_dir(self) -> Path:
        return self.root / "renders" / self.edit

    @property
    def output(self) -> Path:
        return self.root / "outputs" / f"{self.edit}.mp4"

    @property
    def provenance(self) -> Path:
        return self.root / "outputs" / f"{self.edit}.provenance.json"


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

# align
WORDS = pa.schema(
    [
        ("word_index", pa.int32()),  # index into the spoken (normalized) word sequence
        ("written_index", pa.int32()),  # index of the written transcript token it came from
        ("word", pa.string()),  # as written in the transcript
        ("normalized", pa.string()),  # spoken form, lower case
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("score", pa.float32()),
        ("pron_source", pa.string()),  # cmudict | espeak | user
    ]
)
PHONES = pa.schema(
    [
        ("word_index", pa.int32()),  # -1 for silence rows
        ("phone", pa.string()),  # ARPAbet without stress; "sil" for pauses
        ("stress", pa.int8()),  # 0/1/2, -1 for consonants and silence
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("score", pa.float32()),
    ]
)
SPEAKER_RATE = pa.schema(
    [
        ("phone", pa.string()),
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
            ("landmarks_2d", vec(2 * n_landmarks)),  # x0, y0, x1, ... image px, as detected
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

# --- reading and writing ------------------------------------------------------------------


def column_array(df: pd.DataFrame | pa.Table, name: str) -> np.ndarray:
    """A fixed_size_list column as an (n_rows, width) float32 array, without copies per row."""
    col = df.column(name) if isinstance(df, pa.Table) else pa.array(df[name])
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), width)


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


def read_parquet(path: str | Path, schema: pa.Schema | None = None, *, arrow: bool = False,
                 stage_hint: str = "the stage that makes it") -> Any:
    """Read an artifact, checking it has the schema's columns."""
    path = Path(path)
    if not path.is_file():
        raise TalkeditError(path, "not found", f"run {stage_hint} first (dvc repro)")
    table = pq.read_table(path)
    if schema is not None:
        missing = [n for n in schema.names if n not in table.column_names]
        if missing:
            raise TalkeditError(path, f"lacks columns {missing}",
                                f"re-run {stage_hint}; it was written by another version")
    return table if arrow else table.to_pandas()
