"""How frame-bound stages spread their work: the ``scale:`` section of params.yaml.

A stage that can split a clip into frame chunks takes a ``map_chunks`` argument: an
ordered, lazy ``map`` (the built-in one by default, so the stage runs in its own
process). The flow that runs the stage supplies one that maps the chunks as Prefect
tasks on the task runner named here: Prefect's local runner, or Dask (prefect-dask)
on a local cluster or a scheduler's address. The chunking itself is a param of the
result (``chunk_frames``), never of the runner, so the same params give the same bytes
on one process or on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from talkedit.params import Section, bad_param

T = TypeVar("T")
R = TypeVar("R")
ChunkMap = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]
RUNNERS = ("local", "dask")


def serial_map(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """The default ``map_chunks``: one chunk after the other, in this process."""
    return map(fn, items)


@dataclass(frozen=True)
class ScaleParams(Section):
    """The ``scale:`` section (see the comments in params.yaml)."""

    SECTION = "scale"
    task_runner: str = "local"
    dask_address: str | None = None
    dask_workers: int = 2
    dask_threads_per_worker: int = 1
    chunk_frames: int = 0
    in_flight: int = 4

    def check(self, where: str) -> None:
        if self.task_runner not in RUNNERS:
            raise bad_param(where, "task_runner", f"is {self.task_runner!r}",
                            f"use one of {', '.join(RUNNERS)}")
        if self.chunk_frames < 0:
            raise bad_param(where, "chunk_frames", "is negative", "use 0 (no chunks) or e.g. 250")
        if self.task_runner == "dask" and self.chunk_frames == 0:
            raise bad_param(where, "chunk_frames", "is 0, so there is nothing to spread over "
                            "Dask workers", "set scale.chunk_frames, e.g. 250")
        if self.dask_workers < 1 or self.dask_threads_per_worker < 1 or self.in_flight < 1:
            raise bad_param(where, "dask_workers", "workers, threads and in_flight must be >= 1",
                            "use 2, 1 and 4")

    def spans(self, n_frames: int) -> list[tuple[int, int]]:
        """The frame chunks [start, stop) of a clip of ``n_frames`` (one span: no chunks)."""
        size = self.chunk_frames or n_frames
        return [(a, min(n_frames, a + size)) for a in range(0, n_frames, size)]
