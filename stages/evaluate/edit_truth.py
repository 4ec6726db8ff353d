"""Edit with truth: an edited generated clip scored against the same person saying the edit.

The pair (``stages.demo.pairs``) gives, besides the edited video, a truth clip: the same
rig, voice and seed saying the edited text, with its exact phones. Scores per edit (each
new segment of the plan), next to the same scores on the kept footage:

* mouth opening, two measures mapped linearly to the generator's ``jaw_open`` on the first
  half of the source clip: the inner-lip gap over the eye distance (``OpeningMeasure.lips``)
  and the fitted expression coefficients (``OpeningMeasure.__call__``). Each is validated
  on the source's second half and again on the edit's *generated* frames against the
  opening they were asked for (the plan's expression read by the expression map, itself
  validated on real frames); a clip is scored by the measure whose worse validation is
  better.
  The expression map validates well on real frames, but the whole-face fit of generated
  frames moves coefficients it reads (the renderer draws the lower face): on the pairs it
  tracked the requested opening worse on generated frames (r 0.92 vs 0.95 for the lips'
  gap) and disagreed with the plan inside words whose lips followed it (session 5). The
  truth clip's own frames, measured alike inside the edited words, give the measure's
  ceiling there (``ceiling_r``). A yardstick is only trusted once it tracks truth;
* ``opening_r``: Pearson r of the measured opening with the truth clip's ``jaw_open``
  at the same point of the text (phone-level time map, ``time_map``);
* vowel peaks: per vowel of the edited words, the time of the opening peak against the
  truth's (``peak_error_ms``) and its height (``amplitude_error``, jaw units);
* mouth PSNR / SSIM of the aligned face crop's lower-face region against the truth frame
  (with ``truth_at``, the truth drawn at the exact point of the text; also by the nearest
  truth frame, and a perfect edit's score by it: that lookup's own cost, session 19);
* mouth sharpness: variance of the Laplacian inside the lips' box, over the source's;
* repeated background frames and head-motion smoothness (``background_motion``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from stages.demo.mouth import articulation_track
from stages.evaluate.measure import mouth_points, pearson
from stages.fit import (
    FitParams,
    Landmarker,
    load_fit,
    lower_face_mask,
    make_landmarker,
    mouth_opening,
)
from stages.fit.crops import CropFramer, crop_matrix, to_crop
from stages.fit.model import PersonModel, fit_frames
from stages.fit.smoothing import smooth
from stages.render.evaluate import region_psnr, region_ssim
from talkedit.artifacts import (
    NEW_PHONES,
    SEGMENTS,
    TRUTH_FRAMES,
    ClipPaths,
    EditPaths,
    VideoMeta,
    column_array,
    read_parquet,
)
from talkedit.phonemes import SILENCE, VOWELS, matched_phone_knots
from talkedit.video import open_container

PEAK_WINDOW_S = 0.06  # a vowel's opening peak is looked for this far beyond its ends


# --- the opening measure --------------------------------------------------------------------


@dataclass
class OpeningMeasure:
    """Opening in the generator's jaw_open units, from a frame's landmarks (the lips' gap:
    the yardstick's measure) or from its fitted expression (the plan's own opening)."""

    model: PersonModel
    weights: np.ndarray  # (64 + 1,) linear map of [expression, 1]
    lip_map: np.ndarray  # (2,) slope, intercept of the inner-lip gap / eye distance
    validation_r: float  # the lips' measure: r with truth on the clip's second half
    expression_r: float  # the expression map's, same frames

    @classmethod
    def calibrate(cls, model: PersonModel, expression: np.ndarray, landmarks: np.ndarray,
                  jaw_open: np.ndarray, ridge: float = 1e-3) -> OpeningMeasure:
        """Fit on the first half of a clip's frames (expression (n, 64), landmarks
        (n, N, 2|3)), validate on the second half."""
        x = np.column_stack([expression, np.ones(len(expression))])
        half = len(x) // 2
        a, b = x[:half], jaw_open[:half]
        reg = ridge * np.eye(x.shape[1]) * float(np.mean(a[:, :-1] ** 2) + 1e-12)
        reg[-1, -1] = 0.0
        weights = np.linalg.solve(a.T @ a + reg, a.T @ b)
        gap = mouth_opening(landmarks)
        fitted = np.isfinite(gap[:half])
        lip_map = np.polyfit(gap[:half][fitted], b[fitted], 1)
        return cls(model, weights, lip_map,
                   pearson(np.polyval(lip_map, gap[half:]), jaw_open[half:]),
                   pearson(x[half:] @ weights, jaw_open[half:]))

    def lips(self, points: np.ndarray) -> np.ndarray:
        """(n,) opening of (n, N, 2|3) landmarks (NaN where no face)."""
        return np.polyval(self.lip_map, mouth_opening(points[..., :2]))

    def expression(self, points: np.ndarray) -> np.ndarray:
        """(n, 64) expression of (n, N, 3) landmarks (NaN rows stay NaN)."""
        out = np.full((len(points), self.model.basis.shape[0]), np.nan)
        ok = np.isfinite(points).all(axis=(1, 2))
        if ok.any():
            out[ok] = fit_frames(self.model, points[ok])[1]
        return out

    def __call__(self, expression: np.ndarray) -> np.ndarray:
        return np.column_stack([expression, np.ones(len(expression))]) @ self.weights


# --- frames -----------------------------------------------------------------------------------


@dataclass
class Frames:
    """What the scores read of a frame sequence: landmarks and aligned mouth crops."""

    points: np.ndarray  # (n, N, 3) image px, NaN where no face
    crops: np.ndarray  # (n, S, S, 3) aligned crops
    polygons: np.ndarray  # (n, K, 2) lower-face outline in crop px
    lips: np.ndarray  # (n, 4) lips' box in crop px (x0, y0, x1, y1)


def observe(images: list[np.ndarray], landmarker: Landmarker, framer: CropFramer,
            model: PersonModel, size: int) -> Frames:
    """Landmarks and aligned crops of ``images``; ``framer`` frames every sequence alike
    (its template is set by the first face it sees)."""
    topo = landmarker.topology
    n_pts = topo.n_points
    lip_idx = mouth_points(topo)
    points = np.full((len(images), n_pts, 3), np.nan)
    crops = np.zeros((len(images), size, size, 3), np.uint8)
    polygons = np.zeros((len(images), len(model.mask_indices), 2))
    lips = np.zeros((len(images), 4))
    for k, image in enumerate(images):
        faces = landmarker.detect(image)
        if not faces:
            continue
        p = max(faces, key=lambda f: f.height_px).points.astype(np.float64)
        points[k] = p
        m = crop_matrix(framer.measure(p), size)
        crops[k] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        in_crop = to_crop(p[None, :, :2], m.reshape(1, 6))[0]
        polygons[k] = in_crop[model.mask_indices]
        lips[k] = [*in_crop[lip_idx].min(axis=0), *in_crop[lip_idx].max(axis=0)]
    return Frames(points, crops, polygons, lips)


def sharpness(crop: np.ndarray, box: np.ndarray, pad: float = 0.25) -> float:
    """Variance of the Laplacian of the luma inside the lips' box (grown by ``pad``)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if not np.isfinite(box).all() or w <= 1 or h <= 0:
        return float("nan")
    a = (max(0, int(x0 - pad * w)), max(0, int(y0 - pad * w)))
    b = (min(crop.shape[1], int(np.ceil(x1 + pad * w))),
         min(crop.shape[0], int(np.ceil(y1 + pad * w))))
    grey = cv2.cvtColor(crop[a[1]:b[1], a[0]:b[0]], cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var()) if grey.size else float("nan")


# --- timelines --------------------------------------------------------------------------------


def output_phones(segments: pd.DataFrame, new_phones: pd.DataFrame,
                  clip_truth_phones: pd.DataFrame) -> pd.DataFrame:
    """The edited video's spoken phones on its own timeline: kept segments through the
    source clip's exact phones, new ones as planned. Columns phone, start_s, end_s, new,
    segment."""
    rows = []
    spoken = clip_truth_phones[clip_truth_phones["phone"] != SILENCE]
    for seg in segments.itertuples():
        if seg.kind == "kept":
            inside = spoken[(spoken["end_s"] > seg.source_start_s + 1e-6)
                            & (spoken["start_s"] < seg.source_end_s - 1e-6)]
            shift = seg.out_start_s - seg.source_start_s
            for ph in inside.itertuples():
                rows.append((ph.phone, max(ph.start_s, seg.source_start_s) + shift,
                             min(ph.end_s, seg.source_end_s) + shift, False, seg.segment))
        else:
            mine = new_phones[new_phones["segment"] == seg.segment]
            for ph in mine.itertuples():
                rows.append((ph.phone, ph.out_start_s, ph.out_end_s, True, seg.segment))
    return pd.DataFrame(rows, columns=["phone", "start_s", "end_s", "new", "segment"])


def time_map(out: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Knots (output s, truth s) through the phones both say, matched in order."""
    return matched_phone_knots(*(list(zip(t["phone"], t["start_s"], t["end_s"], strict=True))
                                 for t in (out, truth)))


def truth_jaw(truth_phones: pd.DataFrame, times_s: np.ndarray) -> np.ndarray:
    """The truth clip's jaw_open at any times (the generator's own articulation track)."""
    rows = list(zip(truth_phones["phone"], truth_phones["start_s"], truth_phones["end_s"],
                    strict=True))
    return articulation_track(rows, np.asarray(times_s, np.float64))[:, 0].astype(np.float64)


def _peak(series: np.ndarray, times: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Time and height of the highest point of ``series`` in [lo, hi], refined between
    samples by a parabola."""
    inside = np.flatnonzero((times >= lo) & (times <= hi) & np.isfinite(series))
    if not len(inside):
        return float("nan"), float("nan")
    # A local maximum of the whole series: the window's edge on a neighbour's slope is not
    # this vowel's peak (when the window holds none, its highest point stands in).
    padded = np.r_[-np.inf, np.nan_to_num(series, nan=-np.inf), -np.inf]
    local = inside[(padded[inside + 1] >= padded[inside]) & (padded[inside + 1] >= padded[inside + 2])]
    pool = local if len(local) else inside
    k = int(pool[np.argmax(series[pool])])
    t, v = float(times[k]), float(series[k])
    if 0 < k < len(series) - 1 and np.isfinite(series[k - 1:k + 2]).all():
        a, b, c = series[k - 1:k + 2]
        denom = a - 2 * b + c
        if denom < 0:
            shift = 0.5 * (a - c) / denom
            t += shift * float(times[k + 1] - times[k])
            v = b - 0.25 * (a - c) * shift
    return t, float(v)


def vowel_peaks(opening: np.ndarray, truth: np.ndarray, times: np.ndarray,
                vowels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per vowel (output start_s/end_s): peak time error (ms, + = late) and peak height
    error (measured - truth, jaw units). ``truth`` is sampled finely at ``times``' rate or
    finer by the caller: both series share ``times``."""
    dt, dv = [], []
    for v in vowels.itertuples():
        lo, hi = v.start_s - PEAK_WINDOW_S, v.end_s + PEAK_WINDOW_S
        t_m, h_m = _peak(opening, times, lo, hi)
        t_t, h_t = _peak(truth, times, lo, hi)
        dt.append(1000.0 * (t_m - t_t))
        dv.append(h_m - h_t)
    return np.asarray(dt), np.asarray(dv)


# --- background -------------------------------------------------------------------------------


def repeated_frames(source_time: np.ndarray, fps: float) -> int:
    """Output frames whose background is the same source instant as the frame before."""
    step = np.diff(np.asarray(source_time, np.float64))
    return int(np.sum(np.abs(step) < 0.05 / fps))


def head_motion_jerk(positions: np.ndarray) -> np.ndarray:
    """Per frame, the size of the second difference of the head's position (n, d): a
    stutter (a held frame, then a double step) shows as a spike."""
    p = np.asarray(positions, np.float64)
    if len(p) < 3:
        return np.zeros(0)
    return np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1)


# --- one edit ---------------------------------------------------------------------------------


MOUTH_BOX_GROW = 0.25  # the mouth area: the lips' box grown by this share of its width


def mouth_box_mask(lips: np.ndarray, size: int, grow: float = MOUTH_BOX_GROW) -> np.ndarray:
    """(size, size) bool, set inside the lips' box (x0, y0, x1, y1) grown by ``grow`` of
    its width on every side: where the exemplar mouth is painted."""
    x0, y0, x1, y1 = np.asarray(lips, np.float64)
    g = grow * (x1 - x0)
    mask = np.zeros((size, size), bool)
    mask[int(max(0.0, y0 - g)):int(y1 + g) + 1, int(max(0.0, x0 - g)):int(x1 + g) + 1] = True
    return mask


def region_scores(test: Frames, truth: Frames, rows: np.ndarray, truth_rows: np.ndarray
                  ) -> dict[str, float]:
    """Mean lower-face PSNR / SSIM of frames ``rows`` of ``test`` against ``truth_rows`` of
    truth, and the PSNR split into the mouth area (the truth's lips' box, grown) and the rest
    of the lower face (cheeks, chin, jaw line): which part an edit loses in."""
    scores: dict[str, list[float]] = {"psnr_db": [], "ssim": [], "psnr_db_mouth": [],
                                      "psnr_db_rest": []}
    size = test.crops.shape[1]
    for k, j in zip(rows, truth_rows, strict=True):
        if not (np.isfinite(test.points[k]).all() and np.isfinite(truth.points[j]).all()):
            continue
        region = lower_face_mask(truth.polygons[j], size).astype(bool)
        mouth = region & mouth_box_mask(truth.lips[j], size)
        scores["psnr_db"].append(region_psnr(truth.crops[j], test.crops[k], region))
        scores["ssim"].append(region_ssim(truth.crops[j], test.crops[k], region))
        for name, part in (("psnr_db_mouth", mouth), ("psnr_db_rest", region & ~mouth)):
            if part.any():
                scores[name].append(region_psnr(truth.crops[j], test.crops[k], part))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def mean_sharpness(frames: Frames, rows: np.ndarray) -> float:
    values = [sharpness(frames.crops[k], frames.lips[k]) for k in rows
              if np.isfinite(frames.points[k]).all()]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


# --- a whole pair ----------------------------------------------------------------------------

CROP_SIZE = 160  # aligned crop side for PSNR / SSIM / sharpness (the face spans ~110 px)
KEPT_WINDOW_S = 1.0  # kept footage is scored in windows about as long as an edit
SUMMARY_ROWS = (
    ("opening_validation_r", "opening measure used vs truth, source clip's unfitted half (r)",
     "trusted"),
    ("generated_validation_r", "... vs the requested opening on generated frames (r)",
     "trusted"),
    ("lips_validation_r", "lips' gap measure, source's unfitted half (r)", "for comparison"),
    ("generated_validation_r_lips", "... on generated frames (r)", "for comparison"),
    ("expression_validation_r", "expression-map measure, source's unfitted half (r)",
     "for comparison"),
    ("generated_validation_r_expression", "... on generated frames (r)", "for comparison"),
    ("ceiling_r_edited", "opening r of the TRUTH clip's own frames, edited words (the "
     "measure's ceiling)", ""),
    ("measures", "measure used per clip", ""),
    ("opening_r_edited", "opening r inside edited words (mean)", ">= 0.9"),
    ("opening_r_edited_expression", "... by the expression-map measure on every clip", ""),
    ("opening_r_edited_lips", "... by the lips' gap measure on every clip", ""),
    ("opening_r_kept", "opening r on kept footage (mean over 1 s windows)", ""),
    ("plan_opening_r_edited", "opening r of the plan's own expression, edited (before rendering)",
     ""),
    ("peak_error_ms_edited", "vowel-peak timing error, edited (median abs, ms)", "<= 40"),
    ("peak_error_ms_kept", "vowel-peak timing error, kept (median abs, ms)", ""),
    ("plan_peak_error_ms_edited", "vowel-peak timing error of the plan's own expression, edited "
     "(median abs, ms)", ""),
    ("peak_lag_ms_edited", "vowel-peak timing, edited (median signed, ms, + = late)", ""),
    ("amplitude_error_edited", "vowel-peak opening error, edited (mean, jaw units)", ""),
    ("amplitude_error_kept", "vowel-peak opening error, kept (mean, jaw units)", ""),
    ("psnr_db_edited", "mouth PSNR vs truth, edited (dB)", ""),
    ("psnr_db_kept", "mouth PSNR vs truth, kept (dB)", ""),
    ("truth_lookup", "truth picture each output frame is compared with (exact: drawn at "
     "the point of the text it shows; nearest: the truth clip's nearest frame)", ""),
    ("psnr_gap_db", "PSNR gap kept - edited (dB)", "<= 3"),
    ("psnr_gap_db_nearest", "... by the truth's nearest frame (the lookup up to session 18)",
     ""),
    ("psnr_gap_db_perfect_nearest", "... a perfect edit's (the exact truth itself) by the "
     "nearest frame: that lookup's own cost", ""),
    ("psnr_gap_db_mouth", "... in the mouth area (lips' box, grown a quarter of its width)",
     ""),
    ("psnr_gap_db_rest", "... in the rest of the lower face (cheeks, chin, jaw line)", ""),
    ("ssim_edited", "mouth SSIM vs truth, edited", ""),
    ("ssim_kept", "mouth SSIM vs truth, kept", ""),
    ("sharpness_ratio", "mouth sharpness, edited / source (mean)", ">= 0.8"),
    ("repeats", "repeated background frames (all edits)", "0"),
    ("head_jerk_ratio", "head-motion jerk p95, edited regions / kept footage", "~1"),
)


def _frames(path: Path) -> list[np.ndarray]:
    with open_container(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def _filled(x: np.ndarray) -> np.ndarray:
    """NaN rows filled by linear interpolation over time."""
    x = np.array(x, np.float64)
    ok = np.isfinite(x).all(axis=1)
    if not ok.any():
        return x
    idx = np.arange(len(x))
    for j in range(x.shape[1]):
        x[:, j] = np.interp(idx, idx[ok], x[ok, j])
    return x


def background_time(plan: pd.DataFrame, fps: float) -> np.ndarray:
    """Each output frame's background instant in clip seconds."""
    if "source_time_s" in plan:
        return plan["source_time_s"].to_numpy(np.float64)
    return plan["source_frame"].to_numpy(np.float64) / fps


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2], strict=True))


def score_pair(clip: str, root: Path, truth_dir: Path, fit: FitParams | None = None,
               truth_at: Callable[[np.ndarray, np.ndarray], Path] | None = None
               ) -> list[dict[str, Any]]:
    """Scores of the edit named ``clip`` (its output video) against the truth clip
    ``truth_dir``/<clip>.mp4: one row per new segment, with the kept footage's scores.

    The pictures (PSNR, SSIM) compare each output frame with the truth frame nearest the
    point of the text it shows; with ``truth_at`` (the truth's own times (n,) -> a video
    of the truth drawn at exactly those instants, ``stages.demo.pairs.truth_at``), with
    the truth at that very point instead, and (the second argument: the output frames'
    background instants, clip seconds) its head and light where the output's background
    has them: the nearest frame lies up to half a frame off (where the lips move that
    alone cost kept footage after an edit 2-8 dB on the development pairs), and shares
    the clip's compression artefacts in kept footage before the first edit (session 16)."""
    fit = fit or FitParams()
    paths, edit = ClipPaths.of(clip, root), EditPaths.of(clip, root)
    model, table = load_fit(clip, root)
    n = len(table)
    fps = VideoMeta.read(paths).fps
    src_truth = read_parquet(paths.truth_frames, TRUTH_FRAMES)
    jaw = np.interp(np.arange(n) / fps, src_truth["time_s"], src_truth["jaw_open"])
    measure = OpeningMeasure.calibrate(model, column_array(table, "expression"),
                                       column_array(table, "landmarks_2d").reshape(n, -1, 2), jaw)
    out_images, truth_images = _frames(edit.output), _frames(truth_dir / f"{clip}.mp4")
    segments = read_parquet(edit.segments, SEGMENTS)
    phones = output_phones(segments, read_parquet(edit.new_phones, NEW_PHONES),
                           pd.read_parquet(paths.truth_phones))
    truth_phones = pd.read_parquet(truth_dir / f"{clip}.truth_phones.parquet")
    k_out, k_truth = time_map(phones, truth_phones)
    t_out = np.arange(len(out_images)) / fps
    t_truth = np.interp(t_out, k_out, k_truth)
    truth_rows = np.clip(np.rint(t_truth * fps).astype(np.int64), 0, len(truth_images) - 1)
    truth_open = truth_jaw(truth_phones, t_truth)
    plan = pd.read_parquet(edit.plan)  # not checked against PLAN: plans from before
    # source_time_s (nearest-frame retiming) are scored too.
    bg_time = background_time(plan, fps)
    with make_landmarker(fit.landmarker_params()) as landmarker:
        framer = CropFramer(landmarker.topology, fit.crop_margin)
        out = observe(out_images, landmarker, framer, model, CROP_SIZE)
        truth = observe(truth_images, landmarker, framer, model, CROP_SIZE)
        # The truth pictures each output frame is compared with, and their rows.
        picture, picture_rows = truth, truth_rows
        if truth_at is not None:
            picture = observe(_frames(truth_at(t_truth, bg_time[:len(t_out)])), landmarker,
                              framer, model, CROP_SIZE)
            picture_rows = np.arange(len(t_out))

    def pictures(rows_: np.ndarray) -> dict[str, float]:
        """The pictures' scores of output rows ``rows_``; with the exact truth, also by the
        nearest truth frame (``_nearest``) and a perfect edit's by the nearest frame (the
        exact truth itself scored by it, ``_perfect_nearest``): what that lookup alone
        costs, which no edit can win back."""
        scores = region_scores(out, picture, rows_, picture_rows[rows_])
        if truth_at is not None:
            for suffix, test in (("nearest", out), ("perfect_nearest", picture)):
                scores |= {f"{k}_{suffix}": v for k, v in
                           region_scores(test, truth, rows_, truth_rows[rows_]).items()}
        return scores

    # What the renderer was asked for: splits the loss between the plan and the renderer.
    planned = measure(np.stack(plan["expression"].to_numpy())[:len(t_out)].astype(np.float64))
    edited = plan["edited"].to_numpy(bool)[:len(t_out)]
    # Generated frames: the renderer drew them from the plan's expression, whose opening
    # the expression map reads on real frames (validated above): what they were asked for.
    generated = edited & np.isfinite(planned)
    requested = planned

    def by_expression(frames: Frames) -> np.ndarray:
        return measure(smooth(_filled(measure.expression(frames.points)), fit.smoothing, fps,
                              fit.expression_window_ms, fit.smoothing_order))

    # Both measures, each validated on the clip's unfitted half and on generated frames;
    # the clip is scored by the one whose worse validation is better (never by the truth
    # of the edited words).
    series = {"lips": (measure.lips(out.points), measure.lips(truth.points)),
              "expression": (by_expression(out), by_expression(truth))}
    checks = {"lips": (measure.validation_r, pearson(series["lips"][0][generated],
                                                     requested[generated])),
              "expression": (measure.expression_r,
                             pearson(series["expression"][0][generated], requested[generated]))}
    chosen = max(checks, key=lambda k: float(np.nanmin(checks[k])))
    opening, truth_frames_opening = series[chosen][0], series[chosen][1][truth_rows]
    opening_expression = series["expression"][0]  # the earlier measure, for continuity
    position = np.stack(plan["translation"].to_numpy())[:, :2].astype(np.float64)
    jerk = head_motion_jerk(position)
    kept_jerk = jerk[~edited[1:-1]]
    kept_rows = np.flatnonzero(~edited)
    kept_vowels = phones[~phones["new"] & phones["phone"].isin(VOWELS)]
    in_kept = [bool((~edited[max(0, int((v.start_s - PEAK_WINDOW_S) * fps)):
                               int(np.ceil((v.end_s + PEAK_WINDOW_S) * fps)) + 1]).all())
               for v in kept_vowels.itertuples()]
    kd_t, kd_v = vowel_peaks(opening, truth_open, t_out, kept_vowels[np.asarray(in_kept, bool)])
    window = max(3, int(round(KEPT_WINDOW_S * fps)))
    kept_r = [pearson(opening[a:b], truth_open[a:b]) for lo, hi in _runs(~edited)
              for a in range(lo, hi - window + 1, window) for b in [a + window]]
    kept_regions = pictures(kept_rows)
    kept_sharp = mean_sharpness(out, kept_rows)
    kept = {"opening_r": float(np.nanmean(kept_r)) if kept_r else float("nan"),
            "peak_error_ms": float(np.nanmedian(np.abs(kd_t))) if len(kd_t) else float("nan"),
            "amplitude_error": float(np.nanmean(kd_v)) if len(kd_v) else float("nan"),
            **kept_regions}

    rows = []
    regions = _runs(edited)
    for seg in segments[segments["kind"] == "new"].itertuples():
        rows_seg = np.flatnonzero((t_out >= seg.out_start_s - 1e-9) & (t_out <= seg.out_end_s))
        vowels = phones[(phones["segment"] == seg.segment) & phones["phone"].isin(VOWELS)]
        d_t, d_v = vowel_peaks(opening, truth_open, t_out, vowels)
        plan_d_t, _ = vowel_peaks(planned, truth_open, t_out, vowels)
        regions_seg = pictures(rows_seg)
        lo, hi = next(((a, b) for a, b in regions if a <= rows_seg[0] < b),
                      (rows_seg[0], rows_seg[-1] + 1))
        rows.append({
            "case": clip, "segment": int(seg.segment), "words": seg.words,
            "opening_r": pearson(opening[rows_seg], truth_open[rows_seg]),
            "opening_r_expression": pearson(opening_expression[rows_seg], truth_open[rows_seg]),
            "opening_r_lips": pearson(series["lips"][0][rows_seg], truth_open[rows_seg]),
            "ceiling_r": pearson(truth_frames_opening[rows_seg], truth_open[rows_seg]),
            "plan_opening_r": pearson(planned[rows_seg], truth_open[rows_seg]),
            "peak_error_ms": float(np.nanmedian(np.abs(d_t))) if len(d_t) else float("nan"),
            "peak_lag_ms": float(np.nanmedian(d_t)) if len(d_t) else float("nan"),
            "peak_errors_ms": [round(float(x), 1) for x in d_t],
            "plan_peak_errors_ms": [round(float(x), 1) for x in plan_d_t],
            "amplitude_error": float(np.nanmean(d_v)) if len(d_v) else float("nan"),
            **regions_seg,
            "sharpness_ratio": mean_sharpness(out, rows_seg) / kept_sharp,
            "repeats": repeated_frames(bg_time[lo:hi], fps),
            "head_jerk_p95": float(np.quantile(jerk[max(0, lo - 1):max(lo, hi - 2)], 0.95)),
            "kept_head_jerk_p95": float(np.quantile(kept_jerk, 0.95)) if len(kept_jerk) else 0.0,
            "kept": kept,
            "measure": chosen,
            "opening_validation_r": checks[chosen][0],
            "generated_validation_r": checks[chosen][1],
            "lips_validation_r": checks["lips"][0],
            "generated_validation_r_lips": checks["lips"][1],
            "expression_validation_r": checks["expression"][0],
            "generated_validation_r_expression": checks["expression"][1],
        })
    return rows


# Issue 13's targets (params.yaml pair_targets: sets them for the pair-summary stage).
TARGETS = {"opening_r": 0.9, "peak_error_ms": 40.0, "psnr_gap_db": 3.0, "repeats": 0,
           "sharpness_ratio": 0.8}


def summarize_pairs(rows: list[dict[str, Any]], targets: dict[str, float] | None = None
                    ) -> dict[str, Any]:
    """The yardstick's figures over every edit (and each case's kept footage), and which
    of ``targets`` (default ``TARGETS``) they meet."""
    goal = {**TARGETS, **(targets or {})}
    def mean(key: str, src: list[dict[str, Any]]) -> float:
        v = np.asarray([r[key] for r in src], np.float64)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    kept = list({r["case"]: r["kept"] for r in rows}.values())
    cases = list({r["case"]: r for r in rows}.values())
    peaks = np.asarray([x for r in rows for x in r["peak_errors_ms"]], np.float64)
    planned = np.abs([x for r in rows for x in r.get("plan_peak_errors_ms", [])])
    out = {
        "edits": len(rows), "cases": len(kept),
        "opening_validation_r": mean("opening_validation_r", cases),
        "expression_validation_r": mean("expression_validation_r", cases),
        "lips_validation_r": mean("lips_validation_r", cases),
        "generated_validation_r_lips": mean("generated_validation_r_lips", cases),
        "measures": ", ".join(f"{r['case']}: {r['measure']}" for r in cases),
        "generated_validation_r": mean("generated_validation_r", cases),
        "generated_validation_r_expression": mean("generated_validation_r_expression", cases),
        "ceiling_r_edited": mean("ceiling_r", rows),
        "opening_r_edited": mean("opening_r", rows), "opening_r_kept": mean("opening_r", kept),
        "opening_r_edited_expression": mean("opening_r_expression", rows),
        "opening_r_edited_lips": mean("opening_r_lips", rows),
        "plan_opening_r_edited": mean("plan_opening_r", rows),
        "peak_error_ms_edited": float(np.nanmedian(np.abs(peaks))) if len(peaks) else float("nan"),
        "peak_error_ms_kept": mean("peak_error_ms", kept),
        "plan_peak_error_ms_edited": float(np.nanmedian(planned)) if len(planned) else float("nan"),
        "peak_lag_ms_edited": float(np.nanmedian(peaks)) if len(peaks) else float("nan"),
        "amplitude_error_edited": mean("amplitude_error", rows),
        "amplitude_error_kept": mean("amplitude_error", kept),
        "psnr_db_edited": mean("psnr_db", rows), "psnr_db_kept": mean("psnr_db", kept),
        "ssim_edited": mean("ssim", rows), "ssim_kept": mean("ssim", kept),
        "sharpness_ratio": mean("sharpness_ratio", rows),
        "repeats": int(sum(r["repeats"] for r in rows)),
        "head_jerk_ratio": mean("head_jerk_p95", rows) / max(mean("kept_head_jerk_p95", rows),
                                                              1e-9),
    }
    out["psnr_gap_db"] = out["psnr_db_kept"] - out["psnr_db_edited"]
    # The split by area, and with the exact truth the nearest frame's figures (older
    # results lack them).
    out["truth_lookup"] = "exact" if rows and "psnr_db_nearest" in rows[0] else "nearest"
    for key in ("psnr_db_mouth", "psnr_db_rest", "psnr_db_nearest", "psnr_db_perfect_nearest"):
        if rows and all(key in r for r in rows):
            out[f"{key}_edited"], out[f"{key}_kept"] = mean(key, rows), mean(key, kept)
            out["psnr_gap_db" + key.removeprefix("psnr_db")] = (out[f"{key}_kept"]
                                                                 - out[f"{key}_edited"])
    out["targets_met"] = {
        "opening_r": out["opening_r_edited"] >= goal["opening_r"],
        "peak_error_ms": out["peak_error_ms_edited"] <= goal["peak_error_ms"],
        "psnr_gap_db": out["psnr_gap_db"] <= goal["psnr_gap_db"],
        "repeats": out["repeats"] <= goal["repeats"],
        "sharpness_ratio": out["sharpness_ratio"] >= goal["sharpness_ratio"],
    }
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
