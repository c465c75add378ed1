"""Job queue of the solver threads: order, the caller helping, errors, closing."""

from __future__ import annotations

import threading

import pytest

from protocols.job_queue import JobCancelled, JobQueue


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
