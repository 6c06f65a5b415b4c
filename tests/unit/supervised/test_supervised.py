"""supervised_map: a poison unit (segfault, hang, memory blow-up, exit) costs
that unit only; an exception fails its task only; nothing is left running."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator

import pytest
from poison_tasks import fail_to_start, read_units, start

from childsafe.errors import ChildsafeError
from childsafe.supervised import Poisoned, TaskFailed, supervised_map

Read = tuple[int, "str | None", list[str]]  # (worker's pid, its initializer's tag, one outcome a unit)


def run(
    tasks: list[tuple[str, ...]],
    workers: int = 2,
    item_seconds: float = 60.0,
    memory_bytes: int | None = None,
    initializer: Callable[[str], None] = start,
    max_attempts: int = 3,
) -> dict[tuple[str, ...], Read | TaskFailed]:
    mapped = supervised_map(
        read_units, tasks, workers, initializer=initializer, initargs=("started",),
        item_seconds=item_seconds, memory_bytes=memory_bytes, max_attempts=max_attempts,
    )  # fmt: skip
    results = dict(mapped)
    assert sorted(results) == sorted(tasks), "every task has exactly one result"
    return results


def read(result: Read | TaskFailed) -> Read:
    assert not isinstance(result, TaskFailed), result
    return result


def outcomes(result: Read | TaskFailed) -> list[str]:
    return read(result)[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_results_of_every_task_in_child_processes(workers: int) -> None:
    tasks = [("ok",) * n for n in range(1, 8)]
    results = run(tasks, workers)
    for task, result in results.items():
        assert outcomes(result) == [f"read {n}" for n in range(len(task))]
        assert read(result)[0] != os.getpid() and read(result)[1] == "started"
    assert len({read(result)[0] for result in results.values()}) <= workers


def test_a_segfaulting_unit_is_skipped_and_the_rest_is_read() -> None:
    poison = ("ok", "ok", "ok", "segfault", "ok", "ok")
    results = run([poison, ("ok", "ok"), ("ok", "exit", "ok")])
    assert outcomes(results[poison]) == [
        "read 0", "read 1", "read 2", "skipped: decoder crashed (signal SIGSEGV)", "read 4", "read 5",
    ]  # fmt: skip
    assert read(results[poison])[1] == "started"  # the replacement ran the initializer too
    assert outcomes(results[("ok", "ok")]) == ["read 0", "read 1"]
    assert outcomes(results[("ok", "exit", "ok")])[1] == "skipped: worker process exited with code 3"


def test_a_unit_that_ignores_signals_is_stopped_at_the_time_limit() -> None:
    hang = ("ok", "hang", "ok")
    results = run([hang, ("ok",)], workers=1, item_seconds=2.0)
    assert outcomes(results[hang]) == ["read 0", "skipped: time limit: no progress for 2 s", "read 2"]
    assert outcomes(results[("ok",)]) == ["read 0"]


def test_a_unit_over_the_memory_limit_is_skipped() -> None:
    greedy = ("ok", "2 GB", "ok")
    results = run([greedy], workers=1, memory_bytes=1024**3)
    assert outcomes(results[greedy]) == [
        "read 0", "skipped: memory limit: MemoryError (limit 1,073,741,824 bytes)", "read 2",
    ]  # fmt: skip


def test_an_exception_fails_its_task_only_and_the_worker_goes_on() -> None:
    first, odd, last = ("ok",), ("ok", "raise"), ("ok", "ok")
    results = run([first, odd, last], workers=1)
    assert results[odd] == TaskFailed(("worker failed: ValueError: unexpected thing",))
    assert read(results[first])[0] == read(results[last])[0]  # the same worker before and after


def test_a_task_that_keeps_crashing_fails_after_max_attempts() -> None:
    stubborn, early = ("crash again", "ok"), ("crash before progress",)
    results = run([stubborn, early, ("ok",)], max_attempts=2)
    reason = "decoder crashed (signal SIGSEGV)"
    assert results[stubborn] == TaskFailed((f"at ('unit', 0): {reason}",) * 2, (Poisoned(("unit", 0), reason),))
    # Nothing reported, so nothing to skip on a second attempt.
    assert results[early] == TaskFailed((f"{reason}, before reporting any progress",))
    assert outcomes(results[("ok",)]) == ["read 0"]


def test_a_worker_that_cannot_start_stops_the_run() -> None:
    with pytest.raises(ChildsafeError, match="could not start: RuntimeError: no database here"):
        run([("ok",)], initializer=fail_to_start)
    assert multiprocessing.active_children() == []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("stop", ["close", "interrupt"])
def test_no_process_is_left_when_the_caller_stops_early(stop: str) -> None:
    endless: Iterator[tuple[str, ...]] = (("slow",) * (n % 3 + 1) for n in itertools.count())  # never listed
    results = supervised_map(read_units, endless, 2, item_seconds=60.0, memory_bytes=None)
    pids = {read(result)[0] for _, result in itertools.islice(results, 6)}
    if stop == "close":
        results.close()
    else:
        with pytest.raises(KeyboardInterrupt):
            results.throw(KeyboardInterrupt)
    assert multiprocessing.active_children() == []
    assert not any(_pid_alive(pid) for pid in pids)
