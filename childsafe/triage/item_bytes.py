"""One item of a finished case read again from the evidence, by its id: a
file, a member of an archive (nested too), or a file of a disk image
(deleted and carved ones too), found by the member numbers the scan gave
it (its position), and checked against the SHA-1 the scan took of it.

For the review workbench's previews, which are made on demand from the
evidence and never stored whole. Evidence is opened for reading only, and
nothing is written: members are read as streams (a nested archive that
needs seeking is held in memory, within the scan's bound, as the scan
holds it), and the item's bytes come back in memory, up to a stated limit.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import IO, cast

from childsafe.errors import UsageError
from childsafe.media.budgets import ScanBudgets
from childsafe.media.sniff import SNIFF_BYTES, sniff_type
from childsafe.triage.budgeted import BudgetedStream
from childsafe.triage.reading import CONTAINER_HEAD_BYTES, MAX_NESTED_ARCHIVE_BYTES, Position
from childsafe.triage.sources import ImageContainer, ImageContext, container_for, open_evidence
from childsafe.triage.state import ScanState

__all__ = ["read_item_bytes", "ITEM_BYTES_LIMIT"]

#: The largest item read back into memory (a picture to preview: as large as the scan decodes).
ITEM_BYTES_LIMIT = 512 * 1024 * 1024


def read_item_bytes(case_out: Path, item_id: str, limit: int = ITEM_BYTES_LIMIT) -> bytes:
    """The bytes of the item ``item_id`` of the case in ``case_out``, read from
    the evidence where the scan found it; ``UsageError`` (one line, saying
    what to do) for an unknown item, one over ``limit`` bytes, evidence that
    is no longer there, or an item whose bytes are not the ones scanned."""
    state = ScanState.of_case(case_out)
    try:
        row = state.db.execute("SELECT task, position, label, sha1 FROM items WHERE id = ?", (item_id,)).fetchone()
        root = Path(state.meta()["evidence_resolved"])
    finally:
        state.close()
    if row is None:
        raise UsageError(f"the case has no item {item_id!r}")
    task, position, label, sha1 = bytes(row[0]).split(b"\0", 1)[0], tuple(json.loads(row[1])), row[2], row[3]
    # The file on disk: the evidence itself when a file was scanned, else its path under the folder.
    path = root if root.is_file() else root / task.decode("utf-8", "surrogateescape")
    try:
        with open_evidence(str(path)) as stream:
            data = _descend(stream, True, str(path), position, limit)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{label}: cannot be read from the evidence ({exc}): is the evidence where it was?") from None
    if sha1 is not None and hashlib.sha1(data).hexdigest() != sha1:
        raise UsageError(f"{label}: the evidence holds other bytes than were scanned: scan it again")
    return data


def _descend(stream: IO[bytes], seekable: bool, file_path: str | None, position: Position, limit: int) -> bytes:
    """The bytes of the item at ``position`` within ``stream`` (``()``: the stream itself)."""
    if not position:
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise UsageError(f"the item is over the {limit:,}-byte limit for reading it back")
        return data
    head = stream.read(CONTAINER_HEAD_BYTES)
    mime = sniff_type(head[:SNIFF_BYTES]).mime
    container = container_for(mime, head)
    if container is None:
        raise UsageError("the evidence is not the archive or disk image it was when scanned: scan it again")
    if seekable:
        stream.seek(0)
    else:
        rest = stream.read(MAX_NESTED_ARCHIVE_BYTES + 1 - len(head))
        stream, seekable = io.BytesIO(head + rest), True  # as the scan holds an archive within an archive
    budgets = ScanBudgets()
    if isinstance(container, ImageContainer):
        members = container.image_members(stream, "", mime, budgets, ImageContext(file_path, False, _idle))
    else:
        members = container.members(stream, "", mime, budgets)
    for number, member in enumerate(members):
        if number != position[0]:
            continue
        if member.open is None:
            raise UsageError(f"a member of the evidence cannot be read: {member.error or 'no reason given'}")
        with member.open() as raw:
            # The scan's bounds on a member's bytes (a bomb stops here as it did there).
            inner = cast(
                IO[bytes],
                io.BufferedReader(BudgetedStream(raw, budgets, member.compressed_size, [], _idle, member.seekable)),
            )
            return _descend(inner, member.seekable, None, position[1:], limit)
    raise UsageError(f"the evidence no longer holds member {position[0] + 1} where it was scanned: scan it again")


def _idle() -> None:
    pass
