"""Where the edited words' mouth PSNR is lost (issue 13): a diagnostic of edit_quality's pairs.

    .venv/bin/python benchmarks/psnr_breakdown.py --work DIR [--cases NAME ...]

Reads the edits already in ``--work`` (benchmarks/edit_quality.py) and, frame by frame,
the scorer's aligned lower-face crops of output and truth (stages/evaluate/edit_truth.py's
framing), then splits the edited frames' PSNR against the truth the ways issue 13 asks,
next to the same splits on kept frames:

* the scorer's PSNR (lower face), its mouth box and the rest;
* after removing the mean colour difference over the region (what a perfect global colour
  match would gain);
* the best over shifts of the output crop by up to 2 px (what alignment would gain);
* after a small Gaussian blur of the output (sigma 0.7 and 1.2 crop px: would a softer
  mouth score higher?);
* by place inside the edited run: its first and last 2 frames (seams) vs the middle;
* the background frame behind each edited row, unedited (the footage the edit replaced);
* the output smoothed over time ([1 2 1] / 4 over neighbouring edited frames' crops).

Never a score of the project: the yardstick is edit_truth.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHIFT_PX = 2
BLURS = (0.7, 1.2)
SEAM_FRAMES = 2


def _psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    d = a[region].astype(np.float64) - b[region].astype(np.float64)
    return 10.0 * np.log10(255.0 ** 2 / max(float((d ** 2).mean()), 1e-10))


def _mean_free(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    d = a[region].astype(np.float64) - b[region].astype(np.float64)
    d -= d.mean(axis=0)
    return 10.0 * np.log10(255.0 ** 2 / max(float((d ** 2).mean()), 1e-10))


def _best_shift(truth: np.ndarray, test: np.ndarray, region: np.ndarray) -> tuple[float, int, int]:
    best = (-np.inf, 0, 0)
    for dy in range(-SHIFT_PX, SHIFT_PX + 1):
        for dx in range(-SHIFT_PX, SHIFT_PX + 1):
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            moved = cv2.warpAffine(test, m, test.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            v = _psnr(truth, moved, region)
            if v > best[0]:
                best = (v, dx, dy)
    return best


def frame_scores(truth: np.ndarray, test: np.ndarray, region: np.ndarray,
                 mouth: np.ndarray) -> dict[str, float]:
    out = {"psnr": _psnr(truth, test, region), "mouth": _psnr(truth, test, mouth),
           "rest": _psnr(truth, test, region & ~mouth),
           "mean_free": _mean_free(truth, test, region),
           "mouth_mean_free": _mean_free(truth, test, mouth)}
    best, dx, dy = _best_shift(truth, test, region)
    out.update(shifted=best, shift_dx=dx, shift_dy=dy)
    for s in BLURS:
        out[f"blur{s}"] = _psnr(truth, cv2.GaussianBlur(test, (0, 0), s), region)
        out[f"mouth_blur{s}"] = _psnr(truth, cv2.GaussianBlur(test, (0, 0), s), mouth)
    d = truth[region].astype(np.float64) - test[region].astype(np.float64)
    out["mean_diff"] = float(np.abs(d.mean(axis=0)).mean())
    return out


def breakdown(clip: str, root: Path) -> dict[str, Any]:
    import pandas as pd

    from stages.evaluate.edit_truth import (
        CROP_SIZE,
        _frames,
        mouth_box_mask,
        observe,
        output_phones,
        time_map,
    )
    from stages.fit import FitParams, load_fit, make_landmarker
    from stages.fit.crops import CropFramer, lower_face_mask
    from talkedit.artifacts import (
        NEW_PHONES,
        SEGMENTS,
        ClipPaths,
        EditPaths,
        VideoMeta,
        read_parquet,
    )

    fit = FitParams()
    paths, edit = ClipPaths.of(clip, root), EditPaths.of(clip, root)
    model, _ = load_fit(clip, root)
    fps = VideoMeta.read(paths).fps
    truth_dir = root / "truth"
    out_images, truth_images = _frames(edit.output), _frames(truth_dir / f"{clip}.mp4")
    plan = pd.read_parquet(edit.plan)
    src_images = _frames(paths.video)
    with make_landmarker(fit.landmarker_params()) as landmarker:
        framer = CropFramer(landmarker.topology, fit.crop_margin)
        out = observe(out_images, landmarker, framer, model, CROP_SIZE)
        truth = observe(truth_images, landmarker, framer, model, CROP_SIZE)
        bg_rows = plan["source_frame"].to_numpy(np.int64)[:len(out_images)]
        background = observe([src_images[min(b, len(src_images) - 1)] for b in bg_rows],
                             landmarker, framer, model, CROP_SIZE)
    phones = output_phones(read_parquet(edit.segments, SEGMENTS),
                           read_parquet(edit.new_phones, NEW_PHONES),
                           pd.read_parquet(paths.truth_phones))
    k_out, k_truth = time_map(phones, pd.read_parquet(truth_dir / f"{clip}.truth_phones.parquet"))
    t_out = np.arange(len(out_images)) / fps
    truth_rows = np.clip(np.rint(np.interp(t_out, k_out, k_truth) * fps).astype(np.int64), 0,
                         len(truth_images) - 1)
    edited = plan["edited"].to_numpy(bool)[:len(t_out)]
    rows = []
    for k in range(len(t_out)):
        j = truth_rows[k]
        if not (np.isfinite(out.points[k]).all() and np.isfinite(truth.points[j]).all()):
            continue
        region = lower_face_mask(truth.polygons[j], CROP_SIZE).astype(bool)
        mouth = region & mouth_box_mask(truth.lips[j], CROP_SIZE)
        s = frame_scores(truth.crops[j], out.crops[k], region, mouth)
        s.update(frame=k, edited=bool(edited[k]))
        if 0 < k < len(t_out) - 1 and edited[k - 1] and edited[k + 1]:
            # [1 2 1] / 4 over time in the aligned crops: would less flicker score higher?
            smoothed = (out.crops[k - 1].astype(np.float64) + 2 * out.crops[k]
                        + out.crops[k + 1]) / 4
            s["temporal"] = _psnr(truth.crops[j], smoothed, region)
            s["mouth_temporal"] = _psnr(truth.crops[j], smoothed, mouth)
        if edited[k] and np.isfinite(background.points[k]).all():
            s["background"] = _psnr(truth.crops[j], background.crops[k], region)
        rows.append(s)
    # place inside each edited run
    runs = np.flatnonzero(np.diff(np.r_[0, edited.astype(np.int8), 0]))
    place = {}
    for a, b in zip(runs[::2], runs[1::2], strict=True):
        for k in range(a, b):
            place[k] = "seam" if min(k - a, b - 1 - k) < SEAM_FRAMES else "middle"
    for r in rows:
        r["place"] = place.get(r["frame"], "kept")
    return {"clip": clip, "rows": rows}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [k for k in rows[0] if k not in ("frame", "edited", "place", "shift_dx", "shift_dy")]
    out = {}
    for group, pick in (("kept", lambda r: not r["edited"]), ("edited", lambda r: r["edited"]),
                        ("seam", lambda r: r["place"] == "seam"),
                        ("middle", lambda r: r["place"] == "middle")):
        sel = [r for r in rows if pick(r)]
        out[group] = {"n": len(sel), **{k: float(np.nanmean([r.get(k, np.nan) for r in sel]))
                                        for k in keys + ["background"]}}
        out[group]["abs_shift"] = float(np.mean([abs(r["shift_dx"]) + abs(r["shift_dy"])
                                                 for r in sel])) if sel else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--cases", nargs="*")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    names = args.cases or sorted(p.name for p in (args.work / "data" / "edits").iterdir())
    result = {}
    for name in names:
        found = breakdown(name, args.work)
        result[name] = summarize(found["rows"])
        print(name, json.dumps(result[name], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
