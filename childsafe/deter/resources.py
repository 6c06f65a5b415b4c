"""Help resources by region: the confidential services a warning points to.

The records are data in the package (``data/resources.json``), each with its
source and the date it was checked. An operator can override or add records
with a JSON file of the same shape named by ``CHILDSAFE_HELP_RESOURCES``
(records with the same ``id`` replace the packaged ones). A region without a
service of its own gets the records marked for ``*`` (online help in many
languages); ``GB-SCT`` and other subdivisions fall back to their country.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from childsafe.errors import InputFormatError

__all__ = ["HelpResource", "load_resources", "resources_for"]

_FIELDS = ("id", "name", "phone", "url", "chat_url", "hours", "confidential")


@dataclass(frozen=True)
class HelpResource:
    """One service, as docs/spec.md's ``RESOURCE`` (plus where it applies and where it came from)."""

    id: str
    name: str
    phone: str | None
    url: str | None
    chat_url: str | None
    hours: str | None
    confidential: bool
    regions: tuple[str, ...]
    source: str
    checked: str

    def to_dict(self) -> dict[str, Any]:
        """docs/spec.md's RESOURCE object."""
        record = asdict(self)
        return {key: record[key] for key in _FIELDS}


def _web_address(value: Any, where: str) -> str | None:
    """A help service's page must be a plain web address (a link on the warning page)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.lower().startswith(("https://", "http://")):
        raise InputFormatError(f"{where}: {value!r:.80} is not a web address (http:// or https://)")
    return value


def _parse(document: Any, where: str) -> list[HelpResource]:
    try:
        return [
            HelpResource(
                str(r["id"]),
                str(r["name"]),
                r.get("phone"),
                _web_address(r.get("url"), where),
                _web_address(r.get("chat_url"), where),
                r.get("hours"),
                bool(r.get("confidential", True)),
                tuple(str(x).upper() for x in r["regions"]),
                str(r.get("source", "")),
                str(r.get("checked", "")),
            )  # fmt: skip
            for r in document["resources"]
        ]
    except (KeyError, TypeError) as exc:
        raise InputFormatError(f"{where}: each resource needs id, name and regions ({exc})") from None


def load_resources(override: Path | None = None) -> list[HelpResource]:
    """The packaged records, with the operator's overrides (``Settings.help_resources``) applied."""
    packaged = json.loads(files("childsafe.deter").joinpath("data/resources.json").read_text(encoding="utf-8"))
    records = {r.id: r for r in _parse(packaged, "childsafe/deter/data/resources.json")}
    if override is not None:
        path = override
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFormatError(f"{path}: cannot read help resources ({exc})") from None
        records.update({r.id: r for r in _parse(document, str(path))})
    return list(records.values())


def resources_for(region: str, resources: list[HelpResource]) -> list[HelpResource]:
    """The services for ``region`` (ISO 3166, e.g. ``GB-SCT``): its own, else
    its country's, else the ones for everywhere (``*``)."""
    wanted = region.strip().upper()
    for candidate in (wanted, wanted.split("-", 1)[0]):
        found = [r for r in resources if candidate in r.regions]
        if found:
            return found
    return [r for r in resources if "*" in r.regions]
