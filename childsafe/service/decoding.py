"""Preparing uploads in worker processes, each upload with its own worker
while it runs, its own time limit and a memory limit.

Everything that touches an upload's bytes as a picture (the decode, the
cuts, the keypoints, the full-resolution decode: ``detect.prepare_query``)
runs here, never in a request thread and never under the index lock. A
decoder that crashes, hangs in C code or runs out of memory costs its own
worker only: the worker is killed (SIGKILL: nothing can refuse it) and
replaced, and the uploads other workers are preparing go on untouched.

- The time limits start when the upload's worker starts it, not while it
  waits for a worker. Each decode of the upload stops at
  ``limits.decode_seconds`` (``CHILDSAFE_DECODE_SECONDS``; the decoder's own
  alarm, in the worker's main thread; a video's frames are hashed for at
  most that long too), and the worker goes on to the next
  upload. A worker still busy at ``kill_after`` (twice that, plus a second:
  an upload has at most two decodes, and its other steps work on a small
  copy) is stuck where no alarm reaches, in C code: it is killed.
- The memory limit is an address-space limit on each worker
  (``CHILDSAFE_WORKER_MEMORY_BYTES``, as for scan workers).
- At most ``waiting`` uploads wait for a worker; one more is refused at once
  (``UploadsBusy``): under a flood of slow uploads, the answer comes quickly
  and says when to try again, instead of a queue that never drains.
- An upload stopped by a limit or a crash still gets its digests (computed
  here) and a ``PreparedQuery`` whose ``incomplete`` names every perceptual
  step: the route decides what to answer (docs/service.md).

The worker side is ``supervised.worker_main`` (the scan's workers); the
parent side is here, one request thread per running upload, because uploads
arrive one by one rather than as a list to map over.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from childsafe.detect import PreparedQuery, QuerySteps, prepare_query, stopped_steps
from childsafe.media import MediaLimits
from childsafe.signals import hash_stream
from childsafe.supervised import death_reason, worker_main

__all__ = ["UploadWorkers", "UploadsBusy", "START_SECONDS"]

log = logging.getLogger("childsafe.service")

#: Time a worker may take to start (a fresh interpreter importing numpy,
#: Pillow, OpenCV) and to take an upload in, before the upload's own limit starts.
START_SECONDS = 60.0


class UploadsBusy(Exception):
    """Every worker is busy and as many uploads as allowed wait already."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many uploads are being prepared; try again shortly")
        self.retry_after = retry_after


def _prepare_task(
    task: tuple[bytes, str, MediaLimits, QuerySteps],
    progress: Callable[[Hashable], None],
    poisoned: Mapping[Hashable, str],
) -> PreparedQuery:
    # Runs in the worker: "progress" tells the parent the upload's time starts now.
    data, name, limits, steps = task
    progress("upload")
    return prepare_query(data, name, limits, steps)


def _warm_up() -> None:
    # Runs once in each worker before its first upload. Workers yield the
    # CPU to the service's request handling (lookups, /v1/health): a flood
    # of slow uploads then slows only other uploads.
    os.nice(10)
    # OpenCV's import and the first use of each step cost a second or more,
    # which must not count against the first upload's time limit.
    from PIL import Image

    from childsafe.signals.keypoints import opencv

    opencv()
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 160)).save(picture, "PNG")
    prepare_query(picture.getvalue(), "warm-up.png", MediaLimits())


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection


class UploadWorkers:
    """``processes`` worker processes preparing uploads (``prepare``), and
    at most ``waiting`` uploads waiting for one (default: twice as many)."""

    def __init__(
        self,
        limits: MediaLimits,
        processes: int,
        memory_bytes: int | None,
        waiting: int | None = None,
        kill_after: float | None = None,
    ) -> None:
        # A video upload's decode is held to one picture decode's time, so
        # ``kill_after`` (two decodes) covers it too: its vPDQ hash is made
        # from what was decoded in that time, and its error says so.
        self.limits = replace(limits, video_decode_seconds=min(limits.video_decode_seconds, limits.decode_seconds))
        self.memory_bytes = memory_bytes
        self.waiting_limit = 2 * max(1, processes) if waiting is None else waiting
        self.kill_after = 2 * limits.decode_seconds + 1 if kill_after is None else kill_after
        self._context = multiprocessing.get_context("spawn")
        self._condition = threading.Condition()
        self._idle: list[_Worker] = []
        self._every: set[_Worker] = set()
        self._waiting = 0
        self._closed = False
        for _ in range(max(1, processes)):
            self._idle.append(self._start())

    @property
    def retry_after(self) -> int:
        """Seconds an upload stopped by a limit should wait: about one decode's time limit."""
        return max(1, math.ceil(min(self.limits.decode_seconds, 30)))

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        args = (theirs, _prepare_task, _warm_up, (), self.memory_bytes)
        process = self._context.Process(target=worker_main, args=args, daemon=True, name="childsafe-upload")
        process.start()
        theirs.close()  # ours alone stays open here, so that its end shows when the worker dies
        worker = _Worker(process, ours)
        self._every.add(worker)
        return worker

    def check_room(self) -> None:
        """``UploadsBusy`` if an upload arriving now would be refused: the
        routes ask before reading an upload's body, to spend nothing on it."""
        with self._condition:
            if not self._idle and self._waiting >= self.waiting_limit:
                raise UploadsBusy(1)

    def prepare(self, data: bytes, name: str, steps: QuerySteps) -> PreparedQuery:
        """``prepare_query`` of an upload, in a worker. Never raises for the
        upload's content; ``UploadsBusy`` when too many uploads wait. When a
        limit or a crash stopped the worker, the result has the digests only
        and ``incomplete`` names every perceptual step."""
        worker = self._take()
        outcome: PreparedQuery | str
        try:
            outcome, alive = self._run(worker, (data, name, self.limits, steps))
        except BaseException:
            self._give_back(worker, alive=False)
            raise
        self._give_back(worker, alive)
        if isinstance(outcome, PreparedQuery):
            return outcome
        log.warning("upload not prepared: %s", outcome)
        hashes = hash_stream(io.BytesIO(data), name, MediaLimits(max_decode_bytes=0))
        hashes.error = f"{outcome}; digests only"
        return PreparedQuery(hashes, incomplete=stopped_steps(steps))

    def _take(self) -> _Worker:
        with self._condition:
            if not self._idle and self._waiting >= self.waiting_limit:
                raise UploadsBusy(1)
            self._waiting += 1
            try:
                # Each upload ahead takes at most its limit; the bound is only a safety net.
                patience = START_SECONDS + (self.waiting_limit + 1) * self.kill_after
                if not self._condition.wait_for(lambda: self._idle or self._closed, timeout=patience):
                    raise UploadsBusy(self.retry_after)
                if self._closed:
                    raise UploadsBusy(self.retry_after)
                return self._idle.pop()
            finally:
                self._waiting -= 1

    def _give_back(self, worker: _Worker, alive: bool) -> None:
        if not alive:
            _kill(worker)
        with self._condition:
            if not alive:
                self._every.discard(worker)
                if not self._closed:
                    worker = self._start()
            if self._closed:
                _kill(worker)
                return
            self._idle.append(worker)
            self._condition.notify()

    def _run(
        self, worker: _Worker, task: tuple[bytes, str, MediaLimits, QuerySteps]
    ) -> tuple[PreparedQuery | str, bool]:
        """The worker's answer (or why there is none), and whether it lives on."""
        try:
            worker.connection.send((task, {}))
        except OSError:
            return self._ended(worker), False
        deadline = time.monotonic() + START_SECONDS
        started = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if started:
                    return f"preparing the upload took longer than {self.kill_after:g} s; stopped", False
                return f"the upload's worker did not start within {START_SECONDS:g} s", False
            wait([worker.connection, worker.process.sentinel], remaining)
            if not worker.connection.poll():
                if not worker.process.is_alive():
                    return self._ended(worker), False
                continue
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                return self._ended(worker), False
            kind = message[0]
            if kind == "progress":
                started, deadline = True, time.monotonic() + self.kill_after
            elif kind == "done":
                return message[1], True
            elif kind == "failed":  # prepare_query raised: a bug, the worker itself is fine
                return str(message[1]), True
            elif kind == "memory":
                return f"memory limit reached preparing the upload ({message[1]})", False
            elif kind == "broken":  # the warm-up failed: a broken installation, not this upload
                return str(message[1]), False
            # "ready": the worker has started; its first upload is on its way

    def _ended(self, worker: _Worker) -> str:
        worker.process.join(timeout=5)
        return death_reason(worker.process)

    def close(self) -> None:
        """Stop every worker (running uploads are stopped too)."""
        with self._condition:
            self._closed = True
            every, self._idle = list(self._every), []
            self._condition.notify_all()
        for worker in every:
            _kill(worker)


def _kill(worker: _Worker) -> None:
    if worker.process.is_alive():
        worker.process.kill()
    worker.process.join(timeout=5)
    worker.connection.close()
