"""Long work in the planner (a sizing, a comparison): a progress bar that moves at the ETA's pace, and what a
click that stopped it did so far (issue 21: a click during a long sizing lost it without a word)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import ui.state as state
from sim.analysis.sizing_search import SizingProgress
from ui.views.sizing import sizing_fraction, stopped_text


def progress(done: int, expected: float) -> SizingProgress:
    return SizingProgress(
        probes_done=done,
        probes_left=9,
        probes_expected=3.0,
        replications_done=done,
        replications_left=40,
        replications_expected=expected,
        elapsed_s=1.0,
        seconds_per_replication=0.5,
    )


def test_the_bar_moves_with_the_expected_work_not_the_worst_case():
    assert sizing_fraction(progress(0, 12.0)) == 0.0
    assert sizing_fraction(progress(6, 6.0)) == 0.5  # half the expected replications run
    assert sizing_fraction(progress(6, 0.0)) == 1.0
    assert sizing_fraction(progress(0, 0.0)) == 0.0


def test_the_stopped_sentence_says_how_far_it_got():
    text = stopped_text("Sizing", ["Probe 1: t4, replicas = 3: p99 41 ms → misses"], "probe")
    assert text.startswith("Sizing stopped after 1 probe (last: Probe 1") and "Press Size" in text
    text = stopped_text("The comparison", ["a", "b"], "variant", "Kept.", cancelled=True)
    assert text == "The comparison was cancelled after 2 variants (last: b). Kept."


@pytest.fixture()
def session(monkeypatch):
    fake = SimpleNamespace(session_state={"_knobs_for": "shipped:vision-a100"})
    monkeypatch.setattr(state, "st", fake)
    return fake.session_state


def test_work_that_finished_leaves_nothing(session):
    state.start_work("sizing", "k")
    state.note_work("sizing", "probe 1")
    state.finish_work("sizing")
    assert state.stopped_work("sizing") is None


def test_work_a_click_stopped_is_said_once(session):
    state.start_work("sizing", "k")
    state.note_work("sizing", "probe 1")
    state.note_work("sizing", "probe 2")
    assert state.stopped_work("sizing") == ("k", ["probe 1", "probe 2"])
    assert state.stopped_work("sizing") is None  # said once, then forgotten


def test_cancelled_work_stays_stopped_for_its_inputs_until_started_again(session):
    state.start_work("compare", "k")
    state.note_work("compare", "a")
    state.cancel_work("compare")
    assert state.cancelled_work("compare", "k") == ["a"]
    assert state.cancelled_work("compare", "other inputs") is None
    assert state.stopped_work("compare") == ("k", ["a"]) and state.cancelled_work("compare", "k") == ["a"]
    state.start_work("compare", "k")
    assert state.cancelled_work("compare", "k") is None


def test_work_is_kept_per_scenario(session):
    state.start_work("sizing", "k")
    session["_knobs_for"] = "shipped:mm3"
    assert state.stopped_work("sizing") is None
