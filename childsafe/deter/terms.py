"""Matching text against operator-supplied term lists, through disguises.

A term matches when its words appear in the text whole and in order, after
both are normalised (``normalise.py``), where each word may also:

- have one typo (a letter added, dropped, changed, or two neighbours
  swapped) if it has 6 or more letters;
- be run together with the next ones ("purpleumbrella" for "purple umbrella").

Words are looked up in dictionaries built once from the lists (typos through
a table of each long word's one-letter deletions, checked by edit distance),
so a check costs a few dictionary look-ups a word, whatever the list's size,
and no regular expression is ever built from list entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from childsafe.deter.normalise import normalise_words

__all__ = ["TermMatcher", "TYPO_MIN_LETTERS", "one_edit_apart"]

#: Words shorter than this must match exactly (a typo in a short word makes another word).
TYPO_MIN_LETTERS = 6


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one insertion, deletion,
    substitution or swap of neighbours (optimal string alignment distance <= 1)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


@dataclass
class TermMatcher:
    """Every term of every list, ready for ``match``."""

    #: first word -> [(list name, the term's words)]
    _by_first_word: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    #: the term's words run together -> list names (for "purpleumbrella")
    _run_together: dict[str, list[str]] = field(default_factory=dict)
    #: one-letter deletion of a long word (or run-together term) -> those words
    _typo_index: dict[str, set[str]] = field(default_factory=dict)
    terms: int = 0

    @classmethod
    def build(cls, lists: Mapping[str, Iterable[str]]) -> TermMatcher:
        """A matcher for ``{list name: terms}``."""
        matcher = cls()
        for name, terms in lists.items():
            for term in terms:
                words = tuple(normalise_words(term))
                if not words:
                    continue
                matcher.terms += 1
                matcher._by_first_word.setdefault(words[0], []).append((name, words))
                matcher._run_together.setdefault("".join(words), []).append(name)
                for word in (*words, "".join(words)):
                    if len(word) >= TYPO_MIN_LETTERS:
                        for variant in {word} | _deletions(word):
                            matcher._typo_index.setdefault(variant, set()).add(word)
        return matcher

    def _spellings(self, word: str) -> set[str]:
        """The list words ``word`` may be: itself, and long list words one typo away."""
        found = {word}
        if len(word) >= TYPO_MIN_LETTERS - 1:
            for variant in {word} | _deletions(word):
                for candidate in self._typo_index.get(variant, ()):
                    if one_edit_apart(word, candidate):
                        found.add(candidate)
        return found

    def _word_matches(self, query_word: str, term_word: str) -> bool:
        if query_word == term_word:
            return True
        return len(term_word) >= TYPO_MIN_LETTERS and one_edit_apart(query_word, term_word)

    def match(self, text: str) -> str | None:
        """The name of the first list a term of which ``text`` contains, or ``None``."""
        words = normalise_words(text)
        for i, word in enumerate(words):
            for spelling in self._spellings(word):
                for name in self._run_together.get(spelling, ()):
                    return name
                for name, term in self._by_first_word.get(spelling, ()):
                    if i + len(term) <= len(words) and all(
                        self._word_matches(words[i + k], term[k]) for k in range(1, len(term))
                    ):
                        return name
        return None
