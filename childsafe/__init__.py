"""childsafe: detect known child sexual abuse images by hash, deter people
from seeking them, and measure what works.

The public API is re-exported here; everything else is internal.
"""

from importlib.metadata import PackageNotFoundError, version

from childsafe.config import Settings
from childsafe.errors import (
    ChildsafeError,
    DecodeError,
    InputFormatError,
    MediaError,
    MediaLimitError,
    StorageError,
    UnsupportedMediaError,
    UsageError,
)
from childsafe.media import MediaLimits
from childsafe.signals import FileHashes, hash_file, hash_paths

try:
    __version__ = version("childsafe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ChildsafeError",
    "DecodeError",
    "FileHashes",
    "InputFormatError",
    "MediaError",
    "MediaLimitError",
    "MediaLimits",
    "Settings",
    "StorageError",
    "UnsupportedMediaError",
    "UsageError",
    "__version__",
    "hash_file",
    "hash_paths",
]
