"""Read a multipart upload into memory, refusing it as soon as it is too big.

Written by hand over python-multipart's streaming parser rather than using
FastAPI's ``UploadFile``: that one spools uploads over 1 MB to a temporary
file, and an upload to this service may be an abuse image that must not be
written to disk unless a bank's ``preserve`` action says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["Upload", "UploadTooLarge", "BadUpload", "read_multipart"]


class UploadTooLarge(Exception):
    """The request body is over the limit (HTTP 413)."""


class BadUpload(Exception):
    """Not a multipart form with a ``file`` field (HTTP 422)."""


@dataclass
class Upload:
    """The uploaded file and any plain form fields."""

    filename: str
    data: bytes
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)


async def read_multipart(content_type: str, body: AsyncIterator[bytes], limit: int) -> Upload:
    """The ``file`` part (and text fields) of a ``multipart/form-data`` body."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload("send the file as multipart/form-data with a field named 'file'")
    parts: list[_Part] = []
    header_field: list[bytes] = []
    header_value: list[bytes] = []

    def on_part_begin() -> None:
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers[b"".join(header_field).decode("latin-1").lower()] = b"".join(header_value).decode("latin-1")
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].chunks.append(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise UploadTooLarge(f"upload is over the {limit:,}-byte limit")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadUpload(f"malformed multipart body: {exc}") from None
    upload: Upload | None = None
    fields: dict[str, str] = {}
    for part in parts:
        _, disposition = parse_options_header(part.headers.get("content-disposition", ""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition or name == "file":
            if name == "file":
                filename = disposition.get(b"filename", b"upload").decode("utf-8", "replace")
                upload = Upload(filename, b"".join(part.chunks))
        elif name:
            fields[name] = b"".join(part.chunks).decode("utf-8", "replace")[:1000]
    if upload is None:
        raise BadUpload("the form has no field named 'file'")
    upload.fields = fields
    return upload
