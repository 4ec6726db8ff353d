"""report stages: one self-contained HTML page per clip and per edit, under reports/.

``run_clip_report`` (``report@<clip>``) shows what the clip's stages decided: the
alignment on the waveform, the fitted face on sampled frames, the per-frame curves,
detection gaps and doubtful words, the renderer's training and held-out crops, and the
evaluate scores. ``run_edit_report`` (``report-edit@<edit>``) shows why an edit looks
the way it does: the timeline, the viseme match of every new phone, the mouth opening
against the original, every join before and after, where the new sound came from, and
the scores. Artifacts are read through talkedit/loaders.py; plots are matplotlib PNGs
embedded in the page (see page.py), so the page opens offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from talkedit.artifacts import column_array, report_path
from talkedit.atomic import write_text
from talkedit.loaders import Bundle, load, load_edit
from talkedit.params import Section, bad_param

__all__ = ["ReportParams", "run_clip_report", "run_edit_report", "join_frames"]


@dataclass(frozen=True)
class ReportParams(Section):
    """The ``report:`` section of params.yaml."""

    SECTION = "report"

    sample_frames: int = 6  # frames shown with the landmarks and fitted mesh
    dpi: int = 80  # plot resolution (page size grows with its square)
    join_crop_px: int = 160  # side of each before/after mouth picture at a join
    max_joins: int = 60  # joins pictured at most (evenly chosen beyond it; the table lists all)

    def check(self, where: str) -> None:
        if not 1 <= self.sample_frames <= 24:
            raise bad_param(where, "sample_frames", f"is {self.sample_frames}", "use 1..24")
        if not 40 <= self.dpi <= 200:
            raise bad_param(where, "dpi", f"is {self.dpi}", "use 40..200 (80 keeps the page small)")
        if not 64 <= self.join_crop_px <= 512:
            raise bad_param(where, "join_crop_px", f"is {self.join_crop_px}", "use 64..512")
        if self.max_joins < 1:
            raise bad_param(where, "max_joins", f"is {self.max_joins}", "use at least 1")


def _have(bundle: Bundle, name: str) -> bool:
    return name in bundle.available()


def _rel(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start).replace(os.sep, "/")


# --- the clip ------------------------------------------------------------------------------


def _alignment_section(page: Any, clip: Bundle, params: ReportParams) -> dict[str, int]:
    from stages.report import figures
    from stages.report.page import table

    words, phones = clip.words, clip.phones
    samples, rate = clip.audio
    samples = samples if samples.ndim == 1 else samples.mean(axis=1)
    flagged = words[words.low_confidence]
    page.add("alignment", f"Alignment: {len(words)} words, {len(phones)} phones",
             page.note("The recording with each aligned word above it (orange: flagged as a "
                       "transcript/audio mismatch) and each phone below it."),
             page.image(figures.waveform_words_phones(samples, rate, words, phones, params.dpi),
                        "waveform with aligned words and phones"),
             page.collapsed(f"phones table ({len(phones)} rows)", table(
                 ["#", "word", "phone", "stress", "start (s)", "end (s)", "score"],
                 [(k, words.word.iloc[p.word_index] if p.word_index >= 0 else "", p.phone,
                   p.stress, p.start_s, p.end_s, p.score)
                  for k, p in enumerate(phones.itertuples())],
                 row_class="phone", flags=phones.low_confidence, table_id="phones")),
             page.collapsed(f"words table ({len(words)} rows)", table(
                 ["#", "word", "pron", "source", "start (s)", "end (s)", "score", "issue"],
                 [(w.word_index, w.word, w.pron, w.pron_source, w.start_s, w.end_s, w.score,
                   w.issue) for w in words.itertuples()],
                 row_class="word", flags=words.low_confidence, table_id="words")))
    return {"words": len(words), "phones": len(phones), "low_confidence_words": len(flagged)}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where mask holds."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _face_sections(page: Any, clip_name: str, clip: Bundle, root: Path, params: ReportParams
                   ) -> dict[str, Any]:
    from stages.fit import PersonModel, Pose, rebuild_landmarks
    from stages.fit.geometry import head_angles_deg
    from stages.fit.model import mouth_opening
    from stages.report import figures
    from stages.report.page import table
    from talkedit.video import FrameStore

    face = clip.face
    model = PersonModel.load(clip.path("face_model"))
    pose = Pose(column_array(face, "rotation").astype(np.float64),
                column_array(face, "translation").astype(np.float64),
                face["scale"].to_numpy(np.float64))
    expression = column_array(face, "expression").astype(np.float64)
    detected = face["detected"].to_numpy(bool)
    interpolated = face["interpolated"].to_numpy(bool)
    time_s = face["time_s"].to_numpy()
    sample = np.unique(np.linspace(0, len(face) - 1, params.sample_frames).round().astype(int))
    store = FrameStore.for_clip(clip_name, root)
    frames = [(int(k), store.frame(int(k))) for k in sample]
    observed = column_array(face, "landmarks_2d")[sample].reshape(len(sample), -1, 2)
    fitted = rebuild_landmarks(model, Pose(pose.rotation[sample], pose.translation[sample],
                                           pose.scale[sample]), expression[sample])[..., :2]
    opening = mouth_opening(model.shape(expression), model.topo)
    page.add("face", "Face fit on sampled frames",
             page.note("Green: the landmarker's points; blue: the fitted person model's mesh "
                       "(its pose and expression for that frame)."),
             page.image(figures.face_overlays(frames, observed, fitted, model.triangles,
                                              detected[sample], params.dpi),
                        "landmark and fitted-mesh overlays"))
    page.add("curves", "Expression, pose and lighting per frame",
             page.image(figures.face_curves(time_s, expression, opening,
                                            head_angles_deg(pose.rotation),
                                            column_array(face, "illumination"),
                                            face["residual"].to_numpy(), detected, interpolated,
                                            params.dpi), "face curves"))
    gaps = _runs(~detected)
    words = clip.words
    flagged = words[words.low_confidence]
    gap_rows = [(a, b - 1, time_s[a], time_s[b - 1], b - a,
                 "interpolated" if interpolated[a:b].all() else "no face (filled)")
                for a, b in gaps]
    page.add("gaps", f"Detection gaps ({len(gaps)}) and low-confidence words ({len(flagged)})",
             page.note(f"Face detected in {detected.mean():.1%} of {len(face)} frames; "
                       f"median landmark residual {np.nanmedian(face.residual):.4f} of the "
                       "inter-ocular distance."),
             table(["first frame", "last frame", "from (s)", "to (s)", "frames", "filled by"],
                   gap_rows, row_class="gap", table_id="gaps") if gap_rows
             else page.note("No detection gaps: every frame has the face."),
             table(["#", "word", "start (s)", "end (s)", "score", "issue"],
                   [(w.word_index, w.word, w.start_s, w.end_s, w.score, w.issue)
                    for w in flagged.itertuples()], row_class="lowconf", table_id="lowconf")
             if len(flagged) else page.note("No word was flagged as a transcript/audio "
                                            "mismatch."))
    return {"frames": len(face), "detected_share": round(float(detected.mean()), 4),
            "gaps": len(gaps), "sampled_frames": len(sample)}


def _training_section(page: Any, clip: Bundle, params: ReportParams) -> dict[str, Any]:
    from stages.report import figures
    from stages.report.page import key_values, table

    if not _have(clip, "losses"):
        page.add("training", "Renderer training", page.note(
            "Not trained yet: run `dvc repro train@<clip>` and rebuild the report."))
        return {"trained": False}
    metrics = clip.train_metrics if _have(clip, "train_metrics") else {}
    parts = [page.image(figures.loss_curves(clip.losses, params.dpi), "training loss curves")]
    if metrics:
        methods = sorted(metrics.get("psnr_db", {}))
        parts.append(page.note(f"Held-out frames ({metrics.get('heldout_frames')}) were never "
                               f"trained on ({metrics.get('train_frames')} training frames, "
                               f"{metrics.get('steps')} steps)."))
        parts.append(table(["method", "PSNR (dB)", "SSIM", "temporal change"],
                           [(m, metrics["psnr_db"].get(m), metrics.get("ssim", {}).get(m),
                             metrics.get("temporal_change", {}).get(m)) for m in methods],
                           table_id="heldout"))
        parts.append(key_values([(f"PSNR gain {k.replace('_', ' ')}", v)
                                 for k, v in metrics.get("psnr_gain_db", {}).items()]))
    preview = clip.path("train_metrics").with_name("preview.png")
    if preview.is_file():
        parts.append(page.note("Held-out crops, per row: real | conditioning (baseline) | "
                               "nearest-expression training frame (baseline) | network."))
        parts.append(page.image(preview.read_bytes(), "held-out crops", "preview"))
    page.add("training", "Renderer training and held-out crops", *parts)
    return {"trained": True, "loss_rows": len(clip.losses)}


def _evaluate_section(page: Any, clip: Bundle) -> dict[str, Any]:
    from stages.report.page import table

    if not _have(clip, "evaluate"):
        page.add("evaluate", "Evaluation", page.note(
            "Not evaluated yet: run `dvc repro evaluate@<clip>` and rebuild the report."))
        return {"evaluated": False}
    means = clip.evaluate.get("means", {})
    scores = sorted({s for m in means.values() for s in m})
    page.add("evaluate", "Evaluation: held-out sentences said anew",
             page.note("Each held-out sentence is re-created through plan, audio, render and "
                       "composite from the rest of the clip and compared with the real footage; "
                       "naive_cut and conditioning are baselines."),
             table(["method", *scores], [(m, *(means[m].get(s, float("nan")) for s in scores))
                                         for m in means], table_id="evaluate"))
    return {"evaluated": True}


def _detect_section(page: Any, clip: Bundle) -> dict[str, Any]:
    """The forensic check of the clip's own footage (talkedit detect, no watermark read)."""
    from stages.report.page import key_values, table

    if not _have(clip, "detect"):
        page.add("detect", "Forensic check", page.note(
            "Not checked yet: run `dvc repro detect@<clip>` and rebuild the report."))
        return {"detect_spans": None}
    verdict = clip.detect
    spans = verdict.get("spans", [])
    parts = [page.note("talkedit detect looks for the traces edits leave (bilabial closures "
                       "that do not close, audio-visual offsets, seams, mouth texture), "
                       "without reading talkedit's watermark."),
             key_values([("manipulation found", "yes" if verdict.get("manipulated") else "no"),
                         ("checks", ", ".join(verdict.get("checks", []))),
                         ("highest window score", verdict.get("max_window_score")),
                         ("false-alarm rate of its thresholds", verdict.get("false_alarm_rate"))])]
    if spans:
        keys = sorted({k for span in spans for k in span})
        parts.append(table(keys, [tuple(span.get(k) for k in keys) for span in spans],
                           table_id="detect-spans"))
    page.add("detect", f"Forensic check: {len(spans)} flagged span(s)", *parts)
    return {"detect_spans": len(spans)}


def single_threaded_blas(func: Any) -> Any:
    """Run ``func`` with one BLAS thread: a matrix product's last bits depend on the thread
    count, and a mesh drawn from them would make the page's bytes depend on the machine."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


@single_threaded_blas
def run_clip_report(clip: str, root: Path, report: ReportParams) -> dict[str, Any]:
    """Write reports/clip-<clip>.html; return a summary."""
    from stages.report.page import Page

    bundle = load(clip, root)
    meta = bundle.video
    out = report_path("clip", clip, root)
    page = Page(f"talkedit clip report: {clip}",
                f"{meta.width}x{meta.height} at {meta.fps:g} fps, {meta.duration_s:.1f} s, "
                f"{meta.n_frames} frames")
    page.add("transcript", "Transcript", f"<p>{_esc(bundle.transcript)}</p>")
    summary: dict[str, Any] = {"clip": clip, "report": str(out)}
    summary |= _alignment_section(page, bundle, report)
    summary |= _face_sections(page, clip, bundle, root, report)
    summary |= _training_section(page, bundle, report)
    summary |= _evaluate_section(page, bundle)
    summary |= _detect_section(page, bundle)
    text = page.render()
    write_text(out, text)
    summary["bytes"] = len(text.encode("utf-8"))
    return summary


def _esc(text: str) -> str:
    from stages.report.page import esc

    return esc(text)


# --- the edit ------------------------------------------------------------------------------


def join_frames(plan: pd.DataFrame) -> np.ndarray:
    """Output frames where the mouth's source changes: a new piece starts, or footage is
    left or rejoined (the plan's joins)."""
    piece = plan["piece"].to_numpy()
    return np.flatnonzero(piece[1:] != piece[:-1]) + 1


def _frames_of(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Decode a video once, forward, keeping the frames whose index is in ``wanted``."""
    from talkedit.video import open_container

    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    last = max(wanted)
    with open_container(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for k, frame in enumerate(container.decode(stream)):
            if k in wanted:
                found[k] = frame.to_ndarray(format="rgb24")
            if k >= last:
                break
    return found


def _mouth_box(landmarks: np.ndarray, side: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(x0, y0, size) of a square around the lower face in the frame."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    size = int(max(hi - lo) * 0.75)
    cx, cy = (lo[0] + hi[0]) / 2, lo[1] + (hi[1] - lo[1]) * 0.72
    size = max(16, min(size, shape[0], shape[1]))
    x0 = int(np.clip(cx - size / 2, 0, shape[1] - size))
    y0 = int(np.clip(cy - size / 2, 0, shape[0] - size))
    return x0, y0, size


def _labelled(crop: np.ndarray, label: str, side: int) -> np.ndarray:
    import cv2

    image = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    cv2.rectangle(image, (0, 0), (side, 16), (29, 35, 48), -1)
    cv2.putText(image, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image


def _join_pictures(page: Any, edit: Bundle, clip: Bundle, output: Path, root: Path,
                   params: ReportParams) -> tuple[str, int]:
    """A figure per join: the output frame before it, the one after it, and the original
    footage (the background frame) at the join, all cropped to the mouth."""
    from stages.report.page import image_png
    from talkedit.video import FrameStore

    plan = edit.plan
    joins = join_frames(plan)
    shown = joins if len(joins) <= params.max_joins else joins[
        np.unique(np.linspace(0, len(joins) - 1, params.max_joins).round().astype(int))]
    if not output.is_file():
        return page.note("No output video yet: run composite."), 0
    source = plan["source_frame"].to_numpy()
    edited_frames = _frames_of(output, {int(k) for k in shown} | {int(k) - 1 for k in shown})
    wanted_source = sorted({int(source[k]) for k in shown})
    original: dict[int, np.ndarray] = {}
    for k, image in FrameStore.for_clip(edit.spec.clip, root).iter_frames(
            min(wanted_source, default=0), max(wanted_source, default=-1) + 1):
        if k in wanted_source:
            original[k] = image
    landmarks = column_array(clip.face, "landmarks_2d")
    piece = plan["piece"].to_numpy()
    side = params.join_crop_px
    figures_html = []
    for n, k in enumerate(shown):
        k = int(k)
        x0, y0, size = _mouth_box(landmarks[source[k]].reshape(-1, 2), side,
                                  original[int(source[k])].shape)
        cut = (slice(y0, y0 + size), slice(x0, x0 + size))
        row = np.hstack([_labelled(edited_frames[k - 1][cut], f"edit, frame {k - 1}", side),
                         _labelled(edited_frames[k][cut], f"edit, frame {k}", side),
                         _labelled(original[int(source[k])][cut],
                                   f"original, frame {source[k]}", side)])
        before, after = ("footage" if p < 0 else f"piece {p}" for p in (piece[k - 1], piece[k]))
        figures_html.append(page.figure(image_png(row), f"join {n + 1}: output frame {k}, "
                                        f"{before} -> {after}", "join"))
    note = page.note(f"{len(joins)} joins; {len(shown)} pictured. Each: the edited video's "
                     "frame before and after the join, and the original footage there.")
    return note + '<div class="grid">' + "".join(figures_html) + "</div>", len(shown)


@single_threaded_blas

def plan_screen(summary: str) -> tuple[list[str], list[str]]:
    """The plan's warnings (their marker removed) and its quality-screen lines, read from
    the text of its summary (EditPaths.summary): what the edit report and ``talkedit
    edit`` show, so an edit the plan doubts does not look finished. (Here, not in the
    artifact catalog, which every stage declares: a change there re-runs them all.)"""
    from talkedit.artifacts import PLAN_QUALITY, PLAN_WARNING

    lines = summary.splitlines()
    return ([ln.removeprefix(PLAN_WARNING) for ln in lines if ln.startswith(PLAN_WARNING)],
            [ln for ln in lines if ln.startswith(PLAN_QUALITY)])


def run_edit_report(edit: str, root: Path, report: ReportParams) -> dict[str, Any]:
    """Write reports/edit-<edit>.html; return a summary."""
    from stages.fit import PersonModel
    from stages.fit.model import mouth_opening
    from stages.report import figures
    from stages.report.page import Page, key_values, table
    from talkedit.artifacts import EditPaths

    bundle = load_edit(edit, root)
    spec, clip = bundle.spec, bundle.clip
    plan, segments, new_phones = bundle.plan, bundle.segments, bundle.new_phones
    paths = EditPaths.of(edit, root)
    meta = clip.video
    out = report_path("edit", edit, root)
    page = Page(f"talkedit edit report: {edit}",
                f"clip {spec.clip}: {len(plan)} output frames at {meta.fps:g} fps, "
                f"{int(plan.edited.sum())} edited")
    compare = paths.output.with_name(f"{edit}.compare.mp4")
    links = [(name, f'<a href="{_rel(p, out.parent)}">{_esc(_rel(p, root))}</a>'
              if p.is_file() else "(not made yet)")
             for name, p in (("output", paths.output), ("before / after", compare),
                             ("clip report", report_path("clip", spec.clip, root)))]
    # The plan's warnings and quality screen, so an edit it doubts does not look finished.
    warned, quality = plan_screen(bundle.summary if _have(bundle, "summary") else "")
    screen = ([page.warning("Warning: " + line) for line in warned]
              + [page.note(line) for line in quality])
    page.add("text", "The edit", *screen,
             key_values([("original", spec.original_text), ("edited", spec.edited_text)]),
             '<table class="kv">' + "".join(f"<tr><td>{_esc(n)}</td><td>{v}</td></tr>"
                                            for n, v in links) + "</table>",
             table(["segment", "kind", "output from (s)", "to (s)", "clip from (s)", "to (s)",
                    "words"],
                   [(s.segment, s.kind, s.out_start_s, s.out_end_s, s.source_start_s,
                     s.source_end_s, s.words) for s in segments.itertuples()],
                   row_class="segment", flags=segments.kind == "new", table_id="segments"))
    page.add("timeline", "Timeline: which clip frame feeds each output frame",
             page.note("Grey: the background frame (everything but the lower face); dots: the "
                       "frame whose expression drives the mouth, coloured by matched piece. "
                       "Orange bands: new words; yellow: frames retimed around the edit."),
             page.image(figures.edit_timeline(plan, segments, meta.fps, report.dpi), "timeline"))
    exact = (new_phones.phone == new_phones.source_phone_label).to_numpy()
    viseme_ok = (new_phones.viseme == new_phones.source_viseme).to_numpy()
    page.add("visemes", f"Viseme matches for {len(new_phones)} new phones",
             page.note(f"{viseme_ok.mean():.0%} match the viseme exactly, {exact.mean():.0%} the "
                       "phone too; rows in orange use a different viseme."),
             table(["word", "phone", "viseme", "piece", "clip phone", "clip viseme",
                    "clip from (s)", "to (s)", "output from (s)", "to (s)"],
                   [(p.word, p.phone, p.viseme, p.piece, p.source_phone_label, p.source_viseme,
                     p.source_start_s, p.source_end_s, p.out_start_s, p.out_end_s)
                    for p in new_phones.itertuples()],
                   row_class="newphone", flags=~viseme_ok, table_id="new_phones"))
    model = PersonModel.load(clip.path("face_model"))
    clip_expression = column_array(clip.face, "expression")
    original = mouth_opening(model.shape(clip_expression[plan.source_frame.to_numpy()]),
                             model.topo)
    edited = mouth_opening(model.shape(column_array(plan, "expression")), model.topo)
    changed = plan["edited"].to_numpy(bool)
    page.add("mouth", "Mouth opening: original footage against the edit",
             page.note(f"Over edited frames the two differ by {np.abs(original - edited)[changed].mean():.3f} "
                       "on average (inner-lip gap / eye distance); elsewhere they coincide."
                       if changed.any() else "No frame is edited."),
             page.image(figures.mouth_openings(plan.time_s.to_numpy(), original, edited,
                                               changed, segments, report.dpi), "mouth opening"))
    joins_html, joins_shown = _join_pictures(page, bundle, clip, paths.output, root, report)
    page.add("joins", "Before and after every join", joins_html)
    units = bundle.audio_units if _have(bundle, "audio_units") else pd.DataFrame()
    audio_parts = []
    if len(units):
        shares = units.groupby("source").size() / len(units)
        audio_parts += [page.note("Where each half-phone of the new words' sound came from: "
                                  + ", ".join(f"{s} {v:.0%}" for s, v in shares.items())),
                        page.image(figures.audio_sources(units, segments, report.dpi),
                                   "audio unit sources"),
                        page.collapsed(f"audio units table ({len(units)} rows)", table(
                            ["segment", "phone", "half", "word", "output from (s)", "to (s)",
                             "source", "source from (s)", "to (s)", "stretch", "note"],
                            [(u.segment, u.phone, u.half, u.word, u.out_start_s, u.out_end_s,
                              u.source, u.source_start_s, u.source_end_s, u.stretch, u.note)
                             for u in units.itertuples()], row_class="unit",
                            table_id="audio_units"))]
    if _have(bundle, "audio_summary"):
        audio = bundle.audio_summary
        audio_parts.append(key_values([(k, v) for k, v in audio.items()
                                       if isinstance(v, int | float | str | bool)]))
    page.add("audio", "The new words' sound", *audio_parts or [page.note("No audio yet.")])
    _evaluate_section(page, clip)
    if _have(bundle, "provenance"):
        prov = bundle.provenance
        page.add("provenance", "Provenance", key_values([
            ("watermark payload id", prov.get("watermark", {}).get("payload_id")),
            ("claim generator", prov.get("claim_generator")),
            ("stream hash (sha256)", (prov.get("stream_hash") or {}).get("value")),
            ("verify", f"talkedit verify {_rel(paths.output, root)}")]))
    text = page.render()
    write_text(out, text)
    return {"edit": edit, "clip": spec.clip, "report": str(out), "new_phones": len(new_phones),
            "joins": int(len(join_frames(plan))), "joins_pictured": joins_shown,
            "audio_units": len(units), "bytes": len(text.encode("utf-8"))}

