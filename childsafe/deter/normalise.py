"""Text normalisation for term matching: see through the ways people disguise
a search.

The rules, in order (docs/deterrence.md has examples):

1. Unicode compatibility form (NFKC): full-width and mathematical letters
   become plain ones ("ｖｅｌｖｅｔ", "𝐯𝐞𝐥𝐯𝐞𝐭" -> "velvet").
2. Zero-width, format and control characters are removed.
3. Case is folded, accents removed ("VÉLVET" -> "velvet").
4. Look-alike letters from Cyrillic and Greek become the Latin letter they
   imitate ("vеlvеt" with Cyrillic е -> "velvet").
5. Leetspeak digits and symbols become letters: 0 o, 1 i, 3 e, 4 a, 5 s,
   7 t, 8 b, 9 g, @ a, $ s, ! i, | i, + t; and l is read as i (so that "1",
   "l" and "i" are one letter).
6. Words are split at anything that is not a letter; runs of single letters
   are joined ("v.e.l.v.e.t", "V E L V E T" -> "velvet").
7. Repeated letters are collapsed ("vellvvet" -> "velvet").

Terms go through the same rules, so a list entry and a disguised query meet
in the middle. Rules 1-5 are NFKC and one table look-up a character (the
table made from Python's own Unicode data); 6 and 7 a compiled loop
(``_kernels.split_words``).
No regular expression is ever built from list entries.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import numpy as np

from childsafe.deter._kernels import split_words

__all__ = ["canonical_letters", "normalise_words", "normalised"]

# Cyrillic and Greek letters that look like Latin ones (after case folding).
_LOOKALIKES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ɡ": "g", "ո": "n", "ս": "u", "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
    "һ": "h", "ԍ": "g", "ɑ": "a", "ı": "i", "ȷ": "j",
}  # fmt: skip
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "l": "i"}  # fmt: skip


def _letter(ch: str) -> str:
    """The canonical letter ``ch`` stands for, or "" if it is not a letter."""
    ch = _LOOKALIKES.get(ch, ch)
    ch = _LEET.get(ch, ch)
    return ch if "a" <= ch <= "z" else ""


_DELETE = 0  # in a canonical table: the character is dropped (accents, invisible characters)
_SPACE = 32


def _canonical_char(code: int) -> int:
    """Rules 2-5 for one character (after NFKC): its canonical letter, a space
    for anything else that is not a letter, or ``_DELETE`` for accents,
    format and control characters. A character that folds to several letters
    (71 Greek forms with a subscript iota, and the like) counts as its first."""
    ch = chr(code)
    if 0xD800 <= code <= 0xDFFF:
        return _SPACE  # a lone surrogate
    letters = []
    for part in unicodedata.normalize("NFD", ch.casefold()):
        category = unicodedata.category(part)
        if category == "Mn" or (category in ("Cf", "Cc") and part not in "\t\n\r"):
            continue
        letters.append(_letter(part) or " ")
    return ord(letters[0]) if letters else _DELETE


# ASCII text needs none of the Unicode work: one byte table does rules 3-5.
_ASCII_TABLE = bytes(_canonical_char(code) or _SPACE for code in range(256))
_ASCII_DELETE = bytes(code for code in range(128) if _canonical_char(code) == _DELETE)


@cache
def _bmp_table() -> np.ndarray:
    """``_canonical_char`` for the whole Basic Multilingual Plane (64 KB, made
    on first use in about 0.15 s): a whole text is then one array look-up."""
    return np.array([_canonical_char(code) for code in range(0x10000)], np.uint8)


def canonical_letters(text: str) -> np.ndarray:
    """Rules 1-5: the text as canonical letters ``a``-``z``, with a space
    where anything else was (a uint8 array, for the compiled matcher).

    ASCII text is one byte-table translation; other text is NFKC, then one
    table look-up per character (characters beyond the BMP, rare, are looked
    up once per distinct character)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii").translate(_ASCII_TABLE, _ASCII_DELETE), np.uint8)
    codes = np.frombuffer(unicodedata.normalize("NFKC", text).encode("utf-32-le", "surrogatepass"), np.uint32)
    letters: np.ndarray = _bmp_table()[np.minimum(codes, 0xFFFF)]
    beyond = codes > 0xFFFF
    if beyond.any():
        distinct, where = np.unique(codes[beyond], return_inverse=True)
        letters[beyond] = np.array([_canonical_char(int(code)) for code in distinct], np.uint8)[where]
    kept: np.ndarray = letters[letters != _DELETE]
    return kept


def normalised(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rule (1-7): the words' letters, and each word's start and end."""
    buf, starts, ends = split_words(canonical_letters(text))
    return buf, starts, ends


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` after every rule (1-7), in order."""
    buf, starts, ends = normalised(text)
    raw = buf.tobytes().decode("ascii")
    return [raw[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
