"""One error type for every problem a user can fix.

A ``TalkeditError`` names the offending input and says how to fix it; the CLI
prints it as one line and exits non-zero, with no traceback.
"""

from __future__ import annotations

from pathlib import Path


class TalkeditError(Exception):
    """A user-fixable problem with an input (file, parameter, clip name...)."""

    def __init__(self, what: str | Path, problem: str, fix: str) -> None:
        self.what = str(what)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.what}: {problem}. Fix: {fix}")
