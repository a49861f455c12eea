"""`servesim size`: the replica count it picks is the one Erlang C says is smallest (or one more, where the
CI cannot tell), it holds on fresh seeds, and one fewer does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim import theory
from sim.analysis.sizing import Candidate, parse_candidates, size, smallest_stable
from sim.errors import ServesimError
from tests.helpers import model_scenario

ROOT = Path(__file__).resolve().parent.parent


def smallest_by_erlang_c(rate: float, slo_s: float) -> int:
    c = 1
    while rate >= c or theory.mmc_sojourn_quantile(0.99, c, rate, 1.0) > slo_s:
        c += 1
    return c


@pytest.mark.slow
def test_sizing_picks_the_smallest_replica_count_erlang_c_allows():
    rate, slo_ms = 6.0, 6000.0
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": rate},
        service_ms={"dist": "exponential", "mean": 1000},
        replicas=1,
        requests=30_000,
        hardware={"name": "x", "usd_per_hour": 1.0},
    )
    exact = smallest_by_erlang_c(rate, slo_ms / 1000)
    assert smallest_stable(scenario) == 7  # 6 Erlangs need 7 servers to be stable
    result = size(scenario, slo_ms, [Candidate("x", 1.0)], replications=4)
    assert result.chosen is not None
    assert result.chosen.replicas in (exact, exact + 1)
    assert result.recheck.verdict == "meets"
    assert result.one_fewer_recheck.verdict in ("misses", "too close")
    # The frontier is in order and every probe below the chosen count did not meet the SLO with confidence.
    counts = [p.replicas for p in result.probes]
    assert counts == sorted(set(counts))
    assert all(p.verdict != "meets" for p in result.probes if p.replicas < result.chosen.replicas)
    assert result.chosen.replicas - 1 in counts or result.chosen.replicas == smallest_stable(scenario)


def test_cheapest_hardware_wins_when_both_meet():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 20},
        service_ms={"dist": "exponential", "mean": 100},
        requests=4000,
        hardware={"name": "slow", "usd_per_hour": 1.0},
    )
    fast_but_pricey = Candidate("fast", 10.0, speedup=2.0)
    slow_and_cheap = Candidate("slow", 1.0)
    result = size(scenario, 1000.0, [fast_but_pricey, slow_and_cheap], replications=3)
    assert result.chosen.hardware == "slow"
    assert result.chosen_scenario.deployment.hardware.usd_per_hour == 1.0


@pytest.mark.parametrize("order", [("slow", "fast"), ("fast", "slow")])
def test_among_unpriced_candidates_the_fewest_replicas_win_whatever_their_order(order):
    # Before: the first unpriced candidate to meet was kept (inf < inf is false), so the order decided.
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 30}, service_ms={"dist": "exponential", "mean": 100}, requests=4000
    )
    candidates = {"slow": Candidate("slow", None), "fast": Candidate("fast", None, speedup=3.0)}
    result = size(scenario, 1000.0, [candidates[name] for name in order], replications=3)
    assert result.chosen.hardware == "fast"
    assert any("none is priced" in note for note in result.notes)


def test_speedup_candidate_needs_fewer_replicas():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 30}, service_ms={"dist": "exponential", "mean": 100}, requests=4000
    )
    base = size(scenario, 1000.0, [Candidate("base", 1.0)], replications=3).chosen
    faster = size(scenario, 1000.0, [Candidate("fast", 1.0, speedup=3.0)], replications=3).chosen
    assert faster.replicas < base.replicas


def test_candidates_come_from_the_catalogue():
    from sim.spec.hardware import load_catalogue

    scenario = model_scenario(arrival={"process": "poisson", "rate_rps": 1}, service_ms=10)
    catalogue = load_catalogue()
    candidates = parse_candidates("l4@1,t4@0.5", scenario, catalogue)
    assert [(c.name, c.usd_per_hour, c.speedup) for c in candidates] == [("l4", 0.80, 1.0), ("t4", 0.526, 0.5)]
    # A bare name on costs of unnamed hardware: servesim cannot tell its speed, so it asks (never the
    # costs as written at l4's price unasked).
    with pytest.raises(ServesimError, match=r"--hardware 'l4'.*names no hardware.*l4@X.*@1 if the costs"):
        parse_candidates("l4", scenario, catalogue)
    on_a100 = scenario.with_overrides({"deployment.hardware": {"name": "a100-80gb", "usd_per_hour": 3.43}})
    (t4,) = parse_candidates("t4", on_a100, catalogue)  # the Sizing tab's roofline speed, labelled
    assert t4.name.startswith("t4 (roofline ×0.16") and t4.speedup == pytest.approx(0.1569, abs=1e-4)
    with pytest.raises(ServesimError, match="not in the hardware catalogue"):
        parse_candidates("tpu-v9", scenario, catalogue)
    with pytest.raises(ServesimError, match="expected NAME"):
        parse_candidates("l4@@", scenario, catalogue)


def test_size_command_writes_frontier_and_a_ready_scenario(tmp_path: Path):
    out = tmp_path / "sizing"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.cli.main",
            "size",
            "scenarios/bert-cpu.yaml",
            "--requests",
            "4000",
            "--replications",
            "3",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "chosen:" in result.stdout and "re-check on fresh seeds" in result.stdout
    sized = yaml.safe_load((out / "bert-cpu-sized.yaml").read_text())
    assert sized["deployment"]["replicas"] >= 2
    assert (out / "frontier.csv").read_text().startswith("hardware,replicas")
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_slo_below_the_service_time_is_reported_unreachable():
    # p99 of an Exp(100 ms) service alone is 460 ms: no replica count gets p99 under 300 ms.
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 20}, service_ms={"dist": "exponential", "mean": 100}, requests=4000
    )
    result = size(scenario, 300.0, [Candidate("x", 1.0)], replications=3)
    assert result.chosen is None
    assert any("levelled off" in note for note in result.notes)
    assert len(result.probes) < 10


def test_size_without_an_slo_is_a_clear_error(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "sim.cli.main", "size", "scenarios/mm3.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "--slo-p99-ms" in result.stderr and "Traceback" not in result.stderr


def test_candidates_differing_only_in_price_share_their_runs(monkeypatch):
    from sim.analysis import sizing

    runs: list[tuple[str, int]] = []
    real_probe = sizing.probe

    def counting_probe(scenario, hardware, count, *args, **kwargs):
        runs.append((hardware, count))
        return real_probe(scenario, hardware, count, *args, **kwargs)

    monkeypatch.setattr(sizing, "probe", counting_probe)
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 20}, service_ms={"dist": "exponential", "mean": 100}, requests=4000
    )
    result = size(scenario, 1000.0, [Candidate("dear", 4.0), Candidate("cheap", 1.0)], replications=3)
    searched = [r for r in runs if r[0] == "dear"]
    assert not [r for r in runs[: len(runs) - 2] if r[0] == "cheap"]  # only the fresh-seed re-checks run anew
    dear = {p.replicas: p for p in result.probes if p.hardware == "dear"}
    cheap = {p.replicas: p for p in result.probes if p.hardware == "cheap"}
    assert sorted(dear) == sorted(cheap) == sorted(count for _, count in searched)
    for count, point in cheap.items():
        assert point.p99_ms == dear[count].p99_ms
        assert point.usd_per_1m_queries == pytest.approx(dear[count].usd_per_1m_queries / 4.0)
    assert result.chosen.hardware == "cheap"


def _scenario_file(folder: Path) -> Path:
    """A one-stage M/M/c scenario (20 req/s of Exp(100 ms), $1/h) whose own SLO (5 s) differs from the
    1 s the tests size for."""
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 20},
        service_ms={"dist": "exponential", "mean": 100},
        requests=2000,
        hardware={"name": "x", "usd_per_hour": 1.0},
    )
    path = folder / "mmc.yaml"
    path.write_text(scenario.with_overrides({"slo.p99_ms": 5000.0}).to_yaml())
    return path


def _size(folder: Path, out: str, *extra: str) -> tuple[int, dict | None]:
    from sim.cli.main import main

    code = main(
        [
            "size",
            str(_scenario_file(folder)),
            "--slo-p99-ms",
            "1000",
            "--replications",
            "2",
            "--out",
            str(folder / out),
            *extra,
        ]
    )
    written = folder / out / "test-sized.yaml"
    return code, yaml.safe_load(written.read_text()) if written.exists() else None


def test_size_set_overrides_the_scenario_and_changes_the_answer(tmp_path: Path, capsys):
    code, plain = _size(tmp_path, "plain")
    assert code == 0
    # Three times the traffic on dearer hardware: more replicas, and the written scenario says both.
    code, busier = _size(
        tmp_path,
        "busier",
        "--set",
        "workload.arrival.rate_rps=60",
        "--set",
        "deployment.hardware={name: y, usd_per_hour: 3.0}",
    )
    assert code == 0
    assert busier["deployment"]["replicas"] > plain["deployment"]["replicas"] >= 3
    assert busier["workload"]["arrival"]["rate_rps"] == 60
    assert busier["deployment"]["hardware"] == {"name": "y", "usd_per_hour": 3.0}
    assert "y, replicas = " in capsys.readouterr().out


def test_the_sized_scenario_keeps_the_slo_it_was_sized_for(tmp_path: Path):
    code, sized = _size(tmp_path, "out")
    assert code == 0 and sized["slo"]["p99_ms"] == 1000.0  # not the scenario's own 5 s


@pytest.mark.parametrize(
    "option, message",
    [
        ("deployment.replicas", "--set 'deployment.replicas': expected PATH=VALUE"),
        ("stages.forwrd.service_ms=3", "--set: stages.forwrd: no item named 'forwrd'"),
        (
            "deployment.replicas=-2",
            "--set: scenario: invalid scenario; deployment.replicas: Input should be greater than 0",
        ),
        ("seed=[unclosed", "--set seed: not valid YAML"),
    ],
)
def test_a_malformed_set_is_a_clear_error_for_size_and_advise(tmp_path: Path, capsys, option, message):
    from sim.cli.main import main

    scenario = str(_scenario_file(tmp_path))
    for argv in (
        ["size", scenario, "--set", option, "--out", str(tmp_path / "out")],
        ["advise", scenario, "--set", option],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("servesim: error: ") and message in err and err.count("\n") == 1, err
        assert "Traceback" not in err


def test_advise_applies_set_overrides(tmp_path: Path, capsys):
    from sim.cli.main import main

    code = main(
        [
            "advise",
            str(_scenario_file(tmp_path)),
            "--set",
            "deployment.replicas=4",
            "--max-stack",
            "1",
            "--requests",
            "500",
            "--replications",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "replicas 4 -> " in out


def test_a_scenario_without_hardware_is_sized_on_what_it_names(tmp_path: Path):
    # No deployment.hardware at all (a capacity question before pricing): sizing keeps the scenario as
    # written rather than inventing a hardware entry that validation would reject.
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 30}, service_ms={"dist": "exponential", "mean": 100}, requests=3000
    )
    assert scenario.deployment.hardware.name is None
    (candidate,) = parse_candidates(None, scenario, {})
    assert candidate.own and candidate.apply(scenario).deployment.hardware == scenario.deployment.hardware
    result = size(scenario, 1000.0, [candidate], replications=3)
    assert result.chosen is not None and result.chosen.replicas >= 4  # offered load 3 Erlangs needs at least 4


def test_probes_in_a_process_pool_give_the_same_sizing():
    """`--workers`: each probe's replications run in parallel processes, with the same answer and figures."""
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 3.0},
        service_ms={"dist": "exponential", "mean": 1000},
        requests=3000,
        hardware={"name": "x", "usd_per_hour": 1.0},
    )
    alone = size(scenario, 8000.0, [Candidate("x", 1.0)], replications=3)
    pooled = size(scenario, 8000.0, [Candidate("x", 1.0)], replications=3, workers=2)
    assert alone.chosen is not None
    assert pooled.frontier().equals(alone.frontier())
    assert pooled.chosen == alone.chosen and pooled.recheck == alone.recheck


def smallest_by_erlang_c_quantile(q: float, rate: float, slo_s: float, most: int = 50) -> int | None:
    """Fewest servers whose M/M/c sojourn q-quantile (mean service 1 s) is within slo_s; None up to `most`."""
    return next(
        (c for c in range(1, most + 1) if rate < c and theory.mmc_sojourn_quantile(q, c, rate, 1.0) <= slo_s), None
    )


def test_a_p95_budget_alone_sizes_by_the_p95_erlang_c_allows():
    """Sized on a p95 only (no p99): the count is the smallest Erlang C gives for the p95 (8: p95 3.29 s),
    or one or two more where the CI's upper end asks for them — where a p99 of 3.5 s is out of reach at any
    count (the service time's own p99 is 4.6 s)."""
    rate, slo_ms = 6.0, 3500.0
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": rate},
        service_ms={"dist": "exponential", "mean": 1000},
        requests=20_000,
        hardware={"name": "x", "usd_per_hour": 1.0},
    )
    by_p95 = smallest_by_erlang_c_quantile(0.95, rate, slo_ms / 1000)
    assert by_p95 == 8 and smallest_by_erlang_c_quantile(0.99, rate, slo_ms / 1000) is None
    result = size(scenario, None, [Candidate("x", 1.0)], slo_p95_ms=slo_ms, replications=3)
    chosen = result.chosen
    assert by_p95 <= chosen.replicas <= by_p95 + 2
    assert chosen.p95_ms <= slo_ms and chosen.p95_ci95[1] <= slo_ms
    assert result.chosen_scenario.slo.p95_ms == slo_ms and result.chosen_scenario.slo.p99_ms is None


def test_size_takes_p95_and_p50_budgets_on_the_command_line(tmp_path: Path, capsys):
    code, sized = _size(tmp_path, "out", "--slo-p95-ms", "800", "--slo-p50-ms", "300")
    out = capsys.readouterr().out
    assert code == 0
    assert "p99 ≤ 1,000 ms and p95 ≤ 800 ms and p50 ≤ 300 ms" in " ".join(out.split())
    assert sized["slo"]["p95_ms"] == 800 and sized["slo"]["p50_ms"] == 300 and sized["slo"]["p99_ms"] == 1000
    assert ", p95 " in out and ", p50 " in out  # each probe shows the figures it is judged on


def test_the_size_report_shows_each_probes_evidence_and_the_day_price_where_the_summary_gives_it(
    tmp_path: Path, capsys, monkeypatch
):
    """The frontier table: count, p99 with its CI as [low, high], worst-window p99, $/h, $/day (a summary
    of a day-long horizon gives `cost.usd_per_day`), verdict; the chosen line and one fewer's re-check."""
    from sim.analysis import sizing
    from sim.analysis.sizing import Probe

    def fake_probe(scenario, hardware, count, budgets, *, seed, **options):
        p99 = 2000.0 / count  # meets 1,000 ms (with its CI) from 3 replicas on
        point = Probe(
            hardware, count, p99, (p99 * 0.9, p99 * 1.1), 1.0 * count, 5.0, p99 * 1.2, "", usd_per_day=24.0 * count
        )
        point.verdict = sizing.verdict(point, budgets)
        return point

    monkeypatch.setattr(sizing, "probe", fake_probe)
    monkeypatch.setenv("COLUMNS", "200")
    code, _ = _size(tmp_path, "out")
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if "verdict" in line)
    for column in ("p99 95% CI", "worst window p99", "$/h", "$/day", "$/1M queries"):
        assert column in header
    assert "[600 ms, 733 ms]" in out  # 3 replicas: p99 667 ms, CI [600, 733]
    assert "chosen: x, replicas = 3" in " ".join(out.split()) and "$72.00 per day" in out
    assert "one fewer (replicas = 2) on fresh seeds" in out
    assert "Searched x: replicas" in out
