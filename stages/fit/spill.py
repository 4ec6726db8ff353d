"""Per-frame data spilled to scratch files, so a long clip's landmarks, colours and
fitted parameters never sit in memory whole: ``RowSpill`` is appended once during the
frame pass and read back by frame range; ``ColumnSpill`` holds the fitted parameters
column by column, for filters that run along the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


class RowSpill:
    def __init__(self, path: Path, width: int, dtype: type | np.dtype = np.float32) -> None:
        self.width = width
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._row_bytes = width * self.dtype.itemsize
        self._file = open(path, "w+b")  # noqa: SIM115 - lives as long as the spill

    def append(self, row: np.ndarray) -> None:
        data = np.ascontiguousarray(row, dtype=self.dtype).reshape(-1)
        if data.size != self.width:
            raise ValueError(f"row of {data.size} values for a spill {self.width} wide")
        self._file.write(data.tobytes())
        self.rows += 1

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a (k, width) array (a copy; the file stays the store)."""
        stop = min(stop, self.rows)
        self._file.flush()
        self._file.seek(start * self._row_bytes)
        raw = self._file.read(max(0, stop - start) * self._row_bytes)
        return np.frombuffer(raw, dtype=self.dtype).reshape(-1, self.width).copy()

    def close(self) -> None:
        self._file.close()


class ColumnSpill:
    """A (rows, width) float64 table kept column by column in a scratch file: a long
    clip's per-frame parameters (31 min: 24 MB of expression weights, 10 MB of light)
    never sit in memory whole. Columns are filtered one at a time (``map_columns``);
    rows are written and read by frame range. Reads and writes are plain file I/O, not a
    memory map, so the pages stay out of the process's resident set."""

    ITEM = np.dtype(np.float64).itemsize

    def __init__(self, path: Path, rows: int, width: int, fill: float = np.nan) -> None:
        self.rows, self.width = rows, width
        self._file = open(path, "w+b")  # noqa: SIM115 - lives as long as the spill
        column = np.full(rows, fill, np.float64).tobytes()
        for _ in range(width):
            self._file.write(column)

    def __len__(self) -> int:
        return self.rows

    def _span(self, j: int, start: int, stop: int) -> np.ndarray:
        self._file.seek((j * self.rows + start) * self.ITEM)
        return np.frombuffer(self._file.read((stop - start) * self.ITEM), np.float64)

    def _put(self, j: int, start: int, values: np.ndarray) -> None:
        self._file.seek((j * self.rows + start) * self.ITEM)
        self._file.write(np.ascontiguousarray(values, np.float64).tobytes())

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` of every row (a copy)."""
        return self._span(j, 0, self.rows).copy()

    def map_columns(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """Replace every column by ``fn`` of it, one column in memory at a time."""
        for j in range(self.width):
            self._put(j, 0, fn(self.column(j)))

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a (k, width) array."""
        stop = min(stop, self.rows)
        out = np.empty((max(0, stop - start), self.width))
        for j in range(self.width):
            out[:, j] = self._span(j, start, stop)
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The sorted ``rows`` (indices) as a (k, width) array; reads only their span."""
        rows = np.asarray(rows, dtype=np.intp)
        if len(rows) == 0:
            return np.empty((0, self.width))
        start, stop = int(rows[0]), int(rows[-1]) + 1
        out = np.empty((len(rows), self.width))
        for j in range(self.width):
            out[:, j] = self._span(j, start, stop)[rows - start]
        return out

    def write_rows(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Set the sorted ``rows`` (indices) to ``values`` (k, width)."""
        rows = np.asarray(rows, dtype=np.intp)
        if len(rows) == 0:
            return
        start, stop = int(rows[0]), int(rows[-1]) + 1
        values = np.asarray(values, np.float64).reshape(len(rows), self.width)
        for j in range(self.width):
            span = self._span(j, start, stop).copy()
            span[rows - start] = values[:, j]
            self._put(j, start, span)

    def close(self) -> None:
        self._file.close()
