"""A FIFO of jobs shared by background threads and the thread that waits for results.

The solver jobs of a run (highspy LPs, which release the GIL) are queued in input
order. Background threads take them from the front; a caller that needs a job's
result and would otherwise block takes the next queued job and runs it itself. So
``threads`` background threads plus the caller keep ``threads + 1`` cores busy
while the caller has nothing else to do, and only ``threads`` while it works in
Python (making orders), instead of ``threads`` solver threads competing with it.

The background threads are not made per queue: they are long-lived daemon threads
(:class:`Workers`) that serve one queue at a time, so a run reuses the threads of
earlier runs. A new thread's first ``Highs.run`` sets up HiGHS' task scheduler for
that thread, which starts a scheduler thread and waited ~5 ms off the CPU (measured
at 50 x 50: the first stack took 7.6-8.3 ms instead of ~2.5 ms, once per run).
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class JobCancelled(RuntimeError):
    """The queue was closed before the job ran."""


class Job(Generic[T]):
    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._finished = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._finished.is_set()

    def run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc
        finally:
            self._finished.set()

    def cancel(self) -> None:
        self._error = JobCancelled("job queue closed before the job ran")
        self._finished.set()

    def result(self) -> T:
        self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


class Workers:
    """Daemon threads that each run one task at a time and then wait for the next.

    :meth:`start` hands a task to an idle thread, or starts a new one when none is
    idle, so every task starts at once and there are never more threads than tasks
    that ran at the same time. At most ``keep`` threads wait idle; one that finishes a
    task when that many are idle ends. Daemon threads: they do not hold up the
    interpreter's exit. A forked child starts without threads (they do not survive
    ``fork``), so it forgets the parent's.
    """

    def __init__(self, name: str, keep: int) -> None:
        self._name = name
        self._keep = keep
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], object], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0

    def start(self, task: Callable[[], object]) -> threading.Event:
        """Run ``task`` in a worker thread; the event is set when it has returned. Raises
        ``RuntimeError`` (nothing started) if no thread can be started."""
        done = threading.Event()
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        if reuse:
            self._tasks.put((task, done))
        else:  # the new thread's first task is its own: none is queued for a thread
            # that may fail to start
            threading.Thread(
                target=self._serve, args=(task, done), name=self._name, daemon=True
            ).start()
        return done

    def _serve(self, task: Callable[[], object], done: threading.Event) -> None:
        while True:
            try:
                task()
            except BaseException:
                done.set()  # a task that raised ends its thread, which is not counted idle
                raise
            with self._lock:  # idle before ``done``: the next task reuses this thread
                stay = self._idle < self._keep
                self._idle += stay
            done.set()
            if not stay:
                return
            task, done = self._tasks.get()


#: The background threads of every :class:`JobQueue` (a run uses ``workers - 1``; more
#: than 8 idle ones are never needed, see ``protocols.dispatch.MAX_WORKERS``).
SOLVER_THREADS = Workers("verbund-solver", keep=8)


class JobQueue(Generic[T]):
    """Jobs run in submission order by ``threads`` background threads (of
    :data:`SOLVER_THREADS`, taken on the first submissions) and by callers of
    :meth:`wait`."""

    def __init__(self, threads: int) -> None:
        self._threads = max(0, threads)
        self._pending: deque[Job[T]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._workers: list[threading.Event] = []  # set when a thread has left the queue

    def submit(self, fn: Callable[[], T]) -> Job[T]:
        job = Job(fn)
        with self._ready:
            if self._closed:
                raise RuntimeError("job queue is closed")
            self._pending.append(job)
            self._ready.notify()
        if len(self._workers) < self._threads:
            try:
                self._workers.append(SOLVER_THREADS.start(self._work))
            except RuntimeError:  # no thread to be had: callers of wait() run the jobs
                self._threads = len(self._workers)
        return job

    @property
    def has_threads(self) -> bool:
        """Whether background threads run jobs (else only callers of :meth:`wait`)."""
        return self._threads > 0

    def wait(self, job: Job[T]) -> T:
        """The result of ``job``, running queued jobs in this thread meanwhile."""
        while not job.done():
            other = self._take(block=False)
            if other is None:
                break  # everything is started: block below
            other.run()
        return job.result()

    def close(self) -> None:
        """Cancel the jobs that have not started and wait until the background threads
        have left the queue (they finish the job they are running)."""
        with self._ready:
            self._closed = True
            cancelled = list(self._pending)
            self._pending.clear()
            self._ready.notify_all()
        for job in cancelled:
            job.cancel()
        for left in self._workers:
            left.wait()

    def _take(self, block: bool) -> Job[T] | None:
        with self._ready:
            while block and not self._pending and not self._closed:
                self._ready.wait()
            return self._pending.popleft() if self._pending else None

    def _work(self) -> None:
        while (job := self._take(block=True)) is not None:
            job.run()
