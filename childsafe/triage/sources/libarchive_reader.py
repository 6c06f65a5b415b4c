"""The shared part of the containers read through libarchive: 7z, RAR (4 and
5), ISO 9660 and cpio. Each format is a small module of its own
(``sevenzip.py``, ``rar.py``, ``iso9660.py``, ``cpio.py``) that says how its
archives are recognised and registers a ``LibarchiveContainer``.

libarchive (the C library behind bsdtar; Debian's ``libarchive13``) is found
and loaded by libarchive-c. When it is missing, this module still imports:
an archive of these formats becomes an item whose error says what to install.

The archive is read straight from the stream given, through read (and, when
the stream can seek, seek) callbacks: nothing is written to disk. libarchive
reads sequentially, so the stream a member's ``open()`` returns is valid only
until the next member is asked for (reading it later raises ``OSError``); the
reader consumes each member fully before asking for the next.

The few libarchive functions needed are bound here with ctypes rather than
called through libarchive-c's wrappers, because those raise on any failure
and log warnings, while we need the return code itself: ``ARCHIVE_FAILED`` or
``ARCHIVE_WARN`` for one damaged member (reported; the others go on) against
``ARCHIVE_FATAL`` for an archive that cannot be read further.
"""

from __future__ import annotations

import ctypes
import io
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import IO, Any, cast

from childsafe.media.budgets import ScanBudgets, over_budget
from childsafe.triage.sources.base import ContainerError, Member

__all__ = ["LibarchiveContainer"]

# Return codes (archive.h).
_EOF = 1
_OK = 0
_WARN = -20
_FATAL = -30
_BLOCK = 64 * 1024
# After this many members in a row that libarchive cannot even list, the archive is given up.
_MAX_FAILED_IN_A_ROW = 64

_READ_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_SEEK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int)
_OPEN_OR_CLOSE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class _Library:
    """The libarchive functions used here, with their C signatures."""

    def __init__(self, library: ctypes.CDLL) -> None:
        def bind(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
            # library[name] is a fresh function object: libarchive-c's own
            # bindings of the same functions keep their error checks.
            function = library[f"archive_{name}"]
            function.restype = restype
            function.argtypes = argtypes
            return cast(Callable[..., Any], function)

        archive, entry = ctypes.c_void_p, ctypes.c_void_p
        self.read_new = bind("read_new", archive)
        self.read_free = bind("read_free", ctypes.c_int, archive)
        self.read_set_seek_callback = bind("read_set_seek_callback", ctypes.c_int, archive, _SEEK_CALLBACK)
        self.read_open = bind(
            "read_open",
            ctypes.c_int,
            archive,
            ctypes.c_void_p,
            _OPEN_OR_CLOSE_CALLBACK,
            _READ_CALLBACK,
            _OPEN_OR_CLOSE_CALLBACK,
        )
        self.read_next_header = bind("read_next_header", ctypes.c_int, archive, ctypes.POINTER(ctypes.c_void_p))
        self.read_data = bind("read_data", ctypes.c_ssize_t, archive, ctypes.c_void_p, ctypes.c_size_t)
        self.error_string = bind("error_string", ctypes.c_char_p, archive)
        self.entry_pathname = bind("entry_pathname", ctypes.c_char_p, entry)
        self.entry_pathname_utf8 = bind("entry_pathname_utf8", ctypes.c_char_p, entry)
        self.entry_pathname_w = bind("entry_pathname_w", ctypes.c_wchar_p, entry)
        self.entry_size = bind("entry_size", ctypes.c_longlong, entry)
        self.entry_size_is_set = bind("entry_size_is_set", ctypes.c_int, entry)
        self.entry_filetype = bind("entry_filetype", ctypes.c_uint, entry)
        self.entry_mtime = bind("entry_mtime", ctypes.c_longlong, entry)
        self.entry_mtime_is_set = bind("entry_mtime_is_set", ctypes.c_int, entry)
        self.entry_symlink = bind("entry_symlink", ctypes.c_char_p, entry)
        self.entry_hardlink = bind("entry_hardlink", ctypes.c_char_p, entry)
        self.entry_is_encrypted = bind("entry_is_encrypted", ctypes.c_int, entry)
        self._library = library

    def support_format(self, archive: int, format_name: str) -> int:
        function = self._library[f"archive_read_support_format_{format_name}"]
        function.restype = ctypes.c_int
        function.argtypes = (ctypes.c_void_p,)
        return int(function(archive))


@cache
def _library() -> _Library | None:
    try:
        from libarchive import ffi  # loads the shared library
    except (ImportError, OSError, AttributeError):  # AttributeError: libarchive-c found no library to load
        return None
    try:
        return _Library(ffi.libarchive)
    except AttributeError:  # a libarchive too old to have one of the functions
        return None


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable()
    except (OSError, ValueError):
        return False


class _Session:
    """One libarchive read handle over a stream (its callbacks kept alive as
    long as it is), and the member currently readable."""

    def __init__(self, library: _Library, stream: IO[bytes], format_names: tuple[str, ...]) -> None:
        self.library = library
        self.stream = stream
        self.failure: Exception | None = None  # what the stream raised inside a callback
        self.generation = 0  # which member may be read; moves on with every header read
        self.closed = False
        self._input = ctypes.create_string_buffer(_BLOCK)
        self.output = ctypes.create_string_buffer(_BLOCK)
        self._read_callback = _READ_CALLBACK(self._read)
        self._seek_callback = _SEEK_CALLBACK(self._seek)
        self.handle = library.read_new()
        if not self.handle:
            raise MemoryError("libarchive could not allocate a reader")
        for format_name in format_names:
            library.support_format(self.handle, format_name)
        if _seekable(stream):
            library.read_set_seek_callback(self.handle, self._seek_callback)

    def open(self) -> int:
        no_callback = _OPEN_OR_CLOSE_CALLBACK()  # a NULL function pointer: none wanted
        return int(self.library.read_open(self.handle, None, no_callback, self._read_callback, no_callback))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.generation += 1
            self.library.read_free(self.handle)

    def message(self) -> str:
        """libarchive's last error, or what the stream raised, in one line."""
        if self.failure is not None:
            text = str(self.failure) or type(self.failure).__name__
        else:
            raw = self.library.error_string(self.handle)
            text = raw.decode("utf-8", "replace") if raw else ""
        return text.splitlines()[0][:200] if text.strip() else "damaged or cut short"

    # Callbacks must not raise (ctypes would print the exception and return 0):
    # a failure is kept and libarchive told ARCHIVE_FATAL.
    def _read(self, _archive: int, _context: int, pointer: Any) -> int:
        try:
            data = self.stream.read(_BLOCK)
        except Exception as exc:
            self.failure = exc
            return _FATAL
        ctypes.memmove(self._input, data, len(data))
        pointer[0] = ctypes.addressof(self._input)
        return len(data)

    def _seek(self, _archive: int, _context: int, offset: int, whence: int) -> int:
        try:
            return self.stream.seek(offset, whence)
        except Exception as exc:
            self.failure = exc
            return _FATAL


class _MemberStream(io.RawIOBase):
    """The data of the member libarchive is at; invalid once it moves on."""

    def __init__(self, session: _Session) -> None:
        super().__init__()
        self._session = session
        self._generation = session.generation

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        session = self._session
        if session.generation != self._generation:
            raise OSError("member no longer readable: the archive reader has moved on to the next member")
        view = memoryview(buffer).cast("B")
        read = int(session.library.read_data(session.handle, session.output, min(len(view), _BLOCK)))
        if read < 0:
            raise OSError(f"damaged member: {session.message()}")
        view[:read] = ctypes.string_at(session.output, read)
        return read


def _open_member(session: _Session, generation: int) -> IO[bytes]:
    if session.generation != generation:
        raise OSError("member no longer readable: the archive reader has moved on to the next member")
    return cast(IO[bytes], io.BufferedReader(_MemberStream(session), _BLOCK))


def _entry_name(library: _Library, entry: int) -> bytes:
    """The entry's name as bytes: UTF-8 where libarchive knows the characters
    (7z and RAR store Unicode, ISO 9660 Joliet UTF-16), else the stored bytes
    (tar-like cpio names, which may be in any code page)."""
    for getter in (library.entry_pathname_utf8, library.entry_pathname):
        raw = getter(entry)
        if raw is not None:
            return cast(bytes, raw)
    wide = library.entry_pathname_w(entry)
    return cast(str, wide).encode("utf-8", "surrogatepass") if wide is not None else b""


def _member(session: _Session, entry: int, budgets: ScanBudgets) -> Member | None:
    """The member libarchive's current entry describes (None for a folder)."""
    library = session.library
    raw_name = _entry_name(library, entry)
    name = raw_name.decode("utf-8", "surrogateescape")
    size = int(library.entry_size(entry)) if library.entry_size_is_set(entry) else -1
    modified = float(library.entry_mtime(entry)) if library.entry_mtime_is_set(entry) else None
    kind = stat.S_IFMT(int(library.entry_filetype(entry)))
    if kind == stat.S_IFDIR:
        return None

    def failed(error: str, mime: str | None = None) -> Member:
        return Member(name, size, modified, None, error, mime)

    if len(raw_name) > budgets.max_name_bytes:
        shown = raw_name[: budgets.max_name_bytes].decode("utf-8", "surrogateescape")
        error = over_budget("max_name_bytes", budgets.max_name_bytes, f"member name of {len(raw_name):,} bytes")
        return Member(shown, size, modified, None, error)
    if kind == stat.S_IFLNK:
        target = cast(bytes | None, library.entry_symlink(entry)) or b""
        return failed(
            f"symbolic link in archive to {target.decode('utf-8', 'surrogateescape')!r}; not followed", "inode/symlink"
        )
    hardlink = cast(bytes | None, library.entry_hardlink(entry))
    if hardlink is not None and size <= 0:
        # cpio and ISO 9660 may give the data to one of the links only.
        return failed(
            f"hard link in archive to {hardlink.decode('utf-8', 'surrogateescape')!r}; not followed", "inode/symlink"
        )
    if kind not in (stat.S_IFREG, 0):
        return failed("not a regular file; skipped", "inode/x-special")
    if library.entry_is_encrypted(entry):
        return failed("encrypted member; cannot be read without its password")
    generation = session.generation
    return Member(name, size, modified, lambda: _open_member(session, generation))


def _members(session: _Session, label: str, budgets: ScanBudgets) -> Iterator[Member]:
    library = session.library
    if session.open() < _WARN:
        raise ContainerError(f"{label} cannot be read: {session.message()}")
    failed_in_a_row = 0
    while True:
        session.generation += 1  # the previous member's stream is no longer valid
        entry = ctypes.c_void_p()
        status = int(library.read_next_header(session.handle, ctypes.byref(entry)))
        if status == _EOF:
            return
        if status <= _FATAL or not entry.value:
            raise ContainerError(f"{label} cannot be read further: {session.message()}")
        if status < _WARN:  # ARCHIVE_FAILED (or RETRY): this member only
            failed_in_a_row += 1
            if failed_in_a_row > _MAX_FAILED_IN_A_ROW:
                raise ContainerError(f"{label} cannot be read further: {session.message()}")
            name = _entry_name(library, entry.value).decode("utf-8", "surrogateescape")
            yield Member(name or "(unnamed member)", -1, None, None, f"damaged member: {session.message()}")
            continue
        failed_in_a_row = 0
        if status == _WARN and session.message().startswith("Skipped"):
            # cpio's reader walks over a damaged header to the next good one
            # and only warns: the member lost there is an item of its own.
            yield Member("(damaged member)", -1, None, None, f"damaged header: {session.message()}")
        member = _member(session, entry.value, budgets)
        if member is not None:
            yield member


@dataclass(frozen=True)
class LibarchiveContainer:
    """A container format read through libarchive.

    ``label`` names the format in messages ("7z archive"); ``format_names``
    are libarchive's reader names (``archive_read_support_format_NAME``);
    ``recognise(mime, head)`` is the format's ``opens``."""

    name: str
    label: str
    format_names: tuple[str, ...]
    recognise: Callable[[str, bytes], bool]
    needs_seek: bool = False

    def opens(self, mime: str, head: bytes) -> bool:
        return self.recognise(mime, head)

    def members(self, stream: IO[bytes], name: str, mime: str, budgets: ScanBudgets) -> Iterator[Member]:
        library = _library()
        if library is None:
            raise ContainerError(f"{self.label} not opened: libarchive is not installed (apt-get install libarchive13)")
        if self.needs_seek and not _seekable(stream):
            raise ContainerError(f"{self.label} not opened: it can only be read from a stream that can seek")
        session = _Session(library, stream, self.format_names)
        try:
            yield from _members(session, self.label, budgets)
        finally:
            session.close()
