"""Variants of one scenario, run on the same traffic and seed, and the sweeps the planner draws.

A variant is a name plus dotted-path overrides, written on a command line as

    [NAME:]SETTING[,SETTING...]        SETTING = PATH=VALUE | SHORTHAND=VALUE

VALUE is YAML (`4`, `none`, `{policy: dynamic, max_batch_size: 32}`). Shorthands:
`batching=none | static(batch_size=8,timeout_ms=10) | dynamic(max_batch_size=32,max_queue_delay_ms=5)`
(on the first model stage), `replicas=N`, `instances=N`, `routing=NAME`, `rate=RPS` (or `load=×F`, every
rate times F), `hardware=NAME` (price from models/hardware.yaml), `slo=MS` (p99 budget), and for a
disaggregated LLM stage `split=P+D` (P prefill and D decode replicas) or `colocated=N` (N replicas running
both phases). Examples: `'batching=none'`, `'big:replicas=4,batching=dynamic(max_batch_size=32)'`,
`'dynamic:stages.forward.batching={policy: dynamic, max_batch_size: 32, max_queue_delay_ms: 5}'`.

Every variant runs with the same seed, so arrivals and service draws are common random numbers and the
differences are the variant's, not the dice's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from sim.analysis.simulate import RunResult
from sim.errors import ServesimError
from sim.metrics.cost import usd_per_1m_output_tokens
from sim.metrics.summary_view import Summary
from sim.analysis.planner import QUICK, SWEEP, RunSize, capacity_rps, model_stage_name, run, scale_load
from sim.spec.scenario import Scenario

MAX_VARIANTS = 8
_NAME = re.compile(r"^[^=:{}()\[\],;]+$")
_CALL = re.compile(r"^([A-Za-z_]+)\s*(?:\((.*)\))?$", re.S)


class VariantError(ServesimError):
    """A variant spec that cannot be read, naming the spec and the problem."""


@dataclass(frozen=True)
class Variant:
    """A named set of overrides of the base scenario (empty overrides = the scenario as written)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    spec: str = ""


# --- parsing -------------------------------------------------------------------------------------------


def parse_variant(text: str, scenario: Scenario) -> Variant:
    """`[NAME:]SETTING[,SETTING...]` -> Variant; the overrides are checked by applying them."""
    spec = text.strip()
    if not spec:
        raise VariantError("--variant '': empty variant")
    name, body = _split_name(spec)
    overrides: dict[str, Any] = {}
    for setting in split_top_level(body):
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise VariantError(f"--variant {spec!r}: {setting!r} is not KEY=VALUE (e.g. replicas=4)")
        overrides.update(_expand(key.strip(), value.strip(), scenario, spec))
    try:
        scenario.with_overrides(overrides)
    except ServesimError as exc:
        raise VariantError(f"--variant {spec!r} does not give a valid scenario: {exc}") from None
    return Variant(name=name or body, overrides=overrides, spec=spec)


def parse_variants(texts: list[str], scenario: Scenario) -> list[Variant]:
    variants = [parse_variant(text, scenario) for text in texts]
    if len(variants) > MAX_VARIANTS:
        raise VariantError(f"--variant: at most {MAX_VARIANTS} variants per comparison (got {len(variants)})")
    names = [v.name for v in variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise VariantError(f"--variant: repeated variant name(s) {', '.join(repeated)}; name them with NAME:...")
    return variants


CURRENT = "as configured"


def with_current(variants: list[Variant]) -> list[Variant]:
    """The variants with the scenario's own configuration first, unless one of them already is it (no
    overrides): a comparison always shows what the planner starts from."""
    if any(not variant.overrides for variant in variants):
        return variants
    taken = {variant.name for variant in variants}
    name = CURRENT if CURRENT not in taken else f"{CURRENT} (scenario)"
    return [Variant(name, {}, "as written"), *variants]


def _split_name(spec: str) -> tuple[str | None, str]:
    """A `NAME:` prefix is a colon that comes before the first `=`, `{` or `(`."""
    colon = spec.find(":")
    stops = [i for i in (spec.find("="), spec.find("{"), spec.find("(")) if i >= 0]
    if colon < 0 or (stops and colon > min(stops)):
        return None, spec
    name, body = spec[:colon].strip(), spec[colon + 1 :].strip()
    if not name or not _NAME.match(name):
        raise VariantError(f"--variant {spec!r}: variant name {name!r} may not contain = : , ; or brackets")
    if not body:
        raise VariantError(f"--variant {spec!r}: nothing after the name (e.g. {name}:replicas=4)")
    return name, body


def split_top_level(text: str, separators: str = ",;") -> list[str]:
    """Split at separators that are not inside (), [], {} or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in separators and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _yaml_value(text: str, spec: str) -> Any:
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError as exc:
        raise VariantError(f"--variant {spec!r}: {text!r} is not a valid YAML value ({exc})") from None


def _expand(key: str, value: str, scenario: Scenario, spec: str) -> dict[str, Any]:
    """One setting -> overrides: a shorthand, or a dotted path with a YAML value."""
    if key == "batching":
        stage = model_stage_name(scenario)
        if stage is None:
            raise VariantError(f"--variant {spec!r}: batching= needs a model stage")
        return {f"stages.{stage}.batching": _policy_call(value, spec)}
    if key in ("replicas", "instances", "routing"):
        return {f"deployment.{key}": _yaml_value(value, spec)}
    if key in ("rate", "rate_rps"):
        return {"workload.arrival.rate_rps": _yaml_value(value, spec)}
    if key == "load":
        factor = _yaml_value(value.lstrip("x×"), spec)
        if not isinstance(factor, (int, float)) or factor <= 0:
            raise VariantError(f"--variant {spec!r}: load= takes a positive factor, e.g. load=1.5")
        try:
            return scale_load(scenario, float(factor))
        except ValueError as exc:
            raise VariantError(f"--variant {spec!r}: {exc}") from None
    if key == "hardware":
        return _hardware(value, spec, scenario)
    if key == "slo":
        return {"slo.p99_ms": _yaml_value(value, spec)}
    if key in ("split", "colocated"):
        return _pools(key, value, scenario, spec)
    if "." not in key:
        raise VariantError(
            f"--variant {spec!r}: unknown setting {key!r}; use batching, replicas, instances, routing, rate, load, "
            "hardware, slo, split, colocated, or a dotted path such as deployment.replicas"
        )
    return {key: _yaml_value(value, spec)}


def _pools(key: str, value: str, scenario: Scenario, spec: str) -> dict[str, Any]:
    """`split=P+D`: the disaggregated stage's pools; `colocated=N`: N replicas running both phases."""
    from sim.spec.transforms import split_overrides, split_stage

    stage = split_stage(scenario)
    if stage is None:
        raise VariantError(f"--variant {spec!r}: {key}= needs an LLM stage with disaggregated prefill and decode pools")
    if key == "colocated":
        count = _yaml_value(value, spec)
        if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
            raise VariantError(f"--variant {spec!r}: colocated= takes a replica count, e.g. colocated=6")
        return {f"stages.{stage}.disaggregated": None, "deployment.replicas": count}
    match = re.fullmatch(r"\s*(\d+)\s*\+\s*(\d+)\s*", value)
    if not match:
        raise VariantError(f"--variant {spec!r}: split= takes prefill + decode replicas, e.g. split=4+2")
    try:
        return split_overrides(scenario, int(match[1]), int(match[2]))
    except ServesimError as exc:
        raise VariantError(f"--variant {spec!r}: {exc}") from None


def _policy_call(value: str, spec: str) -> dict[str, Any]:
    """`dynamic(max_batch_size=32,max_queue_delay_ms=5)` or a YAML mapping -> a batching policy dict."""
    if value.startswith("{"):
        policy = _yaml_value(value, spec)
        if not isinstance(policy, dict):
            raise VariantError(f"--variant {spec!r}: batching= takes a mapping or policy(args)")
        return policy
    match = _CALL.match(value)
    if not match:
        raise VariantError(
            f"--variant {spec!r}: batching={value!r}; write e.g. dynamic(max_batch_size=32,max_queue_delay_ms=5)"
        )
    policy: dict[str, Any] = {"policy": match.group(1)}
    for argument in split_top_level(match.group(2) or "", ","):
        name, sep, raw = argument.partition("=")
        if not sep:
            raise VariantError(f"--variant {spec!r}: batching argument {argument!r} is not NAME=VALUE")
        policy[name.strip()] = _yaml_value(raw.strip(), spec)
    return policy


def _hardware(value: str, spec: str, scenario: Scenario) -> dict[str, Any]:
    """The scenario moved to catalogue hardware `value` (sim.analysis.hardware_options.moved_overrides)."""
    from sim.analysis.hardware_options import moved_overrides
    from sim.spec.hardware import load_catalogue

    try:
        return moved_overrides(scenario, value, load_catalogue())
    except ServesimError as exc:
        raise VariantError(f"--variant {spec!r}: {exc}") from None


# --- running -------------------------------------------------------------------------------------------


@dataclass
class VariantResult:
    variant: Variant
    scenario: Scenario
    result: RunResult

    @property
    def summary(self) -> dict:
        return self.result.summary

    @property
    def view(self) -> Summary:
        """The summary, typed."""
        return Summary.of(self.result.summary)


@dataclass
class Comparison:
    """Variants of `base` run on one seed; `winners` maps a metric key to the winning variant names."""

    base: Scenario
    results: list[VariantResult]
    seed: int
    size: RunSize
    winners: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [r.variant.name for r in self.results]


def run_comparison(
    scenario: Scenario,
    variants: list[Variant],
    *,
    size: RunSize = QUICK,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    runner: Callable[[Scenario, RunSize, int], RunResult] | None = None,
) -> Comparison:
    """Run every variant on the same seed (common random numbers) and pick a winner per metric.
    `runner(scenario, size, seed)` replaces `sim.analysis.planner.run` (the app passes a cached one)."""
    runner = runner or (lambda s, z, seed: run(s, z, seed=seed))
    if not variants:
        raise VariantError("compare: give at least one --variant")
    seed = scenario.seed if seed is None else seed
    results = []
    for i, variant in enumerate(variants):
        changed = scenario.with_overrides(variant.overrides) if variant.overrides else scenario
        results.append(VariantResult(variant, changed, runner(changed, size, seed)))
        if progress:
            progress(i + 1, len(variants))
    comparison = Comparison(base=scenario, results=results, seed=seed, size=size)
    comparison.winners = winners([r.summary for r in results], comparison.names)
    return comparison


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "low" or "high"
    value: Callable[[dict], float | None]
    ci: Callable[[dict], tuple[float, float] | None] = lambda summary: None


def _latency(key: str) -> Metric:
    return Metric(
        key,
        f"{key} latency",
        "ms",
        "low",
        lambda s: Summary.of(s).latency_ms.at(key),
        lambda s: tuple(Summary.of(s).latency_ms_ci95.at(key) or ()) or None,
    )


def _llm(summary: dict, field: str):
    llm = Summary.of(summary).llm
    return None if llm is None else getattr(llm, field)


def _goodput(summary: dict) -> float | None:
    goodput = _llm(summary, "goodput")
    return None if goodput is None else goodput.attainment


def _llm_latency(metric: str, key: str) -> Metric:
    label = {"ttft_ms": "TTFT", "tpot_ms": "TPOT"}[metric]
    return Metric(
        f"{metric}_{key}",
        f"{label} {key}",
        "ms",
        "low",
        lambda s: None if _llm(s, metric) is None else _llm(s, metric).at(key),
        lambda s: (lambda llm: None if llm is None else tuple(llm.interval(metric, key) or ()) or None)(
            Summary.of(s).llm
        ),
    )


METRICS: list[Metric] = [
    _latency("p50"),
    _latency("p95"),
    _latency("p99"),
    Metric("throughput_rps", "throughput", "req/s", "high", lambda s: Summary.of(s).throughput_rps),
    Metric(
        "usd_per_1m_queries",
        "cost per 1M queries",
        "USD",
        "low",
        lambda s: Summary.of(s).cost.usd_per_1m_queries,
    ),
    Metric("slo_attainment", "requests within p99 SLO", "share", "high", lambda s: Summary.of(s).slo.attainment),
    Metric("rejected_fraction", "rejected", "share", "low", lambda s: Summary.of(s).rejected_fraction),
    # An LLM stage's own figures (absent elsewhere, so their rows show only for LLM scenarios): what its users
    # feel (TTFT, TPOT) and what it is sold by ($ per 1M output tokens).
    *(_llm_latency(metric, key) for metric in ("ttft_ms", "tpot_ms") for key in ("p50", "p99")),
    Metric("output_tokens_per_s", "output tokens/s", "tokens/s", "high", lambda s: _llm(s, "output_tokens_per_s")),
    Metric("goodput", "requests within TTFT and TPOT budgets", "share", "high", lambda s: _goodput(s)),
    Metric(
        "usd_per_1m_output_tokens",
        "cost per 1M output tokens",
        "USD",
        "low",
        lambda s: usd_per_1m_output_tokens(Summary.of(s).cost.usd_per_hour, _llm(s, "output_tokens_per_s")),
    ),
]
# Values within this relative distance of the best are a tie (throughput of stable variants is the
# arrival rate for all of them; a 0.3% difference is noise, not a winner).
TIE_RELATIVE = 0.01


def winners(summaries: list[dict], names: list[str]) -> dict[str, list[str]]:
    """Per metric, the variants at the best value (several on a tie); metrics nobody has are left out."""
    out: dict[str, list[str]] = {}
    for metric in METRICS:
        values = [_finite(metric.value(s)) for s in summaries]
        known = [v for v in values if v is not None]
        if not known:
            continue
        best = min(known) if metric.better == "low" else max(known)
        tolerance = TIE_RELATIVE * abs(best) if best else 1e-12
        out[metric.key] = [n for n, v in zip(names, values) if v is not None and abs(v - best) <= tolerance]
    return out


def markdown_table(table: pd.DataFrame, corner: str = "metric") -> str:
    """A DataFrame of display strings as a GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join([corner, *map(cell, table.columns)]) + " |", "|" + "---|" * (len(table.columns) + 1)]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([cell(index), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)


def format_metric(metric: Metric, summary: dict, won: bool = False) -> str:
    value = _finite(metric.value(summary))
    if value is None:
        return "–"
    if metric.unit == "share":
        text = f"{value:.2%}"
    elif metric.unit == "USD":
        text = f"${value:,.3f}"
    else:
        text = f"{value:,.1f}"
    ci = metric.ci(summary)
    if ci and all(x is not None and math.isfinite(x) for x in ci):
        text += f" [{ci[0]:,.1f}, {ci[1]:,.1f}]"  # [low, high]: a ± half-width can imply a negative bound
    return f"**{text}** ★" if won else text


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- sweeps --------------------------------------------------------------------------------------------

LOAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def load_curve(
    scenario: Scenario,
    fractions: tuple[float, ...] = LOAD_FRACTIONS,
    *,
    size: RunSize = SWEEP,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """p50/p99 (with CI) against the offered rate, at `fractions` of the rate that saturates the busiest
    stage. Columns: rate_rps, offered_load, p50, p99, p99_low, p99_high, throughput_rps."""
    capacity = capacity_rps(scenario)
    current = scenario.workload.arrival.mean_rate_rps
    if not math.isfinite(capacity):
        capacity = current / min(fractions[-1], 0.95)
    rows = []
    for i, fraction in enumerate(fractions):
        factor = fraction * capacity / current
        point = scenario.with_overrides(scale_load(scenario, factor))
        summary = run(point, size, seed=seed).summary
        rows.append(_point_row(summary, rate_rps=current * factor, offered_load=fraction))
        if progress:
            progress(i + 1, len(fractions))
    return pd.DataFrame(rows)


def _point_row(summary: dict, **extra: float) -> dict:
    view = Summary.of(summary)
    low, high = view.latency_ms_ci95.p99
    return {
        **extra,
        "p50": view.latency_ms.p50,
        "p99": view.latency_ms.p99,
        "p99_low": low,
        "p99_high": high,
        "throughput_rps": view.throughput_rps,
        "usd_per_1m_queries": view.cost.usd_per_1m_queries,
        "slo_met": view.slo.met,
    }


def replicas_curve(
    scenario: Scenario,
    replicas: list[int],
    *,
    size: RunSize = SWEEP,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """p99 and cost per 1M queries against the replica count. Replica counts that cannot keep up
    (offered load ≥ 1) are listed as unstable and not simulated."""
    from sim.metrics.load import offered_load

    rows = []
    for i, count in enumerate(replicas):
        point = scenario.with_overrides({"deployment.replicas": count})
        load = max(offered_load(point).values(), default=0.0)
        if load >= 1:
            rows.append({"replicas": count, "offered_load": load, "stable": False})
        else:
            summary = run(point, size, seed=seed).summary
            rows.append(_point_row(summary, replicas=count, offered_load=load) | {"stable": True})
        if progress:
            progress(i + 1, len(replicas))
    return pd.DataFrame(rows)


# A curve that stays within 2% (of both ranges) of its chord has no knee worth marking.
KNEE_MIN_GAP = 0.02


def knee_index(x: np.ndarray, y: np.ndarray) -> int | None:
    """Index of the knee of an increasing, convex curve (Kneedle, Satopää et al. 2011): after scaling
    both axes to [0, 1], the point furthest below the chord, i.e. where the slope first exceeds the
    chord's. None for fewer than three points or a curve that hardly bends (KNEE_MIN_GAP)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    xn = (x - x.min()) / np.ptp(x)
    yn = (y - y.min()) / np.ptp(y)
    gap = xn - yn
    best = int(np.argmax(gap))
    if gap[best] <= KNEE_MIN_GAP:
        return None
    return int(np.flatnonzero(keep)[best])


def max_rate_within_slo(curve: pd.DataFrame, slo_ms: float | None, x: str = "rate_rps") -> float | None:
    """Largest rate at which p99 is within `slo_ms`: from the last sweep point within it, interpolated
    linearly towards the next (which is over). A curve whose low-load points miss (a batch timeout waited
    out when traffic is light) and whose middle meets still has an answer; None when no point meets."""
    if slo_ms is None or curve.empty:
        return None
    xs, ys = curve[x].to_numpy(dtype=float), curve["p99"].to_numpy(dtype=float)
    within = np.flatnonzero(ys <= slo_ms)
    if not len(within):
        return None
    last = int(within[-1])
    if last == len(xs) - 1:
        return float(xs[-1])
    return float(xs[last] + (slo_ms - ys[last]) * (xs[last + 1] - xs[last]) / (ys[last + 1] - ys[last]))


def batching_tradeoff(
    scenario: Scenario,
    policies: dict[str, dict],
    fractions: tuple[float, ...] = (0.2, 0.45, 0.65, 0.8, 0.92),
    *,
    size: RunSize = SWEEP,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Throughput vs p99 for each batching policy: a load curve per policy, all on the same rates
    (fractions of the capacity of the highest-capacity policy), so the curves can be laid side by side."""
    stage = model_stage_name(scenario)
    if stage is None:
        raise VariantError("trade-off: the scenario has no model stage to batch")
    variants = {
        name: scenario.with_overrides({f"stages.{stage}.batching": policy}) for name, policy in policies.items()
    }
    top = max(capacity_rps(v) for v in variants.values())
    current = scenario.workload.arrival.mean_rate_rps
    if not math.isfinite(top):
        top = current / 0.9
    curves: dict[str, pd.DataFrame] = {}
    total, done = len(variants) * len(fractions), 0
    for name, variant in variants.items():
        rows = []
        own_capacity = capacity_rps(variant)
        for fraction in fractions:
            rate = fraction * top
            done += 1
            if rate >= 0.98 * own_capacity:
                continue  # beyond this policy's capacity: the queue would grow without bound
            point = variant.with_overrides(scale_load(variant, rate / current))
            rows.append(
                _point_row(run(point, size, seed=seed).summary, rate_rps=rate, offered_load=rate / own_capacity)
            )
            if progress:
                progress(done, total)
        curves[name] = pd.DataFrame(rows)
    if progress:
        progress(total, total)
    return curves


# --- equal SLO -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtSlo:
    """A variant sized to meet the p99 SLO (sim.analysis.sizing.size, the CI's upper end within it): the
    replicas (or min_replicas) it needs and what they cost; `replicas` None when no count meets it."""

    replicas: int | None
    usd_per_hour: float | None
    usd_per_1m_queries: float | None


def cost_at_slo(
    comparison: Comparison,
    slo_p99_ms: float,
    *,
    size: RunSize = QUICK,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, AtSlo]:
    """Each variant's cost at equal SLO: the fewest replicas meeting `slo_p99_ms` on its own hardware, by
    the `servesim size` search on the comparison's seed — a batching policy that needs fewer replicas for
    the same p99 is the cheaper one, whatever its latency at the replica count written."""
    from sim.analysis.planner import plan
    from sim.analysis.sizing import parse_candidates
    from sim.analysis.sizing import size as size_search

    out: dict[str, AtSlo] = {}
    for i, result in enumerate(comparison.results):
        scenario = result.scenario
        run_plan = plan(scenario, size)
        sized = size_search(
            scenario,
            slo_p99_ms,
            parse_candidates(None, scenario, {}),
            replications=max(2, run_plan.replications),  # judged on the CI's upper end: two at least
            requests=run_plan.requests,
            seed=comparison.seed,
        )
        chosen = sized.chosen
        out[result.variant.name] = (
            AtSlo(None, None, None)
            if chosen is None
            else AtSlo(chosen.replicas, chosen.usd_per_hour, chosen.usd_per_1m_queries)
        )
        if progress:
            progress(i + 1, len(comparison.results))
    return out
