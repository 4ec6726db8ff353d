"""The plan's artifacts: plan.parquet, segments.parquet, new_phones.parquet, summary.md.

new_phones.parquet is the audio stage's contract for the new words: every new phone
(and pause) with its output time, espeak-ng's duration before rescaling, and the clip
phone whose footage says it.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.visemes import VISEME_NAMES, viseme_of
from talkedit.artifacts import (
    NEW_PHONES,
    PLAN,
    PLAN_QUALITY,
    PLAN_WARNING,
    SEGMENTS,
    EditPaths,
    write_parquet,
    write_parquet_blocks,
)
from talkedit.atomic import write_json, write_text

if TYPE_CHECKING:
    from stages.plan import PlanResult
    from stages.plan.retime import FrameRows


def plan_columns(frames: FrameRows, first: int) -> dict[str, Any]:
    """plan.parquet's columns for output frames ``first`` on (``FramePlan.windows``)."""
    f = frames
    return {
        "frame": np.arange(first, first + len(f), dtype=np.int32), "time_s": f.time_s,
        "segment": f.segment.astype(np.int32), "edited": f.edited,
        "source_frame": f.source_frame.astype(np.int32), "piece": f.piece.astype(np.int32),
        "expression_source_frame": f.expression_source_frame.astype(np.int32),
        "blend_weight": f.blend_weight.astype(np.float32), "rotation": f.rotation,
        "translation": f.translation, "scale": f.scale.astype(np.float32),
        "expression": f.expression, "illumination": f.illumination,
        "source_time_s": f.source_time_s,
    }


def segment_columns(result: PlanResult) -> dict[str, Any]:
    segs = result.timeline.segments
    words = [str(w) for w in result.index.table["word"]]
    word_index = result.index.word_index
    texts = []
    for s in segs:
        if s.kind == "new":
            texts.append((s.words, s.text))
            continue
        inside = ((result.index.start_s >= s.source_start_s - 1e-6)
                  & (result.index.end_s <= s.source_end_s + 1e-6) & (word_index >= 0))
        seen: list[str] = []
        last = -1
        for k in np.flatnonzero(inside):
            if word_index[k] != last:
                seen.append(words[k])
                last = word_index[k]
        texts.append((" ".join(seen), ""))
    return {
        "segment": np.arange(len(segs), dtype=np.int32), "kind": [s.kind for s in segs],
        "span": np.array([s.span for s in segs], dtype=np.int32),
        "source_start_s": np.array([s.source_start_s for s in segs], dtype=np.float64),
        "source_end_s": np.array([s.source_end_s for s in segs], dtype=np.float64),
        "out_start_s": np.array([s.out_start_s for s in segs], dtype=np.float64),
        "out_end_s": np.array([s.out_end_s for s in segs], dtype=np.float64),
        "words": [w for w, _ in texts], "text": [t for _, t in texts],
    }


def new_phone_rows(result: PlanResult) -> list[dict[str, Any]]:
    """One row per new phone, with the piece and clip phone its footage comes from."""
    rows = []
    segment_of_span = {s.span: k for k, s in enumerate(result.timeline.segments)
                       if s.kind == "new"}
    index = result.index
    piece_base = 0
    for k, (span, times) in enumerate(zip(result.span_plans, result.timeline.placed,
                                          strict=True)):
        owner = np.full(len(span.phones), -1)
        source = np.full(len(span.phones), -1)
        for j, piece in enumerate(span.pieces):
            owner[piece.query_start:piece.query_end] = piece_base + j
            source[piece.query_start:piece.query_end] = np.arange(piece.corpus_start,
                                                                  piece.corpus_end)
        for q, (phone, (a, b)) in enumerate(zip(span.phones, times, strict=True)):
            src = int(source[q])
            rows.append({
                "segment": segment_of_span[k], "word_position": phone.word_position,
                "word": phone.word, "phone": phone.phone, "stress": phone.stress,
                "out_start_s": a, "out_end_s": b, "tts_duration_s": phone.tts_duration_s,
                "piece": int(owner[q]), "source_phone": src,
                "source_start_s": float(index.start_s[src]),
                "source_end_s": float(index.end_s[src]),
                "viseme": viseme_of(phone.phone),
                "source_viseme": VISEME_NAMES[int(index.visemes[src])],
                "source_phone_label": str(index.phones[src]),
            })
        piece_base += len(span.pieces)
    return rows


def _columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: [r[name] for r in rows] for name in NEW_PHONES.names}


def summary_dict(result: PlanResult) -> dict[str, Any]:
    f = result.frames
    pieces = [p for s in result.span_plans for p in s.pieces]
    return {
        "edit": result.spec.edit, "clip": result.spec.clip,
        "spans": len(result.spans),
        "words_removed": int(sum(s.n_removed for s in result.spans)),
        "words_new": int(sum(s.n_new for s in result.spans)),
        "duration_out_s": round(result.timeline.duration_s, 3),
        "frames_out": len(f), "edited_frames": int(f.edited.sum()),
        "pieces": len(pieces),
        "phones_new": int(sum(len(s.phones) for s in result.span_plans)),
        "exact_viseme_share": round(float(np.mean([p.viseme_cost == 0 for p in pieces])), 3)
        if pieces else None,
        "max_join_change": round(f.max_join_change, 4),
        "natural_change_p99": round(f.natural_p99, 4),
        "quality_estimate": result.quality,
        "rare_phone_share": result.rare_phone_share,
        "footage_s": result.footage_s,
        "phone_prior": {p: {"frames": n, "prior_weight": w}
                        for p, (n, w) in result.prior_weights.items()},
        "self_check": None if result.self_check is None else result.self_check.as_dict(),
        "mouth_motion": result.mouth or {"mouth_motion": result.spec.mouth_motion},
        "warnings": result.warnings,
    }


def prior_screen(weights: dict[str, tuple[float, float]], least: float = 0.75) -> str:
    """The quality screen's clause naming the new phones whose opening leans mostly on
    other speakers' (the phone prior weighs at least ``least``: at plan.phone_prior 30, a
    phone the clip says for 10 frames or fewer), most first; empty for none."""
    leaning = sorted(((w, n, p) for p, (n, w) in weights.items() if w >= least), reverse=True)
    if not leaning:
        return ""
    said = ", ".join(f"{p} ({n:.0f} frames, prior {w:.2f})" for w, n, p in leaning)
    return f"; openings mostly other speakers' (plan.phone_prior): {said}"


def summary_markdown(result: PlanResult, rows: list[dict[str, Any]]) -> str:
    spec, index = result.spec, result.index
    words = [str(w) for w in index.table["word"]]
    lines = [f"# Edit plan: {spec.edit}", "",
             f"Clip `{spec.clip}`, spec `{spec.path.name}`: {len(result.spans)} edited span(s), "
             f"{result.timeline.duration_s:.2f} s out, {len(result.frames)} frames.", ""]
    lines += [f"- {op}" for op in spec.operations] + [""]
    lines += [f"{PLAN_WARNING}{w}" for w in result.warnings] + ([""] if result.warnings else [])
    checked = result.self_check
    self_check = ("off" if checked is None else "no stretch to hide" if checked.r is None
                  else f"r {checked.r:.3f} over {len(checked.spans)} re-created stretch(es)")
    lines += [f"{PLAN_QUALITY}estimate {result.quality:.2f} (1 = nothing the plan sees is "
              f"wrong); new phones the usable footage rarely shows {result.rare_phone_share:.0%}"
              f"; usable footage {result.footage_s:.1f} s; self-check {self_check}"
              f"{prior_screen(result.prior_weights)}.", ""]
    lines += ["## Timeline", "", "| segment | kind | output (s) | clip (s) | words |",
              "|---|---|---|---|---|"]
    for k, s in enumerate(result.timeline.segments):
        clip = "new" if s.kind == "new" else f"{s.source_start_s:.2f}-{s.source_end_s:.2f}"
        said = s.words if s.kind == "new" else ""
        lines.append(f"| {k} | {s.kind} | {s.out_start_s:.2f}-{s.out_end_s:.2f} | {clip} | "
                     f"{said} |")
    lines += ["", "## Where the new words' mouth motion comes from", "",
              "| piece | new phones | from clip words | clip (s) | viseme cost | phone "
              "mismatches | stretch |", "|---|---|---|---|---|---|---|"]
    by_piece: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_piece.setdefault(r["piece"], []).append(r)
    pieces = [p for s in result.span_plans for p in s.pieces]
    for pid, piece_rows in sorted(by_piece.items()):
        piece = pieces[pid]
        src = range(piece.corpus_start, piece.corpus_end)
        clip_words = " ".join(dict.fromkeys(words[k] or "(pause)" for k in src))
        new_phones = " ".join(r["phone"] for r in piece_rows)
        said = " ".join(dict.fromkeys(r["word"] or "(pause)" for r in piece_rows))
        lines.append(
            f"| {pid} | {new_phones} ({said}) | {clip_words} | "
            f"{index.start_s[piece.corpus_start]:.2f}-{index.end_s[piece.corpus_end - 1]:.2f} | "
            f"{piece.viseme_cost:.2f} | {piece.phone_mismatches} | "
            f"{piece.duration_cost / piece.length:.2f} |")
    f = result.frames
    lines += ["", f"Joins: {len(f.join_times)}, largest frame-to-frame expression change at a "
              f"join {f.max_join_change:.3f} (the clip's own 99th percentile: "
              f"{f.natural_p99:.3f}).", ""]
    return "\n".join(lines)


def write_outputs(result: PlanResult, paths: EditPaths) -> dict[str, Any]:
    """Write the artifacts (each atomically, all built before the first is written)."""
    rows = new_phone_rows(result)
    segments, new = segment_columns(result), _columns(rows)
    markdown = summary_markdown(result, rows)
    # The plan's rows a window at a time, each written as it is computed (a row group).
    write_parquet_blocks((plan_columns(f, a) for a, f in result.frames.windows()), PLAN,
                         paths.plan)
    write_parquet(segments, SEGMENTS, paths.segments)
    write_parquet(new, NEW_PHONES, paths.new_phones)
    write_text(paths.summary, markdown)
    # recording/ is a DVC output whatever the audio source: empty unless it is a recording.
    if paths.recording_dir.exists():
        shutil.rmtree(paths.recording_dir)
    paths.recording_dir.mkdir(parents=True)
    if result.recording is not None:
        result.recording.write(paths)
    else:  # say why the folder holds no recording (and keep it from being an empty output)
        write_json(paths.recording_meta, {"source": result.spec.audio.source})
    return summary_dict(result)
