"""`servesim size`: the smallest replica count / min_replicas and cheapest hardware meeting a p99 SLO."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sim.cli.paths import check_size_args
from sim.errors import ServesimError


def register(subparsers) -> None:
    size = subparsers.add_parser(
        "size", help="smallest replicas (or autoscaling min_replicas) and cheapest hardware meeting a p99 SLO"
    )
    size.add_argument("scenario", type=Path)
    size.add_argument("--slo-p99-ms", type=float, help="p99 budget (default: the scenario's slo.p99_ms)")
    size.add_argument("--hardware", help="candidates: NAME[@SPEEDUP][=PROFILE],... priced from models/hardware.yaml")
    size.add_argument("--replications", type=int, default=5, help="replications per probe (default 5)")
    size.add_argument("--requests", type=int, help="requests per replication (default: the scenario's)")
    size.add_argument("--every-window-s", type=float, metavar="S",
                      help="also require p99 within the SLO in every S-second window (spikes, cold starts); "
                           "default for a load that changes over time: the windows of `servesim run` (≤ 5 min); 0: off")
    size.add_argument("--seed", type=int)
    size.add_argument("--out", type=Path, default=Path("sizing"), help="folder for the frontier CSV, plot and chosen scenario")
    size.set_defaults(func=cmd_size)


def cmd_size(args: argparse.Namespace) -> int:
    from sim.present.sizing_plot import frontier_plot
    from rich.console import Console
    from rich.table import Table

    from sim.present.table import fmt_ci, fmt_ms
    from sim.spec.hardware import load_catalogue
    from sim.spec.scenario import load_scenario
    from sim.analysis.sizing import parse_candidates, size

    check_size_args(args)
    scenario = load_scenario(args.scenario)
    slo = args.slo_p99_ms if args.slo_p99_ms is not None else scenario.slo.p99_ms
    if not slo or slo <= 0:
        raise ServesimError("give --slo-p99-ms or slo.p99_ms in the scenario")
    if args.replications < 2:
        raise ServesimError("--replications must be at least 2: sizing needs a confidence interval")
    candidates = parse_candidates(args.hardware, scenario, load_catalogue() if args.hardware else {})
    console = Console()
    knob = "min_replicas" if scenario.deployment.autoscaling else "replicas"
    console.print(f"sizing {scenario.name}: smallest {knob} with p99 95% CI upper ≤ {fmt_ms(slo)}")

    def show(probe) -> None:
        console.print(f"  {probe.hardware} {knob}={probe.replicas}: p99 {fmt_ms(probe.p99_ms)} "
                      f"{fmt_ci(list(probe.p99_ci95))} → {probe.verdict}")

    result = size(scenario, slo, candidates, replications=args.replications, requests=args.requests,
                  window_s=args.every_window_s, seed=args.seed, on_probe=show)
    args.out.mkdir(parents=True, exist_ok=True)
    frontier = result.frontier()
    frontier.to_csv(args.out / "frontier.csv", index=False)
    frontier_plot(frontier, slo, knob, args.out / "frontier.png")
    table = Table(title=f"frontier ({knob} vs p99 vs cost)")
    for column in ("hardware", knob, "p99", "p99 95% CI", "worst window p99", "$/h", "$/1M queries", "verdict"):
        table.add_column(column, justify="right")
    for p in result.probes:
        table.add_row(p.hardware, str(p.replicas), fmt_ms(p.p99_ms), fmt_ci(list(p.p99_ci95)),
                      fmt_ms(p.worst_window_p99_ms), _usd(p.usd_per_hour), _usd(p.usd_per_1m_queries), p.verdict)
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if result.chosen is None:
        console.print("[red]no candidate meets the SLO[/red]")
        return 1
    chosen = result.chosen
    path = args.out / f"{scenario.name}-sized.yaml"
    path.write_text(result.chosen_scenario.to_yaml())
    console.print(f"[green]chosen:[/green] {chosen.hardware}, {knob} = {chosen.replicas}: p99 {fmt_ms(chosen.p99_ms)} "
                  f"{fmt_ci(list(chosen.p99_ci95))}, {_usd(chosen.usd_per_1m_queries)} per 1M queries → {path}")
    recheck = result.recheck
    console.print(f"re-check on fresh seeds: p99 {fmt_ms(recheck.p99_ms)} {fmt_ci(list(recheck.p99_ci95))} → {recheck.verdict}")
    fewer = result.one_fewer_recheck
    if fewer is not None:
        console.print(f"one fewer ({knob} = {fewer.replicas}) on fresh seeds: p99 {fmt_ms(fewer.p99_ms)} → {fewer.verdict}"
                      + (" (too close to call: the CI straddles the SLO)" if fewer.verdict == "too close" else ""))
    return 0


def _usd(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"${value:,.2f}"
