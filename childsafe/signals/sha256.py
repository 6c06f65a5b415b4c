"""The sha256 digest: exact matching of identical files."""

from __future__ import annotations

import hashlib

from childsafe.signals.registry import SignalType, digest_distance, register

__all__ = ["SHA256"]

SHA256 = register(
    SignalType(name="sha256", kind="digest", hex_length=64, distance=digest_distance, new_hasher=hashlib.sha256)
)
