"""Progress on the terminal: a bar with elapsed time and ETA on a TTY, nothing at all elsewhere."""

from __future__ import annotations

import io
import sys

from sim.present.progress import steps


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_steps_done_of_the_total(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with steps("simulating x", "replications") as advance:
        for done in range(1, 4):
            advance(done, 3)
    drawn = terminal.getvalue()
    assert "simulating x" in drawn and "3/3 replications" in drawn and "ETA" in drawn


def test_a_pipe_sees_nothing(monkeypatch, capsys):
    with steps("simulating x", "replications") as advance:
        advance(1, 2)
        advance(2, 2)
    assert capsys.readouterr().err == ""
