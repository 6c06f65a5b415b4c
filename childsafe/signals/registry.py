"""The signal types childsafe knows, registered by name in one place.

A signal type is what a hash list can hold: an exact digest (md5, sha1,
sha256), a perceptual hash (pdq) or a video's frame hashes (vpdq). Each lives in its own module, which
registers itself on its last line; ``childsafe.signals`` imports them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from childsafe.errors import UsageError
from childsafe.registry import Registry

__all__ = ["SignalType", "register", "get_signal", "signal_names", "parse_signal_value"]

SignalKind = Literal["digest", "perceptual", "video"]

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SignalType:
    """One kind of hash: how to name it, check a value and compare two values.

    ``distance`` is 0 for equal values; for digests any difference is 1 (no
    notion of "near"), for perceptual hashes it is the Hamming distance.
    """

    name: str
    kind: SignalKind
    hex_length: int
    distance: Callable[[str, str], int]
    #: For digests, the hashlib constructor that computes it from bytes.
    new_hasher: Callable[[], Any] | None = None

    def parse(self, value: str) -> str:
        """``value`` checked and normalised to lowercase hex; ``UsageError`` if bad."""
        normal = value.strip().lower()
        if len(normal) != self.hex_length or not _HEX.fullmatch(normal):
            raise UsageError(f"{self.name} value must be {self.hex_length} hexadecimal characters, got {value!r:.80}")
        return normal


_SIGNALS: Registry[SignalType] = Registry("signal", lambda signal_type: signal_type.name)


def register(signal_type: SignalType) -> SignalType:
    """Add a signal type; a second one with the same name is a programming error."""
    return _SIGNALS.register(signal_type)


def get_signal(name: str) -> SignalType:
    """The signal type called ``name``; ``UsageError`` naming the known ones otherwise."""
    return _SIGNALS.get(name.lower())


def signal_names() -> list[str]:
    """Names of all registered signal types, in registration order."""
    return _SIGNALS.names()


def parse_signal_value(text: str) -> tuple[str, str]:
    """``"SIGNAL:VALUE"`` as ``(signal, normalised value)``."""
    name, sep, value = text.partition(":")
    if not sep:
        raise UsageError(f"expected SIGNAL:VALUE (e.g. md5:{'0' * 32}), got {text!r:.80}")
    signal_type = get_signal(name.strip())
    return signal_type.name, signal_type.parse(value)


def digest_distance(a: str, b: str) -> int:
    """Distance between exact digests: 0 when equal, 1 otherwise."""
    return 0 if a == b else 1
