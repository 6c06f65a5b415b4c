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
in the middle. Rules 1-5 are Python's own Unicode functions and one
``str.translate`` table; 6 and 7 a compiled loop (``_kernels.split_words``).
No regular expression is ever built from list entries.
"""

from __future__ import annotations

import re
import unicodedata

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


class _CanonicalTable(dict[int, str | None]):
    """Rules 2, 4 and 5 and the accent half of rule 3, for ``str.translate``:
    each character's canonical letter, a space for anything else that is not
    a letter, nothing for accents, format and control characters. Filled in
    as characters are first seen, so a look-up is a dict hit in C."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        category = unicodedata.category(ch)
        if category == "Mn" or (category in ("Cf", "Cc") and ch not in "\t\n\r"):
            value = None
        else:
            value = _letter(ch) or " "
        if len(self) < 200_000:  # bounded: a flood of distinct characters cannot grow it without end
            self[code] = value
        return value


_CANONICAL = _CanonicalTable()


def _canonical_ascii_table() -> bytes:
    table = bytearray(b" " * 256)
    for code in range(128):
        table[code] = ord(_letter(chr(code).lower()) or " ")
    return bytes(table)


# ASCII text needs none of the Unicode work: one byte table does rules 3-5.
_ASCII_TABLE = _canonical_ascii_table()
_ASCII_CONTROLS = bytes(
    code for code in range(128) if unicodedata.category(chr(code)) == "Cc" and chr(code) not in "\t\n\r"
)
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")  # a fixed pattern, never built from list entries


def _canonical_unicode(text: str) -> str:
    """Rules 1-5 for a run of non-ASCII characters: canonical letters and spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFD", text).translate(_CANONICAL)


def canonical_letters(text: str) -> np.ndarray:
    """Rules 1-5: the text as canonical letters ``a``-``z``, with a space
    where anything else was (a uint8 array, for the compiled matcher).

    Only the non-ASCII runs go through Python's Unicode functions (a combining
    accent after an ASCII letter is dropped either way, so the runs can be
    taken on their own); the rest is one byte-table translation."""
    if not text.isascii():
        text = _NOT_ASCII.sub(lambda run: _canonical_unicode(run.group()), text)
    return np.frombuffer(text.encode("ascii").translate(_ASCII_TABLE, _ASCII_CONTROLS), np.uint8)


def normalised(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rule (1-7): the words' letters, and each word's start and end."""
    buf, starts, ends = split_words(canonical_letters(text))
    return buf, starts, ends


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` after every rule (1-7), in order."""
    buf, starts, ends = normalised(text)
    raw = buf.tobytes().decode("ascii")
    return [raw[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
