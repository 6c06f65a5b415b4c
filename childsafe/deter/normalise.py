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
in the middle. Written by hand (the character tables are data): no regular
expression is ever built from list entries.
"""

from __future__ import annotations

import unicodedata

__all__ = ["normalise_words", "canonical_letters"]

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


def canonical_letters(text: str) -> list[str]:
    """Rules 1-5: the text as canonical letters, with " " where a non-letter was."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc") or ch in "\t\n\r")
    text = unicodedata.normalize("NFD", text.casefold())
    out: list[str] = []
    for ch in text:
        if unicodedata.category(ch) == "Mn":
            continue  # an accent
        out.append(_letter(ch) or " ")
    return out


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` after every rule (1-7), in order."""
    words: list[str] = []
    current: list[str] = []
    for ch in [*canonical_letters(text), " "]:
        if ch != " ":
            current.append(ch)
            continue
        if current:
            words.append("".join(current))
            current = []
    joined: list[str] = []
    singles: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            singles.append(word)
            continue
        if singles:
            joined.append("".join(singles))  # v e l v e t -> velvet
            singles = []
        if word:
            joined.append(word)
    return [_collapse(word) for word in joined]


def _collapse(word: str) -> str:
    out = [word[0]]
    for ch in word[1:]:
        if ch != out[-1]:
            out.append(ch)
    return "".join(out)
