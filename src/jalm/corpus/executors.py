"""Run shard jobs inline, in a local process pool, or on Ray: the same picklable job functions.

Workers take whole shards: the pool hands out small job descriptions (a shard's file names), and
each worker reads its own files, so no process feeds documents to the others. Progress comes
back as (docs, bytes) counts through a queue, which is all the parent does while workers run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from typing import Any

from jalm.corpus import shardjob
from jalm.errors import JalmError

EXECUTORS = ("local", "ray")


class _Progress:
    """Receives (docs, bytes) from jobs and shows them on a tqdm bar (or nowhere)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.bytes = 0
        self.started = time.perf_counter()

    def put(self, item: tuple[int, int]) -> None:
        docs, n_bytes = item
        self.bytes += n_bytes
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{self.bytes / 1e6 / elapsed:.1f} MB/s", refresh=False)
            self.bar.update(docs)


def init_worker(progress_queue: Any) -> None:
    shardjob._progress_queue = progress_queue


class Executor:
    """Runs job functions over lists of jobs: inline (1 worker), a local process pool, or Ray.

    One executor serves all passes of a run, so worker processes start once (a spawned Python
    with numpy costs about half a CPU-second), not once per pass.
    """

    def __init__(self, workers: int = 1, kind: str = "local") -> None:
        if kind not in EXECUTORS:
            raise JalmError(f"unknown executor {kind!r} (choose from {', '.join(EXECUTORS)})")
        self.workers, self.kind = workers, kind
        self._pool = None
        self._queue = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def run(
        self,
        function: Callable[[dict[str, Any]], dict[str, Any]],
        jobs: list[dict[str, Any]],
        bar: Any = None,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Run `function(job)` for every job; results in job order. `bar` counts documents."""
        if not jobs:
            return []
        progress = _Progress(bar)
        if self.kind == "ray":
            return _run_ray(function, jobs, self.workers, progress, on_done)
        if self.workers <= 1:
            return _run_inline(function, jobs, progress, on_done)
        if self._pool is None:
            # spawn, not fork: safe with threads in the parent (tqdm, Ray, torch), the same on every OS.
            context = multiprocessing.get_context("spawn")
            self._queue = context.Queue()
            self._pool = context.Pool(self.workers, initializer=init_worker, initargs=(self._queue,))
        return _run_pool(self._pool, self._queue, function, jobs, progress, on_done)


def run_jobs(
    function: Callable[[dict[str, Any]], dict[str, Any]],
    jobs: list[dict[str, Any]],
    workers: int = 1,
    executor: str = "local",
    bar: Any = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One-off form of Executor(workers, executor).run(...)."""
    with Executor(workers, executor) as runner:
        return runner.run(function, jobs, bar, on_done)


def _run_inline(function, jobs, progress, on_done) -> list[dict[str, Any]]:
    shardjob._progress_queue = progress
    try:
        results = []
        for job in jobs:
            results.append(function(job))
            if on_done:
                on_done(results[-1])
        return results
    finally:
        shardjob._progress_queue = None


def _run_pool(pool, progress_queue, function, jobs, progress, on_done) -> list[dict[str, Any]]:
    pending = {i: pool.apply_async(function, (job,)) for i, job in enumerate(jobs)}
    results: dict[int, dict[str, Any]] = {}
    while pending:
        try:
            while True:
                progress.put(progress_queue.get(timeout=0.05))
        except queue.Empty:
            pass
        for i in [i for i, r in pending.items() if r.ready()]:
            results[i] = pending.pop(i).get()  # re-raises a worker's exception here
            if on_done:
                on_done(results[i])
    try:
        while True:
            progress.put(progress_queue.get_nowait())
    except queue.Empty:
        pass
    return [results[i] for i in range(len(jobs))]


def _run_ray(function, jobs, workers, progress, on_done) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise JalmError("--executor ray needs Ray (pip install 'ray>=2.9')") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # Without RAY_ADDRESS, start a local Ray with `workers` CPUs; with it, join that cluster.
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=max(workers, 1), **kwargs)
    remote = ray.remote(num_cpus=1)(function)
    refs = {remote.remote(job): i for i, job in enumerate(jobs)}
    results: dict[int, dict[str, Any]] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in done:
            i = refs[ref]
            results[i] = ray.get(ref)
            stats = results[i]
            progress.put(
                (
                    stats.get("input", 0),
                    stats.get("bytes", {}).get("input", 0) if isinstance(stats.get("bytes"), dict) else 0,
                )
            )
            if on_done:
                on_done(stats)
    return [results[i] for i in range(len(jobs))]
