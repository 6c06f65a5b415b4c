"""QEMU disks (QCOW, QCOW2), through libqcow's Python binding (``pyqcow``).

Recognised by the ``QFI\\xfb`` signature. A disk with a backing file (an
overlay) needs it and is reported, not opened; an encrypted one is reported
as encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from childsafe.triage.sources.base import ContainerError
from childsafe.triage.sources.disk_image import DiskImageContainer, OpenedImage, load_binding, open_libyal
from childsafe.triage.sources.registry import register_container

__all__ = ["QCOW"]


def _parent(handle: Any) -> str | None:
    name = handle.get_backing_filename()
    return str(name) if name else None


@dataclass(frozen=True)
class QcowFormat:
    """The ``qcow`` image format."""

    name: str = "qcow"

    def recognises(self, mime: str, head: bytes) -> bool:
        return head[:4] == b"QFI\xfb"

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        pyqcow = load_binding("pyqcow", "libqcow-python", "QCOW image")
        stream.seek(0)
        handle = pyqcow.file()
        opened = open_libyal(handle, stream, "QCOW image", "qcow2", _parent)
        if handle.is_locked():
            opened.close()
            raise ContainerError("encrypted QCOW image: not opened (its password is needed)")
        return opened


QCOW = register_container(DiskImageContainer("qcow", QcowFormat()))
