"""Bank-file parsers against what fuzzing found (tests/fuzz/fuzz_bank_formats.py;
fixed in childsafe/banks/formats/): each a clear InputFormatError, never a crash."""

from __future__ import annotations

import io

import pytest
from support import DATA

from childsafe.banks.formats import ImportOptions, get_format
from childsafe.errors import InputFormatError


def _read_vics(content: bytes, scheme: str = "none") -> list[object]:
    return list(get_format("vics").read(io.BytesIO(content), ImportOptions(scheme=scheme)))


def test_vics_that_is_not_utf8_is_an_input_format_error() -> None:
    with pytest.raises(InputFormatError, match="not UTF-8"):
        _read_vics((DATA / "vics" / "not-utf8.json").read_bytes())


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
