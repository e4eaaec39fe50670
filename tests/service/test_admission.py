"""The batcher's admission: the cost of a call learnt as a fixed part plus a part per unit of
work, from every call; an idle batcher admits anything."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.runtime.batching import Batcher, BatcherConfig, CallCost, QueueFull

pytestmark = pytest.mark.anyio


def test_call_cost_fits_fixed_plus_per_unit() -> None:
    cost = CallCost()
    assert cost.seconds(3, 1000) == 0.0  # nothing known: no refusal on a guess
    for units in (10, 400, 40, 3000, 100) * 3:
        cost.observe(units, 0.002 + 0.0001 * units)
    fixed, per_unit = cost.fit()
    assert fixed == pytest.approx(0.002, rel=1e-3)
    assert per_unit == pytest.approx(0.0001, rel=1e-3)
    assert cost.seconds(2, 500) == pytest.approx(0.004 + 0.05, rel=1e-3)


def test_call_cost_of_one_size_is_proportional() -> None:
    cost = CallCost()
    for _ in range(4):
        cost.observe(512, 4.0)
    assert cost.fit() == (0.0, pytest.approx(4.0 / 512))


def test_recent_calls_weigh_more() -> None:
    cost = CallCost(decay=0.5)
    cost.observe(100, 10.0)  # a stall long ago
    for _ in range(10):
        cost.observe(100, 1.0)
    assert cost.seconds(0, 100) == pytest.approx(1.0, rel=1e-2)


class Gate:
    """A handler that sleeps `per_unit` seconds per unit, and can be held."""

    def __init__(self, per_unit: float) -> None:
        self.per_unit = per_unit
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        self.open.wait(10)
        time.sleep(self.per_unit * sum(items))
        return items


def lane(handler: Gate) -> Batcher[int, int]:
    config = BatcherConfig(max_batch_size=8, max_wait_s=0, max_queue=64)
    return Batcher(handler, config, size_of=lambda n: n)


async def test_a_slow_call_does_not_lock_an_idle_batcher() -> None:
    handler = Gate(per_unit=0.005)
    batcher = lane(handler)
    batcher.start()
    deadline = time.monotonic() + 0.3
    jobs = batcher.submit([50] * 4, deadline)  # 1 s of work, 0.3 s deadline
    with pytest.raises(TimeoutError):
        await batcher.wait(jobs, deadline)
    assert handler.entered.is_set()  # taken before its deadline: the call runs on
    while not batcher.idle:  # the call ends (however long a busy machine makes it) ...
        await asyncio.sleep(0.01)
    assert batcher.cost.seconds(1, 200) > 0.5  # ... and the batcher learnt "200 units take 1 s"
    handler.per_unit = 0.00001  # that was a bad moment: the work is really fast
    # Estimated at 1 s, past its 0.5 s deadline, but the batcher is idle: admitted and learnt.
    results, _ = await batcher.run([50] * 4, time.monotonic() + 0.5)
    assert results == [50] * 4
    await batcher.stop()


async def test_admission_counts_units_not_items() -> None:
    handler = Gate(per_unit=0.001)
    batcher = lane(handler)
    batcher.start()
    await batcher.run([100] * 4, time.monotonic() + 5)  # learn: 400 units ~ 0.4 s
    handler.open.clear()
    busy = asyncio.create_task(batcher.run([100] * 4, time.monotonic() + 5))
    await asyncio.to_thread(handler.entered.wait, 5)
    # Behind 400 units: 8 small items fit in 1 s; 8 items of 100 units (0.8 s more) do not.
    small = batcher.submit([1] * 8, time.monotonic() + 1.0)
    with pytest.raises(QueueFull) as refused:
        batcher.submit([100] * 8, time.monotonic() + 1.0)
    assert refused.value.retry_after >= 1
    handler.open.set()
    await busy
    assert (await batcher.wait(small, time.monotonic() + 5))[0] == [1] * 8
    await batcher.stop()
