"""`servesim compare`: run variants of a scenario on the same seed and write a design-review report.

    servesim compare scenarios/vision-a100.yaml \\
        --variant 'none:batching=none' \\
        --variant 'dynamic 8:batching=dynamic(max_batch_size=8,max_queue_delay_ms=2)' \\
        --out out/vision-batching

Variant syntax: see sim/analysis/compare.py (`[NAME:]SETTING[,SETTING...]`).

The scenario as written is always a column — and a key of `--json` — named 'as configured' (the planner's
name), unless a variant already is it; `--baseline` (or a single variant) names it 'baseline', as before.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim.cli.paths import check_compare_args
from sim.cli.scenarios import scenario_argument
from sim.errors import ServesimError


# Each point of a report's p99-vs-load curve: longer than the app's interactive sweep, for a document.
LOAD_CURVE_REQUESTS = 5000
LOAD_CURVE_REPLICATIONS = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare variants (batching, replicas, hardware, ...) on the same traffic and seed; write a report",
        description="Run every --variant of SCENARIO on the same seed and write report.md with PNG plots to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "variant syntax: [NAME:]SETTING[,SETTING...] with SETTING one of\n"
            "  batching=none | static(batch_size=8,timeout_ms=10) | dynamic(max_batch_size=32,max_queue_delay_ms=5)\n"
            "  replicas=N  instances=N  routing=NAME  rate=RPS  load=FACTOR  hardware=NAME  slo=MS\n"
            "  split=P+D  colocated=N   (a disaggregated LLM stage: prefill + decode pools, or N colocated)\n"
            "  any.dotted.path=YAML   e.g. 'stages.forward.batching={policy: dynamic, max_batch_size: 32}'\n"
            "examples:\n"
            "  servesim compare scenarios/search-ranker.yaml --variant batching=none \\\n"
            "      --variant 'dyn32:batching=dynamic(max_batch_size=32,max_queue_delay_ms=5)' --out out/ranker\n"
            "  servesim compare scenarios/bert-cpu.yaml --baseline --variant 'three:replicas=3' --out out/bert"
        ),
    )
    parser.add_argument("scenario", type=scenario_argument, help="scenario YAML file or shipped scenario name")
    parser.add_argument(
        "--variant",
        "-v",
        action="append",
        default=[],
        metavar="SPEC",
        help="a variant, [NAME:]SETTING[,SETTING...] (repeat for each variant)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="name the scenario as written 'baseline' (it is always run; without this flag it is 'as configured')",
    )
    parser.add_argument("--out", "-o", type=Path, required=True, help="report directory (created; files overwritten)")
    parser.add_argument("--requests", type=int, help="requests per replication (default: the scenario's)")
    parser.add_argument("--replications", type=int, help="replications per variant (default: the scenario's)")
    parser.add_argument("--seed", type=int, help="seed shared by all variants (default: the scenario's)")
    parser.add_argument(
        "--load-points",
        type=int,
        default=7,
        help="request rates on each variant's p99-vs-load curve (0: no load curve; default 7)",
    )
    parser.add_argument("--title", help="report title")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON instead of a table")
    parser.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from sim.analysis.compare import Variant, load_curve, parse_variants, run_comparison, with_current
    from sim.analysis.planner import RunSize
    from sim.present.comparison import comparison_cells
    from sim.present.progress import steps
    from sim.present.report import write_report
    from sim.spec.scenario import load_scenario

    check_compare_args(args)
    scenario = load_scenario(args.scenario)
    variants = parse_variants(args.variant, scenario)
    if args.baseline or len(variants) < 2:
        if any(v.name == "baseline" for v in variants):
            raise ServesimError("--variant: the name 'baseline' is taken by --baseline; choose another name")
        variants = [Variant("baseline", {}, "baseline"), *variants]
    else:  # the configuration the planner starts from is always a column (sim.analysis.compare.CURRENT)
        variants = with_current(variants)
    if len(variants) < 2:
        raise ServesimError("compare: give at least one --variant")
    if args.requests is not None and args.requests <= 0:
        raise ServesimError(f"--requests must be positive (got {args.requests})")
    if args.load_points < 0:
        raise ServesimError(f"--load-points must be 0 or more (got {args.load_points})")
    size = RunSize(args.requests, args.replications)
    with steps("comparing", "variants") as on_variant:
        comparison = run_comparison(scenario, variants, size=size, seed=args.seed, progress=on_variant)
    LOAD_CURVE_SIZE = RunSize(LOAD_CURVE_REQUESTS, LOAD_CURVE_REPLICATIONS)  # noqa: N806

    curves = None
    if args.load_points >= 2:
        fractions = tuple(float(f) for f in np.linspace(0.1, 0.95, args.load_points))
        curves = {}
        for r in comparison.results:
            with steps(f"load curve of {r.variant.name}", "points") as on_point:
                curves[r.variant.name] = load_curve(
                    r.scenario, fractions, size=LOAD_CURVE_SIZE, seed=comparison.seed, progress=on_point
                )
    report = write_report(comparison, args.out, curves, title=args.title)

    if args.json:
        from sim.cli.main import json_ready

        print(json.dumps(json_ready({r.variant.name: r.summary for r in comparison.results}), indent=2))
    else:
        table = comparison_cells(comparison)
        table = table.map(lambda cell: str(cell).replace("**", ""))
        print(table.to_string())
        print(f"\nreport: {report}")
    return 0
