"""Time-varying runs tell the truth (issue 20): the throughput of a daily curve is its served requests over
the measured horizon, whatever the replication count; its confidence intervals come from replications,
never from sections of one day (they are not exchangeable); a count of requests never silently stands
for the horizon; and the day's cost is one figure, the same in the CLI table and on the planner's page."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sim.analysis.simulate import simulate
from sim.cli.main import main
from sim.engine.run import simulate_replication
from sim.errors import ScenarioError
from sim.metrics.stages import stage_shares
from sim.present.table import summary_tables
from sim.spec.scenario import parse_scenario, parse_scenario_text

ROOT = Path(__file__).resolve().parents[1]

# Two rush hours a period: the rate climbs linearly from 20 to 100 req/s and back every two minutes; eight
# minutes after a 30 s warm-up. The service is fast (2 ms on 2 replicas: load 0.1 at the peak), so every
# request is served and throughput is the arrival rate.
POINTS = [(0.0, 20.0), (60.0, 100.0), (120.0, 20.0)]
PERIOD_S, DURATION_S, WARMUP_S = 120.0, 480.0, 30.0
RUSH = {
    "name": "rush-hours",
    "seed": 11,
    "workload": {
        "arrival": {"process": "time_varying", "period_s": PERIOD_S, "points": [list(p) for p in POINTS]},
        "duration_s": DURATION_S,
        "warmup_s": WARMUP_S,
    },
    "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 2}}],
    "deployment": {"replicas": 2, "hardware": {"usd_per_hour": 0.5}},
    "slo": {"p99_ms": 50},
}


def rate_rps(t_s: np.ndarray) -> np.ndarray:
    """The rate the scenario describes: piecewise linear through POINTS, repeated every period."""
    xs, ys = zip(*POINTS)
    return np.interp(np.mod(t_s, PERIOD_S), xs, ys)


def mean_rate_rps(a_s: float, b_s: float) -> float:
    """(1 / (b - a)) ∫_a^b λ(t) dt. λ is linear between its knots, so the trapezoid rule over the knots in
    [a, b] is exact."""
    knots = {a_s, b_s}
    for k in range(int(a_s // PERIOD_S), int(b_s // PERIOD_S) + 1):
        knots |= {k * PERIOD_S + x for x, _ in POINTS if a_s < k * PERIOD_S + x < b_s}
    t = np.array(sorted(knots))
    values = rate_rps(t)
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(t)) / (b_s - a_s))


@pytest.fixture(scope="module", params=[1, 2], ids=["1 replication", "2 replications"])
def rush(request):
    return simulate(parse_scenario(RUSH), replications=request.param)


def test_throughput_is_the_true_mean_rate_for_one_replication_and_for_two(rush):
    horizon_s = DURATION_S - WARMUP_S
    expected = mean_rate_rps(WARMUP_S, DURATION_S)
    replications = rush.summary["replications"]
    # The count of a Poisson process over the horizon has variance Λ; over R replications, Λ / R. The few
    # requests in the system at either edge (load 0.1) are well inside the slack of one request.
    half_width = 4 * math.sqrt(expected * horizon_s / replications) / horizon_s + 1 / horizon_s
    assert abs(rush.summary["throughput_rps"] - expected) < half_width
    # ... and it is, exactly, the requests served in the measured horizon over its length.
    log = rush.log
    served = [
        ((part["departure_ms"] >= WARMUP_S * 1000) & (part["departure_ms"] <= DURATION_S * 1000)).sum()
        for _, part in log.groupby("replication")
    ]
    assert rush.summary["throughput_rps"] == pytest.approx(np.mean(served) / horizon_s, rel=1e-12)


def test_sections_of_one_day_would_overstate_it():
    """Why the throughput is not a mean over consecutive sections of equal request counts: a busy
    section is short, a quiet one long, so their mean rate weighs the rate by itself: ∫λ² / ∫λ."""
    t = np.linspace(0, PERIOD_S, 100_001)
    count_weighted = float(np.mean(rate_rps(t) ** 2) / np.mean(rate_rps(t)))
    assert count_weighted > 1.1 * mean_rate_rps(0, PERIOD_S)  # 68.9 against 60 req/s: the bug of issue 20


def test_one_replication_of_a_day_has_no_interval_and_says_to_run_two(rush):
    summary = rush.summary
    if summary["replications"] != 1:
        pytest.skip("the one-replication case")
    for key, interval in summary["latency_ms_ci95"].items():
        assert all(math.isnan(v) for v in interval), key
    assert json.loads(json.dumps(_json(summary)))["latency_ms_ci95"]["p99"] == [None, None]
    assert any(w.startswith("no confidence intervals") and "--replications 2" in w for w in summary["warnings"])
    latency_table = next(t for t in summary_tables(summary) if getattr(t, "title", "") == "end-to-end latency")
    assert list(latency_table.columns[2].cells) == ["n/a"] * 6


def test_two_replications_give_a_student_t_interval_over_the_replications(rush):
    summary = rush.summary
    if summary["replications"] != 2:
        pytest.skip("the two-replication case")
    log = rush.log
    measured = log[~log["warmup"] & ~log["rejected"]]
    p99 = [np.quantile(part["latency_ms"], 0.99) for _, part in measured.groupby("replication")]
    # Student t with one degree of freedom is Cauchy: its 97.5% quantile is tan(π (0.975 - 1/2)).
    half = math.tan(math.pi * 0.475) * np.std(p99, ddof=1) / math.sqrt(2)
    low = max(np.mean(p99) - half, measured["latency_ms"].min())  # clipped to the latencies measured
    high = min(np.mean(p99) + half, measured["latency_ms"].max())
    assert summary["latency_ms"]["p99"] == pytest.approx(np.mean(p99), rel=1e-12)
    assert summary["latency_ms_ci95"]["p99"] == pytest.approx([low, high], rel=1e-12)


def test_a_stationary_single_replication_keeps_batch_means_about_the_whole_run():
    steady = {
        **RUSH,
        "workload": {"arrival": {"process": "poisson", "rate_rps": 60}, "requests": 20_000, "warmup_requests": 1000},
    }
    summary = (result := simulate(parse_scenario(steady), replications=1)).summary
    log = result.log
    measured = log[~log["warmup"]].sort_values("arrival_ms", kind="stable")
    latency = measured["latency_ms"].to_numpy()
    whole = np.quantile(latency, 0.99)
    bounds = np.linspace(0, len(latency), 11).astype(int)
    sections = [np.quantile(latency[a:b], 0.99) for a, b in zip(bounds, bounds[1:])]
    half = stats.t.ppf(0.975, 9) * np.std(sections, ddof=1) / math.sqrt(10)
    assert summary["latency_ms"]["p99"] == pytest.approx(whole, rel=1e-12)
    assert summary["latency_ms_ci95"]["p99"] == pytest.approx([whole - half, whole + half], rel=1e-9)
    assert any("10 sections of one replication (batch means)" in w for w in summary["warnings"])


def test_an_llm_stage_on_a_day_of_one_replication_has_no_interval_either():
    scenario = parse_scenario_text(
        (ROOT / "scenarios" / "llm-chat-continuous.yaml").read_text(), base_dir=ROOT / "scenarios"
    ).with_overrides(
        {
            "workload.arrival": {"process": "time_varying", "period_s": 60, "points": [[0, 1], [30, 4], [60, 1]]},
            "workload.tokens": {"prompt": 200, "output": 20},
            "workload.duration_s": 120,
        }
    )
    llm = simulate(scenario, replications=1).summary["llm"]
    assert llm["ttft_ms"]["p99"] is not None and llm["ci95"]["ttft_ms"] == {}


def test_a_streamed_day_of_one_replication_reports_what_the_kept_one_does():
    kept = simulate(parse_scenario(RUSH), replications=1)
    streamed = simulate(parse_scenario(RUSH), replications=1, keep_log=False)
    assert json.dumps(_json(streamed.summary), sort_keys=True) == json.dumps(_json(kept.summary), sort_keys=True)


# --- a count of requests is not a day -------------------------------------------------------------------------

DAY = ROOT / "scenarios" / "autoscale-diurnal.yaml"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", str(DAY), "--requests", "20000"],
        ["run", str(DAY), "--requests", "20000", "--json"],
        ["size", str(DAY), "--slo-p99-ms", "200", "--requests", "20000"],
        ["advise", str(DAY), "--requests", "2000"],
    ],
    ids=["run", "run --json", "size", "advise"],
)
def test_requests_on_a_time_varying_day_is_refused_naming_the_option(argv, capsys):
    assert main(argv) == 2  # as any other scenario error
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("servesim: error: --requests: ")
    if argv[0] != "size":  # (size says it in its own words, before its first probe)
        assert "changes over time" in err and "--set workload.duration_s=" in err


def test_the_engine_entry_every_command_uses_refuses_it_too():
    """Sweep tasks and the planner reach the engine through simulate_replication / simulate."""
    day = parse_scenario({**RUSH})
    with pytest.raises(ScenarioError, match="^--requests: "):
        simulate_replication(day, 0, seed=1, requests=1000)
    with pytest.raises(ScenarioError, match="^--requests: "):
        simulate(day, requests=1000)


def test_a_time_varying_scenario_file_gives_a_horizon_not_a_count():
    text = json.dumps({**RUSH, "workload": {"arrival": RUSH["workload"]["arrival"], "requests": 5000}})
    with pytest.raises(ScenarioError, match=r"workload: requests \(5000\): a time_varying arrival runs over a horizon"):
        parse_scenario_text(text)
    # Without a length, a curve runs one period, else to its last point or the end of its last spike.
    bare = parse_scenario({**RUSH, "workload": {"arrival": RUSH["workload"]["arrival"]}})
    assert bare.workload.length() == (None, PERIOD_S * 1000)
    spike = {"process": "time_varying", "points": [[0, 5]], "spikes": [{"at_s": 10, "duration_s": 5, "multiplier": 3}]}
    flat_with_a_spike = parse_scenario({**RUSH, "workload": {"arrival": spike}})
    assert flat_with_a_spike.workload.length() == (None, 15_000.0)
    result = simulate(flat_with_a_spike, replications=1)
    warmup_ends_s = result.log.loc[result.log["warmup"], "arrival_ms"].max() / 1000  # a share of the requests
    assert result.summary["cost"]["horizon_s"] == pytest.approx(15 - warmup_ends_s, rel=1e-12)


def test_a_flat_time_varying_rate_is_no_day_and_may_be_cut():
    flat = {**RUSH["workload"]["arrival"], "points": [[0, 40], [120, 40]]}
    scenario = parse_scenario({**RUSH, "workload": {"arrival": flat, "requests": 2000}})
    assert len(simulate_replication(scenario, 0, seed=1, requests=500).requests) == 500


# --- the day's cost ---------------------------------------------------------------------------------------------

# A quiet day (0.05 req/s at midnight, 0.2 at 14:00: ~10,800 requests) on an autoscaled fleet of $0.50/h
# replicas with 5 s cold starts: the replica-hours follow the curve.
QUIET_DAY = """
name: quiet-day
seed: 5
replications: {replications}
workload:
  arrival: {{process: time_varying, period_s: 86400, points: [[0, 0.05], [50400, 0.2], [86400, 0.05]]}}
  duration_s: 86400
  warmup_s: 600
stages:
  - name: forward
    kind: model
    service_ms: {{dist: exponential, mean: 2000}}
deployment:
  cold_start_ms: {{dist: constant, value: 5000}}
  autoscaling: {{policy: ray_serve, min_replicas: 0, max_replicas: 4, target_ongoing_requests: 1,
                upscale_delay_s: 5, downscale_delay_s: 60}}
  hardware: {{name: l4, usd_per_hour: 0.5}}
slo: {{p99_ms: 8000}}
"""
PRICE = 0.5


def paid_replica_ms(timeline, t0: float, t1: float) -> float:
    """∫ paid replicas dt over [t0, t1], segment by segment of the replica timeline."""
    timeline = timeline.sort_values("time_ms", kind="stable")
    times = [*timeline["time_ms"], math.inf]
    paid = list(timeline["warm"] + timeline["starting"] + timeline["draining"])
    return sum(v * max(min(times[i + 1], t1) - max(times[i], t0), 0.0) for i, v in enumerate(paid))


def test_the_days_cost_is_the_replica_hours_of_the_day_at_the_price():
    result = simulate(parse_scenario_text(QUIET_DAY.format(replications=2)))
    t0, t1 = 600_000.0, 86_400_000.0
    per_day = [
        PRICE * paid_replica_ms(part, t0, t1) / 3.6e6 * 86_400_000.0 / (t1 - t0)
        for _, part in result.run.timeline.groupby("replication")
    ]
    cost = result.summary["cost"]
    assert cost["usd_per_day"] == pytest.approx(np.mean(per_day), rel=1e-9)
    assert "usd_for_horizon" not in cost
    # Beside $/h and $/1M of the same replica-time: a day is 24 of its mean hours.
    assert cost["usd_per_day"] == pytest.approx(24 * cost["usd_per_hour"], rel=1e-9)


def test_a_horizon_shorter_than_a_day_is_priced_as_itself():
    short = parse_scenario(RUSH)  # eight minutes on 2 fixed replicas
    cost = simulate(short, replications=1).summary["cost"]
    assert "usd_per_day" not in cost
    assert cost["horizon_s"] == DURATION_S - WARMUP_S
    assert cost["usd_for_horizon"] == pytest.approx(2 * PRICE * (DURATION_S - WARMUP_S) / 3600, rel=1e-12)


def _json(summary: dict) -> dict:
    from sim.present.report import _json_ready

    return _json_ready(summary)


# --- the planner's page: one p99, the day's cost as the CLI prints it ----------------------------------------


@pytest.fixture(scope="module")
def quiet_day_page(tmp_path_factory):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    text = QUIET_DAY.format(replications=1)
    at.file_uploader(key="upload").upload("quiet-day.yaml", text.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "quiet-day"
    path = tmp_path_factory.mktemp("day") / "quiet-day.yaml"
    path.write_text(text)
    return at, path


def test_the_page_shows_one_p99(quiet_day_page):
    at, _ = quiet_day_page
    card = next(m for m in at.metric if m.label.startswith("p99 latency"))
    sentence = next(c.value for c in at.caption if c.value.startswith("At p99"))
    total = re.search(r"of a request's ([\d,.]+) ms", sentence).group(1)
    assert card.value == f"{total} ms"  # the card and "where latency lives" show the same p99
    assert any(f"The p99 on the cards ({total} ms)" in c.value for c in at.caption)  # beside the per-window table
    assert any("p99 (ms)" in frame.value.columns for frame in at.dataframe)


def test_the_page_shows_intervals_as_low_high_or_na_never_plus_minus(quiet_day_page):
    at, _ = quiet_day_page
    labels = [m.label for m in at.metric if "latency" in m.label]
    assert labels and all("±" not in label for label in labels)
    assert all(label.endswith("[CI n/a]") for label in labels)  # one replication of a day: no interval
    assert any("--replications 2" in w.value for w in at.warning)


def test_the_page_and_the_cli_show_the_same_days_cost(quiet_day_page, capsys):
    at, path = quiet_day_page
    card = next(m for m in at.metric if m.label.startswith("$ per 1M"))
    page = re.search(r"\$[\d,.]+/day", card.proto.delta).group(0)
    assert main(["run", str(path)]) == 0
    cli = re.search(r"\$[\d,.]+/day", capsys.readouterr().out).group(0)
    assert main(["run", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert page == cli == f"${summary['cost']['usd_per_day']:,.2f}/day"


def test_stage_shares_scaled_to_the_summarys_percentiles_add_up_to_them(rush):
    log = rush.log
    shares = stage_shares(log, ["forward_queue_ms", "forward_ms"], totals=rush.summary["latency_ms"])
    for row in ("p50", "p99"):
        assert shares.loc[row].sum() == pytest.approx(rush.summary["latency_ms"][row], rel=1e-12)


def test_no_warm_up_asked_over_a_horizon_discards_nothing():
    # warmup_requests: 0 with duration_s: every request is measured (it was 5%, the default share).
    from sim.spec.scenario import parse_scenario

    scenario = parse_scenario(
        {
            "name": "horizon-no-warmup",
            "seed": 1,
            "workload": {"arrival": {"process": "poisson", "rate_rps": 50}, "duration_s": 20, "warmup_requests": 0},
            "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "constant", "value": 1}}],
        }
    )
    assert scenario.workload.warmup_share() == 0.0
    arrivals = np.sort(np.random.default_rng(0).uniform(0, 20_000, 1000))
    assert not scenario.workload.warmup_mask(arrivals, own_length=False).any()
    # 100 warm-up requests over a horizon that expects 1,000 discard a tenth.
    tenth = scenario.with_overrides({"workload.warmup_requests": 100})
    assert tenth.workload.warmup_share() == pytest.approx(0.1)
