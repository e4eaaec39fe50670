"""CPU time of a call, for the tests that hold a cost to its input's size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def cpu_seconds(fn: Callable[[], object], runs: int = 9) -> float:
    """Median CPU seconds of this thread per call: unlike wall time, what other processes on a
    busy machine take does not count (their share of the cores is not this code's cost)."""
    fn()  # warm: lazily built lookups and caches are paid once per process, not per request
    times = []
    for _ in range(runs):
        started = time.thread_time()
        fn()
        times.append(time.thread_time() - started)
    return statistics.median(times)
