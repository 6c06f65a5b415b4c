"""Run a function over many tasks in worker processes that a poison input
cannot take down with them: a decoder that segfaults, hangs in C code, or
eats all memory costs one unit of work, not the whole run.

Hand-written rather than ``ProcessPoolExecutor``: that pool breaks for good
when one worker dies, and cannot stop a worker stuck in C code.

The protocol, over one pipe per worker (a fresh "spawn" process):

- The worker starts (``die_with_parent``, the address-space limit, the
  initializer) and sends ``("ready",)``; a worker that cannot start stops the
  run with the initializer's error.
- The parent sends one task at a time: ``(task, poisoned)``. Running one task
  a worker means a crash is always the fault of exactly one task.
- While it works, the function calls ``progress(position)`` before each unit
  (an archive member, say): the worker sends ``("progress", position)``.
  Then ``("done", result)``, or ``("failed", "worker failed: Type: message")``
  when the function raised, or ``("memory", ...)`` on a MemoryError.
- The parent gives each unit ``item_seconds`` from its progress message. A
  worker silent for longer is killed (SIGKILL: no signal handler or C loop
  can refuse it); one that dies, is killed, or hit its memory limit is
  replaced, and the unit it last reported is *poisoned*: the same task runs
  again on the new worker with ``poisoned = {position: reason, ...}``, and
  the function skips those units (reporting them as errors) and does the rest.
- A task that killed workers ``max_attempts`` times, or killed one before
  reporting any unit (there is nothing to skip), ends as ``TaskFailed``.
  Every task gets a result; none is dropped.

Results come back as tasks finish, not in input order. At most one task a
worker is in flight (plus its retries), so ``tasks`` may be a lazy iterator
of millions.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from childsafe.errors import ChildsafeError
from childsafe.parallel import die_with_parent

__all__ = ["Poisoned", "SupervisedPool", "TaskFailed", "supervised_map", "worker_main", "death_reason"]

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[Hashable], None]


@dataclass(frozen=True)
class Poisoned:
    """A unit of work (at ``position``, as the task reported it) that killed a worker."""

    position: Hashable
    reason: str  # "decoder crashed (signal SIGSEGV)", "time limit: no progress for 300 s", ...


@dataclass(frozen=True)
class TaskFailed:
    """The result of a task that could not be finished: one line a reason, in order."""

    reasons: tuple[str, ...]
    poisoned: tuple[Poisoned, ...] = ()


def worker_main(
    connection: Connection,
    function: Callable[[Any, Progress, Mapping[Hashable, str]], Any],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    memory_bytes: int | None,
) -> None:
    """A worker process's life (the protocol above); also the service's upload
    workers (``service/decoding.py``), whose parent side is their own."""
    die_with_parent()
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_bytes is not None:
        import resource

        # Beyond this address space an allocation fails (MemoryError) or the
        # worker dies; either way the parent poisons the unit and replaces it.
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        if initializer is not None:
            initializer(*initargs)
    except Exception as exc:
        connection.send(("broken", ChildsafeError(f"a worker process could not start: {_one_line(exc)}")))
        return
    connection.send(("ready",))

    def progress(position: Hashable) -> None:
        connection.send(("progress", position))

    while (message := connection.recv()) is not None:
        task, poisoned = message
        try:
            connection.send(("done", function(task, progress, poisoned)))
        except MemoryError as exc:
            connection.send(("memory", _one_line(exc)))
            return  # the heap may be in a bad state: let a fresh worker go on
        except Exception as exc:
            connection.send(("failed", f"worker failed: {_one_line(exc)}"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Job(Generic[T]):
    task: T
    poisoned: dict[Hashable, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Worker(Generic[T]):
    process: BaseProcess
    connection: Connection
    ready: bool = False
    replaced: bool = False
    job: _Job[T] | None = None
    position: Hashable = None
    reported: bool = False  # whether ``position`` was reported by the current job
    deadline: float = float("inf")


class SupervisedPool(Generic[T, R]):
    """Worker processes for ``map``, started on entering the ``with`` block so
    that they import and initialise while the caller prepares its tasks.

    ``function``, the tasks and the results must be picklable. It must call
    ``progress(position)`` before each unit of work, and treat the units in
    ``poisoned`` ({position: reason}) as failed without touching them.
    ``initializer(*initargs)`` runs once in each worker, replacements too.
    Each unit may take ``item_seconds`` and each worker ``memory_bytes`` of
    address space (None: no limit). The module docstring has the details."""

    def __init__(
        self,
        function: Callable[[T, Progress, Mapping[Hashable, str]], R],
        workers: int,
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        item_seconds: float,
        memory_bytes: int | None,
        max_attempts: int = 3,
    ) -> None:
        self.function = function
        self.size = max(1, workers)  # at least one: this process survives whatever a task does
        self.initializer = initializer
        self.initargs = initargs
        self.item_seconds = item_seconds
        self.memory_bytes = memory_bytes
        self.max_attempts = max_attempts
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker[T]] = []  # replaced when they die
        self._completed = False

    def __enter__(self) -> SupervisedPool[T, R]:
        for _ in range(self.size):
            self._start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for worker in self._pool:
            if self._completed and worker.ready and worker.job is None:
                try:
                    worker.connection.send(None)  # let it leave normally, closing what its initializer opened
                    worker.process.join(timeout=10)
                except OSError:
                    pass
            _kill(worker)
        self._pool.clear()

    def wait_started(self) -> None:
        """Wait until every worker has started (its initializer done), for a
        caller that must know before its first task; raise the error of one
        that could not start, as ``map`` would."""
        for worker in self._pool:
            while not worker.ready:
                wait([worker.connection, worker.process.sentinel])
                message: tuple[Any, ...] = ("dead",)
                try:
                    if worker.connection.poll():
                        message = worker.connection.recv()
                except (EOFError, OSError):
                    pass
                if message[0] == "broken":
                    raise message[1]
                if message[0] != "ready":
                    raise ChildsafeError(f"a worker process could not start ({death_reason(worker.process)})")
                worker.ready = True

    def _start(self) -> _Worker[T]:
        ours, theirs = self._context.Pipe()
        args = (theirs, self.function, self.initializer, self.initargs, self.memory_bytes)
        process = self._context.Process(target=worker_main, args=args, daemon=True, name="childsafe-worker")
        process.start()
        theirs.close()  # ours alone stays open here
        self._pool.append(_Worker(process, ours))
        return self._pool[-1]

    def map(self, tasks: Iterable[T]) -> Generator[tuple[T, R | TaskFailed], None, None]:
        """Yield ``(task, function(task, progress, poisoned))`` for every task,
        as tasks finish (not in input order). The result is ``TaskFailed`` when
        the function raised or the task kept killing workers."""
        pool, item_seconds, memory_bytes = self._pool, self.item_seconds, self.memory_bytes
        todo = iter(tasks)
        retries: deque[_Job[T]] = deque()
        finished: list[tuple[T, R | TaskFailed]] = []

        def give_up(worker: _Worker[T], reason: str) -> None:
            """Drop a worker that died or is stopped; retry its task, or fail it."""
            _kill(worker)
            worker.replaced = True
            pool.remove(worker)
            job = worker.job
            if job is None:
                return
            if worker.reported:
                job.poisoned[worker.position] = reason
                job.reasons.append(f"at {worker.position!r}: {reason}")
            else:
                job.reasons.append(f"{reason}, before reporting any progress")
            if worker.reported and len(job.reasons) < self.max_attempts:
                retries.append(job)
            else:
                poisoned = tuple(Poisoned(position, why) for position, why in job.poisoned.items())
                finished.append((job.task, TaskFailed(tuple(job.reasons), poisoned)))

        def receive(worker: _Worker[T], message: tuple[Any, ...], now: float) -> None:
            kind = message[0]
            if kind == "ready":
                worker.ready = True
                worker.deadline = now + item_seconds if worker.job else float("inf")
            elif kind == "broken":
                raise message[1]
            elif kind == "progress":
                worker.position, worker.reported, worker.deadline = message[1], True, now + item_seconds
            elif kind == "memory":
                limit = f" (limit {memory_bytes:,} bytes)" if memory_bytes else ""
                give_up(worker, f"memory limit: {message[1]}{limit}")
            else:  # "done" or "failed"
                assert worker.job is not None
                result = message[1] if kind == "done" else TaskFailed((message[1],))
                finished.append((worker.job.task, result))
                worker.job, worker.deadline = None, float("inf")

        def drain(worker: _Worker[T], now: float, most: float) -> None:
            count = 0
            while not worker.replaced and count < most and worker.connection.poll():
                try:
                    message = worker.connection.recv()
                except (EOFError, OSError):
                    return  # it died; the caller sees that
                receive(worker, message, now)
                count += 1

        while True:
            idle: list[_Worker[T] | None] = [worker for worker in pool if worker.job is None]
            for worker in idle + [None] * (self.size - len(pool)):
                job = retries.popleft() if retries else _next_job(todo)
                if job is None:
                    break
                worker = worker or self._start()
                worker.job, worker.position, worker.reported = job, None, False
                worker.deadline = time.monotonic() + item_seconds if worker.ready else float("inf")
                try:
                    worker.connection.send((job.task, job.poisoned))
                except OSError:  # it died while idle (killed from outside): not this task's fault
                    worker.job = None
                    give_up(worker, "")
                    retries.appendleft(job)
            busy = [worker for worker in pool if worker.job is not None]
            if not busy:
                if retries:
                    continue
                break
            soonest = min(worker.deadline for worker in busy) - time.monotonic()
            waiting = [w.connection for w in busy] + [w.process.sentinel for w in busy]
            wait(waiting, None if soonest == float("inf") else max(0.0, soonest))
            now = time.monotonic()
            for worker in busy:
                # Messages first: a unit reported while we waited restarts its clock.
                # A bound, so that one chatty worker cannot starve the others.
                drain(worker, now, most=1000)
                if worker.replaced:
                    continue
                if not worker.process.is_alive():
                    drain(worker, now, most=float("inf"))  # its last words say where it was
                    if worker.replaced:
                        continue
                    if not worker.ready:
                        raise ChildsafeError(f"a worker process could not start ({death_reason(worker.process)})")
                    give_up(worker, death_reason(worker.process))
                elif worker.job is not None and now >= worker.deadline:
                    give_up(worker, f"time limit: no progress for {item_seconds:g} s")
            yield from finished
            finished.clear()
        self._completed = True


def supervised_map(
    function: Callable[[T, Progress, Mapping[Hashable, str]], R],
    tasks: Iterable[T],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    item_seconds: float,
    memory_bytes: int | None,
    max_attempts: int = 3,
) -> Generator[tuple[T, R | TaskFailed], None, None]:
    """``SupervisedPool(...).map(tasks)`` in one call, for callers with
    nothing to prepare while the workers start."""
    with SupervisedPool(
        function,
        workers,
        initializer=initializer,
        initargs=initargs,
        item_seconds=item_seconds,
        memory_bytes=memory_bytes,
        max_attempts=max_attempts,
    ) as pool:
        yield from pool.map(tasks)


def _next_job(todo: Iterator[T]) -> _Job[T] | None:
    for task in todo:
        return _Job(task)
    return None


def _kill(worker: _Worker[Any]) -> None:
    if worker.process.is_alive():
        worker.process.kill()
    worker.process.join()
    worker.connection.close()


def death_reason(process: BaseProcess) -> str:
    """Why a worker process ended, in one line."""
    code = process.exitcode
    if code == -signal.SIGKILL:  # not a time limit (those are reported as such), so from outside
        return "worker killed (signal SIGKILL; by the out-of-memory killer?)"
    if code is not None and code < 0:
        try:
            return f"decoder crashed (signal {signal.Signals(-code).name})"
        except ValueError:
            return f"decoder crashed (signal {-code})"
    return f"worker process exited with code {code}"
