"""Tar archives read as a stream (so a tar inside a compressed stream or
inside another archive is never written to disk).

Python's tarfile reads the headers, with three guards added here (through
tarfile's extension points: a ``TarInfo`` subclass, whose ``_proc_*``
methods tarfile documents as meant for overriding, and a ``TarFile``
subclass that carries the budgets):

- a GNU long-name/long-link or pax header larger than
  ``budgets.max_header_bytes`` is skipped block by block instead of being read
  whole; the member it described is yielded with an ``over_budget`` error;
- a damaged header in the middle does not end the archive: tarfile's
  ``ignore_zeros`` walks on block by block to the next good header, and the
  damage is yielded as an item of its own (named from the damaged header's
  name field when there is one);
- the ``TarInfo`` of members already read are not kept (tarfile keeps them all
  in stream mode: memory growing with the member count).

Names keep their bytes (UTF-8 with ``surrogateescape``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, Self, cast

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.sources.base import ContainerError, Member
from childsafe.triage.sources.registry import register_container

__all__ = ["TAR", "is_tar_header"]

_SKIP_CHUNK = 1 << 20
_HEADER_KINDS = {
    tarfile.GNUTYPE_LONGNAME: "GNU long-name header",
    tarfile.GNUTYPE_LONGLINK: "GNU long-link header",
    tarfile.XHDTYPE: "pax header",
    tarfile.XGLTYPE: "pax global header",
    tarfile.SOLARIS_XHDTYPE: "Solaris extended header",
}


def is_tar_header(head: bytes) -> bool:
    """Whether ``head`` starts with a POSIX or GNU tar header."""
    return head[257:262] == b"ustar"


@dataclass
class _Damage:
    """A run of blocks that are not valid headers, where a header should be."""

    start: int
    name: bytes
    reason: str


class _GuardedTarFile(tarfile.TarFile):
    """A TarFile that knows the budgets and notes damaged headers it skips."""

    def __init__(self, *args: Any, budgets: ScanBudgets, **kwargs: Any) -> None:
        # Set before TarFile.__init__, which already reads the first header.
        self.budgets = budgets
        self.damage: _Damage | None = None
        self.damage_end = 0
        self.cut_at: int | None = None  # where a header was cut short by the end of the data
        super().__init__(*args, **kwargs)


class _GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo whose extended headers are bounded by ``max_header_bytes``."""

    budget_error: str | None = None

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        # TarInfo.fromtarfile's four lines, noting a damaged block: with
        # ignore_zeros, TarFile.next() then tries the block after it.
        guarded = _guarded(archive)
        assert archive.fileobj is not None
        buf = archive.fileobj.read(tarfile.BLOCKSIZE)
        if 0 < len(buf) < tarfile.BLOCKSIZE:
            guarded.cut_at = archive.fileobj.tell() - len(buf)
        try:
            obj = cls.frombuf(buf, archive.encoding or "utf-8", archive.errors)
        except tarfile.InvalidHeaderError as exc:  # type: ignore[attr-defined]
            if guarded.damage is None:
                start = archive.fileobj.tell() - len(buf)
                guarded.damage = _Damage(start, buf[:100].split(b"\0", 1)[0], str(exc))
            raise
        obj.offset = archive.fileobj.tell() - tarfile.BLOCKSIZE
        if guarded.damage is not None:
            guarded.damage_end = obj.offset
        return cast(Self, obj._proc_member(archive))  # type: ignore[attr-defined]

    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > _guarded(archive).budgets.max_header_bytes:
            return self._skip_oversized(archive)
        return super()._proc_gnulong(archive)  # type: ignore[misc,no-any-return]

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > _guarded(archive).budgets.max_header_bytes:
            return self._skip_oversized(archive)
        return super()._proc_pax(archive)  # type: ignore[misc,no-any-return]

    def _skip_oversized(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        """Skip this header's data blocks without keeping them; the member
        that follows (the one the header described) carries the error."""
        what = _HEADER_KINDS.get(self.type, "extended header")
        assert archive.fileobj is not None
        left = self._block(self.size)  # type: ignore[attr-defined]
        while left > 0:
            chunk = archive.fileobj.read(min(left, _SKIP_CHUNK))
            if not chunk:
                raise tarfile.ReadError(f"{what} of {self.size:,} bytes runs past the end of the archive")
            left -= len(chunk)
        try:
            following = self.fromtarfile(archive)
        except tarfile.HeaderError as exc:
            raise tarfile.SubsequentHeaderError(str(exc)) from None  # type: ignore[attr-defined]
        following.offset = self.offset
        limit = _guarded(archive).budgets.max_header_bytes
        if isinstance(following, _GuardedTarInfo) and following.budget_error is None:
            following.budget_error = over_budget("max_header_bytes", limit, f"{what} of {self.size:,} bytes")
        return following


def _guarded(archive: tarfile.TarFile) -> _GuardedTarFile:
    assert isinstance(archive, _GuardedTarFile)
    return archive


def _extract(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    stream = archive.extractfile(info)
    if stream is None:  # only for non-regular members, which are not opened
        raise tarfile.ReadError(f"{info.name} has no content")
    return stream


def _damaged(damage: _Damage, end: int | None) -> Member:
    """An item for a run of damaged headers, ending at the next good header
    (``end``) or at the end of the archive (None)."""
    name = damage.name.decode("utf-8", "surrogateescape") or f"(unnamed member at byte {damage.start:,})"
    skipped = f"{end - damage.start:,} bytes skipped to the next good header" if end else "the rest skipped"
    return Member(name, 0, None, None, f"damaged tar header at byte {damage.start:,} ({damage.reason}); {skipped}")


def _member(info: tarfile.TarInfo, archive: tarfile.TarFile, budgets: ScanBudgets) -> Member | None:
    """The member a header describes (None for a folder)."""
    modified = float(info.mtime) if info.mtime else None
    if info.isdir():
        return None
    budget_error = info.budget_error if isinstance(info, _GuardedTarInfo) else None
    raw_name = info.name.encode("utf-8", "surrogateescape")
    if budget_error is None and len(raw_name) > budgets.max_name_bytes:
        budget_error = over_budget("max_name_bytes", budgets.max_name_bytes, f"member name of {len(raw_name):,} bytes")
    if budget_error is not None:
        shown = raw_name[: budgets.max_name_bytes].decode("utf-8", "surrogateescape")
        return Member(shown, info.size, modified, None, budget_error)
    if info.issym() or info.islnk():
        kind = "symbolic" if info.issym() else "hard"
        return Member(
            info.name, 0, modified, None, f"{kind} link in archive to {info.linkname!r}; not followed", "inode/symlink"
        )
    if not info.isfile():
        return Member(info.name, 0, modified, None, "not a regular file; skipped", "inode/x-special")
    return Member(info.name, info.size, modified, partial(_extract, archive, info))


@dataclass(frozen=True)
class TarContainer:
    """The ``tar`` container."""

    name: str = "tar"
    needs_seek: bool = False

    def opens(self, mime: str, head: bytes) -> bool:
        return mime == "application/x-tar" or is_tar_header(head)

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        try:
            archive = _GuardedTarFile.open(
                fileobj=stream,
                mode="r|",
                tarinfo=_GuardedTarInfo,
                ignore_zeros=True,
                encoding="utf-8",
                errors="surrogateescape",
                budgets=budgets,  # for _GuardedTarFile.__init__ (TarFile.open passes it on)
            )  # type: ignore[call-overload]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ContainerError(f"damaged tar: {exc}") from exc
        assert isinstance(archive, _GuardedTarFile)
        with archive:
            try:
                while True:
                    info = archive.next()
                    archive.members.clear()  # type: ignore[attr-defined]
                    if archive.damage is not None:
                        yield _damaged(archive.damage, archive.damage_end if info is not None else None)
                        archive.damage = None
                    if info is None:
                        break
                    member = _member(info, archive, budgets)
                    if member is not None:
                        yield member
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ContainerError(f"damaged tar: {exc}") from exc
        if archive.cut_at is not None:
            raise ContainerError(f"damaged tar: cut short in a header at byte {archive.cut_at:,}")


TAR = register_container(TarContainer())
