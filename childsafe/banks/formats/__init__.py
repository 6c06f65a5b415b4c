"""Bank file formats, one module each, registered by name in one place.

Each module defines a ``BankFormat`` and registers it on its last line; this
package imports them all. ``--format auto`` asks each, in registration order,
whether a file looks like its format; text comes last as the fallback.
"""

# ruff: noqa: I001  (import order is registration order, which matters)
from __future__ import annotations

from childsafe.banks.formats.base import BankFormat, ExportEntry, ImportOptions, ParsedEntry
from childsafe.banks.formats.registry import detect_format, format_names, get_format, register

# Importing registers them; order matters for auto-detection (text is the fallback).
from childsafe.banks.formats import vics  # noqa: E402, F401, I001
from childsafe.banks.formats import vpdq  # noqa: E402, F401
from childsafe.banks.formats import csv  # noqa: E402, F401
from childsafe.banks.formats import text  # noqa: E402, F401

__all__ = [
    "BankFormat",
    "ExportEntry",
    "ImportOptions",
    "ParsedEntry",
    "detect_format",
    "format_names",
    "get_format",
    "register",
]
