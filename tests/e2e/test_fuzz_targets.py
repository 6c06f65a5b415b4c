"""Bounded coverage-guided fuzzing of the archive readers and bank-file parsers
(the atheris targets in tests/fuzz/), and regression tests for what fuzzing found.

Each target runs in its own process (atheris instruments the modules it
imports, so it must import them first) for a fixed number of inputs; the long
run is bench/fuzz_readers.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import REPO

from childsafe.banks.formats import ImportOptions, get_format
from childsafe.errors import InputFormatError
from childsafe.media.budgets import ScanBudgets
from childsafe.media.limits import MediaLimits
from childsafe.triage.reading import read_task
from childsafe.triage.sources import ContainerError, Task
from childsafe.triage.sources.compressed import COMPRESSED
from childsafe.triage.sources.zip import ZIP

FUZZ = REPO / "tests" / "fuzz"


@pytest.mark.slow  # 5-20 s each: atheris starts, then 3,000 inputs
@pytest.mark.parametrize("target", ["fuzz_containers.py", "fuzz_bank_formats.py"])
def test_fuzz_target_finds_nothing_in_3000_inputs(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris has wheels for Linux x86_64 only (the test extra installs it there)")
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CHILDSAFE_FUZZ_FINDINGS", None)  # stop at the first finding
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ / target),
            "-runs=3000",
            "-max_len=4096",
            "-timeout=60",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done 3000 runs" in run.stderr, run.stderr[-2000:]
    assert len(list(corpus.iterdir())) >= 7, "the generated seeds were not written"


# --- Bank formats: found by fuzz_bank_formats.py, fixed in childsafe/banks/formats/vics.py


def _read_vics(content: bytes, scheme: str = "none") -> list[object]:
    return list(get_format("vics").read(io.BytesIO(content), ImportOptions(scheme=scheme)))


def test_vics_that_is_not_utf8_is_an_input_format_error() -> None:
    with pytest.raises(InputFormatError, match="not UTF-8"):
        _read_vics(b'{"\xc0\x91data": 1, "value": []}')


@pytest.mark.parametrize("alternative", [b"1", b'"PDQ"', b"[]"])
def test_vics_alternative_hash_that_is_not_an_object_is_an_input_format_error(alternative: bytes) -> None:
    with pytest.raises(InputFormatError, match="record 1: each of AlternativeHashes must be an object"):
        _read_vics(b'{"value": [{"AlternativeHashes": [' + alternative + b"]}]}")


@pytest.mark.parametrize("field", [b"MD5", b"MediaID", b"Category", b"Comments", b"ChildsafeCategory"])
def test_vics_deeply_nested_value_is_an_input_format_error(field: bytes) -> None:
    nested = b"[" * 1500 + b"]" * 1500  # its text would recurse past Python's limit
    with pytest.raises(InputFormatError, match=f"{field.decode()} must be a string or a number, not a list"):
        _read_vics(b'{"value": [{"MD5": "' + b"0" * 32 + b'", ' + b'"' + field + b'": ' + nested + b"}]}", "uk")


def test_vics_alternative_hash_with_a_nested_name_is_an_input_format_error() -> None:
    nested = b'{"a": ' * 1000 + b"1" + b"}" * 1000
    with pytest.raises(InputFormatError, match="HashName must be a string or a number, not an object"):
        _read_vics(b'{"value": [{"AlternativeHashes": [{"HashName": ' + nested + b"}]}]}")


def test_csv_quoted_field_over_csvs_limit_is_an_input_format_error() -> None:
    # Found by reading the code the fuzzer pointed at: past libFuzzer's 4 KB inputs.
    content = b"md5,note\n" + b"0" * 32 + b',"' + (b"x" * 19_000 + b"\n") * 8 + b'"\n'
    with pytest.raises(InputFormatError, match=r"line 8: not valid CSV \(field larger than field limit"):
        list(get_format("csv").read(io.BytesIO(content), ImportOptions()))


# --- Containers: found by fuzz_containers.py; the fixes belong in the container modules.


def _members_of(container: object, data: bytes, name: str, mime: str) -> None:
    for member in container.members(io.BytesIO(data), name, mime, ScanBudgets()):  # type: ignore[attr-defined]
        if member.open is not None:
            with member.open() as stream:
                stream.read()


def _zip_with_member_named(name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), b"benign")
    return out.getvalue()


def test_zip_member_with_an_empty_name_does_not_stop_the_scan(tmp_path: Path) -> None:
    evidence = tmp_path / "empty-name.zip"
    evidence.write_bytes(_zip_with_member_named(""))
    task = Task(str(evidence), "empty-name.zip", evidence.stat().st_size, None)
    items = list(read_task(task, MediaLimits()))  # IndexError from zipfile's ZipInfo.is_dir
    assert [item.hashes.path for item in items][-1] == "empty-name.zip"


def test_zip_needing_an_unknown_version_is_still_read() -> None:
    data = bytearray(_zip_with_member_named("a.txt"))
    data[data.rfind(b"PK\x01\x02") + 6] = 90  # "version needed to extract" 9.0: zipfile refused the whole archive
    (member,) = ZIP.members(io.BytesIO(bytes(data)), "x.zip", "application/zip", ScanBudgets())
    assert member.open is not None and member.open().read() == b"benign"  # as unzip reads it


def test_gzip_with_a_damaged_first_block_is_a_container_error() -> None:
    damaged = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + bytes(16)  # deflate block type 3: reserved
    with pytest.raises(ContainerError):
        _members_of(COMPRESSED, damaged, "x.gz", "application/gzip")
