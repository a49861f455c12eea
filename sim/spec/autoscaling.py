"""Autoscaling policies: each turns recent load samples into a target replica count.

The model stage's autoscaler process (sim/engine/model_stage.py) samples the load once a second, asks the
policy every `decision_interval_s`, and owns all waiting and replica lifecycle (cold starts, draining).
A policy keeps only its decision memory (delay counters, panic mode, recommendations) in a `state` dict
the process hands it, so the policy object itself stays a frozen value. Knobs carry the names and
defaults users know from Ray Serve, Knative (KPA) and the Kubernetes HPA.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.spec.bounds import IntervalSeconds, PositiveSeconds, Replicas, ReplicasOrZero, Seconds

SAMPLE_INTERVAL_MS = 1000.0


@dataclass
class LoadSamples:
    """Once-a-second samples of the stage: requests ongoing (queued + in service), warm replicas, and
    the busy share of warm instances."""

    time_ms: list[float] = field(default_factory=list)
    ongoing: list[int] = field(default_factory=list)
    warm: list[int] = field(default_factory=list)
    busy_share: list[float] = field(default_factory=list)

    def mean(self, series: list, since_ms: float) -> float:
        start = bisect.bisect_left(self.time_ms, since_ms)
        window = series[start:]
        return sum(window) / len(window) if window else 0.0

    def last_traffic_ms(self) -> float | None:
        for t, ongoing in zip(reversed(self.time_ms), reversed(self.ongoing)):
            if ongoing > 0:
                return t
        return None


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    min_replicas: ReplicasOrZero = 1
    max_replicas: Replicas = 1
    initial_replicas: ReplicasOrZero | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "_Policy":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        start = self.initial_replicas
        if start is not None and not self.min_replicas <= start <= self.max_replicas:
            raise ValueError(f"initial_replicas ({start}) must lie between min_replicas and max_replicas")
        return self

    @property
    def start_replicas(self) -> int:
        return self.min_replicas if self.initial_replicas is None else self.initial_replicas

    @property
    def decision_interval_s(self) -> float:
        raise NotImplementedError

    @property
    def idle_to_zero_ms(self) -> float | None:
        """With min_replicas 0: how long the stage must be empty before the last replica goes (None: the
        policy's own decisions handle it)."""
        return None

    def clip(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))

    def desired_replicas(self, now_ms: float, samples: LoadSamples, current: int, state: dict) -> int:
        raise NotImplementedError


class RayServe(_Policy):
    """Ray Serve: desired = ceil(mean ongoing requests over `look_back_period_s` / `target_ongoing_requests`);
    applied only after it has pointed up for `upscale_delay_s` (down: `downscale_delay_s`). The control
    loop is evaluated every `decision_interval_s` (Ray: 0.1 s; 1 s here is finer than the 10 s metrics push)."""

    policy: Literal["ray_serve"]
    target_ongoing_requests: float = Field(default=2.0, gt=0, le=1e6)
    upscale_delay_s: Seconds = 30.0
    downscale_delay_s: Seconds = 600.0
    metrics_interval_s: IntervalSeconds = 10.0
    look_back_period_s: PositiveSeconds = 30.0
    control_interval_s: IntervalSeconds = 1.0

    @property
    def decision_interval_s(self) -> float:
        return self.control_interval_s

    def desired_replicas(self, now_ms: float, samples: LoadSamples, current: int, state: dict) -> int:
        ongoing = samples.mean(samples.ongoing, now_ms - self.look_back_period_s * 1000)
        desired = self.clip(math.ceil(ongoing / self.target_ongoing_requests - 1e-9))
        if current == 0 and samples.ongoing and samples.ongoing[-1] > 0:
            return max(desired, 1)  # traffic waiting at zero replicas scales up at once
        up, down = state.get("up", 0), state.get("down", 0)
        if desired > current:
            state["up"], state["down"] = up + 1, 0
            if (up + 1) * self.control_interval_s >= self.upscale_delay_s:
                state["up"] = 0
                return desired
        elif desired < current:
            state["down"], state["up"] = down + 1, 0
            if (down + 1) * self.control_interval_s >= self.downscale_delay_s:
                state["down"] = 0
                return desired
        else:
            state["up"] = state["down"] = 0
        return current


class Knative(_Policy):
    """Knative KPA: desired = ceil(mean concurrency / (`target` × `target_utilization`)) over the
    `stable_window_s`; when the panic-window (`panic_window_percentage` of the stable window) demand
    reaches `panic_threshold_percentage` of the ready replicas, panic mode scales up on the panic window
    and does not scale down for a stable window. Scale to zero after a stable window without traffic
    plus `scale_to_zero_grace_period_s`."""

    policy: Literal["knative"]
    min_replicas: ReplicasOrZero = Field(default=0, alias="min_scale")
    max_replicas: Replicas = Field(default=10, alias="max_scale")
    target: float = Field(default=1.0, gt=0, le=1e6)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    stable_window_s: Seconds = 60.0
    panic_window_percentage: float = Field(default=10.0, gt=0, le=100)
    panic_threshold_percentage: float = Field(default=200.0, gt=100, le=1e6)
    scale_to_zero_grace_period_s: Seconds = 30.0
    tick_interval_s: IntervalSeconds = 2.0
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @property
    def decision_interval_s(self) -> float:
        return self.tick_interval_s

    @property
    def idle_to_zero_ms(self) -> float | None:
        return (self.stable_window_s + self.scale_to_zero_grace_period_s) * 1000 if self.min_replicas == 0 else None

    def desired_replicas(self, now_ms: float, samples: LoadSamples, current: int, state: dict) -> int:
        per_replica = self.target * self.target_utilization
        stable_ms = self.stable_window_s * 1000
        stable = samples.mean(samples.ongoing, now_ms - stable_ms)
        panic = samples.mean(samples.ongoing, now_ms - stable_ms * self.panic_window_percentage / 100)
        want_stable = math.ceil(stable / per_replica - 1e-9)
        want_panic = math.ceil(panic / per_replica - 1e-9)
        ready = samples.warm[-1] if samples.warm else current
        if ready and want_panic / ready >= self.panic_threshold_percentage / 100:
            state["panic_until_ms"] = now_ms + stable_ms
        if now_ms < state.get("panic_until_ms", -math.inf):
            return self.clip(max(want_panic, current))
        if want_stable == 0 and current > 0:
            return self.clip(1)  # zero is reached by the idle-to-zero rule, after the grace period
        return self.clip(want_stable)


class Hpa(_Policy):
    """Kubernetes HPA on instance utilisation: desired = ceil(current × utilisation / target) every
    `sync_period_s` (ignored within `tolerance`); scale-down takes the highest recommendation of the
    last `scale_down_stabilization_s`."""

    policy: Literal["hpa"]
    min_replicas: Replicas = 1
    target_utilization: float = Field(default=0.6, gt=0, le=1)
    sync_period_s: IntervalSeconds = 15.0
    scale_down_stabilization_s: Seconds = 300.0
    tolerance: float = Field(default=0.1, ge=0, le=10)

    @property
    def decision_interval_s(self) -> float:
        return self.sync_period_s

    def desired_replicas(self, now_ms: float, samples: LoadSamples, current: int, state: dict) -> int:
        utilization = samples.mean(samples.busy_share, now_ms - self.sync_period_s * 1000)
        ratio = utilization / self.target_utilization
        desired = current if abs(ratio - 1) <= self.tolerance else self.clip(math.ceil(current * ratio - 1e-9))
        history = [
            (t, r) for t, r in state.get("recommendations", []) if t > now_ms - self.scale_down_stabilization_s * 1000
        ]
        history.append((now_ms, desired))
        state["recommendations"] = history
        if desired < current:
            return max(r for _, r in history)
        return desired


AutoscalingPolicy = Annotated[Union[RayServe, Knative, Hpa], Field(discriminator="policy")]
