"""Evidence sources and containers, one module each, registered in one place.

Sources (what a user can name as evidence): a folder tree, a single file.
Containers (what is opened while reading): zip, tar, and gzip/bzip2/xz
(compressed tars included); through libarchive, 7z, RAR, ISO 9660 and cpio;
Windows thumbnail caches (``thumbcache.py``, ``thumbs_db.py``);
and disk images (``disk_image.py``): raw and split raw, E01 (``ewf``), VHD
and VHDX, VMDK, QCOW2, whose partitions and file systems are read through
The Sleuth Kit (``volumes.py``, ``filesystems.py``). Registration order is
import order: archives are recognised before a raw disk is guessed from
its first bytes.
"""

from childsafe.triage.sources import (  # noqa: F401  (registers them)
    compressed,
    cpio,
    directory,
    ewf,
    iso9660,
    qcow,
    rar,
    raw_image,
    sevenzip,
    single_file,
    tar,
    thumbcache,
    thumbs_db,
    vhd,
    vmdk,
    zip,
)
from childsafe.triage.sources.base import (
    Container,
    ContainerError,
    EvidenceSource,
    ImageContainer,
    ImageContext,
    Member,
    Recorded,
    Share,
    Task,
    open_evidence,
)
from childsafe.triage.sources.registry import (
    container_for,
    container_names,
    register_container,
    register_source,
    source_for,
    source_names,
)

__all__ = [
    "Container",
    "ContainerError",
    "EvidenceSource",
    "ImageContainer",
    "ImageContext",
    "Member",
    "Recorded",
    "Share",
    "Task",
    "container_for",
    "container_names",
    "open_evidence",
    "register_container",
    "register_source",
    "source_for",
    "source_names",
]
