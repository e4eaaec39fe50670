"""CPU time of calls, for the tests that hold a cost to its input's size."""

from __future__ import annotations

import time
from collections.abc import Callable


def cpu_costs(*calls: Callable[[], object], runs: int = 9) -> list[float]:
    """The least CPU seconds of this thread per call of each, the calls measured in turns.

    CPU time, unlike wall time, leaves out what other processes take of the cores; but on a
    shared machine a busy neighbour (a hyperthread sibling, the caches) still slows this thread
    and only ever adds. So the least of several runs is the cost, and turns spread a burst of
    contention over every call compared instead of inflating one of them (a CI run once read a
    linear cost as 3.2x for double the size, measuring one side after the other)."""
    for call in calls:
        call()  # warm: lazily built lookups and caches are paid once per process, not per request
    least = [float("inf")] * len(calls)
    for _ in range(runs):
        for i, call in enumerate(calls):
            started = time.thread_time()
            call()
            least[i] = min(least[i], time.thread_time() - started)
    return least
