"""VMware disks (VMDK), through libvmdk's Python binding (``pyvmdk``).

Recognised by the ``KDMV`` signature of a sparse extent (monolithic sparse
and stream-optimised disks, which carry their descriptor inside). A disk
described by a separate text descriptor, with its extents in other files, is
a text file here and is hashed, not opened; a disk with a parent (a
snapshot) is reported, not opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from childsafe.triage.sources.base import ContainerError
from childsafe.triage.sources.disk_image import DiskImageContainer, OpenedImage, load_binding, open_libyal, short_reason
from childsafe.triage.sources.registry import register_container

__all__ = ["VMDK"]

_NO_PARENT = 0xFFFFFFFF


def _parent(handle: Any) -> str | None:
    if handle.get_parent_content_identifier() in (None, 0, _NO_PARENT):
        return None
    return str(handle.get_parent_filename() or "(unnamed)")


@dataclass(frozen=True)
class VmdkFormat:
    """The ``vmdk`` image format."""

    name: str = "vmdk"

    def recognises(self, mime: str, head: bytes) -> bool:
        return head[:4] == b"KDMV"

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        pyvmdk = load_binding("pyvmdk", "libvmdk-python", "VMDK image")
        stream.seek(0)
        handle = pyvmdk.handle()
        opened = open_libyal(handle, stream, "VMDK image", "vmdk", _parent)
        try:
            # The extent is this same file: its data is read through the same stream.
            handle.open_extent_data_files_as_file_objects([stream])
        except OSError as exc:
            opened.close()
            raise ContainerError(f"VMDK image's data cannot be opened: {short_reason(exc)}") from exc
        return opened


VMDK = register_container(DiskImageContainer("vmdk", VmdkFormat()))
