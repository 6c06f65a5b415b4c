"""Archive readers against what fuzzing found (tests/fuzz/fuzz_containers.py;
the fixes belong in the container modules), on the files in tests/data/."""

from __future__ import annotations

import io

import pytest
from support import DATA

from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import ContainerError, Task
from childsafe.triage.sources.compressed import COMPRESSED
from childsafe.triage.sources.zip import ZIP


def _members_of(container: object, data: bytes, name: str, mime: str) -> None:
    for member in container.members(io.BytesIO(data), name, mime, ScanBudgets()):  # type: ignore[attr-defined]
        if member.open is not None:
            with member.open() as stream:
                stream.read()


def test_zip_member_with_an_empty_name_does_not_stop_the_scan() -> None:
    evidence = DATA / "zip" / "empty-member-name.zip"
    task = Task(str(evidence), "empty-name.zip", evidence.stat().st_size, None)
    items = list(read_task(task, MediaLimits()))  # IndexError from zipfile's ZipInfo.is_dir
    assert [item.hashes.path for item in items][-1] == "empty-name.zip"


def test_zip_needing_an_unknown_version_is_still_read() -> None:
    # "version needed to extract" 9.0: zipfile refused the whole archive.
    data = (DATA / "zip" / "needs-version-9.zip").read_bytes()
    (member,) = ZIP.members(io.BytesIO(data), "x.zip", "application/zip", ScanBudgets())
    assert member.open is not None and member.open().read() == b"benign"  # as unzip reads it


def test_gzip_with_a_damaged_first_block_is_a_container_error() -> None:
    damaged = (DATA / "gzip" / "damaged-first-block.gz").read_bytes()  # deflate block type 3: reserved
    with pytest.raises(ContainerError):
        _members_of(COMPRESSED, damaged, "x.gz", "application/gzip")
