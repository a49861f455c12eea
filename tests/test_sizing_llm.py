"""`servesim size` on an LLM stage: judged on TTFT and TPOT p99 budgets, priced per 1M output tokens.

The chat scenario replays the first few hundred requests of its Azure trace (deterministic: the
replications are identical and the CIs come from sections of one run), which keeps each probe ~1 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.analysis.simulate import simulate
from sim.analysis.sizing import Budgets, Probe, llm_budgets, parse_candidates, probe, size, with_replicas
from sim.errors import ServesimError
from sim.spec.scenario import load_scenario
from tests.helpers import model_scenario

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "scenarios/llm-chat-continuous.yaml"
RUN = dict(replications=2, requests=500)
TTFT_MS = 2000.0


@pytest.fixture(scope="module")
def chat():
    return load_scenario(CHAT)


@pytest.fixture(scope="module")
def sized(chat):
    """Sizings of the chat trace for a 2 s TTFT p99 and several TPOT p99 budgets, run once each."""
    results: dict[float, object] = {}

    def by_tpot(tpot_ms: float):
        if tpot_ms not in results:
            results[tpot_ms] = size(
                chat, None, parse_candidates(None, chat, {}), ttft_p99_ms=TTFT_MS, tpot_p99_ms=tpot_ms, **RUN
            )
        return results[tpot_ms]

    return by_tpot


def test_the_chosen_count_meets_both_budgets_and_one_fewer_does_not(chat, sized):
    result = sized(100.0)
    chosen = result.chosen
    assert chosen is not None and chosen.verdict == "meets" and not result.notes
    for value, ci, budget in (
        (chosen.ttft_p99_ms, chosen.ttft_ci95, TTFT_MS),
        (chosen.tpot_p99_ms, chosen.tpot_ci95, 100.0),
    ):
        assert value <= budget and ci[1] <= budget
    # The count below, probed directly on the same seed, fails at least one budget (point or CI).
    budgets = Budgets(ttft_p99_ms=TTFT_MS, tpot_p99_ms=100.0)
    fewer = probe(chat, chosen.hardware, chosen.replicas - 1, budgets, seed=chat.seed, window_s=None, **RUN)
    assert fewer.verdict != "meets"
    assert max(fewer.ttft_p99_ms, fewer.ttft_ci95[1]) > TTFT_MS or max(fewer.tpot_p99_ms, fewer.tpot_ci95[1]) > 100.0
    # The written scenario is sized and carries the budgets it was sized for.
    assert result.chosen_scenario.deployment.replicas == chosen.replicas
    assert (result.chosen_scenario.slo.ttft_ms, result.chosen_scenario.slo.tpot_ms) == (TTFT_MS, 100.0)


def test_price_per_million_output_tokens_is_the_formula_on_the_probes_own_figures(chat, sized):
    chosen = sized(100.0).chosen
    summary = simulate(with_replicas(chat, chosen.replicas), seed=chat.seed, **RUN).summary
    llm, cost = summary["llm"], summary["cost"]
    assert chosen.ttft_p99_ms == llm["ttft_ms"]["p99"] and chosen.tpot_p99_ms == llm["tpot_ms"]["p99"]
    assert chosen.usd_per_hour == pytest.approx(13.72 * chosen.replicas)
    expected = cost["usd_per_hour"] / (llm["output_tokens_per_s"] * 3600) * 1e6
    assert chosen.usd_per_1m_tokens == pytest.approx(expected, rel=1e-12)
    assert chosen.usd_per_unit == chosen.usd_per_1m_tokens  # what candidates are ranked by


def test_a_looser_tpot_budget_never_needs_more_replicas(sized):
    counts = [sized(tpot).chosen.replicas for tpot in (60.0, 100.0, 150.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1], counts


def test_the_cheaper_candidate_per_million_tokens_wins(chat):
    # Same GPUs at two prices: one search, shared runs, cost scaled; the cheaper one is chosen.
    from sim.analysis.sizing import Candidate

    result = size(
        chat, None, [Candidate("dear", 27.44), Candidate("cheap", 13.72)], ttft_p99_ms=TTFT_MS, tpot_p99_ms=100.0, **RUN
    )
    assert result.chosen.hardware == "cheap"
    dear = {p.replicas: p for p in result.probes if p.hardware == "dear"}
    for point in (p for p in result.probes if p.hardware == "cheap"):
        assert dear[point.replicas].usd_per_1m_tokens == pytest.approx(2 * point.usd_per_1m_tokens)


def test_ranking_is_by_tokens_for_an_llm_and_by_queries_otherwise():
    plain = Probe("x", 1, 10.0, (9.0, 11.0), 1.0, 5.0, None, "meets")
    llm = Probe("x", 1, 10.0, (9.0, 11.0), 1.0, 5.0, None, "meets", usd_per_1m_tokens=2.0)
    assert (plain.usd_per_unit, llm.usd_per_unit) == (5.0, 2.0)


def test_budgets_default_to_the_scenarios_ttft_and_tpot(chat):
    assert llm_budgets(chat, None, None, None) == Budgets(None, 1000.0, 100.0)
    assert llm_budgets(chat, None, 2000.0, None) == Budgets(None, 2000.0, 100.0)
    assert llm_budgets(chat, 30_000.0, None, None) == Budgets(30_000.0)  # sized on end-to-end p99 alone
    mm1 = model_scenario(arrival={"process": "poisson", "rate_rps": 1}, service_ms=10)
    with pytest.raises(ServesimError, match="--ttft-p99-ms / --tpot-p99-ms: .* need a scenario with an LLM stage"):
        llm_budgets(mm1, None, 500.0, None)
    with pytest.raises(ServesimError, match="no SLO to size for"):
        llm_budgets(mm1, None, None, None)


def test_a_missing_measurement_meets_no_budget():
    from sim.analysis.sizing import verdict

    nothing_completed = Probe("x", 1, float("nan"), (float("nan"),) * 2, 1.0, None, None, "")
    assert verdict(nothing_completed, Budgets(ttft_p99_ms=1000.0)) == "misses"


def test_size_command_on_ttft_and_tpot(tmp_path: Path, capsys, monkeypatch):
    from sim.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps and truncates at 80 columns without a terminal
    out = tmp_path / "out"
    code = main(
        [
            "size",
            str(CHAT),
            "--ttft-p99-ms",
            "2000",
            "--tpot-p99-ms",
            "100",
            "--requests",
            "500",
            "--replications",
            "2",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "TTFT p99 ≤ 2,000 ms and TPOT p99 ≤ 100 ms" in printed
    for column in ("TTFT p99", "TPOT p99", "$/1M tokens"):
        assert column in printed
    assert "per 1M output tokens" in printed
    written = yaml.safe_load((out / "llm-chat-continuous-sized.yaml").read_text())
    assert written["slo"] == {"ttft_ms": 2000.0, "tpot_ms": 100.0}
    assert (out / "frontier.csv").read_text().startswith("hardware,replicas")


def test_an_unreachable_tpot_budget_is_a_note_and_exit_1(tmp_path: Path, capsys, monkeypatch):
    from sim.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    # TPOT p99 levels off near 48 ms (the decode step of a 70B model); 30 ms is out of reach.
    code = main(
        [
            "size",
            str(CHAT),
            "--tpot-p99-ms",
            "30",
            "--requests",
            "300",
            "--replications",
            "2",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 4 and "Traceback" not in captured.err
    assert "TPOT p99 has levelled off" in captured.out and "no candidate meets the SLO" in captured.out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([str(CHAT), "--ttft-p99-ms", "0"], "--ttft-p99-ms: 0.0 must be a finite number above 0"),
        ([str(CHAT), "--tpot-p99-ms", "nan"], "--tpot-p99-ms: nan must be a finite number"),
        ([str(ROOT / "scenarios/mm3.yaml"), "--ttft-p99-ms", "500"], "need a scenario with an LLM stage"),
    ],
)
def test_bad_llm_budgets_are_one_clear_line(tmp_path: Path, capsys, argv, message):
    from sim.cli.main import main

    assert main(["size", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
