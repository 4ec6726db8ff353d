"""Progress bars for the stages that take more than a few seconds (fit, render, composite,
compare, align's chunks): tqdm with an ETA, on stderr, only when stderr is a terminal.

On a terminal ``talkedit fit demo`` shows ``fit demo: 41%|####  | 312/759 [00:04<00:06,
71.2 frame/s]``; in a log, a pipe or a test the bar is off, so the CLI's rule holds that
a failed command prints exactly one ``error:`` line (tests/test_cli_errors.py). (The CLI
keeps Python's ``sys.stderr`` on the terminal while native libraries' output goes to the
log: talkedit/cli.py.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def showing() -> bool:
    """Whether bars are drawn: stderr is a terminal."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(items: Iterable[T], total: int | None, desc: str, unit: str = "frame"
             ) -> Iterator[T]:
    """``items``, with a bar (ETA from the rate so far) while they are consumed."""
    with tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not showing(),
              mininterval=0.5, smoothing=0.1, leave=False, dynamic_ncols=True) as bar:
        yield from bar


def bar(total: int, desc: str, unit: str = "frame") -> tqdm:
    """A bar to ``update(n)`` by hand (for work that comes in batches); use as a context."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not showing(),
                mininterval=0.5, smoothing=0.1, leave=False, dynamic_ncols=True)
