"""Matching text against operator-supplied term lists, through disguises.

A term matches when its words appear in the text whole and in order, after
both are normalised (``normalise.py``), where each word may also:

- have one typo (a letter added, dropped, changed, or two neighbours
  swapped) if it has 6 or more letters;
- be run together with the next ones ("purpleumbrella" for "purple umbrella").

Words are looked up in a hash table built once from the lists: every list
word and every one-letter deletion of each long one (``_kernels.py``). So a
check costs a few look-ups a word, whatever the lists' size, in one compiled
pass linear in the text; no regular expression is ever built from list
entries. (Not an Aho-Corasick automaton: one that also held every typo of
every term would be fifty times the size; the deletion table needs only one
entry per letter of each long word.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from childsafe.deter._kernels import _one_edit_apart, build_table, match_terms, variant_hashes
from childsafe.deter.normalise import normalise_words, normalised

__all__ = ["TermMatcher", "TYPO_MAX_LETTERS", "TYPO_MIN_LETTERS", "one_edit_apart"]

#: Words shorter than this must match exactly (a typo in a short word makes another word).
TYPO_MIN_LETTERS = 6


def one_edit_apart(a: str, b: str) -> bool:
    """Whether normalised words ``a`` and ``b`` differ by at most one insertion,
    deletion, substitution or swap of neighbours (the matcher's typo rule)."""
    left = np.frombuffer(a.encode("ascii"), np.uint8)
    right = np.frombuffer(b.encode("ascii"), np.uint8)
    return bool(_one_edit_apart(left, 0, len(left), right, 0, len(right)))


#: Longer words are matched exactly (their deletions would only cost memory).
TYPO_MAX_LETTERS = 64


@dataclass
class TermMatcher:
    """Every term of every list, ready for ``match``: arrays for the compiled
    matcher (``_kernels.match_terms`` explains them)."""

    list_names: list[str] = field(default_factory=list)
    terms: int = 0
    _vocab: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    _vocab_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _vocab_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _keys: np.ndarray = field(default_factory=lambda: np.zeros(16, np.uint64))
    _values: np.ndarray = field(default_factory=lambda: np.full(16, -1, np.int64))
    _filter_bits: np.ndarray = field(default_factory=lambda: np.zeros(1, np.uint64))
    _whole_list: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _pair_first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _pair_second: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _term_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    _term_words: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _term_list: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def build(cls, lists: Mapping[str, Iterable[str]]) -> TermMatcher:
        """A matcher for ``{list name: terms}``."""
        matcher = cls(list_names=list(lists))
        vocab: dict[str, int] = {}
        whole: dict[int, int] = {}  # word id -> list of a term that is that word alone
        multi: list[tuple[int, int, tuple[int, ...], int]] = []  # (first, second, words, list)
        for list_index, terms in enumerate(lists.values()):
            for term in terms:
                words = normalise_words(term)
                if not words:
                    continue
                matcher.terms += 1
                ids = tuple(vocab.setdefault(word, len(vocab)) for word in words)
                whole.setdefault(vocab.setdefault("".join(words), len(vocab)), list_index)
                if len(ids) > 1:
                    multi.append((ids[0], ids[1], ids, list_index))
        if not vocab:
            return matcher
        spellings = list(vocab)
        matcher._vocab = np.frombuffer("".join(spellings).encode("ascii"), np.uint8)
        lengths = np.array([len(word) for word in spellings], np.int64)
        matcher._vocab_ends = np.cumsum(lengths)
        matcher._vocab_starts = matcher._vocab_ends - lengths
        hashes, owners = variant_hashes(
            matcher._vocab, matcher._vocab_starts, matcher._vocab_ends, TYPO_MIN_LETTERS, TYPO_MAX_LETTERS + 1
        )
        matcher._keys, matcher._values, matcher._filter_bits = build_table(hashes, owners)
        matcher._whole_list = np.full(len(spellings), -1, np.int64)
        for word_id, list_index in whole.items():
            matcher._whole_list[word_id] = list_index
        multi.sort(key=lambda term: (term[0], term[1]))
        matcher._pair_first = np.array([term[0] for term in multi], np.int64)
        matcher._pair_second = np.array([term[1] for term in multi], np.int64)
        matcher._term_offsets = np.cumsum([0, *(len(term[2]) for term in multi)]).astype(np.int64)
        matcher._term_words = np.array([word for term in multi for word in term[2]], np.int64)
        matcher._term_list = np.array([term[3] for term in multi], np.int64)
        return matcher

    def match(self, text: str) -> str | None:
        """The name of the list of the first term ``text`` contains, or ``None``."""
        if not self.terms:
            return None
        buf, starts, ends = normalised(text)
        found = match_terms(
            buf, starts, ends, self._keys, self._values, self._filter_bits,
            self._vocab, self._vocab_starts, self._vocab_ends, self._whole_list,
            self._pair_first, self._pair_second, self._term_offsets, self._term_words, self._term_list,
            TYPO_MIN_LETTERS, TYPO_MAX_LETTERS,
        )  # fmt: skip
        return self.list_names[found] if found >= 0 else None
