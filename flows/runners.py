"""The task runner of a stage's flow, from params.yaml ``scale:`` (talkedit.scale).

``local``: the stage maps its chunks in its own process (``serial_map``). ``dask``:
the flow runs on prefect-dask's ``DaskTaskRunner`` (a local cluster of
``dask_workers`` processes, or the scheduler at ``dask_address``) and each chunk is a
Prefect task run on it, at most ``in_flight`` at once so results wait in bounded
memory; they come back in order. Workers of a real cluster need this checkout on their
``PYTHONPATH`` and the project folder at the same path (a shared file system).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prefect import task

from talkedit.scale import ChunkMap, ScaleParams, serial_map


def task_runner(scale: ScaleParams) -> Any | None:
    """The flow's task runner (None: Prefect's default)."""
    if scale.task_runner != "dask":
        return None
    from prefect_dask import DaskTaskRunner

    if scale.dask_address:
        return DaskTaskRunner(address=scale.dask_address)
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": scale.dask_workers, "threads_per_worker": scale.dask_threads_per_worker,
        "processes": True, "dashboard_address": None})


@task(name="chunk", task_run_name="chunk-{index}")
def run_chunk(fn: Callable[[Any], Any], item: Any, index: int) -> Any:
    return fn(item)


def chunk_map(scale: ScaleParams) -> ChunkMap:
    """The ``map_chunks`` a stage gets: chunks as task runs on the flow's task runner."""
    if scale.task_runner != "dask":
        return serial_map

    def mapped(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending: deque = deque()
        for index, item in enumerate(items):
            pending.append(run_chunk.submit(fn, item, index))
            if len(pending) >= scale.in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return mapped
