"""Job queue of the solver threads: order, the caller helping, errors, closing."""

from __future__ import annotations

import os
import threading
import time

import pytest

from protocols import job_queue
from protocols.job_queue import JobCancelled, JobQueue, Workers


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_results_in_any_thread_count(threads):
    queue: JobQueue[int] = JobQueue(threads)
    jobs = [queue.submit(lambda k=k: k * k) for k in range(20)]
    assert [queue.wait(job) for job in jobs] == [k * k for k in range(20)]
    queue.close()


def test_waiting_caller_runs_queued_jobs_itself():
    queue: JobQueue[str] = JobQueue(0)  # no background thread: the caller does everything
    ran_in: list[str] = []
    jobs = [queue.submit(lambda: ran_in.append(threading.current_thread().name) or "x")]
    assert queue.wait(jobs[0]) == "x"
    assert ran_in == [threading.current_thread().name]
    queue.close()


def test_errors_reach_the_caller_and_close_cancels_pending_jobs():
    queue: JobQueue[int] = JobQueue(0)

    def fail() -> int:
        raise ValueError("boom")

    bad = queue.submit(fail)
    pending = queue.submit(lambda: 1)
    with pytest.raises(ValueError, match="boom"):
        queue.wait(bad)
    queue.close()
    with pytest.raises(JobCancelled):
        pending.result()
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit(lambda: 2)


def test_background_threads_are_reused_by_later_queues():
    """A later queue runs in a thread of an earlier, closed one (HiGHS sets up its
    scheduler once per thread): at most one thread is ever started here, none if an
    earlier test left idle ones; close() waits for the thread to leave the queue."""

    def solver_threads() -> set[int | None]:
        return {t.ident for t in threading.enumerate() if t.name == "verbund-solver"}

    before = solver_threads()
    ran_in: list[int] = []
    for _ in range(3):
        queue: JobQueue[int] = JobQueue(1)
        started = threading.Event()
        release = threading.Event()

        def job(started: threading.Event = started, release: threading.Event = release) -> int:
            ran_in.append(threading.get_ident())
            started.set()
            release.wait(5)
            return 1

        running = queue.submit(job)
        assert started.wait(5)  # taken by the background thread, not by a caller
        release.set()
        queue.close()
        assert running.done()
    started_here = solver_threads() - before
    assert len(started_here) == (0 if before else 1)
    assert set(ran_in) <= before | started_here


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_background_threads():
    """Threads do not survive fork: a child that counted the parent's idle thread would
    hand its job to nobody and wait forever in close()."""
    warm: JobQueue[int] = JobQueue(1)
    warm.wait(warm.submit(lambda: 1))
    warm.close()  # the parent now has an idle solver thread
    pid = os.fork()
    if pid == 0:  # child: exit code 0 only if a queue with a background thread works
        code = 1
        try:
            queue: JobQueue[str] = JobQueue(1)
            job = queue.submit(lambda: threading.current_thread().name)
            until = time.monotonic() + 5
            while not job.done() and time.monotonic() < until:
                time.sleep(0.01)  # not wait(): the caller would run the job itself
            code = 0 if job.done() and job.result() == "verbund-solver" else 1
            queue.close()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def test_at_most_keep_threads_wait_idle_after_a_burst():
    workers = Workers("test-burst", keep=2)
    release = threading.Event()
    done = [workers.start(lambda: release.wait(5)) for _ in range(6)]  # six at once
    assert sum(t.name == "test-burst" for t in threading.enumerate()) == 6
    release.set()
    for finished in done:
        assert finished.wait(5)
    until = time.monotonic() + 5
    while sum(t.name == "test-burst" for t in threading.enumerate()) > 2:
        assert time.monotonic() < until, "threads beyond keep did not end"
        time.sleep(0.01)
    ran_in: list[int] = []  # the two kept threads still serve
    again = [workers.start(lambda: ran_in.append(threading.get_ident())) for _ in range(2)]
    assert all(e.wait(5) for e in again) and len(ran_in) == 2


def test_a_task_that_raises_ends_its_thread_without_stranding_the_next(monkeypatch):
    workers = Workers("test-raise", keep=2)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # expected here
    failed = workers.start(lambda: 1 / 0)
    assert failed.wait(5)
    after = workers.start(lambda: None)  # must not be handed to the ended thread
    assert after.wait(5)


def test_a_queue_without_a_thread_to_be_had_runs_its_jobs_in_the_caller(monkeypatch):
    def no_thread(task):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(job_queue.SOLVER_THREADS, "start", no_thread)
    queue: JobQueue[int] = JobQueue(2)
    jobs = [queue.submit(lambda k=k: k + 1) for k in range(3)]
    assert [queue.wait(job) for job in jobs] == [1, 2, 3]
    queue.close()  # nothing to wait for
