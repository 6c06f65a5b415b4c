"""The registry of bank file formats."""

from __future__ import annotations

from childsafe.banks.formats.base import BankFormat
from childsafe.errors import UsageError
from childsafe.registry import Registry

__all__ = ["register", "get_format", "format_names", "detect_format"]

_FORMATS: Registry[BankFormat] = Registry("format", lambda bank_format: bank_format.name)


def register(bank_format: BankFormat) -> BankFormat:
    """Add a format; a second one with the same name is a programming error."""
    return _FORMATS.register(bank_format)


def get_format(name: str) -> BankFormat:
    """The format called ``name``; ``UsageError`` naming the known ones otherwise."""
    return _FORMATS.get(name)


def format_names() -> list[str]:
    """Names of the registered formats."""
    return _FORMATS.names()


def detect_format(head: bytes) -> BankFormat:
    """The first registered format that says a file starting with ``head`` is its own."""
    for bank_format in _FORMATS.values():
        if bank_format.looks_like(head):
            return bank_format
    raise UsageError("cannot tell the format of the file; give {field} text, csv, vics or vpdq", field="format")
