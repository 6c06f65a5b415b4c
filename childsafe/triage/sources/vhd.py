"""Virtual PC and Hyper-V disks (VHD, VHDX), through libvhdi's Python binding
(``pyvhdi``).

Recognised by their signatures: ``conectix`` at the start of a dynamic or
differencing VHD (a copy of its footer), ``vhdxfile`` at the start of a
VHDX. A fixed VHD has its footer only at the end: it is a raw image
(``raw_image.py``). A differencing disk needs its parent, which is not
looked for: it is reported, not opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from childsafe.triage.sources.disk_image import DiskImageContainer, OpenedImage, load_binding, open_libyal
from childsafe.triage.sources.registry import register_container

__all__ = ["VHD"]

_SIGNATURES = {b"conectix": "vhd", b"vhdxfile": "vhdx"}


def _parent(handle: Any) -> str | None:
    name = handle.get_parent_filename()
    return str(name) if name else None


@dataclass(frozen=True)
class VhdFormat:
    """The ``vhd`` image format (VHD and VHDX)."""

    name: str = "vhd"

    def recognises(self, mime: str, head: bytes) -> bool:
        return head[:8] in _SIGNATURES

    def open(self, stream: IO[bytes], path: str | None) -> OpenedImage:
        pyvhdi = load_binding("pyvhdi", "libvhdi-python", "VHD image")
        stream.seek(0)
        kind = _SIGNATURES.get(stream.read(8), "vhd")
        stream.seek(0)
        return open_libyal(pyvhdi.file(), stream, f"{kind.upper()} image", kind, _parent)


VHD = register_container(DiskImageContainer("vhd", VhdFormat()))
