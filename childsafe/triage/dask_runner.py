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
  when the file keeps failing). The Dask worker itself survives. What runs
  in the Dask worker is ``childsafe/dask_worker.py``; tasks and what they
  gave travel pickled, so that it need not import the reading code.
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

import os
import pickle
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import dask.config
from dask.utils import parse_timedelta
from distributed import Client, Future, wait
from distributed.scheduler import KilledWorker

from childsafe.config import Settings
from childsafe.dask_worker import NoProcesses, ReadingProcesses, code_version, daemonic_refusal, scan_on_worker
from childsafe.dask_worker import worker_facts as _worker_facts
from childsafe.errors import ChildsafeError, UsageError
from childsafe.supervised import TaskFailed
from childsafe.triage.scan import MAX_ATTEMPTS, ReturnedTask
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


def check_address(address: str) -> None:
    """``UsageError`` unless ``address`` looks like a scheduler's (``tcp://HOST:PORT``)."""
    if not address.startswith(_SCHEMES) or address.endswith("://"):
        raise UsageError(
            f"{{field}} must be a Dask scheduler's address such as tcp://HOST:PORT, not {address!r:.80}",
            field="scheduler",
        )


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
        (``ReadingProcesses``), and so will any that joins later."""
        try:
            client.register_plugin(ReadingProcesses(self.plugin, self.settings, self.verify_images, MAX_ATTEMPTS))
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
                raise UsageError(daemonic_refusal(address))
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
            pickled = [pickle.dumps(task, pickle.HIGHEST_PROTOCOL) for task in batch]  # see dask_worker.py
            pending[client.submit(scan_on_worker, self.plugin, pickled, pure=False)] = batch

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
                    for task, outcome in zip(batch, future.result(), strict=True):
                        yield task, outcome if isinstance(outcome, TaskFailed) else _returned(outcome)
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


def _returned(pickled: bytes) -> ReturnedTask:
    returned = pickle.loads(pickled)
    assert isinstance(returned, ReturnedTask), type(returned)
    return returned


def _failure(future: Future) -> TaskFailed:
    """The ``TaskFailed`` of a task that ended in error on the cluster."""
    if future.status == "cancelled":
        raise ChildsafeError("the Dask scheduler dropped a task of the scan (was it restarted?): resume the scan")
    error = future.exception()
    if isinstance(error, NoProcesses):
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
