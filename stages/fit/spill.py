"""Fixed-width per-frame rows spilled to a scratch file, so a long clip's landmarks
never sit in memory: appended once during the frame pass, read back by frame range.
"""

from __future__ import annotations

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
