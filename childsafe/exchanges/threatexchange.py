"""Signal exchanges as python-threatexchange defines them (its
``SignalExchangeAPI``: ``fetch_iter`` from a checkpoint yields deltas of
updates keyed by ``(signal type, value)``, ``None`` meaning deleted), for
the APIs that need nothing but a collaboration's name: ``sample`` (the
library's static examples) and ``file`` (a local file of signals, one
``TYPE VALUE`` a line). Only when the ``threatexchange`` package is
installed (``pip install 'childsafe[threatexchange]'``); a clear one-line
error otherwise.

Signal types are mapped to ours: ``pdq``; ``video_md5`` and
``video_sha256`` (a file's digest) as ``md5`` and ``sha256``; others are
counted as rejected. The library's checkpoint (a dataclass) is kept as
JSON. The network APIs (ThreatExchange, StopNCII) are left out: their
clients make their own requests, outside ``childsafe.http_client``'s
timeouts and stall guard, which is what this project's exchanges promise.
Publishing back is left out too.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from childsafe.banks.catalogue import entry_key
from childsafe.banks.formats import ParsedEntry
from childsafe.errors import InputFormatError, UsageError
from childsafe.exchanges.base import FetchContext, Page
from childsafe.exchanges.registry import register
from childsafe.signals import get_signal

__all__ = ["SignalExchange", "library"]

#: python-threatexchange signal type -> ours.
SIGNALS = {"pdq": "pdq", "video_md5": "md5", "video_sha256": "sha256"}
#: The APIs offered: name -> (module, API class, collaboration config class).
APIS = {
    "sample": ("threatexchange.exchanges.impl.static_sample", "StaticSampleSignalExchangeAPI", None),
    "file": ("threatexchange.exchanges.impl.file_api", "LocalFileSignalExchangeAPI", "FileCollaborationConfig"),
}


def library() -> Any:
    """The ``threatexchange`` package; ``UsageError`` saying how to install it when it is not."""
    try:
        return importlib.import_module("threatexchange")
    except ImportError:
        raise UsageError(
            "the threatexchange kind needs python-threatexchange: pip install 'childsafe[threatexchange]'"
        ) from None


def _signal_types() -> list[Any]:
    md5 = importlib.import_module("threatexchange.signal_type.md5")
    sha256 = importlib.import_module("threatexchange.signal_type.sha256")
    pdq = importlib.import_module("threatexchange.signal_type.pdq.signal")
    return [pdq.PdqSignal, md5.VideoMD5Signal, sha256.VideoSHA256Signal]


class SignalExchange:
    """The ``threatexchange`` kind."""

    kind = "threatexchange"
    replaces_by_source_id = False

    def check_settings(self, settings: dict[str, Any], has_credentials: bool) -> dict[str, Any]:
        library()
        api = str(settings.get("api") or "sample")
        if api not in APIS:
            raise UsageError(f"{{field}} must be one of {', '.join(APIS)}", field="api")
        file = settings.get("file")
        if api == "file":
            if not file:
                raise UsageError("the file API needs the {field} of its signals", field="file")
            file = str(Path(str(file)).expanduser().absolute())
        return {"api": api, "file": file}

    def describe(self, settings: dict[str, Any]) -> str:
        return f"threatexchange {settings['api']}" + (f" {settings['file']}" if settings.get("file") else "")

    def fetch(self, context: FetchContext, checkpoint: dict[str, Any] | None) -> Iterator[Page]:
        library()
        module, api_name, config_name = APIS[str(context.settings["api"])]
        api_module = importlib.import_module(module)
        api_class = getattr(api_module, api_name)
        if config_name is None:
            base = importlib.import_module("threatexchange.exchanges.collab_config")
            collab = base.CollaborationConfigBase(name=context.name, api=api_class.get_name(), enabled=True)
        else:
            collab = getattr(api_module, config_name)(name=context.name, filename=str(context.settings["file"]))
        api = api_class.for_collab(collab)
        resume = None
        if checkpoint is not None:
            resume = api_class.get_checkpoint_cls()(**checkpoint.get("library", {}))
        pending: Page | None = None
        for delta in api.fetch_iter(_signal_types(), resume):
            if pending is not None:
                yield pending
            pending = _page(delta)
        if pending is None:
            pending = Page(checkpoint=checkpoint or {"library": {}})
        pending.complete = True
        yield pending


def _page(delta: Any) -> Page:
    """A delta's updates as a page: a value of ``None`` deletes the signal's entry."""
    page = Page(checkpoint={"library": dataclasses.asdict(delta.checkpoint)})
    for (signal_type, value), record in delta.updates.items():
        ours = SIGNALS.get(signal_type)
        if ours is None:
            page.rejected += 1
            continue
        try:
            parsed = get_signal(ours).parse(value)
        except UsageError as exc:
            raise InputFormatError(f"{signal_type} {value!r:.80}: {exc}") from None
        if record is None:
            page.deleted_keys.append(entry_key([(ours, parsed)]))
        else:
            page.adds.append(ParsedEntry([(ours, parsed)], f"{signal_type} signal"))
    return page


register(SignalExchange())
