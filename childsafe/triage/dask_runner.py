"""Scans on a Dask cluster (``dask.distributed``): ``DaskPool`` runs a scan's
tasks on the workers of a scheduler at ``tcp://HOST:PORT`` instead of this
machine's worker processes (``supervised.py``), with the same ``map``.

- The tasks are the scan's own (``Task``: a file, or a share of a disk image),
  small files sent in batches (``_batches``: a Dask task costs a few ms of the
  scheduler's and the worker's time), a few batches a worker thread at a time
  (never all: there may be millions).
- A task runs in a process of its own, not in the Dask worker's thread:
  each Dask worker starts one reading process a worker thread when the scan
  starts (a ``WorkerPlugin``; a worker that joins or is restarted later
  starts them too), each loading the banks' index from the database and
  ``CHILDSAFE_HOME`` this process uses (workers on other machines need that
  database, PostgreSQL, and the same paths). They are the local scan's
  ``SupervisedPool`` workers, with the scanning process's limits
  (``CHILDSAFE_ITEM_SECONDS``, ``CHILDSAFE_WORKER_MEMORY_BYTES``): an item
  that hangs, crashes its decoder or runs out of memory costs a reading
  process, which is replaced; that item is reported with the local scan's
  error and the rest of its file is read again without it (``TaskFailed``
  when the file keeps failing). The Dask worker itself survives.
- A process cannot start processes of its own when it is daemonic, which is
  what a Dask nanny makes its worker: workers must run ``dask worker
  --no-nanny``, or under a nanny with Dask's ``distributed.worker.daemon``
  set to false (``DASK_DISTRIBUTED__WORKER__DAEMON=False``). The scan checks
  at the start and refuses others in one line saying so.
- A worker returns a task's items (``ReturnedTask``: plain rows and the
  contact sheets of unmatched videos) and this process saves them in the
  scan's state, so the state, the resume and the reports stay here.
- A Dask worker that dies loses only the batch it was reading: the scheduler
  runs it again on another worker. A batch that failed (it killed
  ``distributed.scheduler.allowed-failures`` + 1 workers: ``KilledWorker``)
  goes again file by file, and a file that fails alone is reported like the
  local pool's ``TaskFailed`` (an item that says why it could not be read).
- At the start every worker must run the same childsafe (version and code),
  be able to start processes and read the evidence path, or the scan stops
  with one line saying which.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import dask.config
from dask.utils import parse_timedelta
from distributed import Client, Future, WorkerPlugin, wait
from distributed.scheduler import KilledWorker

from childsafe import __version__
from childsafe.config import Settings
from childsafe.errors import ChildsafeError, UsageError
from childsafe.supervised import SupervisedPool, TaskFailed
from childsafe.triage.scan import ReturnedTask, returning_pool
from childsafe.triage.sources import Task

__all__ = ["DaskPool", "check_address", "code_version"]

#: Batches in flight for each worker thread: one running, others waiting at
#: the scheduler, so that a worker does not idle while a result comes back here
#: and its replacement goes out.
_IN_FLIGHT_PER_THREAD = 3
#: A batch of small files: at most this many, of at most this many bytes in all.
#: Small enough that the batches of 300 camera pictures (4 MiB: a quarter of a
#: second's work) end about together on 8 workers; large enough that a Dask
#: task's cost (3 ms) is about 1% of its time (bench/scan_scale.py).
_BATCH_FILES = 16
#: How often the scan checks, while no batch finishes, that the cluster still has workers.
_WORKERLESS_CHECK_SECONDS = 2.0
_BATCH_BYTES = 4 * 1024 * 1024
_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")

# The reading processes of the scans this worker process works for, by plugin
# name (set by _ReadingProcesses.setup, in each worker process; never used in the client).
_processes: dict[str, _Processes] = {}


@cache
def code_version() -> str:
    """This childsafe's version and a digest of its code, which every worker must share."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__} (code {digest.hexdigest()[:12]})"


def _worker_facts(evidence: str) -> tuple[str, str | None, bool]:
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


def check_address(address: str) -> None:
    """``UsageError`` unless ``address`` looks like a scheduler's (``tcp://HOST:PORT``)."""
    if not address.startswith(_SCHEMES) or address.endswith("://"):
        raise UsageError(
            f"{{field}} must be a Dask scheduler's address such as tcp://HOST:PORT, not {address!r:.80}",
            field="scheduler",
        )


class _Processes:
    """One scan's reading processes in a Dask worker (``returning_pool``), one
    a worker thread, each lent to one batch at a time: ``SupervisedPool.map``
    serves one caller at a time."""

    def __init__(self, settings: Settings, verify_images: bool, count: int) -> None:
        self.settings = settings
        self.verify_images = verify_images
        self._idle: queue.SimpleQueue[SupervisedPool[Task, ReturnedTask]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(count):
            self._idle.put(self._start())

    def _start(self) -> SupervisedPool[Task, ReturnedTask]:
        return returning_pool(self.settings, self.verify_images).__enter__()

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

    def read(self, tasks: list[Task]) -> list[ReturnedTask | TaskFailed]:
        """Read and match ``tasks`` in one of the processes: what each gave, in order."""
        with self._lend() as pool:
            done = {id(task): outcome for task, outcome in pool.map(tasks)}
        return [done[id(task)] for task in tasks]

    @contextmanager
    def _lend(self) -> Iterator[SupervisedPool[Task, ReturnedTask]]:
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


def _daemonic(worker: str) -> str:
    return (
        f"Dask worker {worker} is a daemonic process (a nanny's worker), which cannot start the processes"
        " that read the evidence: start workers with `dask worker --no-nanny`, or with"
        " DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment"
    )


def _start_processes(settings: Settings, verify_images: bool, count: int, worker: str) -> _Processes:
    """``count`` reading processes, each with the banks' index loaded."""
    if multiprocessing.current_process().daemon:  # multiprocessing would refuse, in words of its own
        raise ChildsafeError(_daemonic(worker))
    processes = _Processes(settings, verify_images, count)
    try:
        processes.wait_started()
    except BaseException:
        processes.close()
        raise
    return processes


class _ReadingProcesses(WorkerPlugin):  # type: ignore[misc]  # distributed is untyped here (pyproject)
    """Starts a Dask worker's reading processes for one scan (``_Processes``), off its event loop."""

    def __init__(self, name: str, settings: Settings, verify_images: bool) -> None:
        self.name = name
        self.settings = settings
        self.verify_images = verify_images

    async def setup(self, worker: Any) -> None:
        _processes[self.name] = await asyncio.get_running_loop().run_in_executor(
            None, _start_processes, self.settings, self.verify_images, worker.state.nthreads, worker.address
        )

    async def teardown(self, worker: Any) -> None:
        processes = _processes.pop(self.name, None)
        if processes is not None:
            await asyncio.get_running_loop().run_in_executor(None, processes.close)


class _NoProcesses(ChildsafeError):
    """A worker without its reading processes (the database unreachable from them, say): the scan stops."""


def _scan_on_worker(plugin: str, tasks: list[Task]) -> list[ReturnedTask | TaskFailed]:
    """Run on a worker: read and match a batch of tasks (``_batches``) in one of its reading processes."""
    processes = _processes.get(plugin)
    if processes is None:
        raise _NoProcesses("a Dask worker could not load the banks' index: its log says why")
    try:
        return processes.read(tasks)
    except ChildsafeError as exc:  # a replacement reading process could not start: no use going on
        raise _NoProcesses(f"a Dask worker could not start a reading process: {exc}") from None


def _batches(tasks: Iterator[Task]) -> Iterator[list[Task]]:
    """Small files in batches of up to ``_BATCH_FILES`` and ``_BATCH_BYTES``, so
    that the scheduler's cost of a task (a few ms) is paid once for many small
    pictures; a larger file, or a share of a disk image, alone. With absolute
    paths: a worker's current folder is not ours."""
    batch: list[Task] = []
    size = 0
    for task in tasks:
        task = replace(task, path=os.path.abspath(task.path))
        if task.share is not None or task.size >= _BATCH_BYTES:
            yield [task]
            continue
        batch.append(task)
        size += task.size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class DaskPool:
    """A scan's workers on the Dask cluster whose scheduler is at ``address``:
    connected on entering the ``with`` block (checking every worker), left on leaving it."""

    def __init__(self, address: str, settings: Settings, evidence: Path, verify_images: bool = False) -> None:
        check_address(address)
        self.address = address
        self.settings = settings
        self.evidence = str(evidence.resolve())
        self.verify_images = verify_images
        self.plugin = f"childsafe-scan-{uuid.uuid4().hex}"
        self.size = 1  # worker threads, known once connected
        self.seconds = 30.0
        self._client: Client | None = None

    def __enter__(self) -> DaskPool:
        # Dask's own setting, distributed.comm.timeouts.connect (30 s unless set), bounds both waits.
        self.seconds = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))
        try:
            client = Client(self.address, timeout=self.seconds, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"no Dask scheduler answered at {self.address} within {self.seconds:g} s"
                f" ({_one_line(exc)}): is `dask scheduler` running there, and is {{field}} its address?",
                field="scheduler",
            ) from None
        try:
            self._check_workers(client)
            self._start_processes(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        return self

    def _start_processes(self, client: Client) -> None:
        """Every worker starts its reading processes, which load the banks' index
        (``_ReadingProcesses``), and so will any that joins later."""
        try:
            client.register_plugin(_ReadingProcesses(self.plugin, self.settings, self.verify_images))
        except Exception as exc:
            try:
                client.unregister_worker_plugin(self.plugin)
            except Exception:  # the workers that failed have none to remove
                pass
            why = str(exc) if isinstance(exc, ChildsafeError) else _one_line(exc)
            raise ChildsafeError(
                f"a Dask worker could not load the banks' index ({why}): every worker needs"
                " the scan's database and CHILDSAFE_HOME path (docs/triage.md, scans on several machines)"
            ) from None

    def _check_workers(self, client: Client) -> None:
        try:
            client.wait_for_workers(1, timeout=self.seconds)
        except TimeoutError:
            raise UsageError(
                f"the Dask scheduler at {self.address} has no worker (none came in {self.seconds:g} s):"
                " start `dask worker` on the machines that scan"
            ) from None
        ours = code_version()
        for address, (version, unreadable, daemonic) in sorted(client.run(_worker_facts, self.evidence).items()):
            if version != ours:
                raise UsageError(
                    f"Dask worker {address} runs childsafe {version}, this one {ours}: install the same on every worker"
                )
            if daemonic:
                raise UsageError(_daemonic(address))
            if unreadable is not None:
                raise UsageError(f"Dask worker {address} cannot read the evidence at {self.evidence}: {unreadable}")
        self.size = max(1, sum(client.nthreads().values()))

    def __exit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.unregister_worker_plugin(self.plugin)
        except Exception:  # a worker gone or the scheduler down: nothing more to close
            pass
        finally:
            client.close()

    def map(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, ReturnedTask | TaskFailed]]:
        """Yield ``(task, what a worker returned)`` for every task as they finish, or ``TaskFailed``
        when it raised or kept killing workers; a bounded number in flight. Tasks go in
        batches (``_batches``); a batch that failed goes again task by task, so that only
        the task at fault is reported failed."""
        client = self._client
        assert client is not None, "DaskPool.map outside its with block"
        todo = _batches(iter(tasks))
        pending: dict[Future, list[Task]] = {}
        workerless_since: float | None = None

        def submit(batch: list[Task]) -> None:
            pending[client.submit(_scan_on_worker, self.plugin, batch, pure=False)] = batch

        for batch in todo:
            submit(batch)
            if len(pending) >= _IN_FLIGHT_PER_THREAD * self.size:
                break
        while pending:
            try:
                with client.as_current():  # distributed.wait asks for "the" client: ours is not the default
                    finished, _ = wait(list(pending), timeout=_WORKERLESS_CHECK_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                # Nothing finished for a while: fine while workers work; with none left
                # (killed, their machines lost), the scheduler would wait for ever.
                workerless_since = self._check_workers_left(client, workerless_since)
                continue
            workerless_since = None
            for future in finished:
                batch = pending.pop(future)
                if future.status == "finished":
                    yield from zip(batch, future.result(), strict=True)
                elif len(batch) > 1 and future.status == "error":
                    for task in batch:
                        submit([task])
                else:
                    yield batch[0], _failure(future)
                future.release()
                for batch in todo:
                    submit(batch)
                    break

    def _check_workers_left(self, client: Client, workerless_since: float | None) -> float | None:
        """When the cluster has had no worker for ``self.seconds``, stop the scan
        (what is saved stays saved: it resumes); else when it was first seen without one."""
        if client.nthreads():
            return None
        now = time.monotonic()
        if workerless_since is None:
            return now
        if now - workerless_since >= self.seconds:
            raise ChildsafeError(
                f"the Dask cluster at {self.address} has had no worker for {self.seconds:g} s (all stopped or"
                " lost): start `dask worker` again and resume the scan; what was read is saved",
            )
        return workerless_since


def _failure(future: Future) -> TaskFailed:
    """The ``TaskFailed`` of a task that ended in error on the cluster."""
    if future.status == "cancelled":
        raise ChildsafeError("the Dask scheduler dropped a task of the scan (was it restarted?): resume the scan")
    error = future.exception()
    if isinstance(error, _NoProcesses):
        raise error
    if isinstance(error, KilledWorker):
        return TaskFailed(("worker killed: every Dask worker that ran it died (distributed's KilledWorker)",))
    if isinstance(error, MemoryError):
        return TaskFailed((f"memory limit: {_one_line(error)}",))
    if isinstance(error, Exception):
        return TaskFailed((f"worker failed: {_one_line(error)}",))
    raise ChildsafeError(f"a Dask task ended {future.status}") from error


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
