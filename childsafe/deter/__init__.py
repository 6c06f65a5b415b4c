"""Prevention: see through disguised searches for abuse material and route
the person to confidential help. Term lists are supplied by the operator
under licence; childsafe ships none."""

from childsafe.deter.normalise import normalise_words
from childsafe.deter.terms import TermMatcher, one_edit_apart
from childsafe.deter.urls import UrlMatcher, normalise_url

__all__ = ["TermMatcher", "UrlMatcher", "normalise_url", "normalise_words", "one_edit_apart"]
