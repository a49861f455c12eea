"""`servesim size`: the smallest replica count / min_replicas and cheapest hardware meeting a p99 SLO
(for an LLM stage: TTFT and TPOT p99 budgets, priced per 1M output tokens)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sim.cli.overrides import add_set_option
from sim.cli.paths import check_size_args
from sim.cli.scenarios import scenario_argument
from sim.errors import ServesimError

EXIT_NO_CANDIDATE = 4  # answered, but no candidate meets the SLO (sim/cli/main.py, README "Exit codes")


def register(subparsers) -> None:
    size = subparsers.add_parser(
        "size", help="smallest replicas (or autoscaling min_replicas) and cheapest hardware meeting a p99 SLO"
    )
    size.add_argument("scenario", type=scenario_argument, help="scenario YAML file or shipped scenario name")
    size.add_argument("--slo-p99-ms", type=float, help="p99 budget (default: the scenario's slo.p99_ms)")
    size.add_argument(
        "--slo-p95-ms", type=float, help="p95 budget, judged beside the p99 (default: the scenario's slo.p95_ms)"
    )
    size.add_argument(
        "--slo-p50-ms", type=float, help="p50 budget, judged beside the p99 (default: the scenario's slo.p50_ms)"
    )
    size.add_argument(
        "--ttft-p99-ms",
        type=float,
        help="LLM stage: time-to-first-token p99 budget (default without a p99 SLO: slo.ttft_ms)",
    )
    size.add_argument(
        "--tpot-p99-ms",
        type=float,
        help="LLM stage: time-per-output-token p99 budget (default without a p99 SLO: slo.tpot_ms)",
    )
    size.add_argument("--hardware", help="candidates: NAME[@SPEEDUP][=PROFILE],... priced from models/hardware.yaml")
    size.add_argument("--replications", type=int, default=5, help="replications per probe (default 5)")
    size.add_argument(
        "--requests",
        type=int,
        help="requests per replication (default: the scenario's); a steady load only: a load that follows "
        "a time profile is simulated over its whole horizon",
    )
    size.add_argument(
        "--every-window-s",
        type=float,
        metavar="S",
        help="also require p99 within the SLO in every S-second window (spikes, cold starts); "
        "default for a load that changes over time: the windows of `servesim run` (≤ 5 min); 0: off",
    )
    size.add_argument("--seed", type=int)
    size.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run each probe's replications in parallel in this many processes (same results; default 1)",
    )
    size.add_argument(
        "--no-colocated",
        action="store_true",
        help="a disaggregated LLM stage: size its prefill and decode pools only, not also the colocated fleet",
    )
    add_set_option(size)
    size.add_argument(
        "--out", type=Path, default=Path("sizing"), help="folder for the frontier CSV, plot and chosen scenario"
    )
    size.set_defaults(func=cmd_size)


def cmd_size(args: argparse.Namespace) -> int:
    from sim.present.sizing_plot import frontier_plot, searched_text
    from rich.console import Console

    from sim.cli.overrides import apply_set_options
    from sim.spec.hardware import load_catalogue
    from sim.spec.scenario import load_scenario
    from sim.analysis.sizing import check_requests, llm_budgets, parse_candidates, size
    from sim.present.progress import steps
    from sim.spec.transforms import split_stage

    check_size_args(args)
    if args.replications < 2:
        raise ServesimError("--replications must be at least 2: sizing needs a confidence interval")
    scenario = apply_set_options(load_scenario(args.scenario), args.set)
    split = split_stage(scenario)
    if split is not None and args.hardware:
        raise ServesimError(
            f"--hardware: stages.{split}.disaggregated sizes its prefill and decode pools on the scenario's hardware; "
            "give each pool its profile in the scenario (disaggregated.decode.profile) to size another GPU"
        )
    check_requests(scenario, args.requests)
    given = [args.slo_p99_ms, args.slo_p95_ms, args.slo_p50_ms, args.ttft_p99_ms, args.tpot_p99_ms]
    slo = scenario.slo if all(value is None for value in given) else None  # none given: the scenario's own
    budgets = llm_budgets(
        scenario,
        slo.p99_ms if slo else args.slo_p99_ms,
        args.ttft_p99_ms,
        args.tpot_p99_ms,
        slo.p95_ms if slo else args.slo_p95_ms,
        slo.p50_ms if slo else args.slo_p50_ms,
    )
    if split is not None:
        return _size_split(scenario, budgets, args)
    candidates = parse_candidates(args.hardware, scenario, load_catalogue() if args.hardware else {})
    console = Console()
    knob = "min_replicas" if scenario.deployment.autoscaling else "replicas"
    console.print(f"sizing {scenario.name}: smallest {knob} with {_describe(budgets)} (95% CI upper end)")

    def show(probe) -> None:
        console.print(f"  {probe.hardware} {knob}={probe.replicas}: {_figures(probe, budgets)} → {probe.verdict}")

    # Over the whole sizing: replications done of those the gallop / bisect plan takes on average from here.
    with steps("sizing", "replications (expected)") as bar:
        result = size(
            scenario,
            budgets.p99_ms,
            candidates,
            ttft_p99_ms=budgets.ttft_p99_ms,
            tpot_p99_ms=budgets.tpot_p99_ms,
            slo_p95_ms=budgets.p95_ms,
            slo_p50_ms=budgets.p50_ms,
            replications=args.replications,
            requests=args.requests,
            window_s=args.every_window_s,
            seed=args.seed,
            on_probe=show,
            on_progress=lambda state: bar(
                state.replications_done, state.replications_done + math.ceil(state.replications_expected)
            ),
            workers=args.workers,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    frontier = result.frontier()
    frontier.to_csv(args.out / "frontier.csv", index=False)
    if budgets.p99_ms is not None:  # the plot is of the end-to-end p99 against its SLO
        frontier_plot(frontier, budgets.p99_ms, knob, args.out / "frontier.png")
    console.print(_frontier_table(result, knob))
    console.print(searched_text(result.ranges, knob))
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if result.chosen is None:
        console.print("[red]no candidate meets the SLO[/red]")
        return EXIT_NO_CANDIDATE
    chosen = result.chosen
    path = args.out / f"{scenario.name}-sized.yaml"
    path.write_text(result.chosen_scenario.to_yaml())
    console.print(
        f"[green]chosen:[/green] {chosen.hardware}, {knob} = {chosen.replicas}: {_figures(chosen, budgets)}, "
        f"{_price(chosen)} → {path}"
    )
    recheck = result.recheck
    console.print(f"re-check on fresh seeds: {_figures(recheck, budgets)} → {recheck.verdict}")
    fewer = result.one_fewer_recheck
    if fewer is not None:
        console.print(
            f"one fewer ({knob} = {fewer.replicas}) on fresh seeds: {_figures(fewer, budgets)} → {fewer.verdict}"
            + (" (too close to call: the CI straddles the SLO)" if fewer.verdict == "too close" else "")
        )
    return 0


def _describe(budgets) -> str:
    """The budgets in words: 'p99 ≤ 200 ms', 'TTFT p99 ≤ 2,000 ms and TPOT p99 ≤ 100 ms'."""
    from sim.present.table import fmt_ms

    given = (
        ("p99", budgets.p99_ms),
        ("p95", budgets.p95_ms),
        ("p50", budgets.p50_ms),
        ("TTFT p99", budgets.ttft_p99_ms),
        ("TPOT p99", budgets.tpot_p99_ms),
    )
    return " and ".join(f"{label} ≤ {fmt_ms(value)}" for label, value in given if value is not None)


def _figures(probe, budgets) -> str:
    """A probe's p99 with its CI (and its worst window's where windows are judged), its p95 / p50 where
    budgeted, and for an LLM its TTFT and TPOT p99."""
    from sim.present.table import fmt_ci, fmt_ms

    text = f"p99 {fmt_ms(probe.p99_ms)} {fmt_ci(list(probe.p99_ci95))}"
    if probe.worst_window_p99_ms is not None:
        text += f", worst window p99 {fmt_ms(probe.worst_window_p99_ms)}"
    for key, budget in (("p95", budgets.p95_ms), ("p50", budgets.p50_ms)):
        if budget is not None:
            text += f", {key} {fmt_ms(getattr(probe, f'{key}_ms'))} {fmt_ci(_list(getattr(probe, f'{key}_ci95')))}"
    if probe.ttft_p99_ms is not None:
        text += (
            f", TTFT p99 {fmt_ms(probe.ttft_p99_ms)} {fmt_ci(_list(probe.ttft_ci95))}"
            f", TPOT p99 {fmt_ms(probe.tpot_p99_ms)} {fmt_ci(_list(probe.tpot_ci95))}"
        )
    return text


def _price(probe) -> str:
    per_day = f", {_usd(probe.usd_per_day)} per day" if probe.usd_per_day is not None else ""
    if probe.usd_per_1m_tokens is not None:
        return f"{_usd(probe.usd_per_1m_tokens)} per 1M output tokens{per_day}"
    return f"{_usd(probe.usd_per_1m_queries)} per 1M queries{per_day}"


def _frontier_table(result, knob: str):
    """Every probe: the count, its latencies and CIs, its cost and verdict. An LLM scenario shows TTFT /
    TPOT p99 and $ per 1M output tokens in place of the end-to-end CI and $ per 1M queries (the table
    must fit a terminal); the worst window shows only where windows were judged, $/day where the summary
    prices a day."""
    from rich.table import Table

    from sim.present.table import fmt_ci, fmt_ms

    llm = any(p.ttft_p99_ms is not None for p in result.probes)
    windows = any(p.worst_window_p99_ms is not None for p in result.probes)
    per_day = any(p.usd_per_day is not None for p in result.probes)
    columns = {
        "hardware": lambda p: p.hardware,
        knob: lambda p: str(p.replicas),
        "p99": lambda p: fmt_ms(p.p99_ms),
        **({} if llm else {"p99 95% CI": lambda p: fmt_ci(list(p.p99_ci95))}),
        **({"worst window p99": lambda p: fmt_ms(p.worst_window_p99_ms)} if windows else {}),
        **(
            {
                "TTFT p99": lambda p: fmt_ms(p.ttft_p99_ms),
                "TTFT 95% CI": lambda p: fmt_ci(_list(p.ttft_ci95)),
                "TPOT p99": lambda p: fmt_ms(p.tpot_p99_ms),
                "TPOT 95% CI": lambda p: fmt_ci(_list(p.tpot_ci95)),
            }
            if llm
            else {}
        ),
        "$/h": lambda p: _usd(p.usd_per_hour),
        **({"$/day": lambda p: _usd(p.usd_per_day)} if per_day else {}),
        **(
            {"$/1M tokens": lambda p: _usd(p.usd_per_1m_tokens)}
            if llm
            else {"$/1M queries": lambda p: _usd(p.usd_per_1m_queries)}
        ),
        "verdict": lambda p: p.verdict,
    }
    table = Table(title=f"frontier ({knob} vs latency vs cost)")
    for column in columns:
        table.add_column(column, justify="right")
    for p in result.probes:
        table.add_row(*(cell(p) for cell in columns.values()))
    return table


def _list(ci) -> list | None:
    return None if ci is None else list(ci)


def _usd(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"${value:,.2f}"


def _size_split(scenario, budgets, args) -> int:
    """A disaggregated stage: each pool's frontier, the pair chosen with its re-checks, the colocated fleet on the
    same budgets, and which of the two is cheaper per 1M output tokens (sim/analysis/sizing_split.py)."""
    import pandas as pd
    from rich.console import Console

    from sim.analysis.sizing_split import size_split
    from sim.present.progress import steps

    console = Console()
    console.print(
        f"sizing {scenario.name}: fewest prefill replicas with TTFT p99 within budget, then fewest decode replicas "
        f"with {_describe(budgets)} (95% CI upper end)"
    )

    def show(pool: str, probe) -> None:
        console.print(
            f"  {pool}: {probe.hardware} replicas={probe.replicas}: {_figures(probe, budgets)} → {probe.verdict}"
        )

    with steps("sizing", "replications (expected)") as bar:
        result = size_split(
            scenario,
            budgets,
            replications=args.replications,
            requests=args.requests,
            seed=args.seed,
            with_colocated=not args.no_colocated,
            on_probe=show,
            on_progress=lambda state: bar(
                state.replications_done, state.replications_done + math.ceil(state.replications_expected)
            ),
            workers=args.workers,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [{"pool": "prefill", **p.__dict__} for p in result.prefill] + [
        {"pool": "decode", **p.__dict__} for p in result.decode
    ]
    if result.colocated is not None:
        rows += [{"pool": "colocated", **p.__dict__} for p in result.colocated.probes]
    pd.DataFrame(rows).to_csv(args.out / "frontier.csv", index=False)
    for pool, probes in (("prefill pool (TTFT)", result.prefill), ("decode pool", result.decode)):
        if probes:
            console.print(_frontier_table_of(probes, f"{pool}: replicas vs latency vs cost"))
    if result.colocated is not None:
        console.print(_frontier_table(result.colocated, "replicas"))
    for note in result.notes + (result.colocated.notes if result.colocated else []):
        console.print(f"[yellow]note:[/yellow] {note}")
    from sim.present.headline import split_answer

    split, together = result.chosen, result.colocated.chosen if result.colocated else None
    console.print(f"[bold]answer:[/bold] {split_answer(result)}")
    if split is not None:
        path = args.out / f"{scenario.name}-sized.yaml"
        path.write_text(result.chosen_scenario.to_yaml())
        console.print(
            f"[green]disaggregated:[/green] {split.hardware}: {_figures(split, budgets)}, {_price(split)} → {path}"
        )
        for label, point in (
            ("re-check on fresh seeds", result.recheck),
            ("one fewer prefill", result.fewer_prefill),
            ("one fewer decode", result.fewer_decode),
        ):
            if point is not None:
                console.print(f"{label} ({point.hardware}): {_figures(point, budgets)} → {point.verdict}")
    else:
        console.print("[red]disaggregated: no split up to the search's ceiling meets the budgets[/red]")
    if result.colocated is not None:
        if together is not None:
            console.print(
                f"[green]colocated:[/green] {together.replicas} replicas: {_figures(together, budgets)}, {_price(together)}"
            )
        else:
            console.print("[red]colocated: no replica count up to the search's ceiling meets the budgets[/red]")
    return 0 if split is not None or together is not None else EXIT_NO_CANDIDATE


def _frontier_table_of(probes, title: str):
    """`_frontier_table` for a list of probes (one pool's)."""
    from sim.analysis.sizing import SizingResult

    table = _frontier_table(SizingResult(None, "replicas", probes=list(probes)), "replicas")
    table.title = title
    return table
