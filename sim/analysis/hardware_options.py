"""Which hardware to offer as sizing candidates, each with its speed relative to the scenario's own
hardware stated and sourced — never a made-up factor.

- An LLM stage: the profiles in models/ of the same model and tensor-parallel degree on other catalogue
  hardware. A measured profile is taken as measured; an estimated one (calibrate/transfer.py, `servesim
  calibrate transfer`) is labelled "(estimated)" with its 95% interval. The relative speed is the ratio of
  the two profiles' costs at a reference iteration (a 1,024-token prefill; a decode step of 32 sequences
  holding 1,024 tokens each).
- A model stage on a GPU: the ratio of the catalogue's datasheet figures (memory bandwidth and FP16 dense
  tensor FLOP/s) to the own GPU's. A forward pass bound by either scales at most by that ratio, so the
  candidate is sized at the lower of the two (a roofline bound, not a measurement) and says so.
- CPUs, and hardware without specifications, get no relative speed: only the advanced NAME@X syntax.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ServesimError
from sim.spec.scenario import LLMStage, ModelStage, Scenario

# The reference iteration the LLM speed ratios are taken at.
PREFILL_TOKENS = 1024
DECODE_BATCH = 32
DECODE_CONTEXT = 1024
# How many alternatives are preselected beside the own hardware (the rest are offered, not chosen).
PRESELECTED = 2
# ... and only among hardware within this factor of the own replica's price.
PRICE_CLASS = 4.0


@dataclass(frozen=True)
class HardwareOption:
    """One catalogue candidate for the Sizing tab. `spec` is its `servesim size --hardware` item;
    `speedup` the factor it is sized at (1: a measured or estimated profile carries its own costs)."""

    name: str
    spec: str
    speed: str  # '×1.9 prefill, ×1.6 decode' — relative to the own hardware
    basis: str  # where the speed comes from: 'measured profile …', 'estimated by calibrate transfer …'
    source: str  # a file or a datasheet URL
    estimated: bool
    interval: str | None = None  # '95%: prefill −34..+53%' (a transfer's interval) or 'range ×0.9..×1.9'
    usd_per_hour: float | None = None  # one replica
    ratio: float = 1.0  # the factor the options are ranked by (the slower of the figures)
    # Left out of the default choice (still offered): another vendor's stack than the own hardware's, or a
    # price the catalogue marks approximate (not a list price read for it).
    other_vendor: bool = False
    price_approximate: bool = False
    far_price: bool = False  # over PRICE_CLASS × the own replica's price: a roofline flatters big GPUs most

    @property
    def label(self) -> str:
        """'h200 (estimated) — ×1.9 prefill, ×1.6 decode; 95%: prefill −34..+53%, decode −29..+41%'."""
        name = f"{self.name} (estimated)" if self.estimated else self.name
        interval = f"; {self.interval}" if self.interval else ""
        price = f"; ${self.usd_per_hour:,.2f}/h a replica" if self.usd_per_hour is not None else "; no catalogue price"
        return f"{name} — {self.speed}{interval}{price}"


def _models_dir() -> Path:
    from sim.shipped import shipped_root

    return shipped_root("models") or Path("models")


def own_hardware(scenario: Scenario) -> str | None:
    """The catalogue name of the hardware the scenario runs on (an LLM stage: its profile's; else the
    deployment's, else the hardware a model stage's profile was measured on)."""
    from sim.spec.scenario import _load_profile

    for stage in scenario.stages:
        if isinstance(stage, LLMStage):
            return stage.cost.profile.hardware
    if scenario.deployment.hardware.name:
        return scenario.deployment.hardware.name
    for stage in scenario.stages:
        if isinstance(stage, ModelStage) and stage.profile:
            return _load_profile(stage.profile).hardware
    return None


def hardware_options(scenario: Scenario, catalogue: dict | None = None) -> list[HardwareOption]:
    """The candidates with a sourced relative speed: measured first, then the most speed per dollar."""
    from sim.spec.hardware import load_catalogue

    catalogue = load_catalogue() if catalogue is None else catalogue
    llm = next((stage for stage in scenario.stages if isinstance(stage, LLMStage)), None)
    options = _llm_options(scenario, llm, catalogue) if llm is not None else gpu_options(scenario, catalogue)
    from dataclasses import replace

    from sim.metrics.cost import price_usd_per_replica_hour

    own_price = price_usd_per_replica_hour(scenario)
    if own_price:
        options = [
            replace(o, far_price=o.usd_per_hour is not None and o.usd_per_hour > PRICE_CLASS * own_price)
            for o in options
        ]

    def per_speed(option: HardwareOption) -> float:
        return (option.usd_per_hour if option.usd_per_hour is not None else math.inf) / option.ratio

    return sorted(options, key=lambda o: (o.estimated, per_speed(o), o.name))


def preselected(options: list[HardwareOption]) -> list[HardwareOption]:
    """The options chosen by default: measured ones first, then the lowest $/h per unit of speed, among
    the own vendor's hardware at catalogue list prices within `PRICE_CLASS` of the own replica's price."""
    return [o for o in options if not (o.other_vendor or o.price_approximate or o.far_price)][:PRESELECTED]


def llm_profiles(stage: LLMStage, catalogue: dict) -> dict[str, tuple[Path, object]]:
    """The profiles in models/ of the stage's model and tensor-parallel degree on other catalogue hardware,
    one per hardware: measured before estimated, then the one fitted the way the stage's own was (a
    `-per-token` refit beside a refit, an interpolated `-table` beside a table), by name last."""

    own = stage.cost.profile
    method = _method(Path(stage.profile).stem)
    found: dict[str, tuple] = {}
    for path, profile in _shipped_llm_profiles(_models_dir(), _listing(_models_dir())):
        if (
            profile.model != own.model
            or profile.tensor_parallel != own.tensor_parallel
            or profile.hardware == own.hardware
            or profile.hardware not in catalogue
            or profile.estimate.get("band_edge")  # an interval's end (`transfer --band`), not the estimate
        ):
            continue
        rank = (profile.estimated, _method(path.stem) != method, path.stem)
        if profile.hardware not in found or rank < found[profile.hardware][0]:
            found[profile.hardware] = (rank, path, profile)
    return {name: (path, profile) for name, (_, path, profile) in found.items()}


def moved_overrides(scenario: Scenario, name: str, catalogue: dict) -> dict:
    """Overrides putting the scenario on catalogue hardware `name`: its price per replica (× the GPUs a replica
    holds) and, since an LLM stage's costs come from its profile, each LLM stage on that hardware's profile of
    the same model and TP in models/ (measured, or estimated by `calibrate transfer`: the run says so). An LLM
    stage with no such profile is refused, naming the field — never the old costs at the new price. A model
    stage runs at the speed the Sizing candidates are sized at (`gpu_options`: the datasheet roofline
    ratio to the scenario's own GPU, the lower of memory bandwidth and FP16; `stages.NAME.speedup` × it);
    where servesim has no such ratio (a CPU, hardware without datasheet figures, a scenario naming no
    hardware) the move is refused, naming the field and how to give the speed."""
    from sim.metrics.cost import replica_hardware

    if name not in catalogue:
        raise ServesimError(f"hardware {name!r} is not in models/hardware.yaml ({', '.join(catalogue)})")
    overrides: dict = _model_stage_speed(scenario, name, catalogue)
    for stage in scenario.stages:
        if not isinstance(stage, LLMStage) or stage.cost.profile.hardware == name:
            continue
        found = llm_profiles(stage, catalogue).get(name)
        if found is None:
            profile = stage.cost.profile
            raise ServesimError(
                f"LLM stage {stage.name!r} has costs measured on {profile.hardware} (stages.{stage.name}.profile) "
                f"and models/ has no {name} profile of {profile.model} at TP{profile.tensor_parallel}; "
                f"`servesim calibrate transfer PROFILE --to {name}` estimates one (then stages.{stage.name}.profile=FILE)"
            )
        overrides[f"stages.{stage.name}.profile"] = str(found[0])
    moved = scenario.with_overrides(overrides) if overrides else scenario
    return {**overrides, "deployment.hardware": replica_hardware(moved, name, catalogue)}


def roofline_ratio(scenario: Scenario, name: str, catalogue: dict) -> float:
    """How fast the scenario's model stages run on hardware `name` relative to its own: 1 on its own, else
    the datasheet roofline ratio the Sizing candidates are sized at (`gpu_options`, rounded to 4 digits).
    Where there is none (a CPU, hardware without datasheet figures, a scenario naming no hardware) a
    ServesimError names the first model stage and how to give the speed."""
    stages = [stage for stage in scenario.stages if isinstance(stage, ModelStage)]
    own = own_hardware(scenario)
    if not stages or name == own:
        return 1.0
    option = next((o for o in gpu_options(scenario, catalogue) if o.name == name), None)
    if option is None:
        first = stages[0].name
        why = (
            "the scenario names no hardware (deployment.hardware.name) its costs were measured on"
            if own is None
            else f"servesim has no datasheet ratio from {own} to {name} (models/hardware.yaml specifications: GPUs only)"
        )
        raise ServesimError(
            f"model stage {first!r} would run {name} at its measured speed: {why}; give the speed with "
            f"stages.{first}.speedup=X beside deployment.hardware=NAME (or `servesim size --hardware {name}@X`; "
            f"@1 if the costs as written hold on {name})"
        )
    return float(f"{option.ratio:.4g}")


def _model_stage_speed(scenario: Scenario, name: str, catalogue: dict) -> dict:
    """The model stages' `speedup` on hardware `name`: × the roofline ratio the Sizing tab sizes it at."""
    ratio = roofline_ratio(scenario, name, catalogue)
    if ratio == 1.0:
        return {}
    return {
        f"stages.{stage.name}.speedup": float(f"{stage.speedup * ratio:.4g}")
        for stage in scenario.stages
        if isinstance(stage, ModelStage)
    }


def movable_hardware(scenario: Scenario, catalogue: dict) -> dict[str, str]:
    """The catalogue hardware `moved_overrides` can put the scenario on, each with its label ('h200
    (estimated) — $31.65/h', 't4 (roofline ×0.16) — $0.526/h'): an LLM stage's needs a profile of its model,
    a model stage's a datasheet ratio to the own GPU."""
    from sim.metrics.cost import replica_usd_per_hour

    llm = [stage for stage in scenario.stages if isinstance(stage, LLMStage)]
    names = list(catalogue)
    estimated: set[str] = set()
    for stage in llm:
        profiles = llm_profiles(stage, catalogue)
        names = [n for n in names if n in profiles or n == stage.cost.profile.hardware]
        estimated |= {n for n, (_, profile) in profiles.items() if profile.estimated}
    ratios = {o.name: o.ratio for o in gpu_options(scenario, catalogue)}
    out = {}
    for name in names:
        try:
            price = replica_usd_per_hour(
                scenario.with_overrides(moved_overrides(scenario, name, catalogue)), name, catalogue
            )
        except ServesimError:
            continue
        if name in estimated:
            out[name] = f"(estimated) — ${price:g}/h"
        elif name in ratios and not llm:
            out[name] = f"(roofline ×{ratios[name]:.2g}) — ${price:g}/h"
        else:
            out[name] = f"${price:g}/h"
    return out


def _listing(folder: Path) -> tuple:
    """The folder's profile files with their modification times: a new or changed profile is read afresh."""
    return tuple((path.name, path.stat().st_mtime_ns) for path in sorted(folder.glob("*.yaml")))


@functools.lru_cache(maxsize=4)
def _shipped_llm_profiles(folder: Path, listing: tuple) -> tuple:
    """Every LLM profile in `folder` as `listing` stands, read once: (path, profile) pairs in name order."""
    from sim.errors import DataFileError
    from sim.spec.llm_cost import load_llm_profile

    found = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            found.append((path, load_llm_profile(path)))
        except (DataFileError, ServesimError):
            continue  # a model-stage profile, or not a profile at all
    return tuple(found)


def _method(stem: str) -> str:
    """How a profile file was fitted, from its name: 'table', 'per-token' or the original fit."""
    return "table" if stem.endswith("-table") else "per-token" if "per-token" in stem else "fit"


def _llm_options(scenario: Scenario, stage: LLMStage, catalogue: dict) -> list[HardwareOption]:
    from sim.metrics.cost import replica_usd_per_hour
    from sim.spec.llm_cost import LLMCost

    own = stage.cost.profile
    own_cost = LLMCost(own)
    found = {name: (None, path, profile) for name, (path, profile) in llm_profiles(stage, catalogue).items()}
    options = []
    for name, (_, path, profile) in found.items():
        cost = LLMCost(profile)
        prefill = own_cost.prefill_ms(PREFILL_TOKENS) / cost.prefill_ms(PREFILL_TOKENS)
        context = DECODE_BATCH * DECODE_CONTEXT
        decode = own_cost.decode_step_ms(DECODE_BATCH, context) / cost.decode_step_ms(DECODE_BATCH, context)
        spec = f"{name}={path.resolve()}"
        try:
            from sim.analysis.sizing import Candidate

            price = replica_usd_per_hour(
                Candidate(name, None, profile=str(path.resolve())).apply(scenario), name, catalogue
            )
        except (ServesimError, KeyError):
            price = None
        interval = profile.estimate.get("interval_pct") or {}
        options.append(
            HardwareOption(
                name=name,
                spec=spec,
                speed=f"×{prefill:.2g} prefill, ×{decode:.2g} decode vs {own.hardware}",
                basis=(
                    f"estimated by `servesim calibrate transfer` from {profile.estimate.get('from', 'a measured profile')}"
                    if profile.estimated
                    else f"measured profile ({profile.serving_stack or 'see its source'})"
                ),
                source=f"models/{path.name}",
                estimated=profile.estimated,
                interval=("95%: " + ", ".join(f"{k} {v}%" for k, v in interval.items())) if interval else None,
                usd_per_hour=price,
                ratio=min(prefill, decode),
                other_vendor=_vendor(name) != _vendor(own.hardware),
                price_approximate=catalogue[name].approximate,
            )
        )
    return options


def gpu_options(scenario: Scenario, catalogue: dict) -> list[HardwareOption]:
    """The catalogue GPUs a scenario of model stages on a GPU could move to, each at its datasheet roofline
    ratio to the own GPU (the lower of memory bandwidth and FP16): what Sizing offers, compare and the
    planner move by (`roofline_ratio`) and advise picks its hardware levers from. None off a GPU."""
    from sim.metrics.cost import replica_usd_per_hour
    from sim.spec.hardware import load_specifications

    own = own_hardware(scenario)
    specs = load_specifications()
    if own not in specs or specs[own].kind != "gpu" or not any(isinstance(s, ModelStage) for s in scenario.stages):
        return []
    mine = specs[own]
    options = []
    for name, spec in specs.items():
        if name == own or spec.kind != "gpu" or name not in catalogue:
            continue
        bandwidth = _ratio(spec.memory_bandwidth_gb_s, mine.memory_bandwidth_gb_s)
        compute = _ratio(spec.peak_tflops("fp16"), mine.peak_tflops("fp16"))
        if bandwidth is None or compute is None:
            continue
        slower = min(bandwidth, compute)
        approximate = " (approximate figures)" if spec.approximate or mine.approximate else ""
        options.append(
            HardwareOption(
                name=name,
                spec=f"{name}@{slower:.3g}",
                speed=f"×{slower:.2g} (memory bandwidth ×{bandwidth:.2g}, FP16 ×{compute:.2g} vs {own})",
                basis="datasheet ratio, sized at the lower of the two: a roofline estimate, not a measurement "
                "(a small model's launch and host overheads do not scale, so its real speed-up is often lower)"
                + approximate,
                source=spec.source,
                estimated=True,
                interval=f"range ×{slower:.2g}..×{max(bandwidth, compute):.2g}",
                usd_per_hour=replica_usd_per_hour(scenario, name, catalogue),
                ratio=slower,
                other_vendor=spec.vendor != mine.vendor,
                price_approximate=catalogue[name].approximate,
            )
        )
    return options


def _ratio(theirs: float | None, mine: float | None) -> float | None:
    return theirs / mine if theirs and mine else None


def _vendor(name: str) -> str | None:
    from sim.spec.hardware import load_specifications

    spec = load_specifications().get(name)
    return spec.vendor if spec is not None else None
