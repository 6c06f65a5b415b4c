"""Streams that the reader (``reading.py``) reads evidence through: each byte
a member expands to is counted against its budgets, and a long read says it
is still going, so that only a stall counts against the time limit."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from childsafe.media.budgets import BudgetExceeded, ScanBudgets, over_budget

__all__ = ["Tally", "ArchiveOverBudget", "BudgetedStream", "TickingFile", "TICK_BYTES"]

#: A long read says it is still going this often (bytes), so only a stall counts against the time limit.
TICK_BYTES = 64 * 1024 * 1024


@dataclass
class Tally:
    """Bytes that the members of one archive expanded to (its direct members),
    or that everything inside the file on disk did (all members, any depth)."""

    limit: int
    error: str  # the over_budget message when the limit is passed
    expanded: int = 0


class ArchiveOverBudget(BudgetExceeded):
    """An archive's own budget is spent: it (and what is inside it) stops."""

    def __init__(self, tally: Tally, message: str) -> None:
        super().__init__(message)
        self.tally = tally


class BudgetedStream(io.RawIOBase):
    """A member's content, counted against its own budget, its archive's and
    its file's; also says a long read is still going (``tick``).

    A member that can seek (a file in a disk image) may be read in place by a
    container inside it; every byte read counts, read again or not."""

    def __init__(
        self,
        raw: IO[bytes],
        budgets: ScanBudgets,
        compressed_size: int | None,
        tallies: list[Tally],
        tick: Callable[[], None],
        seekable: bool = False,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._budgets = budgets
        self._compressed = compressed_size
        self._tallies = tallies
        self._tick = tick
        self._seekable = seekable
        self._count = 0
        self._next_tick = TICK_BYTES

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("tell")
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._count += len(data)
        self._check(len(data))
        buffer[: len(data)] = data
        return len(data)

    def _check(self, fresh: int) -> None:
        budgets = self._budgets
        if self._count > budgets.max_member_bytes:
            raise BudgetExceeded(
                over_budget("max_member_bytes", budgets.max_member_bytes, "member expands to more bytes")
            )
        if self._compressed and self._count > max(budgets.ratio_floor_bytes, budgets.max_ratio * self._compressed):
            raise BudgetExceeded(
                over_budget("max_ratio", budgets.max_ratio, "member expands more times its compressed size")
            )
        for tally in self._tallies:
            tally.expanded += fresh
            if tally.expanded > tally.limit:
                raise ArchiveOverBudget(tally, tally.error)
        if self._count >= self._next_tick:
            self._next_tick += TICK_BYTES
            self._tick()


class TickingFile(io.RawIOBase):
    """A file on disk that says a long read is still going (``tick``), so that
    hashing a 500 GB file is not taken for a hang."""

    def __init__(self, raw: IO[bytes], tick: Callable[[], None]) -> None:
        super().__init__()
        self._raw = raw
        self._tick = tick
        self._count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        before, self._count = self._count, self._count + (count or 0)
        if before // TICK_BYTES != self._count // TICK_BYTES:
            self._tick()
        return int(count or 0)
