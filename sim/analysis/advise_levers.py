"""Candidate levers of the advisor: each a small object that says whether it applies to a scenario (and
why not), which stage columns of the latency budget it acts on, and the dotted-path overrides that apply
it. Levers compose: each reads the scenario as the previous levers left it (speed-ups multiply).

Forward-pass levers take their speed-up (the conservative end) and accuracy cost from the calibration
lever table (sim/spec/levers.py). Every other figure here is a planning assumption, named as such in the
lever's reason: measure the change and calibrate before deciding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sim.spec import transforms
from sim.spec.levers import LEVERS
from sim.spec.scenario import ModelStage, PoolStage, Scenario

# Accuracy cost in percentage points of the task metric, a single planning figure per lever (the middle
# of the lever table's stated range), so that a stack's costs can be added up and ranked.
ACCURACY_PCT = {
    "fp16": 0.1,
    "int8": 1.0,
    "int4-weight-only": 0.5,
    "structured-pruning": 2.0,
    "distillation": 3.5,
    "tensorrt": 0.0,
    "onnxruntime": 0.0,
}
LABELS = {
    "fp16": "FP16",
    "int8": "INT8",
    "int4-weight-only": "INT4 weight-only",
    "structured-pruning": "structured pruning",
    "distillation": "distillation",
    "tensorrt": "TensorRT",
    "onnxruntime": "ONNX Runtime",
}
GROUPS = {
    "fp16": "precision",
    "int8": "precision",
    "int4-weight-only": "precision",
    "structured-pruning": "architecture",
    "distillation": "architecture",
    "tensorrt": "compiler",
    "onnxruntime": "compiler",
}
QUANTISATION = ("fp16", "int8", "int4-weight-only")

# GPU image decode (nvJPEG / DALI) instead of CPU decode workers: assumed per-image speed-up of the stage,
# plus GPU time per image added to the forward pass (the decode and resize kernels share the GPU).
GPU_DECODE_SPEEDUP = 4.0
GPU_DECODE_MS_PER_IMAGE = 0.5
IMAGE_STAGE_WORDS = ("preprocess", "decode", "jpeg", "image", "resize")
FEATURE_STAGE_WORDS = ("feature", "fetch")
ENCODER_STAGE_WORDS = ("encoder", "embed")
CACHE_LOOKUP_MS = 0.5
FEATURE_HIT_MS = 1.0


# Rough forward-pass throughput relative to one A100 (FP16 inference of CNN / transformer models), read
# loosely from MLPerf Inference datacenter results per accelerator. Approximate planning figures only:
# a measured profile on the target hardware replaces them.
def is_cpu(scenario: Scenario) -> bool:
    name = (scenario.deployment.hardware.name or "").lower()
    return "cpu" in name


def model_stages(scenario: Scenario) -> list:
    return [s for s in scenario.stages if s.kind in ("model", "llm")]


@dataclass(frozen=True)
class Lever:
    """One transform of the scenario. Subclasses set `name`, `group` (one lever per group in a stack),
    `stage` (the stage it acts on, or None for the whole service) and implement the three methods."""

    name: str
    group: str
    stage: str | None = None
    accuracy_pct: float = 0.0
    accuracy_cost: str = "none"
    reason: str = ""
    family: str = ""
    apply_last: bool = False  # applied after the other levers of a stack (its cost must not be scaled by them)

    def applies(self, scenario: Scenario) -> str | None:
        """None when the lever can be applied; otherwise why not, in words."""
        return None

    def columns(self, scenario: Scenario) -> list[str]:
        """Latency-budget columns (stage_shares names) whose time this lever can reduce."""
        return [self.stage, f"{self.stage}_queue"] if self.stage else []

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        raise NotImplementedError

    def cuts_cost(self, scenario: Scenario) -> bool:
        """True for levers that save money at the price of capacity: never pruned as off the critical path."""
        return False


@dataclass(frozen=True)
class SpeedupLever(Lever):
    """A forward-pass lever of the calibration table: divides the stage's batch cost by its speed-up."""

    lever: str = ""
    factor: float = 1.0

    def applies(self, scenario: Scenario) -> str | None:
        stage = scenario.stage(self.stage)
        if self.lever == "int4-weight-only" and stage.kind != "llm":
            return (
                f"weight-only INT4 speeds memory-bound decoding of large generative models; {self.stage} is a "
                "fixed-shape model whose batches are compute-bound"
            )
        if not hasattr(stage, "speedup"):
            return f"stage {self.stage} ({stage.kind}) has no speedup field to scale"
        if self.lever in ("fp16", "tensorrt") and is_cpu(scenario):
            return f"{LABELS[self.lever]} needs a GPU; {scenario.deployment.hardware.name} is a CPU instance"
        precision = _profile_field(stage, "precision") or ""
        profile_name = (_profile_field(stage, "name") or "").lower()
        if self.lever in QUANTISATION and precision.lower().startswith(
            ("int8", "int4", "fp16" if self.lever == "fp16" else "-")
        ):
            return f"the profile of {self.stage} is already {precision}"
        if self.group == "compiler" and ("onnxruntime" in profile_name or "tensorrt" in profile_name):
            return f"the profile of {self.stage} ({profile_name}) is already compiled"
        return None

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        current = scenario.stage(self.stage).speedup
        return {f"stages.{self.stage}.speedup": round(current * self.factor, 6)}


@dataclass(frozen=True)
class GpuDecodeLever(Lever):
    """Image decode and resize on the GPU (nvJPEG / DALI) instead of CPU workers: a different cost on a
    different resource — the stage gets faster, the forward pass pays GPU time per image (applied after
    forward-pass levers: quantising the model does not speed up the decoder)."""

    model: str = ""
    apply_last: bool = True

    def applies(self, scenario: Scenario) -> str | None:
        if not any(word in self.stage.lower() for word in IMAGE_STAGE_WORDS):
            return f"{self.stage} is not named as an image decode / preprocessing stage"
        if is_cpu(scenario):
            return "no GPU to decode on: the deployment is a CPU instance"
        return _scalable(scenario.raw_stage(self.stage)["service_ms"], self.stage)

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        raw = scenario.raw_stage(self.stage)
        out = {f"stages.{self.stage}.service_ms": scale_dist(raw["service_ms"], 1 / GPU_DECODE_SPEEDUP)}
        model = scenario.stage(self.model)
        one = model.cost.mean_ms(1)  # already divided by the stage's current speed-up
        out[f"stages.{self.model}.speedup"] = round(model.speedup * one / (one + GPU_DECODE_MS_PER_IMAGE), 6)
        return out


@dataclass(frozen=True)
class WorkersLever(Lever):
    """Twice the workers of a pool stage (assumed to fit on the replica's host: no price change)."""

    def columns(self, scenario: Scenario) -> list[str]:
        return [f"{self.stage}_queue"]

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        return {f"stages.{self.stage}.workers": scenario.stage(self.stage).workers * 2}


@dataclass(frozen=True)
class CacheLever(Lever):
    """A cache tier added at an assumed hit rate (the rate is the user's to confirm)."""

    tier: str = "output"
    hit_rate: float = 0.3

    def applies(self, scenario: Scenario) -> str | None:
        tiers = [c for c in scenario.caches]
        if self.tier == "output" and any(c.tier == "output" for c in tiers):
            return "the scenario already has an output cache"
        if self.tier == "feature" and any(getattr(c, "stage", None) == self.stage for c in tiers):
            return f"{self.stage} already has a feature cache"
        if self.tier == "embedding" and any(self.stage in (getattr(c, "skips", None) or []) for c in tiers):
            return f"{self.stage} is already skipped by an embedding cache"
        return None

    def columns(self, scenario: Scenario) -> list[str]:
        if self.tier == "output":
            return [c for s in scenario.stages if s.kind != "delay" for c in (s.name, f"{s.name}_queue")]
        return super().columns(scenario)

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": f"advisor_{self.tier}{'_' + self.stage if self.stage else ''}",
            "tier": self.tier,
            "hit_rate": self.hit_rate,
            "lookup_ms": {"dist": "constant", "value": CACHE_LOOKUP_MS},
        }
        if self.tier == "feature":
            spec.update(stage=self.stage, hit_ms={"dist": "constant", "value": FEATURE_HIT_MS})
        if self.tier == "embedding":
            spec["skips"] = [self.stage]
        return {"caches": scenario.raw.get("caches", []) + [spec]}


@dataclass(frozen=True)
class BatchingLever(Lever):
    """Dynamic batching switched on or re-tuned (Triton's dynamic batcher: max_batch_size, queue delay)."""

    max_batch_size: int = 8
    max_queue_delay_ms: float = 2.0

    def applies(self, scenario: Scenario) -> str | None:
        stage = scenario.stage(self.stage)
        if stage.kind != "model":
            return f"{self.stage} is a {stage.kind} stage"
        one, big = stage.cost.mean_ms(1), stage.cost.mean_ms(self.max_batch_size) / self.max_batch_size
        if big > 0.9 * one:
            return (
                f"a batch of {self.max_batch_size} costs {big:.3g} ms per request against {one:.3g} ms alone: "
                "batching cannot raise throughput"
            )
        limit = _profile_field(stage, "max_batch_size")
        if limit is not None and self.max_batch_size > limit:
            return f"the profile of {self.stage} was measured up to batch {limit}"
        return None

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        return {
            f"stages.{self.stage}.batching": {
                "policy": "dynamic",
                "max_batch_size": self.max_batch_size,
                "max_queue_delay_ms": self.max_queue_delay_ms,
            }
        }


@dataclass(frozen=True)
class ContinuousBatchingLever(Lever):
    """vLLM-style continuous (iteration-level) batching for an LLM stage."""

    def applies(self, scenario: Scenario) -> str | None:
        stage = scenario.stage(self.stage)
        if stage.kind != "llm":
            return (
                f"{self.stage} is a fixed-shape model (kind: {stage.kind}); continuous batching schedules the "
                "token iterations of generative (kind: llm) stages"
            )
        if getattr(stage.batching, "policy", "") == "continuous":
            return f"{self.stage} already batches continuously"
        return None

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        return {
            f"stages.{self.stage}.batching": {
                "policy": "continuous",
                "max_num_seqs": 256,
                "max_num_batched_tokens": 8192,
                "block_size": 16,
            }
        }


@dataclass(frozen=True)
class ReplicasLever(Lever):
    """A fixed replica count changed by `delta` (or multiplied by `factor`); price follows replica-hours."""

    delta: int = 0
    factor: int = 1

    def target(self, scenario: Scenario) -> int:
        return scenario.deployment.replicas * self.factor + self.delta

    def applies(self, scenario: Scenario) -> str | None:
        if scenario.deployment.autoscaling is not None:
            return "autoscaling sets the replica count (see the min_replicas lever)"
        if self.target(scenario) < 1:
            return "already at one replica"
        return None

    def columns(self, scenario: Scenario) -> list[str]:
        return [
            f"{s.name}_queue"
            for s in scenario.stages
            if s.kind in ("model", "llm") or (isinstance(s, PoolStage) and s.per_replica)
        ]

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        return {"deployment.replicas": self.target(scenario)}

    def cuts_cost(self, scenario: Scenario) -> bool:
        return self.target(scenario) < scenario.deployment.replicas


@dataclass(frozen=True)
class MinReplicasLever(Lever):
    """Twice the autoscaler's min_replicas: fewer requests wait on cold starts, more idle replica-hours."""

    def applies(self, scenario: Scenario) -> str | None:
        scaling = scenario.deployment.autoscaling
        if scaling is None:
            return "no autoscaling: every replica is always warm"
        if scaling.min_replicas >= scaling.max_replicas:
            return "min_replicas already equals max_replicas"
        return None

    def columns(self, scenario: Scenario) -> list[str]:
        return [f"{s.name}_queue" for s in model_stages(scenario)]

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        scaling = scenario.deployment.autoscaling
        return {"deployment.autoscaling.min_replicas": min(scaling.max_replicas, max(scaling.min_replicas * 2, 1))}


@dataclass(frozen=True)
class HardwareLever(Lever):
    """Another accelerator from the catalogue: its price, and the forward passes at the datasheet roofline
    ratio to the own GPU — the speed `compare -v hardware=NAME`, the planner's knob and the Sizing
    candidates use (sim.analysis.hardware_options.roofline_ratio). Preprocessing pools stay on the host CPU."""

    target: str = ""
    usd_per_hour: float = 0.0

    def applies(self, scenario: Scenario) -> str | None:
        from sim.analysis.hardware_options import own_hardware, roofline_ratio
        from sim.errors import ServesimError
        from sim.spec.hardware import load_catalogue

        if any(stage.kind == "llm" for stage in scenario.stages):
            return (
                "an LLM stage's costs come from its profile: `servesim calibrate transfer` moves it to other hardware"
            )
        if own_hardware(scenario) == self.target:
            return f"already on {self.target}"
        try:
            roofline_ratio(scenario, self.target, load_catalogue())
        except ServesimError:
            return f"no datasheet ratio from {own_hardware(scenario) or '(unnamed hardware)'} to {self.target}"
        return None

    def columns(self, scenario: Scenario) -> list[str]:
        return [c for s in model_stages(scenario) for c in (s.name, f"{s.name}_queue")]

    def overrides(self, scenario: Scenario) -> dict[str, Any]:
        from sim.analysis.hardware_options import moved_overrides
        from sim.spec.hardware import load_catalogue

        return moved_overrides(scenario, self.target, load_catalogue())

    def cuts_cost(self, scenario: Scenario) -> bool:
        return self.usd_per_hour < (scenario.deployment.hardware.usd_per_hour or 0.0)


def candidate_levers(scenario: Scenario, cache_hit_rate: float = 0.3) -> list[Lever]:
    """Every lever the advisor knows, instantiated for this scenario's stages (applicable or not)."""
    levers: list[Lever] = []
    gpu_model = next((s.name for s in scenario.stages if isinstance(s, ModelStage)), None)
    for stage in scenario.stages:
        if stage.kind in ("model", "llm"):
            for key, entry in LEVERS.items():
                levers.append(
                    SpeedupLever(
                        name=f"{LABELS[key]} on {stage.name}",
                        group=f"{GROUPS[key]}:{stage.name}",
                        stage=stage.name,
                        accuracy_pct=ACCURACY_PCT[key],
                        accuracy_cost=entry.accuracy_cost,
                        family="forward",
                        reason=f"forward pass ÷{entry.default_speedup:g} (conservative end of {entry.speedup_range[0]:g}-"
                        f"{entry.speedup_range[1]:g}x, against {entry.baseline})",
                        lever=key,
                        factor=entry.default_speedup,
                    )
                )
            levers += _batching_levers(stage)
            levers.append(
                ContinuousBatchingLever(
                    name=f"continuous batching on {stage.name}",
                    group=f"batching:{stage.name}",
                    stage=stage.name,
                    family="batching",
                    reason="iteration-level scheduling: finished sequences leave, new ones join",
                )
            )
        elif isinstance(stage, PoolStage):
            if gpu_model is not None:
                levers.append(
                    GpuDecodeLever(
                        name=f"{stage.name} on GPU (nvJPEG)",
                        group=f"pool:{stage.name}",
                        stage=stage.name,
                        family="preprocessing",
                        model=gpu_model,
                        reason=f"decode on the GPU, assumed {GPU_DECODE_SPEEDUP:g}x faster per image, "
                        f"+{GPU_DECODE_MS_PER_IMAGE:g} ms GPU time per image on {gpu_model}",
                    )
                )
            levers.append(
                WorkersLever(
                    name=f"2x {stage.name} workers",
                    group=f"pool:{stage.name}",
                    stage=stage.name,
                    family="preprocessing",
                    reason=f"{stage.workers} -> {stage.workers * 2} workers (host cores assumed free)",
                )
            )
        if stage.kind in ("pool", "delay") and any(w in stage.name.lower() for w in FEATURE_STAGE_WORDS):
            levers.append(
                CacheLever(
                    name=f"feature cache on {stage.name} ({cache_hit_rate:.0%} hits)",
                    group=f"cache:feature:{stage.name}",
                    stage=stage.name,
                    tier="feature",
                    hit_rate=cache_hit_rate,
                    family="cache",
                    reason=f"a hit costs {FEATURE_HIT_MS:g} ms locally; hit rate assumed",
                )
            )
        if stage.kind in ("pool", "model") and any(w in stage.name.lower() for w in ENCODER_STAGE_WORDS):
            levers.append(
                CacheLever(
                    name=f"embedding cache on {stage.name} ({cache_hit_rate:.0%} hits)",
                    group=f"cache:embedding:{stage.name}",
                    stage=stage.name,
                    tier="embedding",
                    hit_rate=cache_hit_rate,
                    family="cache",
                    reason="a hit skips the encoder; hit rate assumed",
                )
            )
    levers.append(
        CacheLever(
            name=f"output cache ({cache_hit_rate:.0%} hits)",
            group="cache:output",
            tier="output",
            hit_rate=cache_hit_rate,
            family="cache",
            accuracy_cost="stale answers until invalidated",
            reason="a hit answers without the pipeline; hit rate assumed (repeat requests)",
        )
    )
    replicas = scenario.deployment.replicas
    levers.append(
        ReplicasLever(
            name=f"replicas {replicas} -> {replicas + 1}",
            group="replicas",
            delta=1,
            family="capacity",
            reason="one more replica",
        )
    )
    if replicas > 1:
        levers.append(
            ReplicasLever(
                name=f"replicas {replicas} -> {replicas * 2}",
                group="replicas",
                factor=2,
                family="capacity",
                reason="twice the replicas",
            )
        )
    levers.append(
        ReplicasLever(
            name=f"replicas {replicas} -> {replicas - 1}",
            group="replicas",
            delta=-1,
            family="capacity",
            reason="one replica fewer (cheaper, if the SLO holds)",
        )
    )
    levers.append(
        MinReplicasLever(
            name="2x min_replicas",
            group="replicas",
            family="capacity",
            reason="more warm replicas ahead of traffic; fewer cold starts",
        )
    )
    levers += _hardware_levers(scenario)
    return levers


def _batching_levers(stage) -> list[Lever]:
    if stage.kind != "model":
        return [
            BatchingLever(
                name=f"dynamic batching on {stage.name}",
                group=f"batching:{stage.name}",
                stage=stage.name,
                family="batching",
            )
        ]
    batching = stage.batching
    delay = round(min(5.0, max(0.5, 0.1 * stage.cost.mean_ms(1))), 1)
    if batching.policy != "dynamic":
        size = max(8, batching.max_batch_size)
        return [
            BatchingLever(
                name=f"dynamic batching ({size}, {delay:g} ms) on {stage.name}",
                group=f"batching:{stage.name}",
                stage=stage.name,
                family="batching",
                max_batch_size=size,
                max_queue_delay_ms=delay,
                reason="Triton dynamic batcher: one launch serves several requests",
            )
        ]
    size, wait = batching.max_batch_size, batching.max_queue_delay_ms
    out = [
        BatchingLever(
            name=f"batching re-tuned ({size * 2}, {wait:g} ms) on {stage.name}",
            group=f"batching:{stage.name}",
            stage=stage.name,
            family="batching",
            max_batch_size=size * 2,
            max_queue_delay_ms=wait,
            reason="larger batches under load",
        )
    ]
    if wait > 0:
        out.append(
            BatchingLever(
                name=f"batching re-tuned ({size}, 0 ms) on {stage.name}",
                group=f"batching:{stage.name}",
                stage=stage.name,
                family="batching",
                max_batch_size=size,
                max_queue_delay_ms=0.0,
                reason="no batching window: a batch leaves as soon as an instance is free",
            )
        )
    return out


def _hardware_levers(scenario: Scenario) -> list[Lever]:
    """The next faster and the next cheaper catalogue GPU with a datasheet ratio to the own one (the Sizing
    tab's options: sim.analysis.hardware_options; list prices, the own vendor's)."""
    from sim.analysis.hardware_options import gpu_options, own_hardware
    from sim.spec.hardware import load_catalogue

    if any(stage.kind == "llm" for stage in scenario.stages):
        return []
    options = [  # list prices of the own vendor's stack, as the Sizing tab preselects
        o
        for o in gpu_options(scenario, load_catalogue())
        if o.usd_per_hour is not None and not (o.price_approximate or o.other_vendor)
    ]
    current = own_hardware(scenario)
    price = scenario.deployment.hardware.usd_per_hour or 0.0
    faster = sorted((o for o in options if o.ratio > 1.0), key=lambda o: (o.ratio, o.usd_per_hour))
    cheaper = sorted((o for o in options if o.usd_per_hour < price), key=lambda o: (-o.usd_per_hour, -o.ratio))
    out = []
    for option in {o.name: o for o in faster[:1] + cheaper[:1]}.values():
        out.append(
            HardwareLever(
                name=f"hardware {current} -> {option.name}",
                group="hardware",
                family="hardware",
                target=option.name,
                usd_per_hour=option.usd_per_hour,
                reason=f"${option.usd_per_hour:g}/h, forward ×{option.ratio:.2g} (datasheet roofline, "
                f"{option.speed}; not measured)",
            )
        )
    return out


def scale_dist(spec: Any, factor: float) -> Any:
    """A service-time spec with every time scaled by `factor` (the shape, CV, kept)."""
    return transforms.scale_distribution(spec, factor)


def _scalable(spec: Any, stage: str) -> str | None:
    if transforms.scale_distribution(spec, 2.0) is None:
        return f"the service time of {stage} is not a parametric distribution the advisor can scale"
    return None


def _profile_field(stage, name: str):
    path = getattr(stage, "profile", None)
    if not path:
        return None
    from sim.spec.scenario import _load_profile

    return getattr(_load_profile(path), name, None)


def stack_accuracy(levers: tuple[Lever, ...]) -> float:
    return float(math.fsum(lever.accuracy_pct for lever in levers))
