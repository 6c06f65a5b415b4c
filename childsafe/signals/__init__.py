"""Signals: the hashes childsafe computes and matches, one module a type.

Importing this package registers every signal type (the modules register
themselves on their last line); add a new type by adding its module here.
"""

# ruff: noqa: I001  (import order is registration order, which matters)
# Registration order is the order signals appear in listings: digests, then PDQ, then vPDQ.
from childsafe.signals import md5  # noqa: F401, I001  (importing registers it)
from childsafe.signals import sha1  # noqa: F401
from childsafe.signals import sha256  # noqa: F401
from childsafe.signals import pdq  # noqa: F401
from childsafe.signals import vpdq  # noqa: F401
from childsafe.signals.hashing import FileHashes, hash_file, hash_found_file, hash_paths, hash_stream
from childsafe.signals.pdq import (
    DIHEDRAL_TRANSFORMS,
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    PdqHash,
    pdq_dihedral_hashes,
    pdq_distance,
    pdq_hash,
)
from childsafe.signals.registry import SignalType, get_signal, parse_signal_value, register, signal_names

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "FileHashes",
    "PdqHash",
    "SignalType",
    "get_signal",
    "hash_file",
    "hash_found_file",
    "hash_paths",
    "hash_stream",
    "parse_signal_value",
    "pdq_dihedral_hashes",
    "pdq_distance",
    "pdq_hash",
    "register",
    "signal_names",
]
