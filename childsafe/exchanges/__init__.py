"""Hash exchanges: hash-list sources fetched into banks on a schedule, with
checkpoints (an interrupted fetch resumes), deletions applied, and each
fetch's provenance recorded. One module a source, registered by kind:

- ``url_list``: a text, CSV or VICS file at a URL (ETag, If-Modified-Since);
- ``ncmec``: NCMEC's hash-sharing API (paged by time, deletions reported);
- ``threatexchange``: signal exchanges as python-threatexchange defines
  them (only when that package is installed).

``fetching.fetch_exchange`` is the one way a fetch runs (the CLI and the
service's loop); ``catalogue`` adds, lists and removes exchanges.
"""

from childsafe.exchanges import ncmec, threatexchange, url_list
from childsafe.exchanges.base import ExchangeSource, FetchContext, Page
from childsafe.exchanges.catalogue import ExchangeInfo, add_exchange, list_exchanges, remove_exchange
from childsafe.exchanges.fetching import FetchResult, fetch_due, fetch_exchange
from childsafe.exchanges.registry import get_source, source_kinds

__all__ = [
    "ExchangeInfo",
    "ExchangeSource",
    "FetchContext",
    "FetchResult",
    "Page",
    "add_exchange",
    "fetch_due",
    "fetch_exchange",
    "get_source",
    "list_exchanges",
    "ncmec",
    "remove_exchange",
    "source_kinds",
    "threatexchange",
    "url_list",
]
