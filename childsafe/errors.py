"""The exceptions childsafe raises, one tree so callers can catch by concern.

    ChildsafeError                 base of everything below
    ├── UsageError                 bad arguments or settings (CLI exit code 2)
    │   ├── NotFoundError          no such bank, entry or key (HTTP 404)
    │   └── ConflictError          it exists already (HTTP 409)
    ├── InputFormatError           an input file that cannot be parsed (exit 2)
    ├── StorageError               the database cannot be opened or migrated (exit 1)
    ├── RemoteError                an outside service (a hash exchange) failed,
    │   │                          refused us or stalled (exit 1)
    │   └── RemoteOutcomeUnknown   a request that creates something went out
    │                              and its answer was lost: it may have been done
    ├── UnavailableError           an index shard did not answer: try again (HTTP 503)
    └── MediaError                 one item could not be read or decoded; reported
        │                          as that item's `error`, never fatal to a run
        ├── UnsupportedMediaError  not a format we decode
        ├── MediaLimitError        over a size, pixel or time limit
        │   └── ResourceLimitError out of time or memory: the content may be fine
        └── DecodeError            damaged, truncated or hostile content

Third-party errors (Pillow, SQLAlchemy, OS errors) are translated into these
with ``raise ... from exc`` so that messages are ours: one line, and never a
path or internals the user did not give us.
"""

from __future__ import annotations

__all__ = [
    "ChildsafeError",
    "UsageError",
    "NotFoundError",
    "ConflictError",
    "InputFormatError",
    "StorageError",
    "RemoteError",
    "RemoteOutcomeUnknown",
    "UnavailableError",
    "MediaError",
    "UnsupportedMediaError",
    "MediaLimitError",
    "ResourceLimitError",
    "DecodeError",
]


class ChildsafeError(Exception):
    """Base of every error childsafe raises on purpose.

    A message about one input names it ``{field}``, with ``field`` the
    input's name (``"webhook_secret"``), so that each front door words it its
    own way: the CLI as its option (``--webhook-secret``, ``worded``), the
    HTTP API as the JSON field (``str``). The library names no CLI flag."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def worded(self, name: str) -> str:
        """The message with the input called ``name``."""
        text = super().__str__()
        return text.replace("{field}", name) if self.field else text

    def __str__(self) -> str:
        return self.worded(self.field or "")

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps ``field`` when the error crosses to another process.
        return (type(self), self.args, {"field": self.field})


class UsageError(ChildsafeError):
    """Bad arguments or settings; the message says what to do instead."""


class NotFoundError(UsageError):
    """The named thing does not exist."""


class ConflictError(UsageError):
    """The thing to create exists already."""


class InputFormatError(ChildsafeError):
    """An input file that cannot be parsed; the message names file and line."""


class StorageError(ChildsafeError):
    """The database cannot be opened, reached or migrated."""


class RemoteError(ChildsafeError):
    """An outside service failed, refused the credentials, stalled or sent
    what cannot be read; the message names the service's host (never a
    credential or a query string) and what to do. ``body``: the start of
    an error answer's body, for a caller that can read it (never shown)."""

    def __init__(self, message: str = "", *, field: str | None = None, body: bytes = b"") -> None:
        super().__init__(message, field=field)
        self.body = body


class RemoteOutcomeUnknown(RemoteError):
    """A request that creates something (a report) was sent and its answer
    was lost (a timeout, a dropped connection, a 5xx): the service may have
    done it. Sending it again could do it twice, so it is not retried."""


class UnavailableError(ChildsafeError):
    """A part of the index this process searches through (a shard) did not
    answer, so an answer would be partial: the query fails rather than say "no match"."""


class MediaError(ChildsafeError):
    """One item could not be read or decoded (reported, never fatal)."""


class UnsupportedMediaError(MediaError):
    """Content of a type we do not decode."""


class MediaLimitError(MediaError):
    """Content over a size, pixel-count or decoding-time limit."""


class ResourceLimitError(MediaLimitError):
    """Decoding ran out of time or memory: unlike a damaged or oversized file,
    the same content may go through another time (the service answers 503)."""


class DecodeError(MediaError):
    """Damaged, truncated or hostile content."""
