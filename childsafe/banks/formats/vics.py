"""Project VIC "VICS" JSON, versions 1.x and 2.0, as police hash sets are exchanged
(CAID in the UK uses it).

Two shapes are read: the hash set (``value`` is a list of Media records) and
the case export (``value[0].Media``). From each Media record: ``MD5`` and
``SHA1`` (any letter case), ``MediaID`` (the entry's source id), ``Category``
(mapped to the bank's scheme by the VICS profile), ``Comments`` (the note),
and hashes in ``AlternativeHashes`` whose ``HashName`` is a childsafe signal
(``PDQ``, also ``SHA256``/``MD5``/``SHA1``). Records with no hash childsafe
can use (e.g. PhotoDNA only) are counted as rejected, not imported.

A video's frame hashes travel in its record's ``MediaFiles`` list, one
object a hashed frame: its PDQ in ``AlternativeHashes`` (``HashName``
``PDQ``, with the frame's ``Quality``, 100 when absent), its
``FrameNumber`` and ``Timestamp`` (seconds; the frame's place in the list
when absent). Such a record is one video entry (signal ``vpdq``); a
``VPDQ`` alternative hash beside them must be their digest. Other
``MediaFiles`` (frames without a PDQ) are left out: nothing matches on them.

Files are streamed (ijson), never loaded whole. Exports are VICS 2.0 hash
sets; where the bank's scheme has no VICS number (``ncmec``), the label is
kept in an extra ``ChildsafeCategory`` field so that a round trip keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import ijson

from childsafe.banks.formats.base import (
    ExportEntry,
    ImportOptions,
    ParsedEntry,
    checked_category,
    checked_signal,
)
from childsafe.banks.formats.registry import register
from childsafe.banks.schemes import category_from_vics, category_to_vics
from childsafe.errors import InputFormatError, UsageError
from childsafe.signals import signal_names
from childsafe.signals.vpdq import FrameHashes, vpdq_feature

__all__ = ["VICS"]

_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/CUSTOM/$metadata#Media"


def _shape(stream: BinaryIO) -> str:
    """``hash-set`` or ``case``: whether the first record in ``value`` has a ``Media`` list."""
    saw_value = False
    for prefix, event, value in ijson.parse(stream):
        if prefix == "" and event == "map_key" and value == "value":
            saw_value = True
        elif prefix == "value.item" and event == "map_key" and value == "Media":
            return "case"
        elif prefix == "value.item" and event == "end_map":
            return "hash-set"
        elif prefix == "value" and event == "end_array":
            return "hash-set"  # an empty list
    if not saw_value:
        raise InputFormatError('not a VICS file: it has no top-level "value" list')
    raise InputFormatError('not a VICS file: "value" is not a list of records')


def _scalar(record: dict[str, Any], key: str, where: str) -> Any:
    """``record[key]`` if it is a string, number, boolean or null; a list or object
    there is a bad record (and turning a deeply nested one into text would recurse)."""
    value = record.get(key)
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise InputFormatError(f"{where}: {key} must be a string or a number, not {kind}")
    return value


def _text(record: dict[str, Any], key: str, where: str) -> str | None:
    value = _scalar(record, key, where)
    return None if value is None or value == "" else str(value).strip() or None


def _frames(record: dict[str, Any], where: str) -> FrameHashes | None:
    """A video's frame hashes from the record's ``MediaFiles``, or ``None`` when it has none."""
    media_files = record.get("MediaFiles") or []
    if not isinstance(media_files, list):
        raise InputFormatError(f"{where}: MediaFiles must be a list")
    features = []
    for place, media_file in enumerate(media_files):
        if not isinstance(media_file, dict):
            raise InputFormatError(f"{where}: each of MediaFiles must be an object")
        frame_where = f"{where}, MediaFiles item {place + 1}"
        for alternative in media_file.get("AlternativeHashes") or []:
            if (
                not isinstance(alternative, dict)
                or (_text(alternative, "HashName", frame_where) or "").lower() != "pdq"
            ):
                continue
            fields = [
                _scalar(media_file, "FrameNumber", frame_where),
                _scalar(alternative, "Quality", frame_where),
                _text(alternative, "HashValue", frame_where) or "",
                _scalar(media_file, "Timestamp", frame_where),
            ]
            defaults = [place, 100, "", place]
            frame, quality, pdq, moment = (str(d if f is None else f) for f, d in zip(fields, defaults, strict=True))
            try:
                features.append(vpdq_feature(frame, quality, pdq, moment))
            except ValueError:
                raise InputFormatError(
                    f"{frame_where}: not a frame hash (FrameNumber, Quality, PDQ, Timestamp)"
                ) from None
    return FrameHashes.of(features) if features else None


@dataclass(frozen=True)
class VicsFormat:
    """The ``vics`` bank format."""

    name: str = "vics"

    def looks_like(self, head: bytes) -> bool:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return text.startswith(b"{") and (b'"value"' in head or b"odata" in head)

    def _entry(self, record: Any, number: int, options: ImportOptions) -> ParsedEntry:
        if not isinstance(record, dict):
            raise InputFormatError(f"record {number}: a Media record must be a JSON object")
        media_id = _text(record, "MediaID", f"record {number}")
        where = f"record {number}" + (f" (MediaID {media_id})" if media_id else "")
        found: list[tuple[str, str]] = []
        for key in ("MD5", "SHA1", "SHA256"):
            value = _text(record, key, where)
            if value:
                found.append(checked_signal(key.lower(), value, where))
        alternatives = record.get("AlternativeHashes") or []
        if not isinstance(alternatives, list):
            raise InputFormatError(f"{where}: AlternativeHashes must be a list")
        for alternative in alternatives:
            if alternative is None:
                continue
            if not isinstance(alternative, dict):
                raise InputFormatError(
                    f"{where}: each of AlternativeHashes must be an object with HashName and HashValue"
                )
            name = (_text(alternative, "HashName", where) or "").lower()
            value = _text(alternative, "HashValue", where)
            if name in signal_names() and value:
                found.append(checked_signal(name, value, where))
        video = _frames(record, where)
        label = _text(record, "ChildsafeCategory", where)
        if label is None:
            try:
                label = category_from_vics(options.vics_profile, options.scheme, _scalar(record, "Category", where))
            except UsageError as exc:
                raise InputFormatError(f"{where}: {exc}") from None
        category = checked_category(options.scheme, label or options.category, where)
        note = _text(record, "Comments", where)
        return ParsedEntry(sorted(set(found)), where, category, media_id, note, video)

    def read(self, stream: BinaryIO, options: ImportOptions) -> Iterator[ParsedEntry]:
        try:
            shape = _shape(stream)
            stream.seek(0)
            prefix = "value.item.Media.item" if shape == "case" else "value.item"
            for number, record in enumerate(ijson.items(stream, prefix, use_float=True), start=1):
                yield self._entry(record, number, options)
        except ijson.JSONError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
            raise InputFormatError(f"not valid JSON ({reason}); a VICS file is a JSON object") from None
        except UnicodeDecodeError:  # ijson's C backend decodes strings as it goes
            raise InputFormatError("not UTF-8 text; a VICS file is UTF-8 JSON") from None

    def write(self, entries: Iterable[ExportEntry], out: TextIO, bank_name: str, scheme: str) -> None:
        out.write('{"@odata.context": ' + json.dumps(_CONTEXT) + ', "value": [')
        for index, entry in enumerate(entries):
            out.write(",\n" if index else "\n")
            out.write(json.dumps(self._record(entry, scheme)))
        out.write("\n]}\n")

    def _record(self, entry: ExportEntry, scheme: str) -> dict[str, Any]:
        record: dict[str, Any] = {}
        source = entry.source_id
        record["MediaID"] = int(source) if source and source.isdigit() and len(source) < 19 else source
        record["Category"] = category_to_vics(scheme, entry.category)
        if entry.category is not None and scheme not in ("uk", "us-vics"):
            record["ChildsafeCategory"] = entry.category
        alternatives = []
        for signal, value in entry.signals:
            key = signal.upper()
            if key in ("MD5", "SHA1", "SHA256") and key not in record:
                record[key] = value
            else:
                alternatives.append({"HashName": key, "HashValue": value})
        if alternatives:
            record["AlternativeHashes"] = alternatives
        if entry.video is not None:
            record["MediaFiles"] = [
                {
                    "FrameNumber": feature.frame,
                    "Timestamp": round(feature.timestamp, 3),
                    "AlternativeHashes": [{"HashName": "PDQ", "HashValue": feature.pdq, "Quality": feature.quality}],
                }
                for feature in entry.video.features()
            ]
        if entry.note:
            record["Comments"] = entry.note
        return record


VICS = register(VicsFormat())
