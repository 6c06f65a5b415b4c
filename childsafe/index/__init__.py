"""The match engine: exact digest lookup and exact PDQ radius search per bank,
saved beside the database and kept in step with it through the change log."""

from childsafe.index.bank_index import BankIndex
from childsafe.index.digest_index import DigestIndex
from childsafe.index.matcher import Match, Matcher, index_root, open_matcher
from childsafe.index.pdq_index import PdqHit, PdqIndex, hex_to_words, words_to_hex

__all__ = [
    "BankIndex",
    "DigestIndex",
    "Match",
    "Matcher",
    "PdqHit",
    "PdqIndex",
    "hex_to_words",
    "index_root",
    "open_matcher",
    "words_to_hex",
]
