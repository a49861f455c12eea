"""The sizing search's plan: the range of counts one hardware is searched over, the gallop-then-bisect
search over it (never stopping before the ceiling while no count meets), the bound on the probes it may
still take, and the notes that say what the probes show (levelling off, noise); and a sizing's progress,
counted against a clock, with its ETA. Pure: the probes come from the caller (sim.analysis.sizing)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.analysis.sizing import Budgets, Probe


@dataclass(frozen=True)
class SearchRange:
    """The counts one hardware's search covers, `start` to `ceiling`. A fixed fleet starts at its smallest
    stable count and may reach SEARCH_SPAN counts; an autoscaled one starts at the autoscaler's lowest
    min_replicas and runs to its max_replicas, or past it (max_replicas raised with min_replicas, as
    `with_replicas` does) to the same span: where min_replicas reaches max_replicas, max binds."""

    start: int
    ceiling: int
    max_replicas: int | None = None  # the autoscaler's own (None: a fixed fleet)

    @property
    def stops(self) -> list[int]:
        """Counts the gallop lands on whatever its step: max_replicas (where max starts to be raised), the ceiling."""
        marks = {self.ceiling} | ({self.max_replicas} if self.max_replicas is not None else set())
        return sorted(m for m in marks if self.start <= m <= self.ceiling)

    def gallop(self) -> list[int]:
        """The counts probed while none meets: start, +1, +2, +4, ... landing on every stop, to the ceiling."""
        counts, count, step = [self.start], self.start, 1
        while count < self.ceiling:
            count, step = min(count + step, next(s for s in self.stops if s > count)), step * 2
            counts.append(count)
        return counts


def bisect_probes(gap: int) -> int:
    """Most probes bisection takes to find the boundary between a count that fails and one `gap` above
    it that meets: ceil(log2(gap))."""
    return (gap - 1).bit_length() if gap > 1 else 0


class Search:
    """Gallop then bisect over a SearchRange: probe the gallop's counts until one meets, then bisect the gap
    below it. Never stops before the ceiling while nothing meets. `left()` bounds the probes to come."""

    def __init__(
        self, span: SearchRange, simulates: bool = True, on_record: Callable[[Probe], None] | None = None
    ) -> None:
        self.span = span
        self.simulates = simulates  # False: its probes are an earlier candidate's runs, re-priced
        self.on_record = on_record
        self.planned = span.gallop()
        self.probes: list[Probe] = []
        self.below: Probe | None = None  # the largest count probed that does not meet
        self.above: Probe | None = None  # the smallest count probed that meets

    def next_count(self) -> int | None:
        if self.above is None:
            done = len(self.probes)
            return self.planned[done] if done < len(self.planned) else None
        if self.below is None or self.above.replicas - self.below.replicas <= 1:
            return None
        return (self.below.replicas + self.above.replicas) // 2

    def record(self, point: Probe) -> None:
        self.probes.append(point)
        if point.verdict == "meets":
            self.above = point
        else:
            self.below = point
        if self.on_record:
            self.on_record(point)

    def outcomes(self) -> list[int]:
        """Probes still to come for each way the search may end: the first count to meet is one of the
        gallop's counts left (then bisection, at its worst, of the gap below it), or none is."""
        if self.above is not None:
            return [bisect_probes(self.above.replicas - self.below.replicas) if self.below is not None else 0]
        remaining = self.planned[len(self.probes) :]
        low = self.below.replicas if self.below is not None else None
        ends = []
        for k, count in enumerate(remaining, start=1):
            ends.append(k + (bisect_probes(count - low) if low is not None else 0))
            low = count
        return [*ends, len(remaining)]

    def left(self) -> int:
        """The most probes still to come (the worst case over where the first count meets)."""
        return max(self.outcomes())

    def expected_left(self) -> float:
        """The probes still to come on average over `outcomes`, each as likely: the gallop's counts are
        log-spaced, so this guesses the answer's order of magnitude, not its value, uniformly."""
        ends = self.outcomes()
        return sum(ends) / len(ends)


def smallest_meeting(probes: list[Probe], start: int) -> Probe | None:
    """The smallest count that meets whose one-fewer probe does not (or that is the search's start)."""
    verdicts = {p.replicas: p.verdict for p in probes}
    return next(
        (
            p
            for p in sorted(probes, key=lambda p: p.replicas)
            if p.verdict == "meets" and (p.replicas == start or verdicts.get(p.replicas - 1, "meets") != "meets")
        ),
        None,
    )


VERDICT_RANK = {"meets": 0, "too close": 1, "misses": 2}


def decisive(point: Probe, budgets: Budgets) -> tuple[str, float, float, float]:
    """(label, value, its CI's lower end, budget) of the measure furthest over (or least under) its budget,
    the p99 taken as the worst judged window where that is higher: what decides whether more replicas help."""
    measures = []
    for label, value, ci, budget in budgets.measures(point):
        low = ci[0] if ci is not None else value
        worst = point.worst_window_p99_ms
        if label == "p99" and worst is not None and worst > value:
            label, value, low = "worst-window p99", worst, worst
        measures.append((label, value, low, budget))
    return max(measures, key=lambda m: m[1] / m[3] if not math.isnan(m[1]) else math.inf)


def ratio(point: Probe, budgets: Budgets) -> float:
    _, value, _, budget = decisive(point, budgets)
    return math.inf if math.isnan(value) else value / budget


def monotone_note(name: str, knob: str, probes: list[Probe], budgets: Budgets) -> str | None:
    """A note where a larger count did worse than a smaller one (latency or verdict): noise, since the
    search assumes more replicas never hurt."""
    rises = [
        (a, b)
        for a, b in zip(probes, probes[1:])
        if VERDICT_RANK[b.verdict] > VERDICT_RANK[a.verdict]
        or (math.isfinite(ratio(b, budgets)) and ratio(b, budgets) > ratio(a, budgets))
    ]
    if not rises:
        return None
    a, b = rises[0]
    label, value, _, _ = decisive(b, budgets)
    _, before, _, _ = decisive(a, budgets)
    more = f" (and {len(rises) - 1} more)" if len(rises) > 1 else ""
    return (
        f"{name}: the probes are not monotone: {label} {before:,.1f} ms ({a.verdict}) at {knob} {a.replicas}, "
        f"{value:,.1f} ms ({b.verdict}) at {b.replicas}{more}: noise at this many replications"
    )


def ceiling_note(name: str, knob: str, probes: list[Probe], budgets: Budgets) -> str:
    """Why no count up to the ceiling meets, with the ceiling's probe (and the one before) as evidence."""
    top = probes[-1]
    label, value, low, budget = decisive(top, budgets)
    ci = f" (95% CI from {low:,.1f} ms)" if label != "worst-window p99" and low != value else ""
    head = f"{name}: no {knob} up to the search's ceiling ({top.replicas}) meets the SLO"
    before = probes[-2] if len(probes) > 1 else None
    if before is None or not math.isfinite(value) or value / budget < 0.98 * ratio(before, budgets):
        return f"{head}; at the ceiling {label} {value:,.1f} ms{ci}, still falling: the answer, if any, lies above it"
    _, earlier, _, _ = decisive(before, budgets)
    levelled = (
        f"{label} has levelled off ({earlier:,.1f} ms at {before.replicas}, {value:,.1f} ms{ci} at {top.replicas})"
    )
    if low > budget:
        return f"{head}: {levelled}, above the SLO: more replicas do not help; the floor is the service path itself (see `servesim advise`)"
    return f"{head}: {levelled}, within the 95% CI of the SLO: too close to call (more replications or requests narrow the CI)"


@dataclass(frozen=True)
class SizingProgress:
    """Where a sizing stands: probes and replications finished; still to come, the most the gallop / bisect
    plan may take and what it takes on average over where the answer may lie (`Search.expected_left`), the
    searches of candidates yet to come and the fresh-seed re-checks included (a candidate that shares an
    earlier one's runs costs none); the wall time so far; and the time a replication takes: the last
    finished probe's wall time over its replications (its window verdict included), so a one-off start-up
    in the first probe (a process pool, a compiled kernel's load) does not weigh on the rest; before the
    first probe ends, the mean over the replications so far."""

    probes_done: int
    probes_left: int
    probes_expected: float
    replications_done: int
    replications_left: int
    replications_expected: float
    elapsed_s: float
    seconds_per_replication: float | None

    @property
    def eta_s(self) -> float | None:
        """Seconds still to go, at most: the replications the plan may still run at the time each takes."""
        if self.seconds_per_replication is None:
            return None
        return self.replications_left * self.seconds_per_replication

    @property
    def expected_eta_s(self) -> float | None:
        """Seconds still to go on average over where the answer may lie, at the time a replication takes."""
        if self.seconds_per_replication is None:
            return None
        return self.replications_expected * self.seconds_per_replication


class Meter:
    """A sizing's probes and replications counted against its clock, reported as SizingProgress."""

    def __init__(
        self,
        replications: int,
        clock: Callable[[], float],
        on_progress: Callable[[SizingProgress], None] | None,
        probes_left: Callable[[], tuple[int, float]],
    ) -> None:
        self.replications = replications  # per probe
        self.clock = clock
        self.on_progress = on_progress
        self.probes_left = probes_left  # (most, expected) by the plan, asked afresh at each report
        self.started = self.probe_started = clock()
        self.probes_done = self.replications_done = self.in_probe = 0
        self.last_probe_per_replication: float | None = None

    def replication(self, done: int, total: int) -> None:
        """simulate's `on_replication`: `done` of the running probe's replications have finished."""
        self.replications_done += done - self.in_probe
        self.in_probe = done
        self.report()

    def probe_done(self, _point: Probe | None = None) -> None:
        now = self.clock()
        if self.in_probe:
            self.last_probe_per_replication = (now - self.probe_started) / self.in_probe
        self.probe_started = now
        self.probes_done += 1
        self.in_probe = 0
        self.report()

    def report(self) -> None:
        if self.on_progress is None:
            return
        most, expected = self.probes_left()
        elapsed = self.clock() - self.started
        per_replication = self.last_probe_per_replication
        if per_replication is None and self.replications_done:
            per_replication = elapsed / self.replications_done
        self.on_progress(
            SizingProgress(
                self.probes_done,
                most,
                expected,
                self.replications_done,
                max(0, most * self.replications - self.in_probe),
                max(0.0, expected * self.replications - self.in_probe),
                elapsed,
                per_replication,
            )
        )
