"""Retiming and parameter blending (Fried et al. 2019, step 4): the per-frame plan.

* The output timeline is the clip's audio with each edited span's cut replaced by its
  new words (``Segment``: kept or new).
* Background retiming: around each edit, a region of the clip (the cut plus a margin
  each side) is warped onto the region's new duration, its speed eased from real time
  at its ends (``eased_warp``). Its instants fall between frames (``source_time_s``),
  which composite interpolates by optical flow: no frame is shown twice (nearest-
  neighbour resampling repeated frames wherever the new words were longer, and the
  head stuttered). The pose is the background's, interpolated likewise. Regions that
  would overlap are merged.
* Subsequence retiming: each matched piece is stretched phone by phone onto its query
  phones' output times (``Track``; kept footage is a track too).
* Blending: consecutive tracks are cross-faded linearly over ``blend_s`` around each
  join. A join whose blended expression still changes faster from frame to frame than
  the clip itself does (its 99th percentile) gets a wider cross-fade, up to
  ``blend_max_s``. Illumination is interpolated linearly across each region between
  its first and last background frames; identity and albedo are the clip's, constant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from stages.index import VisemeIndex
from stages.plan.search import Piece
from stages.plan.timing import QueryPhone
from talkedit.artifacts import RowGroupColumn
from talkedit.phonemes import VOWELS

BILABIALS = frozenset({"P", "B", "M"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH"})


@dataclass
class FaceParams:
    """The clip's per-frame face parameters (face.parquet). ``expression`` and
    ``illumination`` are read by rows only (``face[rows]``, ``face[a:b]``): the plan stage
    reads them from the file a row group at a time (``load_face_params``)."""

    rotation: np.ndarray  # (n, 3)
    translation: np.ndarray  # (n, 3)
    scale: np.ndarray  # (n,)
    expression: np.ndarray | RowGroupColumn  # (n, 64)
    illumination: np.ndarray | RowGroupColumn  # (n, 27)
    usable: np.ndarray  # (n,) a face was detected or interpolated there
    # (n,) the landmarker measured the face there (not interpolated over a gap or an
    # occlusion): the viseme search reads mouth motion only from these; None = usable
    measured: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scale)

    def natural_change(self, quantile: float = 0.99) -> float:
        """The clip's own frame-to-frame expression change at ``quantile``."""
        # In blocks of rows: a whole-clip float64 difference is 24 MB a copy at 31 minutes.
        step = np.empty(max(len(self) - 1, 0))
        for a in range(0, len(step), 4096):
            part = self.expression[a:a + 4097].astype(np.float64)
            step[a:a + 4096] = np.linalg.norm(np.diff(part, axis=0), axis=1)
        both = self.usable[1:] & self.usable[:-1]
        return float(np.quantile(step[both], quantile)) if both.any() else float("inf")


@dataclass
class SpanPlan:
    """One edited span, timed and matched: what the timeline needs from it."""

    cut_start_s: float
    cut_end_s: float
    phones: list[QueryPhone]
    pieces: list[Piece]
    words: str = ""
    text: str = ""

    @property
    def duration_s(self) -> float:
        return float(sum(p.duration_s for p in self.phones))


@dataclass
class Segment:
    kind: str  # kept | new
    span: int
    source_start_s: float
    source_end_s: float
    out_start_s: float
    out_end_s: float
    words: str = ""
    text: str = ""


@dataclass
class Region:
    """A background-retimed stretch: output [out_lo, out_hi] shows clip [src_lo, src_hi]."""

    out_lo: float
    out_hi: float
    src_lo: float
    src_hi: float


@dataclass
class Track:
    """Where one stretch of output takes its expression from: out time -> clip time."""

    out_knots: np.ndarray
    src_knots: np.ndarray
    piece: int  # -1: kept footage (expression of the nearest frame, as the footage is)
    src_lo: float  # cross-fades read beyond the ends at real speed, within these limits
    src_hi: float
    # (output s, clip s): a phone's most open (vowel) or most closed (p/b/m) clip frame and
    # where it falls in the output; the output frame nearest shows exactly that frame.
    extremes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def out_start(self) -> float:
        return float(self.out_knots[0])

    @property
    def out_end(self) -> float:
        return float(self.out_knots[-1])

    def source_time(self, t: np.ndarray) -> np.ndarray:
        s = np.interp(t, self.out_knots, self.src_knots)
        s = np.where(t < self.out_start, self.src_knots[0] - (self.out_start - t), s)
        s = np.where(t > self.out_end, self.src_knots[-1] + (t - self.out_end), s)
        return np.clip(s, self.src_lo, self.src_hi)


@dataclass
class Timeline:
    segments: list[Segment]
    regions: list[Region]
    tracks: list[Track]
    # per span, the output (start, end) of each of its new phones
    placed: list[list[tuple[float, float]]] = field(default_factory=list)
    duration_s: float = 0.0


def build_timeline(spans: list[SpanPlan], clip_s: float, margin_s: float, index: VisemeIndex,
                   allowed: np.ndarray, fps: float, reach_s: float,
                   max_edge_speed: float = np.inf, openness: np.ndarray | None = None
                   ) -> Timeline:
    """Segments, background regions and expression tracks of the edited video.

    ``openness`` (per clip frame, ``openness_proxy``) lets each piece keep its phones'
    extreme frames (``phone_extremes``)."""
    segments: list[Segment] = []
    regions: list[Region] = []
    tracks: list[Track] = []
    placed: list[list[tuple[float, float]]] = []
    last_src = (len(allowed) - 1) / fps
    src, out = 0.0, 0.0
    piece_id = 0
    for k, span in enumerate(sorted(spans, key=lambda s: s.cut_start_s)):
        if span.cut_start_s > src + 1e-9:
            length = span.cut_start_s - src
            segments.append(Segment("kept", -1, src, span.cut_start_s, out, out + length))
            tracks.append(Track(np.array([out, out + length]), np.array([src, span.cut_start_s]),
                                -1, 0.0, last_src))
            out += length
        out_cut = out
        d = span.duration_s
        times = []
        if d > 0:
            segments.append(Segment("new", k, np.nan, np.nan, out, out + d, span.words, span.text))
            bounds = out + np.r_[0.0, np.cumsum([p.duration_s for p in span.phones])]
            times = list(zip(bounds[:-1], bounds[1:], strict=True))
            for piece in span.pieces:
                out_knots = bounds[piece.query_start:piece.query_end + 1]
                src_knots = _piece_knots(index, piece, np.diff(out_knots), max_edge_speed)
                lo, hi = _reach(allowed, src_knots[0], src_knots[-1], fps, reach_s)
                labels = [p.phone for p in span.phones[piece.query_start:piece.query_end]]
                extremes = (phone_extremes(labels, out_knots, src_knots, openness, fps, lo, hi)
                            if openness is not None else np.zeros((0, 2)))
                tracks.append(Track(out_knots, src_knots, piece_id, lo, hi, extremes))
                piece_id += 1
            out += d
        placed.append(times)
        src_lo = max(0.0, span.cut_start_s - margin_s)
        src_hi = min(clip_s, span.cut_end_s + margin_s)
        region = Region(out_cut - (span.cut_start_s - src_lo), out + (src_hi - span.cut_end_s),
                        src_lo, src_hi)
        if regions and region.src_lo < regions[-1].src_hi:  # overlapping margins: one region
            regions[-1] = Region(regions[-1].out_lo, region.out_hi, regions[-1].src_lo,
                                 region.src_hi)
        else:
            regions.append(region)
        src = span.cut_end_s
    if clip_s > src + 1e-9 or not segments:
        length = clip_s - src
        segments.append(Segment("kept", -1, src, clip_s, out, out + length))
        tracks.append(Track(np.array([out, out + length]), np.array([src, clip_s]), -1, 0.0,
                            last_src))
        out += length
    return Timeline(segments, regions, tracks, placed, out)


def openness_direction(index: VisemeIndex, expression: np.ndarray, fps: float
                       ) -> np.ndarray | None:
    """The unit direction in expression space from the clip's bilabial frames (lips shut)
    to its open-vowel frames, both found through the aligned phones. None without either."""
    centre = np.clip(np.rint((index.start_s + index.end_s) / 2 * fps).astype(np.int64), 0,
                     len(expression) - 1)
    shut = index.usable & np.isin(index.phones, list(BILABIALS))
    wide = index.usable & np.isin(index.phones, list(OPEN_VOWELS))
    if not shut.any() or not wide.any():
        return None
    direction = (expression[centre[wide]].astype(np.float64).mean(axis=0)
                 - expression[centre[shut]].astype(np.float64).mean(axis=0))
    return direction / max(float(np.linalg.norm(direction)), 1e-12)


def openness_proxy(index: VisemeIndex, expression: np.ndarray, fps: float) -> np.ndarray | None:
    """How open the mouth is in each clip frame, in the clip's own terms: the projection of
    its expression on ``openness_direction``. None without it."""
    direction = openness_direction(index, expression, fps)
    return None if direction is None else expression.astype(np.float64) @ direction


def extreme_frames(a: float, b: float, before_s: float, after_s: float, fps: float,
                   n: int) -> np.ndarray:
    """Clip frames where the phone [a, b) may show its extreme: inside it, or up to a frame
    beyond either end but not past ``before_s`` / ``after_s`` (the neighbours' middles).
    Forced alignment places boundaries to within a frame or so, and lips lag or lead the
    sound: a p/b/m shorter than a frame often shuts the lips in the frame after it."""
    lo = max(a - 1.0 / fps, min(before_s, a))
    hi = min(b + 1.0 / fps, max(after_s, b))
    frames = np.arange(int(np.ceil(lo * fps - 1e-9)), int(np.floor(hi * fps + 1e-9)) + 1)
    frames = frames[(frames >= 0) & (frames < n)]
    if not len(frames):
        frames = np.array([int(np.clip(np.rint((a + b) / 2 * fps), 0, n - 1))])
    return frames


def phone_extremes(labels: list[str], out_knots: np.ndarray, src_knots: np.ndarray,
                   openness: np.ndarray, fps: float, src_lo: float = -np.inf,
                   src_hi: float = np.inf) -> np.ndarray:
    """Per vowel (bilabial) of a piece, its most open (closed) clip frame near the clip
    phone it is stretched from (``extreme_frames``; within [src_lo, src_hi], what the
    piece may read), and the output instant that frame maps to (inside the phone).

    Sampling the stretched piece between frames averages a short phone's peak with its
    neighbours (and a p/b/m shorter than a frame never closes the lips); pinning the
    nearest output frame to the extreme frame keeps the peak's height and its time to
    within half a frame."""
    rows = []
    n = len(openness)
    mids = (src_knots[:-1] + src_knots[1:]) / 2
    for j, phone in enumerate(labels):
        if phone not in VOWELS and phone not in BILABIALS:
            continue
        a, b = src_knots[j], src_knots[j + 1]
        before = mids[j - 1] if j > 0 else src_lo
        after = mids[j + 1] if j + 1 < len(mids) else src_hi
        frames = extreme_frames(a, b, max(before, src_lo), min(after, src_hi), fps, n)
        pick = np.argmin if phone in BILABIALS else np.argmax
        src = float(frames[pick(openness[frames])]) / fps
        out = float(np.interp(np.clip(src, a, b), src_knots, out_knots))
        rows.append((float(np.clip(out, out_knots[j], out_knots[j + 1])), src))
    return np.asarray(rows, np.float64).reshape(-1, 2)


def _piece_knots(index: VisemeIndex, piece: Piece, out_durations: np.ndarray,
                 max_speed: float) -> np.ndarray:
    """Clip times of a piece's phone boundaries, its edge phones trimmed to ``max_speed``.

    Stretching a clip phone onto a much shorter query phone plays it fast, and at the
    piece's edges that speed adds to the cross-fade's change. An edge phone instead
    keeps only the part of it next to the rest of the piece (the end of the first phone,
    the start of the last, the middle of a lone one), played at most ``max_speed`` times
    faster than in the clip; phones inside the piece are stretched as they are.
    """
    rows = np.arange(piece.corpus_start, piece.corpus_end)
    knots = np.r_[index.start_s[rows], index.end_s[rows[-1]]]
    keep = max_speed * out_durations
    if len(rows) == 1:
        excess = (knots[1] - knots[0]) - keep[0]
        if excess > 0:
            knots = knots + np.array([excess / 2, -excess / 2])
        return knots
    if knots[1] - knots[0] > keep[0]:
        knots[0] = knots[1] - keep[0]
    if knots[-1] - knots[-2] > keep[-1]:
        knots[-1] = knots[-2] + keep[-1]
    return knots


def _reach(allowed: np.ndarray, start_s: float, end_s: float, fps: float,
           reach_s: float) -> tuple[float, float]:
    """How far a piece's cross-fade may read beyond its ends: not into blocked frames."""
    n = len(allowed)
    steps = int(np.ceil(reach_s * fps)) + 1
    a = int(np.clip(np.floor(start_s * fps), 0, n - 1))
    b = int(np.clip(np.ceil(end_s * fps), 0, n - 1))
    lo = a
    while lo > 0 and a - lo < steps and allowed[lo - 1]:
        lo -= 1
    hi = b
    while hi < n - 1 and hi - b < steps and allowed[hi + 1]:
        hi += 1
    return min(lo / fps, start_s), max(hi / fps, end_s)


# --- per-frame parameters --------------------------------------------------------------------


PLAN_ROWS = 1024  # output frames computed (and written: plan.parquet's row groups) at a time


@dataclass
class FrameRows:
    """The plan of consecutive output frames (``FramePlan.rows``): one row per frame."""

    time_s: np.ndarray
    segment: np.ndarray
    edited: np.ndarray
    source_frame: np.ndarray
    piece: np.ndarray
    expression_source_frame: np.ndarray
    blend_weight: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    expression: np.ndarray
    illumination: np.ndarray
    source_time_s: np.ndarray  # background instant (s): between frames inside regions

    def __len__(self) -> int:
        return len(self.time_s)


@dataclass
class FramePlan:
    """Every output frame's background frame, pose, expression and illumination, computed
    ``PLAN_ROWS`` frames at a time (``rows``, ``windows``): a long clip's whole plan (98
    float64 a frame) is never held. Kept whole: ``edited`` (a bool a frame) and the rows
    whose expression a later step replaced (``set_expression``: co-articulation, the
    audio mouth)."""

    timeline: Timeline
    face: FaceParams
    fps: float
    blend_half: np.ndarray  # each join's cross-fade half width the expression is blended with
    join_times: np.ndarray
    join_half_widths: np.ndarray
    max_join_change: float
    natural_p99: float
    edited: np.ndarray
    patch_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    patch_expression: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.edited)

    @property
    def time_s(self) -> np.ndarray:
        return np.arange(len(self)) / self.fps

    def rows(self, a: int, b: int) -> FrameRows:
        """Output frames [a, b)."""
        rows = _frame_rows(self.timeline, self.face, self.fps, self.blend_half,
                           np.arange(a, min(b, len(self))) / self.fps)
        rows.edited = self.edited[a:b].copy()
        lo, hi = np.searchsorted(self.patch_rows, [a, b])
        if hi > lo:
            rows.expression[self.patch_rows[lo:hi] - a] = self.patch_expression[lo:hi]
        return rows

    def windows(self, size: int = PLAN_ROWS) -> Iterator[tuple[int, FrameRows]]:
        for a in range(0, len(self), size):
            yield a, self.rows(a, a + size)

    def set_expression(self, rows: np.ndarray, expression: np.ndarray) -> None:
        """Replace the expression of output frames ``rows`` from now on."""
        rows = np.asarray(rows, np.int64)
        if self.patch_expression is None:
            self.patch_expression = np.zeros((0, expression.shape[1]))
        keep = ~np.isin(self.patch_rows, rows)
        all_rows = np.r_[self.patch_rows[keep], rows]
        values = np.concatenate([self.patch_expression[keep],
                                 np.asarray(expression, np.float64)])
        order = np.argsort(all_rows, kind="stable")
        self.patch_rows, self.patch_expression = all_rows[order], values[order]


def _kept_source(timeline: Timeline, t: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Clip time of each output time on the un-retimed timeline (kept segments as they are)."""
    seg_src = np.array([s.source_start_s if s.kind == "kept" else np.nan
                        for s in timeline.segments])
    seg_out = np.array([s.out_start_s for s in timeline.segments])
    return seg_src[segment] + (t - seg_out[segment])


def _expression_at(face: FaceParams, track: Track, t: np.ndarray, fps: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A track's expression at output times, and the nearest clip frame it came from."""
    n = len(face)
    f = track.source_time(t) * fps
    nearest = np.clip(np.rint(f), 0, n - 1).astype(np.int64)
    if track.piece < 0:
        return face.expression[nearest].astype(np.float64), nearest
    f = f.copy()
    for out_s, src_s in track.extremes:  # the output frame nearest each phone's extreme
        nearest_out = np.flatnonzero(np.abs(t - out_s) <= 0.5 / fps + 1e-9)
        f[nearest_out] = src_s * fps
    f0 = np.clip(np.floor(f), 0, n - 1).astype(np.int64)
    f1 = np.minimum(f0 + 1, n - 1)
    alpha = np.clip(f - f0, 0.0, 1.0)[:, None]
    expr = (1 - alpha) * face.expression[f0] + alpha * face.expression[f1]
    return expr, nearest


BLEND_BLOCK = 4096  # output frames blended at a time


def _blend(face: FaceParams, tracks: list[Track], half: np.ndarray, t: np.ndarray, fps: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cross-faded expression at output times ``t``: trapezoid weights, normalized. Each
    frame's value depends on its own time only (any subset of frames gives its rows)."""
    n_out = len(t)
    total = np.zeros(n_out)
    expr = np.zeros((n_out, face.expression.shape[1]))
    top_w = np.full(n_out, -1.0)
    top_piece = np.full(n_out, -1, dtype=np.int64)
    top_frame = np.zeros(n_out, dtype=np.int64)
    for i, track in enumerate(tracks):
        hs = half[i - 1] if i > 0 else 0.0
        he = half[i] if i < len(tracks) - 1 else 0.0
        lo = track.out_start - hs if i > 0 else -np.inf
        hi = track.out_end + he if i < len(tracks) - 1 else np.inf
        k = np.flatnonzero((t >= lo - 1e-9) & (t <= hi + 1e-9))
        if not len(k):
            continue
        tk = t[k]
        up = (np.ones(len(k)) if i == 0 else
              _ramp(tk - (track.out_start - hs), 2 * hs, tk >= track.out_start))
        down = (np.ones(len(k)) if i == len(tracks) - 1 else
                _ramp((track.out_end + he) - tk, 2 * he, tk < track.out_end))
        w = np.minimum(up, down)
        keep = w > 0
        k, tk, w = k[keep], tk[keep], w[keep]
        # In blocks of frames: a kept track spans most of a long clip, and its whole
        # expression with its weighted copy are 24 MB each at 31 minutes.
        for a in range(0, len(k), BLEND_BLOCK):
            kb, wb = k[a:a + BLEND_BLOCK], w[a:a + BLEND_BLOCK]
            e, frames = _expression_at(face, track, tk[a:a + BLEND_BLOCK], fps)
            total[kb] += wb
            expr[kb] += wb[:, None] * e
            better = wb > top_w[kb]
            top_w[kb[better]] = wb[better]
            top_piece[kb[better]] = track.piece
            top_frame[kb[better]] = frames[better]
    expr /= np.maximum(total, 1e-12)[:, None]
    return expr, top_piece, top_frame, 1.0 - top_w / np.maximum(total, 1e-12)


@dataclass(frozen=True)
class BlendedRows:
    """The blended expression of output frames, sliced like the (n_out, d) array it stands
    for (``_join_changes`` reads only the frames around each join)."""

    face: FaceParams
    tracks: list[Track]
    half: np.ndarray
    fps: float
    n_out: int

    def __len__(self) -> int:
        return self.n_out

    def __getitem__(self, rows: slice) -> np.ndarray:
        t = np.arange(*rows.indices(self.n_out)) / self.fps
        return _blend(self.face, self.tracks, self.half, t, self.fps)[0]


def _ramp(x: np.ndarray, width: float, step: np.ndarray) -> np.ndarray:
    """0 -> 1 linearly over ``width``; a hard step where there is no width."""
    if width <= 0:
        return step.astype(float)
    return np.clip(x / width, 0.0, 1.0)


def frame_plan(timeline: Timeline, face: FaceParams, fps: float, blend_s: float,
               blend_max_s: float, natural_p99: float) -> FramePlan:
    """The output frames' plan: the cross-fades' widths chosen on the frames around the
    joins, then each frame's row computed where asked (``FramePlan.rows``)."""
    n_out = max(1, int(round(timeline.duration_s * fps)))
    # Expression: tracks cross-faded at their joins, widened where a join is too abrupt.
    tracks = timeline.tracks
    joins = np.array([tr.out_end for tr in tracks[:-1]])
    half = np.full(len(joins), blend_s / 2)
    for _ in range(12):
        used = half.copy()  # the last try's widths are the blended expression's
        change = _join_changes(BlendedRows(face, tracks, used, fps, n_out), joins, used, fps)
        wider = (change > natural_p99) & (half < blend_max_s / 2 - 1e-9)
        if not wider.any():
            break
        half[wider] = np.minimum(blend_max_s / 2, np.maximum(half[wider] * 1.5,
                                                             half[wider] + 0.5 / fps))
    plan = FramePlan(timeline, face, fps, used, joins, half, float(change.max(initial=0.0)),
                     natural_p99, np.zeros(n_out, bool))
    for a in range(0, n_out, PLAN_ROWS):
        plan.edited[a:a + PLAN_ROWS] = _frame_rows(
            timeline, face, fps, used, np.arange(a, min(a + PLAN_ROWS, n_out)) / fps).edited
    return plan


def _frame_rows(timeline: Timeline, face: FaceParams, fps: float, half: np.ndarray,
                t: np.ndarray) -> FrameRows:
    """The plan's rows at output times ``t``; each row depends on its own time only."""
    n_src = len(face)
    seg_starts = np.array([s.out_start_s for s in timeline.segments])
    segment = np.clip(np.searchsorted(seg_starts, t + 1e-9, "right") - 1, 0,
                      len(seg_starts) - 1)

    # Background: the kept timeline, warped across each region (speed eased from and
    # back to real time, so the head's motion has no kink at the region's ends).
    src_t = _kept_source(timeline, t, segment)
    src_t = np.rint(src_t * fps) / fps  # kept footage shows whole frames
    edited = np.zeros(len(t), dtype=bool)
    light_parts = []
    for r in timeline.regions:
        inside = (t >= r.out_lo - 1e-9) & (t <= r.out_hi + 1e-9)
        if not inside.any():
            continue
        u = (t[inside] - r.out_lo) / max(r.out_hi - r.out_lo, 1e-9)
        src_t[inside] = r.src_lo + eased_warp(t[inside] - r.out_lo, r.out_hi - r.out_lo,
                                              r.src_hi - r.src_lo)
        edited |= inside
        first = min(int(round(r.src_lo * fps)), n_src - 1)
        last = min(int(round(r.src_hi * fps)), n_src - 1)
        light_parts.append((inside, u, first, last))
    position = np.clip(src_t * fps, 0, n_src - 1)
    # Within a tenth of a frame of a whole frame: that frame (no interpolation needed).
    whole = np.abs(position - np.rint(position)) < 0.1
    position = np.where(whole, np.rint(position), position)
    source_frame = np.rint(position).astype(np.int64)
    f0 = np.minimum(np.floor(position).astype(np.int64), n_src - 1)
    f1 = np.minimum(f0 + 1, n_src - 1)
    w = (position - f0)[:, None]
    light = face.illumination[source_frame].astype(np.float64)
    for inside, u, first, last in light_parts:
        light[inside] = ((1 - u)[:, None] * face.illumination[first]
                         + u[:, None] * face.illumination[last])
    expr, piece, expr_frame, blend = _blend(face, timeline.tracks, half, t, fps)
    edited |= (piece >= 0) | (blend > 1e-6)

    def pose(values: np.ndarray) -> np.ndarray:  # the background's pose between frames
        v0, v1 = values[f0].astype(np.float64), values[f1].astype(np.float64)
        return (1 - w) * v0 + w * v1 if v0.ndim == 2 else (1 - w[:, 0]) * v0 + w[:, 0] * v1

    return FrameRows(t, segment, edited, source_frame, piece, expr_frame, blend,
                     pose(face.rotation), pose(face.translation), pose(face.scale), expr, light,
                     position / fps)


def eased_warp(x: np.ndarray, out_span: float, src_span: float) -> np.ndarray:
    """Clip time (from the region's start) at output time ``x`` of a region that plays
    ``src_span`` of clip in ``out_span``: a cubic whose speed is 1 (real time) at both
    ends, as the kept footage either side plays, and changes smoothly between. The end
    speeds are lowered where 1 would make the cubic run backwards (a region that must
    play slower than a third of real time)."""
    if out_span <= 0:
        return np.full(np.shape(x), src_span)
    mean_speed = src_span / out_span
    end_speed = min(1.0, 3.0 * mean_speed)
    u = np.clip(np.asarray(x, np.float64) / out_span, 0.0, 1.0)
    h10, h01, h11 = u ** 3 - 2 * u ** 2 + u, -2 * u ** 3 + 3 * u ** 2, u ** 3 - u ** 2
    return out_span * end_speed * (h10 + h11) + src_span * h01


def _join_changes(expr: np.ndarray | BlendedRows, joins: np.ndarray, half: np.ndarray,
                  fps: float) -> np.ndarray:
    """Largest frame-to-frame expression change across each join: the steps from the last
    frame before its cross-fade to the first frame after it."""
    if not len(joins) or len(expr) < 2:
        return np.zeros(len(joins))
    out = np.zeros(len(joins))
    for j, (a, b) in enumerate(join_steps(joins, half, fps, len(expr))):
        # Steps a .. b-1 only (step k: frame k -> k + 1), not the whole output's.
        step = np.linalg.norm(np.diff(expr[a:b + 1], axis=0), axis=1)
        out[j] = step.max(initial=0.0)
    return out


def join_steps(joins: np.ndarray, half: np.ndarray, fps: float, n_frames: int
               ) -> list[tuple[int, int]]:
    """Per join, the frame steps [a, b) it affects (step k goes from frame k to k + 1)."""
    out = []
    for tj, h in zip(joins, half, strict=True):
        a = min(max(int(np.floor((tj - h) * fps + 1e-9)), 0), n_frames - 1)
        b = min(max(int(np.ceil((tj + h) * fps - 1e-9)), a + 1), n_frames - 1)
        out.append((a, b))
    return out
