"""Hashing uploads in separate processes, with a hard time limit.

In the service, requests are handled in threads, where the decoder's own
time limit (a SIGALRM, main thread only) cannot work; and a decoder that
crashes on hostile bytes must not take the service down. So uploads are
hashed in a small pool of worker processes: a decode that runs past the
limit, or kills its process, costs that process (the pool is replaced) and
gives the upload a one-line ``error``; its digests are still computed here.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from childsafe.media import MediaLimits
from childsafe.parallel import spawn_pool
from childsafe.signals import FileHashes, hash_stream

__all__ = ["UploadHasher"]


def _hash_bytes(data: bytes, name: str, limits: MediaLimits, dihedral: bool) -> FileHashes:
    return hash_stream(io.BytesIO(data), name, limits, dihedral=dihedral)


class UploadHasher:
    """Hash uploads in ``processes`` worker processes, ``limits.decode_seconds`` at most each
    (plus a few seconds' grace for the transfer)."""

    def __init__(self, limits: MediaLimits, processes: int = 2) -> None:
        self.limits = limits
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return spawn_pool(self.processes)

    def hash(self, data: bytes, name: str, dihedral: bool) -> FileHashes:
        """The ``hash`` object of ``data``; never raises for bad content."""
        with self._lock:
            pool = self._pool
        future: Future[FileHashes] = pool.submit(_hash_bytes, data, name, self.limits, dihedral)
        try:
            return future.result(timeout=self.limits.decode_seconds + 5)
        except FutureTimeout:
            problem = f"decoding took longer than {self.limits.decode_seconds:g} s; stopped"
        except BrokenProcessPool:
            problem = "the decoder failed on this file (its process ended); digests only"
        self._replace(pool)
        digests = hash_stream(io.BytesIO(data), name, MediaLimits(max_decode_bytes=0), dihedral=False)
        digests.error = problem
        return digests

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another thread replaced it already
            self._pool = self._new_pool()
        for process in list(getattr(broken, "_processes", {}).values()):
            process.kill()  # a decode stuck in C code cannot be asked to stop
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the decoding processes (killed if they have not ended within 2 s)."""
        with self._lock:
            pool = self._pool
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
