"""Dynamic batching: concurrent submissions are gathered into one call of a handler that runs
on a single dedicated thread, off the event loop.

Generic on purpose: items in, results out, nothing about models. The handler sees a list of
payloads and returns one result per payload, in order. Results are handed back to the event
loop with one `call_soon_threadsafe` per batch.

Policy, in short:
* The queue is bounded (`max_queue` items); a submission that doesn't fit is refused at once
  (QueueFull), as is one that could not be served before its deadline. That estimate counts
  work, not items: each item has a size (`size_of`, e.g. its tokens), and the time of a call
  is learnt from every call (full or not) as a fixed cost plus a cost per unit of size. An
  idle batcher takes any submission, so a wrong estimate is corrected instead of refusing
  forever.
* An idle batcher (nothing queued, no call running) may run a lone submission at once on the
  caller's thread, when the caller allows it and the learnt cost says the call is short
  (`inline_max_s`): the two thread hand-offs cost about as much as scoring one short text,
  and nothing else is waiting for the handler. A slow handler is never run inline.
* A batch never waits for batch-mates unless more work is likely: under a steady load the
  previous batch's callers come back, so we wait (at most `max_wait_s` after the oldest item
  arrived) until as many items are queued as the last batch held, and stop as soon as the
  arrivals pause. An idle caller (last batch of one) is served at once.
* With more queued than fits, the batch is the oldest item plus the items of the most similar
  size among the next few batches' worth, so padding stays small; an item passed over once is
  taken by the next batch, so nothing waits behind more than about two batches once it is
  among the oldest, long or short.
* Items past their deadline, or abandoned by their caller, are dropped before the call.
* If the handler raises, the batch is split in halves and retried, so one poisonous item
  fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("service.batching")


class QueueFull(Exception):
    """The queue can't take the submission now; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"queue full, retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class BatcherClosed(Exception):
    """The batcher is shutting down (or not started) and takes no new work."""


class DeadlineExceeded(TimeoutError):
    """The item's deadline passed before its result was ready."""


class HandlerError(Exception):
    """The handler raised while processing this item; `__cause__` is the original error."""


class BatchObserver(Protocol):
    def observe_batch(self, size: int, queue_waits: Sequence[float]) -> None: ...

    def observe_call(self, size: int, seconds: float, ok: bool) -> None: ...


@dataclass(eq=False, slots=True)
class Job(Generic[T, R]):
    payload: T
    size: int
    enqueued: float
    deadline: float
    future: asyncio.Future[R]
    abandoned: bool = False  # set by the caller when it stops waiting
    batch_size: int = 0  # set by the worker: how many items shared the model call
    passed_over: int = 0  # batches that were formed from the window without this item


_Outcome = tuple[Job[Any, Any], Any, BaseException | None]


@dataclass
class _Stats:
    last_size: int = 0
    last_end: float = 0.0
    batches: int = 0
    items: int = 0
    arrivals: int = 0


@dataclass
class CallCost:
    """Seconds per handler call ~ `fixed` + `per_unit` * units, fitted by exponentially
    weighted least squares over recent calls (each call weighs `decay` times the one after)."""

    decay: float = 0.9
    _w: float = 0.0
    _x: float = 0.0
    _y: float = 0.0
    _xx: float = 0.0
    _xy: float = 0.0

    _fit: tuple[float, float] = (0.0, 0.0)  # solved once per observed call, read per request

    def observe(self, units: float, seconds: float) -> None:
        d = self.decay
        self._w = d * self._w + 1.0
        self._x = d * self._x + units
        self._y = d * self._y + seconds
        self._xx = d * self._xx + units * units
        self._xy = d * self._xy + units * seconds
        self._fit = self._solve()

    def fit(self) -> tuple[float, float]:
        """(fixed seconds per call, seconds per unit); (0, 0) before any call."""
        return self._fit

    def _solve(self) -> tuple[float, float]:
        if self._x <= 0:
            return 0.0, 0.0
        spread = self._w * self._xx - self._x * self._x
        if spread > 1e-9 * self._w * self._xx:
            per_unit = (self._w * self._xy - self._x * self._y) / spread
            fixed = (self._y - per_unit * self._x) / self._w
            if per_unit > 0 and fixed >= 0:
                return fixed, per_unit
        # Calls all of one size, or a fit with a negative term: proportional to the units.
        return 0.0, self._xy / self._xx

    def seconds(self, calls: int, units: float) -> float:
        fixed, per_unit = self._fit
        return calls * fixed + units * per_unit

    @property
    def learnt(self) -> bool:
        """At least one call has been observed."""
        return self._w > 0


@dataclass
class BatcherConfig:
    max_batch_size: int = 32
    max_wait_s: float = 0.005
    max_queue: int = 512
    # Stop waiting for batch-mates once no item arrived for this long.
    arrival_gap_s: float = 0.002
    # Forget the last batch size (and so the urge to wait) after this much idleness.
    idle_reset_s: float = 0.25
    # How many batches' worth of the queue is searched for similar-sized items.
    lookahead: int = 4
    # A lone submission to an idle batcher runs on the caller's thread right away when its
    # call is expected (from the learnt cost) to take at most this long; 0 = never.
    inline_max_s: float = 0.0
    name: str = "batcher"


class Batcher(Generic[T, R]):
    def __init__(
        self,
        handler: Callable[[list[T]], Sequence[R]],
        config: BatcherConfig,
        *,
        size_of: Callable[[T], int] | None = None,
        observer: BatchObserver | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        if config.max_batch_size < 1 or config.max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        # Public and looked up on every batch, so tests (and wrappers) can swap it.
        self.handler = handler
        self.config = config
        self.size_of = size_of
        self.observer = observer
        # Runs first on the worker thread: some per-thread state (e.g. OpenMP's thread count)
        # has to be set on the thread that does the work.
        self.initializer = initializer
        self._queue: deque[Job[T, R]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._idle = False  # the worker is blocked in a wait (read and written under the lock)
        self._stats = _Stats()
        self.cost = CallCost()
        self._queued_units = 0  # sum of the sizes in the queue (under the lock)
        self._busy = False  # a call is being made (read under the lock)
        self._busy_units = 0  # the sum of its sizes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread; results are delivered to the running event loop."""
        if self._thread is not None:
            raise RuntimeError("batcher already started")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name=self.config.name, daemon=True)
        self._thread.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, finish what is queued, then end the worker thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return
        await asyncio.to_thread(thread.join, timeout)
        if thread.is_alive():
            logger.warning(
                "%s: worker still busy after %.1fs; abandoning it", self.config.name, timeout
            )
            with self._cond:
                stranded = list(self._queue)
                self._queue.clear()
            self._fail(stranded, BatcherClosed("shut down before this item was processed"))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closing

    @property
    def idle(self) -> bool:
        """No call running and nothing queued."""
        return not self._busy and not self._queue

    @property
    def depth(self) -> int:
        """Items waiting for the handler (not counting the batch being processed)."""
        return len(self._queue)

    # -- submitting (event loop side) --------------------------------------------------------

    def submit(
        self, payloads: Sequence[T], deadline: float, inline_ok: bool = False
    ) -> list[Job[T, R]]:
        """Queue payloads as one unit (all or none); each gets its own job and future.
        `inline_ok`: the caller allows running them at once on its thread (see the module doc);
        if that happens, the futures are done when this returns."""
        loop = self._loop
        if loop is None or self._closing:
            raise BatcherClosed("not accepting work")
        now = time.monotonic()
        size_of = self.size_of
        jobs = [
            Job(p, size_of(p) if size_of else 1, now, deadline, loop.create_future())
            for p in payloads
        ]
        units = sum(job.size for job in jobs)
        with self._cond:
            if self._closing:
                raise BatcherClosed("not accepting work")
            self._admit(len(jobs), units, deadline - now)
            inline = inline_ok and self._may_run_inline(len(jobs), units)
            if inline:
                self._busy, self._busy_units = True, units
            else:
                self._queue.extend(jobs)
                self._queued_units += units
                self._stats.arrivals += len(jobs)
                if self._idle:  # a busy worker looks at the queue anyway: spare the wake-up
                    self._cond.notify()
        if inline:
            self._process(jobs, deliver=_resolve)
        return jobs

    def _may_run_inline(self, count: int, units: int) -> bool:
        """(lock held) One submission the worker would take alone, now, and a short call."""
        limit = self.config.inline_max_s
        return (
            limit > 0
            and count == 1
            and not self._queue
            and not self._busy
            and self.cost.learnt
            and self.cost.seconds(1, units) <= limit
        )

    async def run(self, payloads: Sequence[T], deadline: float) -> tuple[list[R], int]:
        """Submit and wait: (results in order, largest batch they were part of)."""
        return await self.wait(self.submit(payloads, deadline), deadline)

    async def wait(self, jobs: list[Job[T, R]], deadline: float) -> tuple[list[R], int]:
        """The results of submitted jobs, in order, and the largest batch they were part of;
        DeadlineExceeded (and the jobs dropped) if they are not ready by `deadline`."""
        try:
            if all(job.future.done() for job in jobs):  # scored inline: nothing to wait for
                return [job.future.result() for job in jobs], max(job.batch_size for job in jobs)
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                if len(jobs) == 1:
                    results = [await jobs[0].future]
                else:
                    results = list(await asyncio.gather(*(job.future for job in jobs)))
        except TimeoutError as exc:
            self.cancel(jobs)
            raise DeadlineExceeded("deadline passed before the result was ready") from exc
        except BaseException:
            self.cancel(jobs)
            raise
        return results, max(job.batch_size for job in jobs)

    def _admit(self, count: int, units: int, time_left: float) -> None:
        """Refuse (QueueFull) what does not fit the queue, or could not be done in time."""
        depth = len(self._queue)
        if depth + count > self.config.max_queue:
            raise QueueFull(retry_after=self._retry_after())
        if depth == 0 and not self._busy:
            return  # idle: try it, and learn from it
        if self._seconds_until_done(count, units) > time_left:
            raise QueueFull(retry_after=self._retry_after())

    def _seconds_until_done(self, count: int, units: int) -> float:
        """Expected seconds until the call in progress, the queue, and `count` more items of
        `units` in all are done (lock held)."""
        items = len(self._queue) + count
        calls = math.ceil(items / self.config.max_batch_size) + (1 if self._busy else 0)
        return self.cost.seconds(calls, self._busy_units + self._queued_units + units)

    def _retry_after(self) -> float:
        return min(60.0, max(1.0, math.ceil(self._seconds_until_done(0, 0))))

    @staticmethod
    def cancel(jobs: Sequence[Job[Any, Any]]) -> None:
        """Give up on submitted jobs: those not yet taken are dropped unprocessed."""
        for job in jobs:
            job.abandoned = True
            if not job.future.done():
                job.future.cancel()

    # -- the worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        if self.initializer is not None:
            try:
                self.initializer()
            except Exception:
                logger.exception("%s: initializer failed", self.config.name)
        while True:
            try:
                jobs = self._next_batch()
                if jobs is None:
                    return
                self._process(jobs)
            except Exception:  # pragma: no cover - a bug here must not kill the worker
                logger.exception("%s: unexpected error in the batch loop", self.config.name)

    def _next_batch(self) -> list[Job[T, R]] | None:
        """Block until there is work; None once closing and drained."""
        with self._cond:
            while True:
                while not self._queue and not self._closing:
                    self._wait(None)
                if not self._queue:
                    return None
                self._gather()
                jobs, dead = self._take(time.monotonic())
                self._queued_units = sum(job.size for job in self._queue)
                self._busy, self._busy_units = bool(jobs), sum(job.size for job in jobs)
                if dead:
                    self._fail(dead, DeadlineExceeded("expired in the queue"))
                if jobs:
                    return jobs

    def _wait(self, timeout: float | None) -> None:
        self._idle = True
        try:
            self._cond.wait(timeout)
        finally:
            self._idle = False

    def _gather(self) -> None:
        """Wait (lock held) for batch-mates while more work is likely; see the module doc."""
        cfg = self.config
        now = time.monotonic()
        recent = now - self._stats.last_end < cfg.idle_reset_s
        target = min(cfg.max_batch_size, self._stats.last_size if recent else 1)
        if cfg.max_wait_s <= 0 or len(self._queue) >= target:
            return
        limit = self._queue[0].enqueued + cfg.max_wait_s
        while len(self._queue) < target and not self._closing:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                return
            seen = self._stats.arrivals
            self._wait(min(remaining, cfg.arrival_gap_s))
            if self._stats.arrivals == seen:
                return  # arrivals paused: the rest of the load is not coming soon

    def _take(self, now: float) -> tuple[list[Job[T, R]], list[Job[T, R]]]:
        """Remove the next batch from the queue (lock held): (live jobs, expired jobs)."""
        queue = self._queue
        dead = [job for job in queue if job.abandoned or job.deadline <= now]
        if dead:
            live_queue = [job for job in queue if not (job.abandoned or job.deadline <= now)]
            queue.clear()
            queue.extend(live_queue)
        limit = self.config.max_batch_size
        if len(queue) <= limit:
            batch = list(queue)
            queue.clear()
        elif self.size_of is None:
            batch = [queue.popleft() for _ in range(limit)]
        else:
            window = list(itertools.islice(queue, limit * max(1, self.config.lookahead)))
            picked = _pick(window, limit)
            batch = [window[i] for i in sorted(picked)]
            rest = [job for i, job in enumerate(window) if i not in picked]
            for job in rest:
                job.passed_over += 1
            for _ in window:
                queue.popleft()
            queue.extendleft(reversed(rest))
        return batch, [job for job in dead if not job.abandoned]

    def _process(
        self, jobs: list[Job[T, R]], deliver: Callable[[list[_Outcome]], None] | None = None
    ) -> None:
        """One call for `jobs`; results handed over by `deliver` (default: to the event loop,
        from the worker thread)."""
        start = time.monotonic()
        if self.observer is not None:
            self._observe(
                self.observer.observe_batch, len(jobs), [start - j.enqueued for j in jobs]
            )
        outcomes = self._call(jobs)
        end = time.monotonic()
        for job in jobs:
            job.batch_size = len(jobs)
        (deliver or self._deliver)(outcomes)
        stats = self._stats
        with self._cond:
            self.cost.observe(sum(job.size for job in jobs), end - start)
            self._busy, self._busy_units = False, 0
        stats.last_size, stats.last_end = len(jobs), end
        stats.batches += 1
        stats.items += len(jobs)

    def _call(self, jobs: list[Job[T, R]]) -> list[_Outcome]:
        """One handler call; on failure, halves are retried so only failing items fail."""
        start = time.monotonic()
        try:
            results = self.handler([job.payload for job in jobs])
            if len(results) != len(jobs):
                raise RuntimeError(f"handler returned {len(results)} results for {len(jobs)} items")
        except Exception as exc:
            self._observe_call(len(jobs), time.monotonic() - start, False)
            if len(jobs) == 1:
                error = HandlerError(f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
                return [(jobs[0], None, error)]
            logger.warning(
                "%s: a batch of %d failed (%s: %s); retrying in halves",
                self.config.name,
                len(jobs),
                type(exc).__name__,
                exc,
            )
            middle = len(jobs) // 2
            return self._call(jobs[:middle]) + self._call(jobs[middle:])
        self._observe_call(len(jobs), time.monotonic() - start, True)
        return [(job, result, None) for job, result in zip(jobs, results, strict=True)]

    def _observe_call(self, size: int, seconds: float, ok: bool) -> None:
        if self.observer is not None:
            self._observe(self.observer.observe_call, size, seconds, ok)

    def _observe(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # metrics must never break serving
            logger.exception("%s: observer failed", self.config.name)

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # RuntimeError: the loop closed under us, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, outcomes)

    def _fail(self, jobs: Sequence[Job[T, R]], error: BaseException) -> None:
        if jobs:
            self._deliver([(job, None, error) for job in jobs])


def _resolve(outcomes: list[_Outcome]) -> None:
    """On the event loop: hand each result to its future, unless the caller gave up."""
    for job, result, error in outcomes:
        future = job.future
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _pick(window: Sequence[Job[Any, Any]], limit: int) -> set[int]:
    """Indices of the next batch: the oldest item and every item already passed over (oldest
    first, up to `limit`), then the rest chosen by similar size to the oldest."""
    due = [i for i, job in enumerate(window) if i == 0 or job.passed_over > 0][:limit]
    if len(due) == limit:
        return set(due)
    others = [0] + [i for i in range(len(window)) if i not in due]
    chosen = _similar_sizes([window[i].size for i in others], limit - len(due) + 1)
    return set(due) | {others[c] for c in chosen}


def _similar_sizes(sizes: Sequence[int], limit: int) -> set[int]:
    """Indices of `limit` items, always including index 0 (the oldest), whose sizes span the
    narrowest range."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    at = order.index(0)
    first = max(0, at - limit + 1)
    last = min(at, len(order) - limit)
    best = min(range(first, last + 1), key=lambda s: sizes[order[s + limit - 1]] - sizes[order[s]])
    return set(order[best : best + limit])
