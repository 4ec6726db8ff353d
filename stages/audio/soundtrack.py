"""The edited soundtrack without holding it: the clip's kept samples plus written patches.

An edit changes a few seconds of a recording that may last an hour. ``Soundtrack`` keeps
only what the edit wrote (new speech, cross-fades) as patches over the kept segments'
mapping onto the clip, so reading a region costs that region, and the finished track is
written block by block (``blocks``): memory is flat in the clip's length. Slicing reads
and writes like an int16 array (``track[a:b]``, ``track[a:b] = x``), with the same
meaning as the array the edit was built in before: zeros wherever nothing was laid.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from stages.audio.dsp import ClipAudio

BLOCK_SAMPLES = 1 << 16  # samples per block when streamed (128 KB of int16)


class Soundtrack:
    """``n`` int16 output samples: kept segments (clip samples), then patches over them."""

    def __init__(self, clip: ClipAudio, n: int) -> None:
        self.clip, self.n = clip, n
        self._kept: list[tuple[int, int, int]] = []  # (out start, out stop, clip start)
        self._patches: list[tuple[int, np.ndarray]] = []  # (out start, samples), disjoint

    def __len__(self) -> int:
        return self.n

    def keep(self, start: int, stop: int, source: int) -> None:
        """Output [start, stop) is the clip from ``source`` on (zeros past its ends); laid
        before any patch is written."""
        assert not self._patches, "kept segments are laid before the patches"
        start, stop = max(0, start), min(stop, self.n)
        if stop > start:
            self._kept.append((start, stop, source))

    def kept(self, start: int, stop: int) -> np.ndarray:
        """Whether each output sample in [start, stop) lies in a kept segment."""
        mask = np.zeros(max(0, stop - start), dtype=bool)
        for a, b, _ in self._kept:
            lo, hi = max(a, start), min(b, stop)
            if hi > lo:
                mask[lo - start:hi - start] = True
        return mask

    def read(self, start: int, stop: int) -> np.ndarray:
        """Output samples [start, stop) (int16; clamped to the track)."""
        start, stop = max(0, start), min(stop, self.n)
        out = np.zeros(max(0, stop - start), dtype=np.int16)
        for a, b, src in self._kept:  # in the order laid: a later one wins, as in an array
            lo, hi = max(a, start), min(b, stop)
            if hi > lo:
                out[lo - start:hi - start] = self.clip.read(src + lo - a, src + hi - a)
        for at, samples in self._patches:
            lo, hi = max(at, start), min(at + len(samples), stop)
            if hi > lo:
                out[lo - start:hi - start] = samples[lo - at:hi - at]
        return out

    def write(self, start: int, values: np.ndarray) -> None:
        """Output samples [start, start + len(values)) become ``values`` (int16)."""
        stop = start + len(values)
        if stop <= start:
            return
        # Merge with the patches it touches, so patches stay disjoint and few.
        touched = [(at, s) for at, s in self._patches if at <= stop and at + len(s) >= start]
        lo = min([start] + [at for at, _ in touched])
        hi = max([stop] + [at + len(s) for at, s in touched])
        merged = self.read(lo, hi)
        merged[start - lo:stop - lo] = values
        self._patches = [(at, s) for at, s in self._patches
                         if not (at <= stop and at + len(s) >= start)] + [(lo, merged)]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self.n)
        assert step == 1, "Soundtrack reads contiguous slices"
        return self.read(start, stop)

    def __setitem__(self, index: slice, values: np.ndarray) -> None:
        start, stop, step = index.indices(self.n)
        assert step == 1, "Soundtrack writes contiguous slices"
        values = np.broadcast_to(np.asarray(values, dtype=np.int16), (max(0, stop - start),))
        self.write(start, values)

    def blocks(self, block: int = BLOCK_SAMPLES) -> Iterator[tuple[int, np.ndarray]]:
        """(start, samples) of the whole track, ``block`` samples at a time."""
        for start in range(0, self.n, block):
            yield start, self.read(start, start + block)

    def array(self) -> np.ndarray:
        """The whole track in memory (short tracks: a lip-sync job's sentence, tests)."""
        return self.read(0, self.n)
