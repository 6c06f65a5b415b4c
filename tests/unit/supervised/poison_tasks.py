"""Tasks for tests/test_supervised.py, in a module of their own so that the
spawned worker processes can import them (tests/ is on ``sys.path`` under
pytest, and a spawned child inherits the parent's ``sys.path``).

A task is a tuple of units; each unit says what reading it does."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Hashable, Mapping

_started: str | None = None


def start(tag: str) -> None:
    """The initializer: remembers ``tag``, so results show it ran in this worker."""
    global _started
    _started = tag


def fail_to_start(tag: str) -> None:
    raise RuntimeError("no database here")


def read_units(
    units: tuple[str, ...], progress: Callable[[Hashable], None], poisoned: Mapping[Hashable, str]
) -> tuple[int, str | None, list[str]]:
    """Do each unit as it says; returns (this worker's pid, the initializer's tag, one outcome a unit)."""
    outcomes = []
    if units and units[0] == "crash before progress":
        os.kill(os.getpid(), signal.SIGSEGV)
    for number, unit in enumerate(units):
        position = ("unit", number)
        progress(position)
        if position in poisoned and unit != "crash again":
            outcomes.append(f"skipped: {poisoned[position]}")
            continue
        if unit in ("segfault", "crash again"):
            os.kill(os.getpid(), signal.SIGSEGV)
        elif unit == "exit":
            os._exit(3)
        elif unit == "hang":
            # No Python signal handler could stop this; only SIGKILL can.
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            time.sleep(600)
        elif unit == "2 GB":
            outcomes.append(str(len(bytearray(2 * 1024**3))))
            continue
        elif unit == "raise":
            raise ValueError("unexpected\nthing")
        elif unit == "slow":
            time.sleep(0.05)
        outcomes.append(f"read {number}")
    return os.getpid(), _started, outcomes
