"""Offered load per stage (ρ = arrival rate × work per request / servers), computed from the scenario.

For a model stage the work per request is at the most efficient batch size the policy allows, with every
instance of a replica busy (a profile measured with co-located instances is slower then, and a queue that
keeps up only when instances run alone does not keep up), so ρ ≥ 1 means no batching the policy can do
keeps up: the queue grows without bound.
"""

from __future__ import annotations

from sim.spec.scenario import ModelStage, PoolStage, Scenario


def offered_load(scenario: Scenario) -> dict[str, float]:
    rate_per_ms = scenario.workload.arrival.mean_rate_rps / 1000.0
    deployment = scenario.deployment
    loads: dict[str, float] = {}
    for stage in scenario.stages:
        if isinstance(stage, PoolStage):
            servers = stage.workers * (deployment.replicas if stage.per_replica else 1)
            loads[stage.name] = rate_per_ms * stage.service_ms.mean / servers
        elif isinstance(stage, ModelStage):
            replicas = deployment.autoscaling.max_replicas if deployment.autoscaling else deployment.replicas
            loads[stage.name] = (
                rate_per_ms * best_ms_per_request(stage, deployment.instances) / (replicas * deployment.instances)
            )
    return loads


def best_ms_per_request(stage: ModelStage, busy_instances: int = 1) -> float:
    """Fewest instance-milliseconds per request over the batch sizes the policy can send, with
    `busy_instances` instances of the replica busy at once (interference, where the profile measured it)."""
    sizes = stage.batching.rule().sizes
    return min(stage.cost.mean_ms(b, busy_instances) / b for b in sizes)
