"""The inner loop of the fleet walk (sim/engine/queue_walk.py): one FIFO queue, its warm servers, batch by
batch, up to a stop time.

One source, two engines: numba compiles `advance` (sim/engine/compiled.py) for large runs, and small runs call
it as plain Python on lists (no compile or load time). It therefore uses only indexing, arithmetic and loops
that mean the same on numpy arrays and on lists. The batching rule is read from `now_sizes` / `max_batch` /
`trigger_offset` / `delay`, which `BatchRule` (sim/spec/batching.py) fills; nothing here knows a policy.

The walk owns no events: it stops and hands control back (a status) where something outside the queue
decides (the stop time: a control tick, a cold start ending; the end of traffic, replayed in SimPy's order;
the stage falling empty long enough to scale to zero; no warm server; service draws used up).
"""

from __future__ import annotations

# Statuses `advance` returns.
REACHED = 0  # the next dispatch is at or after the stop time
REFILL = 1  # the base service draws ran out (the planned batch's size is in ints[PLANNED])
FINISHED = 2  # every request is dispatched
ZERO = 3  # the stage has been empty for the idle-to-zero time: scale to zero at floats[ZERO_AT]
STALLED = 4  # requests wait and no warm server exists
END_OF_TRAFFIC = 5  # the instant of the last arrival is next (SimPy's order there is the caller's)
TICKS_FULL = 6  # the tick samples' buffer is full (the caller reads it and walks on)
_SEND = -1  # (internal) the planned batch leaves

# Slots of the float state.
PREVIOUS, FLOOR, MAX_END, FIRED_FOR, ZERO_AT, STOP, DONE, DELAY, IDLE_ZERO, NEXT_AT = range(10)
NEXT_TICK, TICK_STEP, TICK_END = range(10, 13)
FLOAT_SLOTS = 13
# Slots of the int state.
HEAD, HEAP_LEN, USED, BASE_LEN, COUNT, FLUSHED, PLANNED, HAS_DELAY, TICKS, ARRIVED = range(10)
INT_SLOTS = 10


def advance(
    clock,
    ready,
    n,
    heap_at,
    heap_srv,
    end_ms,
    last_size,
    fs,
    ist,
    now_sizes,
    max_batch,
    trigger_offset,
    constant,
    use_constant,
    base,
    multiplier,
    divisors,
    out_size,
    out_start,
    out_service,
    out_server,
    tick_queued,
    tick_in_service,
    tick_busy,
):
    """Commit batches in dispatch order while they leave before `fs[STOP]`; returns a status.

    `clock` / `ready`: each request's SimPy clock at its arrival and its ready time, sorted; `heap_at` /
    `heap_srv` (first `ist[HEAP_LEN]`): a binary min-heap of (free at, server) over the warm servers, which
    orders them as SimPy's idle list does (longest idle first, then creation order); `end_ms` / `last_size`:
    per server, when its last batch ends and its size. A batch's service time is `constant[size]`, or the
    next base draw × `multiplier[size]`, divided by each of `divisors` in turn.

    Control ticks from `fs[NEXT_TICK]` every `fs[TICK_STEP]` and before `fs[TICK_END]` are sampled on the way
    (requests queued, requests in service on warm servers, busy warm servers), as the autoscaler would see
    them, into `tick_*` (`ist[TICKS]` of them; TICKS_FULL when the buffer is), so that the caller asks its
    policy about a stretch of ticks after one call."""
    head = ist[HEAD]
    heap_len = ist[HEAP_LEN]
    used = ist[USED]
    base_len = ist[BASE_LEN]
    count = ist[COUNT]
    flushed = ist[FLUSHED] != 0
    has_delay = ist[HAS_DELAY] != 0
    ticks = ist[TICKS]
    arrived = ist[ARRIVED]
    previous = fs[PREVIOUS]
    floor = fs[FLOOR]
    max_end = fs[MAX_END]
    fired_for = fs[FIRED_FOR]
    stop = fs[STOP]
    done = fs[DONE]
    delay = fs[DELAY]
    idle_zero = fs[IDLE_ZERO]
    next_tick = fs[NEXT_TICK]
    tick_end = fs[TICK_END]
    cap = len(tick_queued)
    while True:
        # Plan what happens next and when: a batch leaves (_SEND at `when`), or the walk hands back.
        arrival = 0.0
        status = _SEND
        when = stop
        server = 0
        d = 0.0
        size = 0
        zero_at = 0.0
        if head >= n:
            status = FINISHED
        else:
            arrival = clock[head]
            # Empty since the last batch ended (nothing in service, the next request not yet here): the
            # idle-to-zero rule fires once per such lull, if it lasts.
            if idle_zero >= 0.0 and max_end > fired_for and arrival > max_end:
                zero_at = max_end + idle_zero
                if zero_at < arrival and zero_at < stop:
                    status = ZERO
                    when = zero_at
        if status == _SEND:
            if heap_len == 0:
                status = STALLED
                when = -1.0  # no tick is sampled past a stall: the caller decides what comes first
            else:
                server = heap_srv[0]
                t0 = heap_at[0]
                if previous > t0:
                    t0 = previous
                if arrival > t0:
                    t0 = arrival
                if floor > t0:
                    t0 = floor
                if not flushed and t0 >= done and done < stop:
                    status = END_OF_TRAFFIC
                    when = done
                elif t0 >= stop:
                    status = REACHED
                    fs[NEXT_AT] = t0
                else:
                    hi = head + max_batch
                    if hi > n:
                        hi = n
                    queued = 0
                    while head + queued < hi and clock[head + queued] <= t0:
                        queued += 1
                    size = max_batch if queued >= max_batch else now_sizes[queued]
                    if size > 0:
                        d = t0
                    elif flushed:
                        d = t0  # after the end of traffic a free server takes whatever is queued
                        size = queued
                    else:
                        deadline = ready[head] + delay
                        if has_delay and deadline <= t0:
                            d = t0
                            size = queued
                        else:
                            # This server waits for its batch to form (SimPy's `former`): until enough
                            # requests are queued to leave at once, the oldest one's delay runs out, or
                            # traffic ends.
                            d = done
                            j = head + trigger_offset
                            if j < n and clock[j] <= d:
                                d = clock[j]
                            if has_delay:
                                wake = t0 + (deadline - t0)  # SimPy's timeout of (deadline - now) from now
                                if wake < deadline:
                                    wake = deadline
                                if wake < d:
                                    d = wake
                            if d >= done and done < stop:
                                status = END_OF_TRAFFIC
                                when = done
                            elif d >= stop:
                                status = REACHED
                                fs[NEXT_AT] = d
                            else:
                                queued = 0
                                while head + queued < hi and clock[head + queued] <= d:
                                    queued += 1
                                size = max_batch if queued >= max_batch else now_sizes[queued]
                                if size == 0:
                                    size = queued
                    when = d if status == _SEND else when
        # The control ticks before then see the queue as it is now: requests arrived and not yet sent,
        # and what the warm servers are serving (the caller adds draining replicas').
        full = False
        while next_tick < when and next_tick < tick_end:
            if ticks == cap:
                full = True
                break
            while arrived < n and clock[arrived] <= next_tick:
                arrived += 1
            in_service = 0
            busy = 0
            for i in range(heap_len):
                if heap_at[i] > next_tick:
                    in_service += last_size[heap_srv[i]]
                    busy += 1
            tick_queued[ticks] = arrived - head
            tick_in_service[ticks] = in_service
            tick_busy[ticks] = busy
            ticks += 1
            next_tick += fs[TICK_STEP]
        if full:
            status = TICKS_FULL
            break
        if status == ZERO:
            fs[ZERO_AT] = zero_at
            fired_for = max_end
        if status != _SEND:
            break
        if use_constant:
            duration = constant[size]
        else:
            if used == base_len:
                ist[PLANNED] = size
                status = REFILL
                break
            duration = base[used] * multiplier[size]
            used += 1
        for k in range(len(divisors)):
            duration = duration / divisors[k]
        out_size[count] = size
        out_start[count] = d
        out_service[count] = duration
        out_server[count] = server
        count += 1
        value = d + duration
        # heapreplace on (free at, server) pairs, ordered as Python orders tuples
        k = 0
        while True:
            child = 2 * k + 1
            if child >= heap_len:
                break
            if child + 1 < heap_len and (
                heap_at[child + 1] < heap_at[child]
                or (heap_at[child + 1] == heap_at[child] and heap_srv[child + 1] < heap_srv[child])
            ):
                child += 1
            if heap_at[child] < value or (heap_at[child] == value and heap_srv[child] < server):
                heap_at[k] = heap_at[child]
                heap_srv[k] = heap_srv[child]
                k = child
            else:
                break
        heap_at[k] = value
        heap_srv[k] = server
        end_ms[server] = value
        last_size[server] = size
        if value > max_end:
            max_end = value
        head += size
        previous = d
    ist[HEAD] = head
    ist[USED] = used
    ist[COUNT] = count
    ist[TICKS] = ticks
    ist[ARRIVED] = arrived
    fs[PREVIOUS] = previous
    fs[MAX_END] = max_end
    fs[FIRED_FOR] = fired_for
    fs[NEXT_TICK] = next_tick
    return status
