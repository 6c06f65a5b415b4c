"""Evidence sources and containers, one module each, registered in one place.

Sources (what a user can name as evidence): a folder tree, a single file;
disk images (E01/raw through pytsk3) would be one more module here.
Containers (what is opened while reading): zip, tar, and gzip/bzip2/xz
(compressed tars included); through libarchive, 7z, RAR, ISO 9660 and cpio;
Windows thumbnail caches (thumbcache_*.db, Thumbs.db).
"""

from childsafe.triage.sources import (  # noqa: F401  (registers them)
    compressed,
    cpio,
    directory,
    iso9660,
    rar,
    sevenzip,
    single_file,
    tar,
    thumbcache,
    thumbs_db,
    zip,
)
from childsafe.triage.sources.base import (
    Container,
    ContainerError,
    EvidenceSource,
    Member,
    Recorded,
    Task,
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
    "Member",
    "Recorded",
    "Task",
    "container_for",
    "container_names",
    "register_container",
    "register_source",
    "source_for",
    "source_names",
]
