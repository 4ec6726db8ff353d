"""A reenactment job's spec, data/reenact/<job>.yaml::

    target: demo              # the clip whose person is driven (its fit and trained renderer)
    source: actor             # the clip whose face drives it (its fit)
    mode: expression          # expression (Face2Face) | portrait (Deep Video Portraits)
    source_span: [1.0, 6.0]   # the source's seconds that drive (default: all of it)
    target_start_s: 20.5      # where on the target they land (default: its start)
    keep_rest: true           # the output keeps the target's other frames (false: the span only)
    description: a test       # optional, shown in the provenance
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talkedit.artifacts import ClipPaths, EditPaths, LipsyncPaths, ReenactPaths
from talkedit.edits import read_spec_file
from talkedit.errors import TalkeditError

SPEC_KEYS = {"target", "source", "mode", "source_span", "target_start_s", "keep_rest",
             "description"}
MODES = ("expression", "portrait")


@dataclass(frozen=True)
class ReenactSpec:
    job: str
    path: Path
    target: str
    source: str
    mode: str = "expression"
    source_span: tuple[float, float] | None = None
    target_start_s: float = 0.0
    keep_rest: bool = True
    description: str | None = None


def load_reenact(job: str, root: Path | None) -> ReenactSpec:
    """Read and check data/reenact/<job>.yaml."""
    paths = ReenactPaths.of(job, root)
    path = paths.spec
    for other, kind in ((EditPaths.of(job, root).spec, "an edit"),
                        (LipsyncPaths.of(job, root).spec, "a lip-sync job")):
        if other.is_file():
            raise TalkeditError(path, f"job {job!r} has the name of {kind} ({other.parent}), and "
                                f"both would write data/outputs/{job}.mp4",
                                "rename the reenactment job")
    data = read_spec_file(path, "reenactment job not found",
                          f"write it (target:, source:, mode:; see stages/reenact/spec.py) or "
                          f"remove {job!r} from reenact_jobs in params.yaml",
                          "target:, source: and mode:", "stages/reenact/spec.py", SPEC_KEYS,
                          clip_keys=("target", "source"))
    target, source = (ClipPaths.of(data[k], root).clip for k in ("target", "source"))
    mode = str(data.get("mode", "expression"))
    if mode not in MODES:
        raise TalkeditError(path, f"mode {mode!r} is not one of {list(MODES)}",
                            "use 'mode: expression' (Face2Face) or 'mode: portrait' (with head "
                            "motion, gaze and blinks)")
    span = data.get("source_span")
    if span is not None and not (isinstance(span, list) and len(span) == 2 and all(
            isinstance(v, (int, float)) for v in span) and 0 <= span[0] < span[1]):
        raise TalkeditError(path, f"source_span {span!r} is not [start_s, end_s] with start < end",
                            "e.g. 'source_span: [1.0, 6.0]', or leave it out for all of it")
    start = data.get("target_start_s", 0.0)
    if not isinstance(start, (int, float)) or start < 0:
        raise TalkeditError(path, f"target_start_s {start!r} is not a time >= 0",
                            "e.g. 'target_start_s: 20.5'")
    keep = data.get("keep_rest", True)
    if not isinstance(keep, bool):
        raise TalkeditError(path, f"keep_rest {keep!r} is not true or false", "use true or false")
    description = data.get("description")
    return ReenactSpec(job, path, target, source, mode,
                       None if span is None else (float(span[0]), float(span[1])),
                       float(start), keep, None if description is None else str(description))
