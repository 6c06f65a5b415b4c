"""The sha1 digest: exact matching of identical files."""

from __future__ import annotations

import hashlib

from childsafe.signals.registry import SignalType, digest_distance, register

__all__ = ["SHA1"]

SHA1 = register(
    SignalType(name="sha1", kind="digest", hex_length=40, distance=digest_distance, new_hasher=hashlib.sha1)
)
