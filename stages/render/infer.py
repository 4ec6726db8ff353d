"""Running the recurrent generator over frame sequences (training, evaluation, render).

* ``rollout``: one or more frames of B parallel streams, carrying each stream's
  recent conditioning and previous output; training unrolls it with gradients.
* ``Frames`` + ``ConditioningSource``: rows to render (a face to draw and the
  clip frame behind it) and their conditioning images.
* ``run_jobs``: contiguous runs of rows ("jobs"), each warmed up on a few
  earlier rows whose output is discarded. On a GPU, ``batch`` jobs advance in
  lockstep (long runs are split so the streams stay busy); on the CPU a single
  stream goes through them in order. Results come out as full render crops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from stages.fit import Pose
from stages.render.conditioning import Box, Conditioning, FaceRenderer, to_uint8
from stages.render.data import ReferencePool
from stages.render.networks import Generator


@dataclass
class StreamState:
    history: torch.Tensor  # (B, (window-1)*C, h, w) conditioning of the previous frames
    previous: torch.Tensor  # (B, 3, h, w) the previous composited output


def rollout(generator: Generator, frames: list[Conditioning], state: StreamState | None
            ) -> tuple[list[torch.Tensor], StreamState]:
    """Generate ``frames`` (each B boxed frames, in time order) after ``state``.

    A cold start (``state`` None) repeats the first frame's conditioning as its
    history and uses its masked background as the "previous output", the same
    way training clamps windows at the clip's first frame.
    """
    window = generator.window
    outs = []
    history = state.history if state is not None else None
    previous = state.previous if state is not None else None
    for cond in frames:
        c = cond.channels
        if history is None:
            history = c.repeat(1, window - 1, 1, 1)
        if previous is None:
            previous = cond.masked_background
        stacked = torch.cat([history, c], dim=1)
        out = cond.composite(generator(stacked, previous))
        outs.append(out)
        history, previous = stacked[:, c.shape[1]:], out
    return outs, StreamState(history, previous)


@dataclass
class Frames:
    """Rows to render: the face to draw on each and the clip frame behind it."""

    background: np.ndarray  # (n,) clip frame whose crop is the background
    pose: Pose
    expression: np.ndarray  # (n, 64); or data.RowsAsFloat64: indexed by rows only
    illumination: np.ndarray  # (n, 27); as expression

    def __len__(self) -> int:
        return len(self.background)


class ConditioningSource:
    """Conditioning images for rows of ``Frames`` over one clip's backgrounds."""

    def __init__(self, face: FaceRenderer, backgrounds: Callable[[np.ndarray], np.ndarray],
                 transforms: np.ndarray, outlines: np.ndarray,
                 pool: ReferencePool | None = None) -> None:
        self.face = face
        self.pool = pool  # exemplars (None: a generator trained without them)
        self.backgrounds = backgrounds  # clip frames -> (n, S, S, 3) uint8 render crops
        self.transforms = transforms  # (n_clip, 6) image -> render crop
        self.outlines = outlines  # (n_clip, K, 2) the fit's lower-face outline, render px

    def build(self, frames: Frames, rows: np.ndarray, extra: np.ndarray | None = None,
              references: np.ndarray | None = None) -> Conditioning:
        """The rows' conditioning; the mask covers the drawn face's lower face, the
        background frame's own (what must be repainted) and ``extra`` outlines.
        ``references``: pool indices of the rows' exemplars (default: nearest expression).
        """
        bg = frames.background[rows]
        pose = Pose(frames.pose.rotation[rows], frames.pose.translation[rows],
                    frames.pose.scale[rows])
        outlines = [self.outlines[bg]] + ([extra] if extra is not None else [])
        exemplars = None
        if self.pool is not None:
            if references is None:
                references = self.pool.nearest(frames.expression[rows])
            exemplars = self.pool.crops[references]
        return self.face.build(self.backgrounds(bg), pose, frames.expression[rows],
                               frames.illumination[rows], self.transforms[bg], outlines,
                               exemplars)


@dataclass(frozen=True)
class Job:
    """Rows warm..stop-1 in order; rows before ``start`` only warm the recurrence up."""

    warm: int
    start: int
    stop: int


def make_jobs(wanted: np.ndarray, warmup: int, streams: int = 1, max_rows: int = 0
              ) -> list[Job]:
    """Jobs covering the rows where ``wanted`` (bool per row) is set.

    Runs closer than ``warmup`` rows are merged (their warm-up would overlap).
    With several streams, long runs are split into about equal pieces so that
    ``streams`` jobs can advance side by side; each piece gets its own warm-up.
    ``max_rows`` (0: no limit) caps a piece, so frame chunks can go to other workers.
    """
    rows = np.flatnonzero(wanted)
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) > warmup + 1)
    starts = np.r_[rows[0], rows[breaks + 1]]
    stops = np.r_[rows[breaks] + 1, rows[-1] + 1]
    piece = int(np.ceil(len(rows) / streams)) if streams > 1 else len(wanted)
    if max_rows:
        piece = min(piece, max_rows)
    jobs = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        for s in range(a, b, max(piece, 1)):
            jobs.append(Job(max(0, s - warmup), s, min(b, s + piece)))
    return jobs


def group_jobs(jobs: list[Job], rows: int) -> list[list[Job]]:
    """Consecutive jobs in groups of about ``rows`` rendered rows (a job is never split)."""
    groups: list[list[Job]] = []
    size = 0
    for job in jobs:
        if not groups or size + job.stop - job.start > rows:
            groups.append([])
            size = 0
        groups[-1].append(job)
        size += job.stop - job.start
    return groups


@dataclass
class Rendered:
    rows: np.ndarray  # (n,) rows of ``Frames``
    crops: np.ndarray  # (n, S, S, 3) uint8 full render crops (background outside the box)
    alpha: np.ndarray  # (n, S, S) uint8 blend weight of the generated pixels (255 = all)


def paste(full: torch.Tensor, box: Box, inner: torch.Tensor) -> torch.Tensor:
    out = full.clone()
    out[..., box.top:box.top + box.height, box.left:box.left + box.width] = inner
    return out


@torch.no_grad()
def run_jobs(generator: Generator, box: Box, source: ConditioningSource, frames: Frames,
             jobs: list[Job], batch: int = 1, chunk: int = 32, bf16: bool = False
             ) -> Iterator[Rendered]:
    """Render ``jobs`` in groups of ``batch`` lockstep streams, ``chunk`` steps at a time.

    A stream whose job is shorter than its group's longest repeats its last row
    (the output is dropped). ``bf16``: the generator runs under bfloat16 autocast (a GPU's).
    """
    generator.eval()
    for g in range(0, len(jobs), batch):
        group = jobs[g:g + batch]
        length = max(j.stop - j.warm for j in group)
        state: StreamState | None = None
        for c in range(0, length, chunk):
            steps = np.arange(c, min(c + chunk, length))
            rows = np.stack([np.minimum(j.warm + steps, j.stop - 1) for j in group])  # (B, T)
            keep = np.stack([(j.warm + steps >= j.start) & (j.warm + steps < j.stop)
                             for j in group])
            cond = source.build(frames, rows.T.reshape(-1))  # time-major: row t*B + b
            b = len(group)
            per_step = [cond.select(slice(t * b, (t + 1) * b)) for t in range(len(steps))]
            with torch.autocast(cond.channels.device.type, dtype=torch.bfloat16, enabled=bf16):
                outs, state = rollout(generator, [p.window(box) for p in per_step], state)
            outs = [o.float() for o in outs]
            full = torch.cat([paste(p.background, box, o) for p, o in zip(per_step, outs,
                                                                             strict=True)])
            alpha = torch.cat([paste(torch.zeros_like(p.alpha), box, box.slice(p.alpha))
                               for p in per_step])
            mask = keep.T.reshape(-1)
            if mask.any():
                sel = torch.from_numpy(np.flatnonzero(mask)).to(full.device)
                yield Rendered(rows.T.reshape(-1)[mask], to_uint8(full[sel]),
                               (alpha[sel, 0] * 255).round().to(torch.uint8).cpu().numpy())
