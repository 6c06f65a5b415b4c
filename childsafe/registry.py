"""One kind of registry for every extensible kind: signal types, bank
formats, evidence sources, containers, report writers.

Each implementation is a module that registers itself on its last line; its
package imports them all. A second registration under the same name is a
programming error, and looking up an unknown name is the user's error, with
the known names in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from childsafe.errors import UsageError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one kind, in registration order."""

    def __init__(self, kind: str, name_of: Callable[[T], str]) -> None:
        self.kind = kind
        self._name_of = name_of
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add ``item``; refuses a second one with the same name."""
        name = self._name_of(item)
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item called ``name``; ``UsageError`` naming the known ones otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise UsageError(f"unknown {self.kind} {name!r}; known: {', '.join(self._items)}") from None

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._items)

    def values(self) -> list[T]:
        """Every registered item, in registration order."""
        return list(self._items.values())
