"""A worker killed by SIGKILL mid-job: the job is retried on a fresh worker; with no retries left the
run stops at once with one line naming the job and the signal."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.executors import Executor


@dataclass
class Job:
    name: str
    flag: str  # a file: the first try that finds it missing creates it and kills its own process
    value: int


def kill_first_try(job: Job, report) -> int:
    report(1, 10)
    if job.name == "victim" and not os.path.exists(job.flag):
        Path(job.flag).write_text("killed once", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return job.value * 2


def always_killed(job: Job, report) -> int:
    if job.name == "victim":
        os.kill(os.getpid(), signal.SIGKILL)
    return job.value


class Tally:
    def __init__(self) -> None:
        self.docs = 0

    def add(self, docs: int, n_bytes: int) -> None:
        self.docs += docs


def _jobs(tmp_path: Path) -> list[Job]:
    return [Job("victim" if i == 2 else f"part-{i}", str(tmp_path / "flag"), i) for i in range(6)]


def test_killed_worker_is_retried_and_every_job_completes(tmp_path: Path, capfd) -> None:
    tally = Tally()
    with Executor(2, retries=1) as runner:
        results = runner.run(kill_first_try, _jobs(tmp_path), progress=tally)
        assert results == [0, 2, 4, 6, 8, 10]  # every job, in order, the killed one rerun
        assert runner.run(kill_first_try, _jobs(tmp_path)[:3]) == [0, 2, 4]  # the pool still works
    assert (tmp_path / "flag").exists()
    err = capfd.readouterr().err
    assert "kill_first_try of shard victim" in err and "SIGKILL" in err and "retrying (1 of 1)" in err
    assert tally.docs == 6  # the killed try's report taken back: each job counted once


@pytest.mark.parametrize("retries", [0, 1])
def test_retries_exhausted_stop_the_run_with_one_line(tmp_path: Path, retries: int) -> None:
    # Without the sentinel watch this would wait forever; pytest's own timeout is the guard.
    with Executor(2, retries=retries) as runner, pytest.raises(JalmError) as error:
        runner.run(always_killed, _jobs(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert "always_killed of shard victim" in message and "SIGKILL" in message
    assert f"on try {retries + 1} of {retries + 1}" in message


def test_a_job_that_raises_is_not_retried(tmp_path: Path) -> None:
    with Executor(2, retries=3) as runner, pytest.raises(ZeroDivisionError):
        runner.run(divide, [1, 0, 2])


def divide(job: int, report) -> float:
    return 1 / job
