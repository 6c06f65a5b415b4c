"""The registry of bank file formats."""

from __future__ import annotations

from childsafe.banks.formats.base import BankFormat
from childsafe.errors import UsageError

__all__ = ["register", "get_format", "format_names", "detect_format"]

_FORMATS: dict[str, BankFormat] = {}


def register(bank_format: BankFormat) -> BankFormat:
    """Add a format; a second one with the same name is a programming error."""
    if bank_format.name in _FORMATS:
        raise ValueError(f"bank format {bank_format.name!r} is already registered")
    _FORMATS[bank_format.name] = bank_format
    return bank_format


def get_format(name: str) -> BankFormat:
    """The format called ``name``; ``UsageError`` naming the known ones otherwise."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown format {name!r}; use one of: auto, {', '.join(_FORMATS)}") from None


def format_names() -> list[str]:
    """Names of the registered formats."""
    return list(_FORMATS)


def detect_format(head: bytes) -> BankFormat:
    """The first registered format that says a file starting with ``head`` is its own."""
    for bank_format in _FORMATS.values():
        if bank_format.looks_like(head):
            return bank_format
    raise UsageError("cannot tell the format of the file; give --format text, csv or vics")
