"""Fuzz target: every registered container, and the whole evidence reader, on arbitrary bytes.

    PYTHONPATH=$PWD .venv/bin/python tests/fuzz/fuzz_containers.py -runs=3000 -max_len=4096

The contract checked, for any input:

- ``container.members(stream, "x", mime, budgets)``, with each member's stream
  read to its end, raises nothing but ``ContainerError`` (from the iteration),
  the errors in ``reading._READ_ERRORS`` or ``BudgetExceeded`` (from a member's
  stream). The first byte of the input picks the container (every name in
  ``container_names()``, so containers registered later are fuzzed too), the
  rest is the archive.
- ``_Reader.read`` over the same bytes (sniffing, containers, nesting, hashing)
  never raises and yields at least one item.

Budgets are small so that a bomb shows as a libFuzzer timeout (``-timeout=N``)
rather than a long run. Seeds (valid zip, tar, gzip, bzip2, xz, nested archives)
are built here at start; nothing binary is kept in the repository.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzzing import report_or_raise, run  # noqa: E402

# Instrument our code and the pure-Python archive readers it drives (their
# branches are where hostile archives go wrong); everything else runs as usual.
# A module imported before this block is not instrumented (bz2 and lzma come in
# with atheris's own imports; their wrappers are thin).
with atheris.instrument_imports(include=["childsafe", "zipfile", "tarfile", "gzip", "bz2", "lzma", "_compression"]):
    import bz2
    import gzip
    import lzma
    import tarfile
    import zipfile

    from childsafe.media.budgets import BudgetExceeded, ScanBudgets
    from childsafe.media.limits import MediaLimits
    from childsafe.media.sniff import SNIFF_BYTES, sniff_type
    from childsafe.triage.reading import _READ_ERRORS, _Reader
    from childsafe.triage.sources import Container, ContainerError, container_names
    from childsafe.triage.sources.registry import _CONTAINERS

#: Small budgets: fuzz inputs are at most a few KB, so anything that needs more is a bomb.
BUDGETS = ScanBudgets(
    max_member_bytes=8 << 20,
    ratio_floor_bytes=1 << 20,
    max_container_bytes=32 << 20,
    max_members=1_000,
    max_depth=4,
    max_name_bytes=1_024,
    max_header_bytes=64 << 10,
    item_seconds=5.0,
    worker_memory_bytes=1 << 30,
)
# Images are digested but not decoded: decoding is Pillow's business, not the containers'.
LIMITS = MediaLimits(max_decode_bytes=1, query_variants=(), bank_variants=False)
#: Types a container may be handed: every archive type the sniffer names.
ARCHIVE_MIMES = (
    "application/zip",
    "application/gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-tar",
    "application/x-iso9660-image",
    "application/x-cpio",
    "application/octet-stream",
)
#: Crashes found by this target and fixed elsewhere (each has a strict-xfail
#: regression test in tests/test_fuzz.py; remove the line when its fix lands).
KNOWN: dict[tuple[str, type[BaseException]], str] = {}
#: How much of one member is read before moving on (a bomb is the budgets' job, not this loop's).
READ_CAP = 256 << 20


def containers() -> list[Container]:
    """Every registered container, in registration order (new ones included)."""
    return [_CONTAINERS.get(name) for name in container_names()]


def mime_for(container: Container, head: bytes, choice: int) -> str:
    """The type the reader would hand ``container`` for content starting with
    ``head``; if that is not this container's, one of the types it does open."""
    sniffed = sniff_type(head).mime
    if container.opens(sniffed, head):
        return sniffed
    own = [mime for mime in ARCHIVE_MIMES if container.opens(mime, head)]
    return own[choice % len(own)] if own else sniffed


def drain(stream: io.BufferedIOBase | object) -> None:
    """Read a member's stream to its end (or READ_CAP)."""
    total = 0
    while total < READ_CAP:
        chunk = stream.read(1 << 16)  # type: ignore[attr-defined]
        if not chunk:
            return
        total += len(chunk)


def check_container(container: Container, archive: bytes, mime: str) -> None:
    """Iterate ``container``'s members of ``archive``, reading each; allowed errors only."""
    try:
        for member in container.members(io.BytesIO(archive), "x", mime, BUDGETS):
            assert isinstance(member.name, str), member
            if member.open is None:
                continue
            try:
                with member.open() as stream:
                    drain(stream)
            except (*_READ_ERRORS, BudgetExceeded):
                pass
    except ContainerError:
        pass


def check_reader(archive: bytes) -> None:
    """The whole reader over ``archive``: never raises, always at least one item."""
    reader = _Reader(LIMITS, BUDGETS, lambda key: None, {})
    items = list(reader.read(io.BytesIO(archive), "x", None, True, ()))
    assert items, "the reader yielded no item"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    archive = data[1:]
    registered = containers()
    container = registered[data[0] % len(registered)]
    mime = mime_for(container, archive[:SNIFF_BYTES], data[0] // len(registered))
    try:
        check_container(container, archive, mime)
    except Exception as exc:  # anything else is a finding
        report_or_raise(exc, data, KNOWN)
    try:
        check_reader(archive)
    except Exception as exc:
        report_or_raise(exc, data, KNOWN)


def _zip(entries: list[tuple[str, bytes, int]], **options: bool) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content, method in entries:
            info = zipfile.ZipInfo(name, (2020, 1, 2, 3, 4, 6))
            info.compress_type = method
            with archive.open(info, "w", force_zip64=options.get("zip64", False)) as member:
                member.write(content)
    return out.getvalue()


def _tar(entries: list[tuple[str, bytes]], format: int = tarfile.USTAR_FORMAT, special: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=format) as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1_600_000_000
            archive.addfile(info, io.BytesIO(content))
        if special:
            for kind, name in ((tarfile.SYMTYPE, "link"), (tarfile.DIRTYPE, "folder"), (tarfile.FIFOTYPE, "fifo")):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, "a.txt" if kind == tarfile.SYMTYPE else ""
                archive.addfile(info)
    return out.getvalue()


def seed_archives() -> list[bytes]:
    """Small valid archives of every kind read today, some nested."""
    text = b"benign test content\n" * 4
    symlinked = io.BytesIO()
    with zipfile.ZipFile(symlinked, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, b"a.txt")
        archive.writestr("folder/", b"")
    encrypted = bytearray(_zip([("secret.txt", text, zipfile.ZIP_STORED)]))
    encrypted[6] |= 1  # the local header's "encrypted" flag
    central = encrypted.rfind(b"PK\x01\x02")
    encrypted[central + 8] |= 1  # and the central directory's
    plain_tar = _tar([("a.txt", text), ("b/c.txt", b"second")])
    gnu_tar = _tar([("long/" * 30 + "name.txt", text)], tarfile.GNU_FORMAT, special=True)
    pax_tar = _tar([("p\u00e4x-" + "n" * 120 + ".txt", text)], tarfile.PAX_FORMAT)
    inner_zip = _zip([("a.txt", text, zipfile.ZIP_DEFLATED)])
    return [
        inner_zip,
        _zip([("s.txt", text, zipfile.ZIP_STORED), ("b.txt", text, zipfile.ZIP_BZIP2)]),
        _zip([("l.txt", text, zipfile.ZIP_LZMA)], zip64=True),
        _zip([("inner.zip", inner_zip, zipfile.ZIP_STORED), ("inner.tar.gz", gzip.compress(plain_tar), 0)]),
        symlinked.getvalue(),
        bytes(encrypted),
        plain_tar,
        gnu_tar,
        pax_tar,
        _tar([("nested.zip", inner_zip), ("nested.tar.xz", lzma.compress(plain_tar))]),
        gzip.compress(plain_tar),
        bz2.compress(plain_tar),
        lzma.compress(plain_tar),
        gzip.compress(text),
        bz2.compress(text),
        lzma.compress(text),
        gzip.compress(gzip.compress(text)),
        text,
        b"",
    ]


def seeds() -> list[bytes]:
    """Every seed archive once behind each container's selector byte."""
    count = len(containers())
    return [bytes([index]) + archive for index in range(count) for archive in seed_archives()]


if __name__ == "__main__":
    run(test_one_input, seeds())
