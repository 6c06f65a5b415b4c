"""Fuzz target: every registered bank file format's parser on arbitrary bytes.

    PYTHONPATH=$PWD .venv/bin/python tests/fuzz/fuzz_bank_formats.py -runs=3000 -max_len=4096

The contract checked, for any input and every name in ``format_names()`` (so
formats registered later are fuzzed too): ``looks_like(head)`` returns a bool
and raises nothing; ``read(stream, options)``, consumed to its end, raises
nothing but ``InputFormatError`` (the error its protocol documents; the
importer adds the file name to it), never a raw ``UnicodeDecodeError``,
``ValueError``, ``KeyError``, ``IndexError``, ``AttributeError`` or
``RecursionError``. ``detect_format`` raises nothing but ``UsageError``.

The stream is what ``import_bank_stream`` gives a format: a ``DigestingReader``
over a seekable file. The first byte of the input picks the import options
(scheme, ``--signal``, ``--category``, ``--vics-profile``); the rest is the file.
Seeds (text lists, CSV, VICS hash sets and case exports) are built here at start.
"""

from __future__ import annotations

import io
import json
import sys
from itertools import product
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzzing import report_or_raise, run  # noqa: E402

with atheris.instrument_imports(include=["childsafe", "csv"]):
    from childsafe.banks.formats import ImportOptions, ParsedEntry, detect_format, format_names, get_format
    from childsafe.banks.schemes import SCHEMES
    from childsafe.errors import InputFormatError, UsageError
    from childsafe.media.streams import DigestingReader

#: Every combination of the options a user can give, picked by the input's first byte.
OPTIONS = [
    ImportOptions(scheme=scheme, signal=signal, category=category, vics_profile=profile)
    for scheme, signal, profile in product(SCHEMES, (None, "sha256", "pdq", "md5"), ("us", "uk"))
    for category in (None, *SCHEMES[scheme][:1])
]
#: Crashes found by this target and fixed elsewhere (none: bank formats are fixed on this branch).
KNOWN: dict[tuple[str, type[BaseException]], str] = {}


def check_format(name: str, content: bytes, options: ImportOptions) -> None:
    """One format over ``content``: ``looks_like`` gives a bool, ``read`` only ``InputFormatError``."""
    bank_format = get_format(name)
    assert isinstance(bank_format.looks_like(content[:4096]), bool)
    try:
        # Entries without a usable hash are allowed: the importer counts them as rejected.
        for entry in bank_format.read(DigestingReader(io.BytesIO(content)), options):  # type: ignore[arg-type]
            assert isinstance(entry, ParsedEntry), entry
    except InputFormatError:
        pass


def test_one_input(data: bytes) -> None:
    if not data:
        return
    options, content = OPTIONS[data[0] % len(OPTIONS)], data[1:]
    for name in format_names():
        try:
            check_format(name, content, options)
        except Exception as exc:  # anything else is a finding
            report_or_raise(exc, data, KNOWN)
    try:
        detect_format(content[:4096])
    except UsageError:
        pass
    except Exception as exc:
        report_or_raise(exc, data, KNOWN)


def seed_files() -> list[bytes]:
    """Small valid (and nearly valid) hash lists of every format read today."""
    md5, sha1, sha256 = "0" * 31 + "1", "ab" * 20, "cd" * 32
    pdq = "f" * 64
    text = f"# a list\n{md5}\n{sha1.upper()}\nsha256 {sha256} A\npdq {pdq}, B\n\nmd5 {md5} C # note\n"
    csv = f'md5,sha1,sha256,pdq,category,id,note\n{md5},{sha1},,{pdq} {pdq},A,7,"a, note"\n,,{sha256},,,8,\n'
    record = {
        "MediaID": 12,
        "MD5": md5.upper(),
        "SHA1": sha1,
        "Category": 1,
        "Comments": "note",
        "AlternativeHashes": [{"HashName": "PDQ", "HashValue": pdq}, {"HashName": "PhotoDNA", "HashValue": "x"}],
    }
    hash_set = {"@odata.context": "http://example.invalid/$metadata#Media", "value": [record, {"SHA256": sha256}]}
    case = {"value": [{"CaseNumber": "1", "Media": [record, {"MD5": md5, "ChildsafeCategory": "A1"}]}]}
    return [
        text.encode(),
        ("\ufeff" + text.replace("\n", "\r\n")).encode(),
        csv.encode(),
        json.dumps(hash_set).encode(),
        json.dumps(case, indent=1).encode(),
        b'{"value": []}',
        b"",
    ]


def seeds() -> list[bytes]:
    """Each seed file behind a few option selectors."""
    return [bytes([index]) + content for index in range(0, len(OPTIONS), 7) for content in seed_files()]


if __name__ == "__main__":
    run(test_one_input, seeds())
