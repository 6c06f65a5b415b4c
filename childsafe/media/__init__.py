"""Reading content safely: type from bytes, small and bounded image decoding,
walking folders without following links, and budgets against bombs."""

from childsafe.media.budgets import BudgetExceeded, ScanBudgets, over_budget
from childsafe.media.decode import PILLOW_FORMATS, decode_small_rgb, image_to_rgb
from childsafe.media.limits import MediaLimits
from childsafe.media.sniff import MediaKind, SniffedType, sniff_type
from childsafe.media.walk import FoundFile, walk_paths

__all__ = [
    "BudgetExceeded",
    "PILLOW_FORMATS",
    "FoundFile",
    "MediaKind",
    "MediaLimits",
    "ScanBudgets",
    "SniffedType",
    "decode_small_rgb",
    "image_to_rgb",
    "over_budget",
    "sniff_type",
    "walk_paths",
]
