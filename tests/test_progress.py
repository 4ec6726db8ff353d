"""Stage progress bars: an ETA on a terminal, nothing in a log or a pipe (so a failed
command still prints exactly one error line)."""

from __future__ import annotations

import io
import sys

import pytest

from talkedit.progress import bar, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress(range(50), 50, "fit demo")) == list(range(50))
    with bar(10, "render demo") as shown:
        shown.update(10)
    assert stream.getvalue() == ""


def test_bar_with_count_and_eta_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    assert sum(progress(range(30), 30, "composite demo")) == sum(range(30))
    text = stream.getvalue()
    assert "composite demo" in text and "/30 [" in text
    assert "<" in text  # tqdm's "[elapsed<remaining" ETA field
