"""fit stage: a parametric face for every frame (Fried et al. 2019, step 2).

One streaming pass over the clip's frames finds the main speaker's landmarks
(``landmarks.py``), samples the face's colours at them, and writes the aligned
face crops (``crops.py``); landmarks and colours spill to scratch files, as do
the fitted expression and light weights later (``spill.py``), so memory is flat
in the clip's length. Then, without the frames:

1. gaps: short detection gaps are interpolated and flagged; the stage fails,
   naming the frame ranges, when too much of the clip has no face;
2. the person model is built from the clip (``model.py``): mean 3-D shape,
   64 expression components, triangle mesh;
3. every frame gets pose + expression, smoothed without lag (``smoothing.py``);
4. illumination (SH, per frame) and albedo (per vertex) are solved in turn
   from the sampled colours and the fitted mesh's normals (``shading.py``);
5. face.parquet (FACE schema) and face_model.safetensors are written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.fit.crops import (
    CropFramer,
    CropStore,
    CropWriter,
    lower_face_mask,
    read_crops,
    resample_polygon,
    to_crop,
)
from stages.fit.geometry import head_angles_deg, incidence, vertex_normals
from stages.fit.landmarks import LANDMARKERS, Face, Landmarker, make_landmarker, register
from stages.fit.model import (
    PersonModel,
    Pose,
    build_shape_model,
    fit_frames,
    lower_face_indices,
    mesh_for,
    mouth_opening,
    rebuild_landmarks,
    reprojection_error,
)
from stages.fit.occlusion import FOREHEAD, LIP_REGION, occlusion_scores
from stages.fit.shading import AlbedoAccumulator, camera_normals, fit_light, sh_basis, shading
from stages.fit.smoothing import METHODS, smooth
from stages.fit.spill import ColumnSpill, RowSpill
from stages.fit.topology import Topology
from stages.fit.tracking import (
    AMBIGUOUS,
    OCCLUDED,
    OTHER_OVER_MOUTH,
    REASONS,
    MainFaceTracker,
    fill_gaps,
    format_ranges,
    runs,
    settle_other_people,
    short_gaps,
)
from talkedit import __version__
from talkedit.artifacts import (
    FACE,
    ClipPaths,
    VideoMeta,
    column_array,
    face_schema,
    fit_metrics_path,
    read_parquet,
    to_table,
)
from talkedit.atomic import atomic_path, write_json
from talkedit.errors import TalkeditError
from talkedit.params import Section, bad_param
from talkedit.progress import progress
from talkedit.scale import ChunkMap, ScaleParams, serial_map
from talkedit.video import FrameStore

__all__ = ["FitParams", "run_fit", "load_fit", "frame_parameters", "frame_pose", "PersonModel", "Pose",
           "rebuild_landmarks", "mouth_opening", "head_angles_deg", "read_crops", "CropStore",
           "lower_face_mask", "Landmarker", "Face", "LANDMARKERS", "register", "make_landmarker"]

log = logging.getLogger(__name__)
MIN_DETECTED = 10  # fewer detected frames than this cannot make a person model


@dataclass(frozen=True)
class FitParams(Section):
    """The ``fit:`` section of params.yaml (see the comments there)."""

    SECTION = "fit"

    landmarker: str = "mediapipe"
    max_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    device: str = "cpu"
    min_face_px: float = 40.0
    max_gap_s: float = 0.5
    max_missing_share: float = 0.1
    smoothing: str = "savgol"
    pose_window_ms: float = 400.0
    expression_window_ms: float = 200.0
    smoothing_order: int = 2
    crop_size: int = 256
    crop_margin: float = 1.4
    crop_smooth_frames: int = 4
    crop_crf: int = 14
    crop_gop: int = 25
    light_iterations: int = 3
    albedo_frames: int = 300
    chunk_frames: int = 256
    occlusion_share: float = 0.2  # a frame where both lips' colours stray this much is occluded; 0 = off
    occlusion_sd: float = 6.0     # ...straying = this many robust SDs from the vertex's median

    def check(self, where: str) -> None:
        if self.crop_size < 32 or self.crop_size % 2:
            raise bad_param(where, "crop_size", f"is {self.crop_size}: must be an even number "
                            ">= 32", "use 256")
        if self.smoothing not in METHODS:
            raise bad_param(where, "smoothing", f"is {self.smoothing!r}, not a smoothing method",
                            f"use one of {', '.join(METHODS)}")
        if not 0.0 <= self.max_missing_share <= 1.0:
            raise bad_param(where, "max_missing_share", "must be a share between 0 and 1",
                            "use 0.1")

    def landmarker_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("landmarker", "max_faces", "device",
                                              "min_detection_confidence",
                                              "min_tracking_confidence")}


# --- the frame pass ------------------------------------------------------------------------


def prefetch(items: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``items`` on a worker thread (decoding overlaps the landmarker).

    At most ``depth`` items wait in between; the worker stops when the consumer does.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="frame-decoder", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def sample_colours(image: np.ndarray, xy: np.ndarray, radius: float) -> np.ndarray:
    """(N, 3) mean colour of a 5-tap cross around each point (bilinear)."""
    offsets = np.array([[0, 0], [radius, 0], [-radius, 0], [0, radius], [0, -radius]])
    maps = (xy[None, :, :2] + offsets[:, None, :]).astype(np.float32)
    taps = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    return taps.astype(np.float32).mean(axis=0)


@dataclass
class Scan:
    detected: np.ndarray  # (n,) bool
    reason: np.ndarray  # (n,) uint8, tracking.FOUND / NO_FACE / ...
    n_faces: np.ndarray  # (n,) int8
    transforms: np.ndarray  # (n, 6) image -> crop
    landmarks: RowSpill  # (n, N*3) float32, NaN where not detected
    colours: RowSpill  # (n, N*3) uint8
    seconds: float
    tracker: MainFaceTracker


@dataclass(frozen=True)
class DetectSpan:
    """One chunk of a clip's frames for a landmarker of its own (picklable: a task's input)."""

    root: str
    clip: str
    start: int
    stop: int
    landmarker: dict[str, Any]


def detect_span(span: DetectSpan) -> list[list[Face]]:
    """The faces in frames [start, stop) of a clip, found by a fresh landmarker: tracking
    starts anew at the span's first frame, so a chunk's result does not depend on where,
    or after which other chunk, it runs."""
    store = FrameStore.for_clip(span.clip, Path(span.root))
    with make_landmarker(span.landmarker) as landmarker:
        return [landmarker.detect(image) for _, image in store.iter_frames(span.start, span.stop)]


def scan_clip(store: FrameStore, landmarker: Landmarker, opts: FitParams, crops_path: Path,
              fps: Fraction, frame_size: tuple[int, int], scratch: Path,
              detections: Iterator[list[Face]] | None = None) -> Scan:
    """The one pass over the frames: landmarks, colours and crops. The faces of each frame
    are found here by ``landmarker``, or come from ``detections`` (found in chunks)."""
    topo = landmarker.topology
    n, width = len(store), topo.n_points * 3
    w, h = frame_size
    tracker = MainFaceTracker(w, h, min_face_px=opts.min_face_px, mouth_points=tuple(
        sorted({i for pair in topo.inner_lip_pairs for i in pair})))
    framer = CropFramer(topo, opts.crop_margin)
    lm_spill = RowSpill(scratch / "landmarks.f32", width, np.float32)
    colour_spill = RowSpill(scratch / "colours.u8", width, np.uint8)
    detected = np.zeros(n, dtype=bool)
    reason = np.zeros(n, dtype=np.uint8)
    n_faces = np.zeros(n, dtype=np.int8)
    nan_row, zero_row = np.full(width, np.nan, np.float32), np.zeros(width, np.uint8)
    writer = CropWriter(crops_path, opts.crop_size, fps, (w, h), lookahead=opts.crop_smooth_frames,
                        crf=opts.crop_crf, gop=opts.crop_gop)
    t0 = time.perf_counter()
    count = 0
    try:
        for k, image in progress(prefetch(store.iter_frames()), len(store), "fit: landmarks"):
            faces = landmarker.detect(image) if detections is None else next(detections)
            face, reason[k] = tracker.select(k, faces)
            n_faces[k] = min(len(faces), 127)
            measured = None
            if face is not None:
                detected[k] = True
                eyes = np.linalg.norm(face.points[topo.eye_outer[0], :2]
                                      - face.points[topo.eye_outer[1], :2])
                lm_spill.append(face.points)
                colour_spill.append(np.round(sample_colours(image, face.points, 0.02 * eyes)))
                measured = framer.measure(face.points)
            else:
                lm_spill.append(nan_row)
                colour_spill.append(zero_row)
            writer.push(k, image, measured)
            count += 1
            if count % 1000 == 0:
                log.info("fit: %d/%d frames, %.0f frames/s", count, n,
                         count / (time.perf_counter() - t0))
    finally:
        transforms = writer.close()
    if count != n:
        raise TalkeditError(store.video, f"decoded {count} of {n} frames", "re-run extract")
    detected &= ~settle_other_people(reason, float(fps))
    return Scan(detected, reason, n_faces, transforms, lm_spill, colour_spill,
                time.perf_counter() - t0, tracker)


# --- after the pass ------------------------------------------------------------------------


def flag_occlusions(scan: Scan, topo: Topology, opts: FitParams) -> np.ndarray:
    """Frames whose mouth something covers (stages/fit/occlusion.py) stop counting as
    detected: their parameters are interpolated (short gaps, flagged) or the clip fails
    like one with no face; the renderer and the viseme search never read them."""
    occluded = np.zeros(len(scan.detected), bool)
    if opts.occlusion_share <= 0 or topo.n_points < max(LIP_REGION + FOREHEAD) + 1:
        return occluded  # off, or a landmarker without FaceMesh's points
    scores = occlusion_scores(scan.detected, scan.colours.read, topo.n_points,
                              opts.chunk_frames, opts.occlusion_sd)
    scores = np.nan_to_num(scores)
    occluded = scores > opts.occlusion_share
    # Hysteresis: a frame next to an occluded one needs only a quarter of the share (the
    # object is entering or leaving); run until nothing changes (a few frames a side).
    while True:
        near = np.r_[False, occluded[:-1]] | np.r_[occluded[1:], False]
        grown = occluded | (near & (scores > opts.occlusion_share / 4))
        if (grown == occluded).all():
            break
        occluded = grown
    scan.detected &= ~occluded
    scan.reason[occluded] = OCCLUDED
    if occluded.any():
        log.warning("fit: %d frames with the mouth covered, treated as undetected",
                    int(occluded.sum()))
    return occluded


def check_coverage(scan: Scan, opts: FitParams, fps: float, video: Path) -> np.ndarray:
    """Short gaps to interpolate; fails when too much of the clip has no usable face."""
    missing = ~scan.detected
    fillable = short_gaps(missing, max(0, int(round(opts.max_gap_s * fps))))
    unusable = missing & ~fillable
    n = len(missing)
    if scan.detected.sum() >= MIN_DETECTED and unusable.mean() <= opts.max_missing_share:
        return fillable
    why = ", ".join(f"{label}: {int((scan.reason == code).sum())} frames"
                    for code, label in REASONS.items() if (scan.reason == code).any())
    raise TalkeditError(
        video,
        f"no usable face in {int(unusable.sum())} of {n} frames "
        f"({unusable.mean():.0%}, fit.max_missing_share allows {opts.max_missing_share:.0%}): "
        f"{format_ranges(runs(unusable), fps)} ({why}; min_face_px={opts.min_face_px:g})",
        "give a clip where the speaker's face is visible throughout, cut those frames out, "
        "or raise fit.max_missing_share / lower fit.min_face_px in params.yaml")


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for a in range(0, n, size):
        yield a, min(n, a + size)


def fit_parameters(scan: Scan, model: PersonModel, opts: FitParams, fps: float, scratch: Path
                   ) -> tuple[Pose, ColumnSpill]:
    """Pose and expression of every frame: fitted, gap-filled, smoothed. The expression
    weights (31 min: 24 MB) stay in a scratch file under ``scratch``."""
    n, n_pts = len(scan.detected), model.mean.shape[0]
    pose7 = np.full((n, 7), np.nan)  # rotation vector, translation, log scale
    expr = ColumnSpill(scratch / "expression.f64", n, model.basis.shape[0])
    for a, b in _chunks(n, opts.chunk_frames):
        keep = scan.detected[a:b]
        if not keep.any():
            continue
        pts = scan.landmarks.read(a, b).reshape(-1, n_pts, 3)[keep]
        pose, e = fit_frames(model, pts)
        rows = np.flatnonzero(keep) + a
        pose7[rows] = np.column_stack([pose.rotation, pose.translation, np.log(pose.scale)])
        expr.write_rows(rows, e)
    fill_gaps_in_place(pose7, scan.detected, lambda col: smooth(
        col, opts.smoothing, fps, opts.pose_window_ms, opts.smoothing_order))
    expr.map_columns(lambda col: smooth(fill_gaps(col, scan.detected), opts.smoothing, fps,
                                        opts.expression_window_ms, opts.smoothing_order))
    return Pose(pose7[:, :3], pose7[:, 3:6], np.exp(pose7[:, 6])), expr


def fill_gaps_in_place(values: np.ndarray, known: np.ndarray,
                       then: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``fill_gaps`` (and ``then``, e.g. smoothing) one column of the C-contiguous
    ``values`` at a time, written back in place: whole-array temporaries of a long clip's
    (n, d) parameters would add several copies of them to the stage's peak memory (the
    wider expression and light weights go further: ``ColumnSpill.map_columns``). Every
    column is filtered on its own either way, so the numbers are the same."""
    flat = values.reshape(len(values), -1)
    if not np.shares_memory(flat, values):
        raise ValueError("fill_gaps_in_place needs a C-contiguous array")
    for j in range(flat.shape[1]):
        column = fill_gaps(flat[:, j], known)
        flat[:, j] = column if then is None else then(column)
    return values


def estimate_light(scan: Scan, model: PersonModel, pose: Pose, expr: ColumnSpill,
                   opts: FitParams, scratch: Path) -> tuple[ColumnSpill, np.ndarray]:
    """Per-frame SH illumination (n, 27; a scratch file under ``scratch``) and
    per-vertex albedo (N, 3).

    Albedo is constant for the person, so it is solved on an even sample of at
    most ``albedo_frames`` frames, alternating with their light; then one pass
    over the clip fits every frame's light to that albedo. Light is fitted on
    skin vertices facing the camera (lips, eyes, brows and irises change colour
    with expression and are left out); albedo is the least-squares de-shaded
    colour of every vertex over the sampled frames that see it.
    """
    n, n_pts = len(scan.detected), model.mean.shape[0]
    tris = model.triangles
    inc = incidence(n_pts, tris)
    on_mesh = np.asarray(inc.sum(axis=1)).ravel() > 0
    skin = on_mesh.copy()
    skin[list(model.topo.shading_exclude)] = False
    skin_idx = np.flatnonzero(skin)

    def geometry(rows: np.ndarray, colours: np.ndarray, points: np.ndarray | slice
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colours (k, V, 3) in 0..1, SH basis (k, V, 9) and visibility (k, V) of
        detected ``rows``, for the vertices ``points``."""
        verts = rebuild_landmarks(model, pose[rows], expr.take(rows))
        normals = camera_normals(vertex_normals(verts, tris, inc)[:, points])
        colours = colours.reshape(-1, n_pts, 3)[:, points].astype(np.float32) / 255.0
        return colours, sh_basis(normals), (normals[..., 2] > 0.25) & on_mesh[points]

    sample = np.flatnonzero(scan.detected)
    sample = np.unique(sample[np.linspace(0, len(sample) - 1, opts.albedo_frames).round()
                              .astype(int)])
    colours, basis, visible = geometry(
        sample, np.concatenate([scan.colours.read(r, r + 1) for r in sample]), slice(None))
    seen = visible.sum(axis=0)
    base = (colours * visible[..., None]).sum(axis=0) / np.maximum(seen, 1)[:, None]
    base[seen == 0] = 0.5
    albedo = base
    for _ in range(opts.light_iterations):
        light = fit_light(colours[:, skin], basis[:, skin], albedo[skin], visible[:, skin])
        ok = ~np.isnan(light[:, 0, 0])
        acc = AlbedoAccumulator(n_pts)
        acc.add(colours[ok], shading(basis[ok], light[ok]), visible[ok])
        new = acc.albedo(base)
        # Albedo and light share a scale: keep the skin's mean albedo at its mean colour.
        albedo = np.clip(new * base[skin].mean() / max(new[skin].mean(), 1e-9), 0.0, 1.0)

    light = ColumnSpill(scratch / "light.f64", n, 27)  # R0..R8, G0..G8, B0..B8
    for a, b in _chunks(n, opts.chunk_frames):
        keep = scan.detected[a:b]
        if keep.any():
            rows = np.flatnonzero(keep) + a
            colours, basis, visible = geometry(rows, scan.colours.read(a, b)[keep], skin_idx)
            light.write_rows(rows, fit_light(colours, basis, albedo[skin_idx], visible)
                             .reshape(len(rows), 27))
    known = ~np.isnan(light.column(0))
    light.map_columns((lambda col: fill_gaps(col, known)) if known.any() else np.zeros_like)
    return light, albedo


def write_face_table(path: Path, scan: Scan, model: PersonModel, pose: Pose,
                     expr: ColumnSpill, light: ColumnSpill, fillable: np.ndarray, fps: float,
                     chunk: int) -> np.ndarray:
    """face.parquet, chunk by chunk; returns the per-frame residual."""
    n, n_pts = len(scan.detected), model.mean.shape[0]
    schema = face_schema(n_pts)
    residual = np.full(n, np.nan)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as out:
        for a, b in _chunks(n, chunk):
            det = scan.detected[a:b]
            expr_rows = expr.read_rows(a, b)
            fitted = rebuild_landmarks(model, pose[a:b], expr_rows)[..., :2]
            raw = scan.landmarks.read(a, b).reshape(-1, n_pts, 3)[..., :2]
            lm2d = np.where(det[:, None, None], raw, fitted)
            residual[a:b][det] = reprojection_error(fitted[det], raw[det], model.topo)
            poly = resample_polygon(to_crop(fitted[:, model.mask_indices], scan.transforms[a:b]))
            columns = {
                "frame": np.arange(a, b, dtype=np.int32), "time_s": np.arange(a, b) / fps,
                "detected": det, "interpolated": fillable[a:b], "n_faces": scan.n_faces[a:b],
                "landmarks_2d": lm2d.reshape(b - a, -1), "rotation": pose.rotation[a:b],
                "translation": pose.translation[a:b], "scale": pose.scale[a:b],
                "expression": expr_rows, "illumination": light.read_rows(a, b),
                "residual": residual[a:b], "crop_transform": scan.transforms[a:b],
                "mask_polygon": poly.reshape(b - a, -1),
            }
            out.write_table(to_table(columns, schema))
    return residual


def run_fit(clip: str, root: Path, fit: FitParams, scale: ScaleParams,
            map_chunks: ChunkMap = serial_map) -> dict[str, Any]:
    """Fit the clip's faces; write face.parquet, face_model.safetensors and the crops.

    With ``scale.chunk_frames`` set, faces are found chunk by chunk through ``map_chunks``
    (the flow maps them on its task runner, e.g. Dask workers); the result depends on
    the chunking, never on where the chunks ran."""
    paths = ClipPaths.of(clip, root)
    created = not paths.crops.exists()
    paths.crops.mkdir(parents=True, exist_ok=True)
    try:
        return _fit(clip, root, fit, paths, scale, map_chunks)
    except BaseException:
        if created and not any(paths.crops.iterdir()):  # leave no empty output folder behind
            paths.crops.rmdir()
        raise


def _fit(clip: str, root: Path, opts: FitParams, paths: ClipPaths, scale: ScaleParams,
         map_chunks: ChunkMap) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = FrameStore.for_clip(clip, root)
    spans = scale.spans(len(store))
    detections = None
    if len(spans) > 1:
        jobs = [DetectSpan(str(Path(root).resolve()), clip, a, b, opts.landmarker_params())
                for a, b in spans]
        detections = itertools.chain.from_iterable(map_chunks(detect_span, jobs))
    meta = VideoMeta.read(paths)
    fps_q = Fraction(meta.fps_rational)
    fps = float(fps_q)
    took: dict[str, float] = {}
    with make_landmarker(opts.landmarker_params()) as landmarker, \
            tempfile.TemporaryDirectory(dir=paths.interim, prefix=".fit-") as scratch, \
            atomic_path(paths.crops_video) as crops_tmp:
        scan = scan_clip(store, landmarker, opts, crops_tmp, fps_q,
                         (meta.width, meta.height), Path(scratch), detections)
        try:
            occluded = flag_occlusions(scan, landmarker.topology, opts)
            fillable = check_coverage(scan, opts, fps, paths.video)
            topo = landmarker.topology
            n_pts = topo.n_points

            def detected_chunks() -> Iterator[np.ndarray]:
                for a, b in _chunks(len(store), opts.chunk_frames):
                    keep = scan.detected[a:b]
                    if keep.any():
                        yield scan.landmarks.read(a, b).reshape(-1, n_pts, 3)[keep]

            with _timed(took, "model"):
                mean, basis, stddev, explained = build_shape_model(detected_chunks, topo)
                model = PersonModel(topo.name, mean, basis, stddev, explained,
                                    np.full((n_pts, 3), 0.5), mesh_for(mean, topo),
                                    lower_face_indices(mean, topo))
            with _timed(took, "parameters"):
                pose, expr = fit_parameters(scan, model, opts, fps, Path(scratch))
            with _timed(took, "light"):
                light, model.albedo = estimate_light(scan, model, pose, expr, opts,
                                                     Path(scratch))
            with _timed(took, "write"):
                residual = write_face_table(paths.face, scan, model, pose, expr, light,
                                            fillable, fps, opts.chunk_frames)
            expr.close()
            light.close()
        finally:
            scan.landmarks.close()
            scan.colours.close()
        n = len(store)
        model.meta = {"clip": clip, "landmarker": landmarker.name, "frames": str(n),
                      "detected_frames": str(int(scan.detected.sum())),
                      "units": "canonical head frame: x right, y down, z into the head; "
                               "1 = outer-eye-corner distance",
                      "albedo": "sRGB/255, de-shaded by the per-frame SH illumination",
                      "talkedit_version": __version__}
        model.save(paths.face_model)
        write_json(paths.crops_meta, {
            "video": paths.crops_video.name, "frames": n, "size": opts.crop_size,
            "fps": meta.fps_rational, "codec": "h264", "pix_fmt": "yuv444p",
            "crf": opts.crop_crf, "gop": opts.crop_gop, "margin": opts.crop_margin,
            "mask": "face.parquet mask_polygon (crop px); stages.fit.read_crops rasterizes it"})
    write_json(fit_metrics_path(paths), fit_metrics(scan.detected, fillable, residual, model))
    elapsed = time.perf_counter() - t0
    other = {"other_person_over_mouth": scan.reason == OTHER_OVER_MOUTH,
             "speaker_ambiguous": scan.reason == AMBIGUOUS}
    for key, flagged in other.items():
        if flagged.any():
            log.warning("fit %s: %d frames left out (%s): %s", clip, int(flagged.sum()),
                        REASONS[OTHER_OVER_MOUTH if key.startswith("other") else AMBIGUOUS],
                        format_ranges(runs(flagged), fps))
    summary = {
        "clip": clip, "frames": n, "landmarker": landmarker.name,
        "detected_share": round(float(scan.detected.mean()), 4),
        "interpolated_frames": int((fillable & ~scan.detected).sum()),
        "missing_frames": int((~scan.detected & ~fillable).sum()),
        "occluded_frames": int(occluded.sum()),
        "occluded_ranges": format_ranges(runs(occluded), fps) if occluded.any() else "",
        "max_faces_seen": int(scan.n_faces.max()),
        "multi_face_frames": scan.tracker.multi_face_frames,
        # frames left out because another person made the speaker's mouth uncertain
        **{f"{key}_frames": int(flagged.sum()) for key, flagged in other.items()},
        **{f"{key}_ranges": format_ranges(runs(flagged), fps)
           for key, flagged in other.items() if flagged.any()},
        "explained_variance": round(model.explained_variance, 4),
        "mean_residual": round(float(np.nanmean(residual)), 5),
        "fps": round(n / elapsed, 1), "landmark_pass_fps": round(n / scan.seconds, 1),
        "detection_chunks": len(spans),
    }
    log.info("fit %s: %s; seconds: landmarks+crops %.2f, %s, total %.2f", clip, summary,
             scan.seconds, ", ".join(f"{k} {v:.2f}" for k, v in took.items()), elapsed)
    return summary


@contextlib.contextmanager
def _timed(took: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    took[name] = time.perf_counter() - t0


def fit_metrics(detected: np.ndarray, fillable: np.ndarray, residual: np.ndarray,
                model: PersonModel) -> dict[str, Any]:
    """The fit's numbers for `dvc metrics` (no time: the same bytes each run)."""
    found = residual[np.isfinite(residual)]
    return {
        "frames": int(len(detected)),
        "detected_share": round(float(detected.mean()), 4) if len(detected) else 0.0,
        "interpolated_frames": int((fillable & ~detected).sum()),
        "missing_frames": int((~detected & ~fillable).sum()),
        "residual_mean": round(float(found.mean()), 5) if len(found) else None,
        "residual_median": round(float(np.median(found)), 5) if len(found) else None,
        "residual_p95": round(float(np.percentile(found, 95)), 5) if len(found) else None,
        "explained_variance": round(model.explained_variance, 4),
    }


def load_fit(clip: str, root: Path | None = None) -> tuple[PersonModel, pa.Table]:
    """A fitted clip's person model and face table (Arrow; ``column_array`` reads its vectors)."""
    paths = ClipPaths.of(clip, root)
    table = read_parquet(paths.face, FACE, arrow=True, stage_hint=f"fit@{clip}")
    return PersonModel.load(paths.face_model), table


def frame_parameters(table: pa.Table) -> tuple[Pose, np.ndarray]:
    """Pose and (n, 64) expression of every row of a face table."""
    return frame_pose(table), column_array(table, "expression").astype(np.float64)


def frame_pose(table: pa.Table) -> Pose:
    """The pose of every row of a face table (its rotation, translation and scale only)."""
    return Pose(column_array(table, "rotation").astype(np.float64),
                column_array(table, "translation").astype(np.float64),
                table.column("scale").to_numpy().astype(np.float64))
