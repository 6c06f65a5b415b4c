"""Run a function over many items in a process pool, keeping input order.

Hand-written rather than ``Executor.map``: that submits every item at once,
which for a million files means a million pending futures in memory. Here at
most ``workers * _WINDOW_PER_WORKER`` items are in flight.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["ordered_map", "default_workers", "die_with_parent", "spawn_pool"]

T = TypeVar("T")
R = TypeVar("R")

_WINDOW_PER_WORKER = 8


def default_workers() -> int:
    """The number of CPU cores this process may use."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def die_with_parent() -> None:
    """Ask Linux to kill this (worker) process when its parent dies, so that a
    service or scan killed outright leaves no worker behind. Hand-written
    (prctl through ctypes): the standard library has no way to ask for it.
    Elsewhere it does nothing."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _start_worker(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    die_with_parent()
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh ("spawn") processes that die with this one.
    Fresh processes are safe even when the parent runs threads (the progress
    bar, the service's request threads), at the cost of a second of start-up."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(initializer, *initargs),
    )


def ordered_map(
    function: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``map(function, items)``, computed by ``workers`` processes (in this
    process when ``workers`` is 1), yielding results in input order.
    ``initializer(*initargs)`` runs once in each process before its first item."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(function, items)
        return
    with spawn_pool(workers, initializer, initargs) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= workers * _WINDOW_PER_WORKER:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
