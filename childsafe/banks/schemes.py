"""Category schemes: the labels a bank's entries may carry, most severe first.

- ``uk``: A, B, C — the categories of indecent images of children in England
  and Wales (Sentencing Council guideline), as CAID uses them.
- ``us-vics``: 0-4 as Project VIC's VICS categories number them:
  1 child abuse material, 2 child exploitive / age difficult,
  3 CGI / animation, 4 comparison images, 0 uncategorised.
- ``ncmec``: A1, A2, B1, B2 — NCMEC's industry classification
  (A prepubescent, B pubescent; 1 sex act, 2 lascivious exhibition).
- ``none``: no categories.

VICS files carry a numeric ``Category``; a *VICS profile* says what each number
means in the bank's scheme (``--vics-profile``).
"""

from __future__ import annotations

from childsafe.errors import UsageError

__all__ = [
    "SCHEMES",
    "VICS_PROFILES",
    "check_scheme",
    "check_category",
    "severity_rank",
    "most_severe",
    "category_from_vics",
    "category_to_vics",
]

#: Labels of each scheme, most severe first.
SCHEMES: dict[str, tuple[str, ...]] = {
    "uk": ("A", "B", "C"),
    "us-vics": ("1", "2", "3", "4", "0"),
    "ncmec": ("A1", "A2", "B1", "B2"),
    "none": (),
}

#: VICS numeric Category -> label, per profile. ``us`` keeps VICS's own
#: numbers; ``uk`` reads CAID-style exports where 1, 2, 3 are A, B, C.
VICS_PROFILES: dict[str, dict[int, str]] = {
    "us": {0: "0", 1: "1", 2: "2", 3: "3", 4: "4"},
    "uk": {1: "A", 2: "B", 3: "C"},
}


def check_scheme(scheme: str) -> str:
    """``scheme`` if known, else ``UsageError`` listing the known ones."""
    if scheme not in SCHEMES:
        raise UsageError(f"unknown category scheme {scheme!r}; use one of: {', '.join(SCHEMES)}")
    return scheme


def check_category(scheme: str, category: str | None) -> str | None:
    """``category`` normalised (upper case) if valid in ``scheme``; ``None`` stays ``None``."""
    if category is None or category == "":
        return None
    label = category.strip().upper()
    if label not in SCHEMES[scheme]:
        allowed = ", ".join(SCHEMES[scheme]) or "none (this bank's scheme has no categories)"
        raise UsageError(f"category {category!r} is not in the {scheme!r} scheme; allowed: {allowed}")
    return label


def severity_rank(scheme: str, category: str | None) -> int:
    """0 for the most severe label of ``scheme``; larger is less severe; unknown last."""
    labels = SCHEMES.get(scheme, ())
    return labels.index(category) if category in labels else len(labels)


def most_severe(scheme: str, categories: list[str | None]) -> str | None:
    """The most severe of ``categories`` in ``scheme`` (``None`` if none has a label)."""
    labelled = [c for c in categories if c is not None]
    return min(labelled, key=lambda c: severity_rank(scheme, c)) if labelled else None


def category_from_vics(profile: str, scheme: str, value: object) -> str | None:
    """The bank label for a VICS ``Category`` value under ``profile``.

    Numbers the profile does not map (e.g. 0 under ``uk``) give ``None``.
    """
    if value is None or value == "":
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise UsageError(f"VICS Category must be a number, got {value!r:.40}") from None
    label = VICS_PROFILES[profile].get(number)
    return check_category(scheme, label) if scheme != "none" and label is not None else None


def category_to_vics(scheme: str, category: str | None) -> int:
    """The VICS ``Category`` number for a label (0 when there is none)."""
    if category is None:
        return 0
    if scheme == "us-vics":
        return int(category)
    for mapping in VICS_PROFILES.values():
        for number, label in mapping.items():
            if label == category:
                return number
    return 0
