"""Run shard jobs inline, in a local process pool, or on Ray: the same picklable job functions.

A job function is called as `function(job, report)`: `job` is a picklable description of the work
(a dataclass such as shardjob.FilterJob), `report(documents, bytes)` tells the parent how much the
job has done since its last call (a caller that passes its own `progress` may take other counts:
`jalm pack` reports documents, bytes and tokens). Workers take whole shards: the pool hands out the small job
descriptions, and each worker reads its own files, so no process feeds documents to the others.
Reports come back through each worker's pipe, which is all the parent does while workers run (that
and watching them: a worker that dies holding a job is replaced and the job rerun, see Executor); a
Ray task's counts come with its result instead.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

from jalm.errors import JalmError
from jalm.io import STORAGE_OPTIONS_ENV

EXECUTORS = ("local", "ray")
DEFAULT_TASK_MEMORY = 1 << 30  # what a Ray task declares: a filter or pack job of one shard stays below it
DEFAULT_RETRIES = 2  # reruns of a job whose worker died (SIGKILL, out of memory) before the run stops

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
    """Runs job functions over lists of jobs: inline (1 worker), local worker processes, or Ray.

    One executor serves all passes of a run, so worker processes start once (a spawned Python
    with numpy costs about half a CPU-second), not once per pass. A local worker that dies while
    it holds a job (SIGKILL, the kernel's out-of-memory killer) is noticed at once through its
    process sentinel: a fresh worker replaces it and the job runs again, up to `retries` times;
    then the run stops with one line naming the job and the signal. A job that raises is not
    retried (the same input would raise again): its exception reaches the caller.
    Under Ray, `workers` None means the cluster's CPUs, each task declares `memory` bytes, and
    Ray reruns a task whose worker or node is lost (max_retries=`retries`).
    """

    def __init__(
        self,
        workers: int | None = 1,
        kind: str = "local",
        retries: int = DEFAULT_RETRIES,
        memory: int = DEFAULT_TASK_MEMORY,
    ) -> None:
        if kind not in EXECUTORS:
            raise JalmError(f"unknown executor {kind!r} (choose from {', '.join(EXECUTORS)})")
        if retries < 0:
            raise JalmError(f"--retries must be at least 0, got {retries}")
        self.kind, self.retries, self.memory = kind, retries, memory
        if kind == "ray":
            self.workers = _init_ray(workers)
        else:
            self.workers = 1 if workers is None else workers
        self._pool: _Pool | None = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.close()
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
            return _run_ray(function, jobs, progress, on_done, self.retries, self.memory)
        if self.workers <= 1:
            return _run_inline(function, jobs, progress, on_done)
        if self._pool is None:
            self._pool = _Pool(self.workers)
        return self._pool.run(function, jobs, progress, on_done, self.retries)


def _run_inline(function, jobs, progress, on_done) -> list[Any]:
    results = []
    for job in jobs:
        results.append(function(job, progress.add))
        if on_done:
            on_done(results[-1])
    return results


def describe(function: Any, job: Any) -> str:
    """`filter_shard of shard part-0`: the job function and the shard a job stands for."""
    shard = getattr(job, "shard", None)
    name = getattr(shard, "name", None) or getattr(job, "name", None)
    what = getattr(function, "__name__", str(function))
    return f"{what} of shard {name}" if name else f"{what} of {type(job).__name__}"


def signal_name(exitcode: int | None) -> str:
    """`SIGKILL` for a process killed by signal 9, `exit code 3` for one that exited."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _worker_main(conn: Any) -> None:
    """A local worker: takes (index, function, job) from its pipe and sends back reports and results."""

    def report(*counts: int) -> None:
        conn.send(("report", None, counts))

    while True:
        task = conn.recv()
        if task is None:
            return
        index, function, job = task
        try:
            result = function(job, report)
        except BaseException as error:  # the parent re-raises it
            try:
                conn.send(("error", index, error))
            except Exception:  # an exception that cannot be pickled: its text
                conn.send(("error", index, RuntimeError(f"{type(error).__name__}: {error}")))
            continue
        conn.send(("done", index, result))


class _Pool:
    """Local worker processes, one job each at a time, each watched through its sentinel."""

    def __init__(self, n: int) -> None:
        # spawn, not fork: safe with threads in the parent (tqdm, Ray, torch), the same on every OS.
        self.context = multiprocessing.get_context("spawn")
        self.workers = [self._start() for _ in range(n)]

    def _start(self) -> list[Any]:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child,), daemon=True)
        process.start()
        child.close()
        # the process, its pipe, the index of the job it holds, what that job has reported so far
        return [process, parent, None, None]

    def close(self) -> None:
        for _process, conn, *_ in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for process, conn, *_ in self.workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()

    def kill(self) -> None:
        for process, *_ in self.workers:
            process.kill()
        for process, conn, *_ in self.workers:
            process.join()
            conn.close()
        self.workers = []

    def run(self, function, jobs, progress, on_done, retries: int) -> list[Any]:
        todo = list(range(len(jobs)))[::-1]  # a stack: pop() takes the next job in order
        tries = [0] * len(jobs)
        results: dict[int, Any] = {}
        while len(results) < len(jobs):
            for worker in self.workers:
                if worker[2] is None and todo:
                    worker[2] = todo.pop()
                    tries[worker[2]] += 1
                    worker[3] = None
                    try:
                        worker[1].send((worker[2], function, jobs[worker[2]]))
                    except OSError:
                        pass  # the worker has just died: its sentinel says so, and the job is rerun
            by_handle = {}
            for worker in self.workers:
                by_handle[worker[1]] = worker
                by_handle[worker[0].sentinel] = worker
            for handle in wait(list(by_handle)):
                worker = by_handle[handle]
                if worker not in self.workers:
                    continue  # replaced already (its pipe and its sentinel were both ready)
                if handle is worker[1]:
                    self._receive(worker, results, progress, on_done)
                elif not worker[0].is_alive():
                    self._lost(worker, function, jobs, todo, tries, retries, progress)
        return [results[i] for i in range(len(jobs))]

    def _receive(self, worker, results, progress, on_done) -> None:
        try:
            while worker[1].poll():
                kind, index, payload = worker[1].recv()
                if kind == "report":
                    progress.add(*payload)
                    worker[3] = payload if worker[3] is None else tuple(map(sum, zip(worker[3], payload)))
                elif kind == "error":
                    self.kill()  # the other workers' jobs are abandoned with the run
                    raise payload
                else:
                    results[index] = payload
                    worker[2] = None
                    if on_done:
                        on_done(payload)
        except (EOFError, OSError):
            pass  # the worker died mid-message: its sentinel says so

    def _lost(self, worker, function, jobs, todo, tries, retries, progress) -> None:
        process, conn, index, reported = worker
        if reported is not None:  # the lost try's counts: its rerun reports them again
            progress.add(*(-count for count in reported))
        process.join()
        conn.close()
        self.workers[self.workers.index(worker)] = self._start()
        if index is None:
            return  # an idle worker: nothing was lost
        how = signal_name(process.exitcode)
        what = describe(function, jobs[index])
        if tries[index] > retries:
            self.kill()
            raise JalmError(
                f"{what}: worker {process.pid} died ({how}) on try {tries[index]} of {retries + 1}; "
                "rerun the same command to resume (or raise --retries)"
            )
        print(
            f"jalm: {what}: worker {process.pid} died ({how}); retrying ({tries[index]} of {retries})",
            file=sys.stderr,
        )
        todo.append(index)


def _init_ray(workers: int | None) -> int:
    """Start or join Ray; the number of CPUs the jobs may use (`workers`, or the cluster's)."""
    try:
        import ray
    except ImportError:
        raise JalmError("--executor ray needs Ray (pip install 'ray>=2.9')") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # Without RAY_ADDRESS, start a local Ray with `workers` CPUs (all, if None); with it, join that cluster.
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def _run_ray(function, jobs, progress, on_done, retries: int, memory: int) -> list[Any]:
    import ray

    # A task whose worker process or node is lost is rerun by Ray (max_retries); an exception is not.
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": retries, "retry_exceptions": False}
    if memory:
        options["memory"] = memory  # the scheduler places a task only where this much is free
    if os.environ.get(STORAGE_OPTIONS_ENV):  # --storage-option reaches tasks on other nodes too
        options["runtime_env"] = {"env_vars": {STORAGE_OPTIONS_ENV: os.environ[STORAGE_OPTIONS_ENV]}}
    remote = ray.remote(**options)(function)  # called as function(job): its report is ignore_report
    refs = {remote.remote(job): i for i, job in enumerate(jobs)}
    results: dict[int, Any] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in done:
            i = refs[ref]
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayTaskError:
                raise  # the job raised: an instance of its exception's class too, as Ray raises it
            except ray.exceptions.RayError as error:  # worker crashed, node lost, out of memory
                for ref_left in pending:
                    ray.cancel(ref_left, force=True)
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise JalmError(
                    f"{describe(function, jobs[i])}: Ray task failed on try {retries + 1} of {retries + 1} "
                    f"({type(error).__name__}: {first}); rerun the same command to resume"
                ) from None
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
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes, each taking whole shards (default: 1 locally, the cluster's CPUs under Ray)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"reruns of a shard job whose worker died (SIGKILL, out of memory) (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--task-memory-gb",
        type=float,
        default=DEFAULT_TASK_MEMORY / 2**30,
        metavar="GB",
        help="memory each Ray task declares, so Ray places it where that much is free (default %(default)s)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray (joins RAY_ADDRESS if set, else starts a local Ray with N CPUs or all)",
    )
