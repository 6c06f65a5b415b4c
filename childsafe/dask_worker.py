"""What a Dask worker process runs for a scan on a cluster (the scanning side
is ``triage/dask_runner.py``): the checks at the start, the reading
processes it starts for the scan, and the batches it hands them.

The reading processes (``SupervisedPool``, one a worker thread) do the
reading, with the scan's time and memory limits and the local scan's poison
handling. The Dask worker only passes tasks and what they gave between the
scheduler and them, as pickled bytes, and this module stays out of
``childsafe.triage``: so a Dask worker never imports the reading code
itself, which would cost every worker a second or two of a core at the
start of each scan, on top of its reading processes' own import.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from childsafe import __version__
from childsafe.config import Settings
from childsafe.errors import ChildsafeError
from childsafe.supervised import Progress, SupervisedPool, TaskFailed

__all__ = ["NoProcesses", "ReadingProcesses", "code_version", "scan_on_worker", "worker_facts"]

#: A pool of one reading process: pickled tasks in, pickled ``ReturnedTask`` out.
_Pool = SupervisedPool[bytes, bytes]

# The reading processes of the scans this worker process works for, by plugin
# name (set by ReadingProcesses.setup, in each worker process; never used in the client).
_processes: dict[str, _Processes] = {}


@cache
def code_version() -> str:
    """This childsafe's version and a digest of its code, which every worker must share."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__} (code {digest.hexdigest()[:12]})"


def worker_facts(evidence: str) -> tuple[str, str | None, bool]:
    """Run on each worker at the start: its childsafe, why it cannot read the
    evidence (``None``: it can), and whether it is daemonic (then it cannot
    start the processes that read)."""
    daemonic = multiprocessing.current_process().daemon
    try:
        if os.path.isdir(evidence):
            os.listdir(evidence)
        else:
            with open(evidence, "rb") as handle:
                handle.read(1)
    except OSError as exc:
        return code_version(), exc.strerror or type(exc).__name__, daemonic
    return code_version(), None, daemonic


def daemonic_refusal(worker: str) -> str:
    """Why a daemonic worker cannot take part, and what to do."""
    return (
        f"Dask worker {worker} is a daemonic process (a nanny's worker), which cannot start the processes"
        " that read the evidence: start workers with `dask worker --no-nanny`, or with"
        " DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment"
    )


# -- in a reading process -----------------------------------------------------


def _start_reading(settings: Settings, verify_images: bool) -> None:
    """A reading process's initializer: the banks' index, loaded once."""
    from childsafe.triage.scan import start_returning_worker  # here, not in the Dask worker

    start_returning_worker(settings, verify_images)


def _read(task: bytes, progress: Progress, poisoned: Mapping[Hashable, str]) -> bytes:
    """Read and match one pickled ``Task``: its pickled ``ReturnedTask``."""
    from childsafe.triage.scan import return_task

    return pickle.dumps(return_task(pickle.loads(task), progress, poisoned), pickle.HIGHEST_PROTOCOL)


# -- in the Dask worker -------------------------------------------------------


class _Processes:
    """One scan's reading processes in a Dask worker, one a worker thread,
    each lent to one batch at a time: ``SupervisedPool.map`` serves one
    caller at a time."""

    def __init__(self, plugin: ReadingProcesses, count: int) -> None:
        self.plugin = plugin
        self._idle: queue.SimpleQueue[_Pool] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(count):
            self._idle.put(self._start())

    def _start(self) -> _Pool:
        plugin = self.plugin
        return SupervisedPool(
            _read,
            1,
            initializer=_start_reading,
            initargs=(plugin.settings, plugin.verify_images),
            item_seconds=plugin.settings.budgets.item_seconds,
            memory_bytes=plugin.settings.budgets.worker_memory_bytes,
            max_attempts=plugin.max_attempts,
        ).__enter__()

    def wait_started(self) -> None:
        """Wait until every process has loaded the index; raise why one could not."""
        pools = []
        try:
            while not self._idle.empty():
                pools.append(self._idle.get())
                pools[-1].wait_started()
        finally:
            for pool in pools:
                self._idle.put(pool)

    def read(self, tasks: list[bytes]) -> list[bytes | TaskFailed]:
        """Read and match pickled tasks in one of the processes: what each gave, in order."""
        with self._lend() as pool:
            done = {id(task): outcome for task, outcome in pool.map(tasks)}
        return [done[id(task)] for task in tasks]

    @contextmanager
    def _lend(self) -> Iterator[_Pool]:
        """A pool of one process for a batch, back to the others after it."""
        pool = self._idle.get()
        whole = False
        try:
            yield pool
            whole = True
        finally:
            with self._lock:
                if not whole or self._closed:  # a map stopped part way may hold a task; or the scan is over
                    pool.__exit__()
                if not self._closed:
                    self._idle.put(pool if whole else self._start())

    def close(self) -> None:
        """Stop the idle processes now, the busy ones when their batch ends."""
        with self._lock:
            self._closed = True
            while not self._idle.empty():
                self._idle.get().__exit__()


def _start_processes(plugin: ReadingProcesses, count: int, worker: str) -> _Processes:
    """``count`` reading processes, each with the banks' index loaded."""
    if multiprocessing.current_process().daemon:  # multiprocessing would refuse, in words of its own
        raise ChildsafeError(daemonic_refusal(worker))
    processes = _Processes(plugin, count)
    try:
        processes.wait_started()
    except BaseException:
        processes.close()
        raise
    return processes


class ReadingProcesses(WorkerPlugin):  # type: ignore[misc]  # distributed is untyped here (pyproject)
    """Starts a Dask worker's reading processes for one scan, one a worker
    thread, off its event loop; stops them when the scan ends. ``settings``
    are the scanning process's: its database, index and limits."""

    def __init__(self, name: str, settings: Settings, verify_images: bool, max_attempts: int) -> None:
        self.name = name
        self.settings = settings
        self.verify_images = verify_images
        self.max_attempts = max_attempts

    async def setup(self, worker: Any) -> None:
        _processes[self.name] = await asyncio.get_running_loop().run_in_executor(
            None, _start_processes, self, worker.state.nthreads, worker.address
        )

    async def teardown(self, worker: Any) -> None:
        processes = _processes.pop(self.name, None)
        if processes is not None:
            await asyncio.get_running_loop().run_in_executor(None, processes.close)


class NoProcesses(ChildsafeError):
    """A worker without its reading processes (the database unreachable from them, say): the scan stops."""


def scan_on_worker(plugin: str, tasks: list[bytes]) -> list[bytes | TaskFailed]:
    """Run on a worker: read and match a batch of pickled tasks in one of its
    reading processes; each task's pickled ``ReturnedTask``, or ``TaskFailed``."""
    processes = _processes.get(plugin)
    if processes is None:
        raise NoProcesses("a Dask worker could not load the banks' index: its log says why")
    try:
        return processes.read(tasks)
    except ChildsafeError as exc:  # a replacement reading process could not start: no use going on
        raise NoProcesses(f"a Dask worker could not start a reading process: {exc}") from None
