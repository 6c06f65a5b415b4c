"""Budgets that keep one hostile piece of evidence from stalling or
exhausting a scan: archive bombs, deep nests, giant headers, poison files.

Every limit is stated here with its default and the setting that raises it.
A member or item over a budget is never dropped: it becomes an item whose
``error`` names the limit and the setting (``over_budget``), and the rest of
the evidence goes on. The defaults keep a 2-core, 24 GB machine responsive
with two workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from childsafe.media.limits import number_setting

__all__ = ["ScanBudgets", "BudgetExceeded", "over_budget"]

_GIB = 1024**3
_MIB = 1024**2


@dataclass(frozen=True)
class ScanBudgets:
    """Limits on reading one piece of evidence (each with its setting).

    - ``max_member_bytes`` (``CHILDSAFE_MAX_MEMBER_BYTES``): expanded size of
      one archive member.
    - ``max_ratio`` (``CHILDSAFE_MAX_RATIO``): expanded size over compressed
      size of one member, checked once it has expanded past
      ``ratio_floor_bytes`` (zip bombs expand about 1,000 times and more).
    - ``max_container_bytes`` (``CHILDSAFE_MAX_CONTAINER_BYTES``): expanded
      bytes of the members of one archive (an archive inside it counts its own
      bytes there, and its members against itself).
    - ``max_members`` (``CHILDSAFE_MAX_MEMBERS``): members of one archive.
    - ``max_depth`` (``CHILDSAFE_MAX_DEPTH``): archives inside archives.
    - ``max_name_bytes`` (``CHILDSAFE_MAX_NAME_BYTES``): one member's name.
    - ``max_header_bytes`` (``CHILDSAFE_MAX_HEADER_BYTES``): one extended
      header (a tar pax or GNU long-name record).
    - ``item_seconds`` (``CHILDSAFE_ITEM_SECONDS``): time to read one item; a
      worker that goes longer is stopped and replaced.
    - ``worker_memory_bytes`` (``CHILDSAFE_WORKER_MEMORY_BYTES``): address
      space of one scan worker; a worker that needs more fails that item.
    """

    max_member_bytes: int = 64 * _GIB
    max_ratio: int = 1_000
    ratio_floor_bytes: int = 64 * _MIB
    max_container_bytes: int = 256 * _GIB
    max_members: int = 1_000_000
    max_depth: int = 8
    max_name_bytes: int = 4_096
    max_header_bytes: int = 1 * _MIB
    item_seconds: float = 300.0
    worker_memory_bytes: int = 8 * _GIB

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScanBudgets:
        """Budgets with overrides from the ``CHILDSAFE_*`` settings above."""
        base = cls()
        values = {name: number_setting(env, setting, getattr(base, name)) for name, setting in _SETTINGS.items()}
        return cls(**values)


_SETTINGS = {
    "max_member_bytes": "CHILDSAFE_MAX_MEMBER_BYTES",
    "max_ratio": "CHILDSAFE_MAX_RATIO",
    "max_container_bytes": "CHILDSAFE_MAX_CONTAINER_BYTES",
    "max_members": "CHILDSAFE_MAX_MEMBERS",
    "max_depth": "CHILDSAFE_MAX_DEPTH",
    "max_name_bytes": "CHILDSAFE_MAX_NAME_BYTES",
    "max_header_bytes": "CHILDSAFE_MAX_HEADER_BYTES",
    "item_seconds": "CHILDSAFE_ITEM_SECONDS",
    "worker_memory_bytes": "CHILDSAFE_WORKER_MEMORY_BYTES",
}


def over_budget(field_name: str, limit: int | float, what: str) -> str:
    """The one-line ``error`` of an item over a budget: which limit, and how to raise it.

    >>> over_budget("max_ratio", 1000, "expanded more than 1,000 times its compressed size")
    'over budget: expanded more than 1,000 times its compressed size (limit 1,000; raise CHILDSAFE_MAX_RATIO)'
    """
    shown = f"{limit:,}" if isinstance(limit, int) else f"{limit:g}"
    return f"over budget: {what} (limit {shown}; raise {_SETTINGS[field_name]})"


class BudgetExceeded(Exception):
    """Reading stopped at a budget; the message is the item's ``error`` (``over_budget``)."""
