"""`servesim advise SCENARIO`: profile the scenario, rank stacks of one to three levers, recommend one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.cli.overrides import add_set_option
from sim.cli.scenarios import scenario_argument


def register(subparsers) -> None:
    advise = subparsers.add_parser(
        "advise", help="profile the scenario, then rank stacks of 1-3 levers by tail latency, cost and accuracy"
    )
    advise.add_argument("scenario", type=scenario_argument, help="scenario YAML file or shipped scenario name")
    slo = advise.add_mutually_exclusive_group()
    slo.add_argument("--slo-p99-ms", type=float, help="p99 budget in ms (default: the scenario's slo)")
    slo.add_argument("--slo-p95-ms", type=float, help="p95 budget in ms instead")
    advise.add_argument("--budget-usd-per-1m", type=float, help="cost ceiling, USD per million queries")
    advise.add_argument("--requests", type=int, help="requests per replication per stack (default: the advisor's)")
    advise.add_argument("--replications", type=int, help="replications per stack, for CIs (default: the advisor's)")
    advise.add_argument("--max-stack", type=int, default=3, help="most levers in a stack, 1-3 (default 3)")
    advise.add_argument(
        "--cache-hit-rate", type=float, default=0.3, help="assumed hit rate of caches the advisor adds (default 0.3)"
    )
    advise.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    add_set_option(advise)
    advise.add_argument("--top", type=int, default=12, help="rows of the ranked table to print (default 12)")
    advise.add_argument("--out", type=Path, help="folder for advice.md, waterfall.png, pareto.png, recommended.yaml")
    advise.set_defaults(func=cmd_advise)


def cmd_advise(args: argparse.Namespace) -> int:
    from sim.analysis.advise import DEFAULT_REPLICATIONS, DEFAULT_REQUESTS, advise
    from sim.cli.overrides import apply_set_options
    from sim.cli.paths import check_advise_args
    from sim.present.advise_report import text_report, write_report
    from sim.errors import ServesimError
    from sim.spec.scenario import load_scenario

    check_advise_args(args)
    if args.budget_usd_per_1m is not None and args.budget_usd_per_1m <= 0:
        raise ServesimError(f"--budget-usd-per-1m must be positive (got {args.budget_usd_per_1m})")
    if args.top < 1:
        raise ServesimError(f"--top must be at least 1 (got {args.top})")
    scenario = apply_set_options(load_scenario(args.scenario), args.set)
    result = advise(
        scenario,
        slo_p99_ms=args.slo_p99_ms,
        slo_p95_ms=args.slo_p95_ms,
        budget_usd_per_1m=args.budget_usd_per_1m,
        requests=args.requests or DEFAULT_REQUESTS,
        replications=args.replications or DEFAULT_REPLICATIONS,
        max_stack=args.max_stack,
        seed=args.seed,
        cache_hit_rate=args.cache_hit_rate,
        on_progress=lambda what: print(f"  evaluating {what}", file=sys.stderr),
    )
    print(text_report(result, args.top))
    if args.out:
        path = write_report(result, args.out)
        print(f"report: {path}")
    return 0
