"""Run shard jobs inline, in a local process pool, or on Ray: the same picklable job functions.

A job function is called as `function(job, report)`: `job` is a picklable description of the work
(a dataclass such as shardjob.FilterJob), `report(documents, bytes)` tells the parent how much the
job has done since its last call (a caller that passes its own `progress` may take other counts:
`jalm pack` reports documents, bytes and tokens). Workers take whole shards: the pool hands out the small job
descriptions, and each worker reads its own files, so no process feeds documents to the others.
Reports come back through a queue, which is all the parent does while workers run; a Ray task's
counts come with its result instead.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from jalm.errors import JalmError

EXECUTORS = ("local", "ray")

Report = Callable[..., None]  # report(documents, bytes) done since the last call
JobFunction = Callable[[Any, Report], Any]


def ignore_report(documents: int, n_bytes: int) -> None:
    """The report of a job whose progress nobody follows."""


class _Progress:
    """Adds up the jobs' reports and shows them on a progress bar (or nowhere)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.bytes = 0
        self.started = time.perf_counter()

    def add(self, docs: int, n_bytes: int) -> None:
        self.bytes += n_bytes
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{self.bytes / 1e6 / elapsed:.1f} MB/s", refresh=False)
            self.bar.update(docs)


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
        function: JobFunction,
        jobs: Sequence[Any],
        bar: Any = None,
        on_done: Callable[[Any], None] | None = None,
        progress: Any = None,
    ) -> list[Any]:
        """Run `function(job, report)` for every job; results in job order. `bar` counts documents;
        `on_done(result)` is called as each job finishes. `progress`, instead of `bar`: an object whose
        `add(*counts)` takes the jobs' reports and whose `counts_of(result)` a Ray task's counts."""
        if not jobs:
            return []
        progress = _Progress(bar) if progress is None else progress
        if self.kind == "ray":
            return _run_ray(function, jobs, self.workers, progress, on_done)
        if self.workers <= 1:
            return _run_inline(function, jobs, progress, on_done)
        if self._pool is None:
            # spawn, not fork: safe with threads in the parent (tqdm, Ray, torch), the same on every OS.
            context = multiprocessing.get_context("spawn")
            self._queue = context.Queue()
            self._pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self._queue,))
        return _run_pool(self._pool, self._queue, function, jobs, progress, on_done)


def _run_inline(function, jobs, progress, on_done) -> list[Any]:
    results = []
    for job in jobs:
        results.append(function(job, progress.add))
        if on_done:
            on_done(results[-1])
    return results


# A pool worker's queue to the parent: a multiprocessing queue reaches a worker only when the pool
# starts it (through the initializer), not as an argument of each job.
_worker_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _worker_queue
    _worker_queue = progress_queue


def _report_to_parent(*counts: int) -> None:
    _worker_queue.put(counts)


def _call_in_worker(function: JobFunction, job: Any) -> Any:
    return function(job, _report_to_parent)


def _run_pool(pool, progress_queue, function, jobs, progress, on_done) -> list[Any]:
    pending = {i: pool.apply_async(_call_in_worker, (function, job)) for i, job in enumerate(jobs)}
    results: dict[int, Any] = {}
    while pending:
        try:
            while True:
                progress.add(*progress_queue.get(timeout=0.05))
        except queue.Empty:
            pass
        for i in [i for i, r in pending.items() if r.ready()]:
            results[i] = pending.pop(i).get()  # re-raises a worker's exception here
            if on_done:
                on_done(results[i])
    try:
        while True:
            progress.add(*progress_queue.get_nowait())
    except queue.Empty:
        pass
    return [results[i] for i in range(len(jobs))]


def _run_ray(function, jobs, workers, progress, on_done) -> list[Any]:
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
    remote = ray.remote(num_cpus=1)(function)  # called as function(job): its report is ignore_report
    refs = {remote.remote(job): i for i, job in enumerate(jobs)}
    results: dict[int, Any] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in done:
            i = refs[ref]
            results[i] = ray.get(ref)
            progress.add(*getattr(progress, "counts_of", _counts)(results[i]))
            if on_done:
                on_done(results[i])
    return [results[i] for i in range(len(jobs))]


def _counts(result: Any) -> tuple[int, int]:
    """(documents, bytes) of a finished job, from its stats (a pass-1 shard's; 0 for other jobs)."""
    if not isinstance(result, dict):
        return 0, 0
    n_bytes = result.get("bytes")
    return result.get("input", 0), n_bytes.get("input", 0) if isinstance(n_bytes, dict) else 0


def add_executor_options(parser) -> None:
    """--workers and --executor, as `jalm clean` and `jalm pack` take them (they run the same executors)."""
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes, each taking whole shards"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray (joins RAY_ADDRESS if set, else starts a local Ray with N CPUs)",
    )
