"""The md5 digest: exact matching of identical files."""

from __future__ import annotations

import hashlib

from childsafe.signals.registry import SignalType, digest_distance, register

__all__ = ["MD5"]

MD5 = register(SignalType(name="md5", kind="digest", hex_length=32, distance=digest_distance, new_hasher=hashlib.md5))
