"""Reading content safely: type from bytes, small and bounded image decoding,
and walking folders without following links."""

from childsafe.media.decode import PILLOW_FORMATS, decode_small_rgb, image_to_rgb
from childsafe.media.limits import MediaLimits
from childsafe.media.sniff import MediaKind, SniffedType, sniff_type
from childsafe.media.walk import FoundFile, walk_paths

__all__ = [
    "PILLOW_FORMATS",
    "FoundFile",
    "MediaKind",
    "MediaLimits",
    "SniffedType",
    "decode_small_rgb",
    "image_to_rgb",
    "sniff_type",
    "walk_paths",
]
