"""Offline ceiling: the model scoring reviews in-process, in batches, at a given torch thread count.

Measures, on one fixed random sample of reviews:
- tokenization (text -> ids) per review;
- model time per batch and per review at several batch sizes, with batches formed in arrival
  order (what a server's dynamic batcher sees) and sorted by length (the best case);
- the ceiling: `Predictor.predict_texts` end to end (tokenize + length-sorted batches), at
  each thread count, and with the reviews split over one single-threaded process per core
  (forked after loading, as the service's workers are). The best of them is what the served
  figures are held against: the most this machine does offline with all its cores;
- the same ceiling at the server's thread count on the other backend (PyTorch when the
  predictor runs on ONNX Runtime), to show what the backend buys.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from model.predictor import Predictor

logger = logging.getLogger(__name__)


@dataclass
class BatchTiming:
    threads: int
    batch_size: int
    order: str  # "arrival" | "sorted"
    reviews: int
    seconds: float
    reviews_per_s: float
    ms_per_batch: float
    ms_per_review: float


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tokenization(predictor: Predictor, texts: Sequence[str]) -> dict[str, float]:
    encode = predictor.text_to_ids
    seconds = _timed(lambda: [encode(t) for t in texts])
    lengths = [len(encode(t)) for t in texts]
    return {
        "reviews": len(texts),
        "us_per_review": round(1e6 * seconds / len(texts), 1),
        "median_tokens": statistics.median(lengths),
        "mean_tokens": round(statistics.fmean(lengths), 1),
    }


def model_timing(
    predictor: Predictor,
    encoded: list[list[int]],
    threads: int,
    batch_size: int,
    order: str,
    max_seconds: float = 5.0,
) -> BatchTiming:
    """Model calls only (ids already computed), batches of `batch_size`, until every review is
    scored or `max_seconds` pass. Batches run in a random order (sorted ones too), so stopping
    early keeps the mix of lengths."""
    seqs = sorted(encoded, key=len) if order == "sorted" else encoded
    batches = [seqs[i : i + batch_size] for i in range(0, len(seqs), batch_size)]
    random.Random(2).shuffle(batches)
    torch.set_num_threads(threads)
    predictor.predict_ids(batches[0])  # warm-up
    done, start = 0, time.perf_counter()
    for batch in batches:
        predictor.predict_ids(batch)
        done += len(batch)
        if time.perf_counter() - start > max_seconds:
            break
    seconds = time.perf_counter() - start
    n_batches = -(-done // batch_size)
    return BatchTiming(
        threads,
        batch_size,
        order,
        done,
        round(seconds, 4),
        round(done / seconds, 1),
        round(1e3 * seconds / n_batches, 3),
        round(1e3 * seconds / done, 3),
    )


def ceiling(
    predictor: Predictor, texts: Sequence[str], threads: int, repeats: int, max_seconds: float = 20.0
) -> dict[str, Any]:
    """Reviews/s of predict_texts (tokenize + length-sorted batches): median of `repeats` runs
    (fewer if they take over `max_seconds` in all)."""
    torch.set_num_threads(threads)
    predictor.predict_texts(texts[: predictor.batch_size])  # warm-up
    rates: list[float] = []
    start = time.perf_counter()
    while len(rates) < repeats and (not rates or time.perf_counter() - start < max_seconds):
        rates.append(len(texts) / _timed(lambda: predictor.predict_texts(texts)))
    return {
        "threads": threads,
        "batch_size": predictor.batch_size,
        "reviews": len(texts),
        "repeats": len(rates),
        "reviews_per_s": round(statistics.median(rates), 1),
        "best_reviews_per_s": round(max(rates), 1),
    }


START_TIMEOUT_S = 600  # a child's warm-up; past it the section gives up instead of hanging


def ceiling_processes(
    predictor: Predictor, texts: Sequence[str], processes: int
) -> dict[str, Any] | None:
    """Reviews/s with the reviews split over `processes` forked single-threaded processes (each
    warmed up first; timed from the common start signal to the last one finishing); None when
    a child never reaches the start (it failed during its warm-up)."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes + 1)
    done = context.Queue()

    def work(index: int) -> None:
        torch.set_num_threads(1)
        share = list(texts[index::processes])
        predictor.predict_texts(share[: predictor.batch_size])  # warm-up
        ready.wait(timeout=START_TIMEOUT_S)
        predictor.predict_texts(share)
        done.put(time.perf_counter())

    torch.set_num_threads(1)  # no OpenMP pool in the parent before forking
    children = [context.Process(target=work, args=(i,)) for i in range(processes)]
    for child in children:
        child.start()
    try:
        ready.wait(timeout=START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        logger.warning("a scoring process never started: no multi-process ceiling")
        for child in children:
            child.terminate()
            child.join()
        return None
    start = time.perf_counter()
    finished = max(done.get(timeout=600) for _ in children)
    for child in children:
        child.join()
    return {
        "processes": processes,
        "threads": 1,
        "batch_size": predictor.batch_size,
        "reviews": len(texts),
        "reviews_per_s": round(len(texts) / (finished - start), 1),
    }


def run_offline(
    predictor: Predictor,
    texts: Sequence[str],
    server_threads: int,
    thread_counts: Sequence[int],
    batch_sizes: Sequence[int],
    sweep_reviews: int,
    repeats: int,
    max_seconds: float = 5.0,
) -> dict[str, Any]:
    """All offline measurements; `ceiling` is at the server's torch thread count.

    The batch-size sweep uses a random subset of `sweep_reviews` reviews (a quarter of that for
    batch sizes below 8, which are slow), in arrival order, and also length-sorted for batches
    of 16 and more, each for at most `max_seconds`; the ceiling uses every review."""
    previous = torch.get_num_threads()
    try:
        encoded = [predictor.text_to_ids(t) for t in texts]
        rng = random.Random(1)
        subset = rng.sample(encoded, min(sweep_reviews, len(encoded)))
        timings = []
        for threads in thread_counts:
            for bs in batch_sizes:
                sample = subset[: max(bs, len(subset) // 4)] if bs < 8 else subset
                for order in ("arrival", "sorted") if bs >= 16 else ("arrival",):
                    timing = model_timing(predictor, sample, threads, bs, order, max_seconds)
                    logger.info("offline model: %s", timing)
                    timings.append(asdict(timing))
        ceilings = {t: ceiling(predictor, texts, t, repeats, 4 * max_seconds) for t in thread_counts}
        if server_threads not in ceilings:
            ceilings[server_threads] = ceiling(predictor, texts, server_threads, repeats, 4 * max_seconds)
        cores = len(os.sched_getaffinity(0))
        multi = ceiling_processes(predictor, texts, cores) if cores > 1 else None
        candidates = [*ceilings.values(), *([multi] if multi else [])]
        best = max(candidates, key=lambda c: float(c["reviews_per_s"]))
        other_backend = "torch" if predictor.backend == "onnx" else "onnx"
        other = Predictor(predictor.checkpoint, predictor.batch_size, backend=other_backend)
        other_ceiling = {
            "backend": other_backend,
            **ceiling(other, texts, server_threads, repeats, 4 * max_seconds),
        }
        logger.info("offline ceiling: %s; %s; on %s: %s", ceilings, multi, other_backend, other_ceiling)
        return {
            "backend": predictor.backend,
            "other_backend_ceiling": other_ceiling,
            "server_threads": server_threads,
            "ceiling": ceilings[server_threads],
            "ceilings_by_threads": {str(t): c for t, c in ceilings.items()},
            "ceiling_processes": multi,
            "best": best,
            "tokenization": tokenization(predictor, texts),
            "model": timings,
        }
    finally:
        torch.set_num_threads(previous)
