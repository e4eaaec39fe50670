"""The generic batcher, with plain-Python handlers (no model)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from service.runtime.batching import (
    Batcher,
    BatcherClosed,
    BatcherConfig,
    DeadlineExceeded,
    HandlerError,
    QueueFull,
    _similar_sizes,
)

pytestmark = pytest.mark.anyio


class Recorder:
    """A handler that doubles numbers, records each call, and can be held at a gate."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"poison {self.fail_on}")
        return [2 * i for i in items]


def make(handler: Recorder, **config: object) -> Batcher[int, int]:
    values: dict[object, object] = {"max_batch_size": 8, "max_wait_s": 0.005, "max_queue": 64}
    values.update(config)
    return Batcher(handler, BatcherConfig(**values), size_of=lambda n: n)  # type: ignore[arg-type]


def later(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `condition` (not for a guessed time: a busy machine may take longer)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"still not true after {timeout} s")
        await asyncio.sleep(0.001)


async def test_results_in_order_and_batched_while_handler_busy() -> None:
    handler = Recorder()
    batcher = make(handler)
    batcher.start()
    handler.gate.clear()
    first = asyncio.create_task(batcher.run([100], later()))
    await asyncio.to_thread(handler.entered.wait, 5)  # the worker is now stuck in call 1
    rest = [asyncio.create_task(batcher.run([i], later())) for i in range(8)]
    await until(lambda: batcher.depth == 8)
    handler.gate.set()
    assert (await first)[0] == [200]
    assert [(await t)[0] for t in rest] == [[2 * i] for i in range(8)]
    # Everything queued behind the busy call went in one call, which each caller reports.
    assert handler.calls == [[100], list(range(8))]
    assert (await rest[0])[1] == 8
    await batcher.stop()


async def test_batch_never_exceeds_max_size() -> None:
    handler = Recorder()
    batcher = make(handler, max_batch_size=4)
    batcher.start()
    results = await asyncio.gather(*(batcher.run([i], later()) for i in range(30)))
    assert [r[0] for r in results] == [[2 * i] for i in range(30)]
    assert max(len(call) for call in handler.calls) <= 4
    assert sum(len(call) for call in handler.calls) == 30
    await batcher.stop()


async def test_idle_caller_does_not_wait_for_batch_mates() -> None:
    max_wait_s = 3.0
    batcher = make(Recorder(), max_wait_s=max_wait_s)
    batcher.start()
    await batcher.run([1], later())  # warm: last batch had one item
    started = time.perf_counter()
    for i in range(5):
        await batcher.run([i], later())
    # Five calls in less than one max_wait: none waited for mates (that would take 5 x 3 s).
    assert time.perf_counter() - started < max_wait_s
    await batcher.stop()


async def test_multi_item_submission_is_all_or_nothing() -> None:
    batcher = make(Recorder(), max_queue=4)
    batcher.start()
    with pytest.raises(QueueFull):
        batcher.submit([1, 2, 3, 4, 5], later())
    assert batcher.depth == 0
    results, _ = await batcher.run([1, 2, 3, 4], later())
    assert results == [2, 4, 6, 8]
    await batcher.stop()


async def test_queue_full_refuses_at_once_with_retry_after() -> None:
    handler = Recorder()
    batcher = make(handler, max_queue=3)
    batcher.start()
    handler.gate.clear()
    busy = asyncio.create_task(batcher.run([0], later()))
    await asyncio.to_thread(handler.entered.wait, 5)
    queued = [asyncio.create_task(batcher.run([i], later())) for i in range(3)]
    await until(lambda: batcher.depth == 3)
    with pytest.raises(QueueFull) as info:
        batcher.submit([9], later())
    assert info.value.retry_after >= 1
    handler.gate.set()
    await busy
    await asyncio.gather(*queued)
    await batcher.stop()


async def batches_of_a_deep_queue(sizes: list[int]) -> list[list[int]]:
    """The batches `sizes` are served in, all queued while the handler is busy (batches of 3,
    a window of 4 batches)."""
    handler = Recorder()
    batcher = make(handler, max_batch_size=3, lookahead=4)
    batcher.start()
    handler.gate.clear()
    busy = asyncio.create_task(batcher.run([1], later()))
    await asyncio.to_thread(handler.entered.wait, 5)
    tasks = [asyncio.create_task(batcher.run([s], later())) for s in sizes]
    await until(lambda: batcher.depth == len(sizes))
    handler.gate.set()
    await busy
    await asyncio.gather(*tasks)
    await batcher.stop()
    return handler.calls[1:]


async def test_similar_sizes_are_grouped_when_the_queue_is_deep() -> None:
    # The oldest (50) goes first, with its nearest neighbours.
    assert await batches_of_a_deep_queue([50, 3, 51, 4, 52, 5]) == [[50, 51, 52], [3, 4, 5]]


async def test_an_item_passed_over_once_goes_in_the_next_batch() -> None:
    # The first batch takes 1, 2, 3 and passes over 100, 4 and 5: those three go next, ahead
    # of the later 6 and 7 that are nearer in size to 100.
    batches = await batches_of_a_deep_queue([1, 100, 2, 3, 4, 5, 6, 7])
    assert batches == [[1, 2, 3], [100, 4, 5], [6, 7]]


def test_similar_sizes_always_include_the_oldest() -> None:
    assert _similar_sizes([10, 1, 2, 3, 11, 12], 3) == {0, 4, 5}
    assert _similar_sizes([1, 100, 101, 102], 2) == {0, 1}
    assert _similar_sizes([5, 5, 5], 3) == {0, 1, 2}


async def test_a_failing_item_fails_only_its_caller() -> None:
    handler = Recorder(fail_on=13)
    batcher = make(handler)
    batcher.start()
    handler.gate.clear()
    busy = asyncio.create_task(batcher.run([0], later()))
    await asyncio.to_thread(handler.entered.wait, 5)
    tasks = [asyncio.create_task(batcher.run([i], later())) for i in (11, 12, 13, 14)]
    await until(lambda: batcher.depth == 4)
    handler.gate.set()
    await busy
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [o[0] for o in outcomes if not isinstance(o, BaseException)] == [[22], [24], [28]]
    error = outcomes[2]
    assert isinstance(error, HandlerError)
    assert isinstance(error.__cause__, ValueError)
    # And the worker is still alive.
    assert (await batcher.run([3], later()))[0] == [6]
    await batcher.stop()


async def test_handler_returning_the_wrong_count_is_an_error() -> None:
    def short(items: Sequence[int]) -> list[int]:
        return []

    batcher: Batcher[int, int] = Batcher(short, BatcherConfig(max_batch_size=4))
    batcher.start()
    with pytest.raises(HandlerError):
        await batcher.run([1, 2], later())
    await batcher.stop()


async def test_items_past_their_deadline_are_dropped_unprocessed() -> None:
    handler = Recorder()
    batcher = make(handler)
    batcher.start()
    handler.gate.clear()
    busy = asyncio.create_task(batcher.run([0], later()))
    await asyncio.to_thread(handler.entered.wait, 5)
    with pytest.raises(DeadlineExceeded):
        await batcher.run([7], time.monotonic() + 0.05)
    handler.gate.set()
    await busy
    # Work is taken oldest first: once an item queued after it is done, 7 has been dropped or
    # processed (alone or with 8), whatever the machine's speed.
    assert (await batcher.run([8], later()))[0] == [16]
    assert not any(7 in call for call in handler.calls), handler.calls
    await batcher.stop()


async def test_stop_finishes_queued_work_then_refuses() -> None:
    handler = Recorder()
    batcher = make(handler)
    batcher.start()
    handler.gate.clear()
    tasks = [asyncio.create_task(batcher.run([i], later())) for i in range(5)]
    await asyncio.to_thread(handler.entered.wait, 5)
    stopping = asyncio.create_task(batcher.stop(timeout=5))
    await until(lambda: not batcher.running)  # closing
    with pytest.raises(BatcherClosed):
        batcher.submit([1], later())
    handler.gate.set()
    await stopping
    assert [(await t)[0] for t in tasks] == [[2 * i] for i in range(5)]
    assert not batcher.running


async def test_submit_before_start_is_refused() -> None:
    with pytest.raises(BatcherClosed):
        make(Recorder()).submit([1], later())


class ThreadRecorder(Recorder):
    """A Recorder that also notes which thread ran each call."""

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.threads: list[int] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.append(threading.get_ident())
        time.sleep(self.seconds)
        return super().__call__(items)


async def warm(batcher: Batcher[int, int]) -> None:
    """One queued call, so the batcher has learnt what a call costs; back when idle again (the
    worker marks itself idle just after handing the result over)."""
    await batcher.run([1], later())
    await until(lambda: batcher.idle)


async def test_an_idle_batcher_runs_a_lone_short_submission_on_the_callers_thread() -> None:
    handler = ThreadRecorder()
    observed: list[int] = []

    class Observer:
        def observe_batch(self, size: int, queue_waits: Sequence[float]) -> None:
            observed.append(size)

        def observe_call(self, size: int, seconds: float, ok: bool) -> None:
            pass

    config = BatcherConfig(max_batch_size=8, max_queue=64, inline_max_s=0.05)
    batcher = Batcher(handler, config, size_of=lambda n: n, observer=Observer())
    batcher.start()
    await warm(batcher)
    (job,) = batcher.submit([3], later(), inline_ok=True)
    assert job.future.done() and job.future.result() == 6  # answered before submit returned
    assert handler.threads[-1] == threading.get_ident()
    assert observed == [1, 1]  # counted like any batch
    assert (await batcher.wait([job], later())) == ([6], 1)
    await batcher.stop()


@pytest.mark.parametrize(
    ("payloads", "inline_ok", "seconds", "warmed"),
    [
        ([3], False, 0.0, True),  # the caller does not allow it
        ([1, 2], True, 0.0, True),  # more than one item
        ([3], True, 0.0, False),  # no call observed yet: its cost is unknown
        ([3], True, 0.1, True),  # calls take longer than inline_max_s
    ],
)
async def test_other_submissions_go_to_the_worker_thread(
    payloads: list[int], inline_ok: bool, seconds: float, warmed: bool
) -> None:
    handler = ThreadRecorder(seconds)
    batcher = make(handler, inline_max_s=0.05)
    batcher.start()
    if warmed:
        await warm(batcher)
    jobs = batcher.submit(payloads, later(), inline_ok=inline_ok)
    results, _ = await batcher.wait(jobs, later())
    assert results == [2 * p for p in payloads]
    assert threading.get_ident() not in handler.threads
    await batcher.stop()


async def test_a_busy_batcher_queues_even_what_could_run_inline() -> None:
    handler = ThreadRecorder()
    batcher = make(handler, inline_max_s=0.05)
    batcher.start()
    await warm(batcher)
    handler.gate.clear()
    first = batcher.submit([1], later())  # to the worker, which is held in the call
    await asyncio.to_thread(handler.entered.wait, 5)
    second = batcher.submit([2], later(), inline_ok=True)
    assert not second[0].future.done()
    handler.gate.set()
    assert (await batcher.wait(first + second, later()))[0] == [2, 4]
    assert threading.get_ident() not in handler.threads
    await batcher.stop()
