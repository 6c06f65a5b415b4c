"""The warning page: calm, plain words and the region's confidential help.

The text is data (``data/warning-<lang>.json``); an operator can add or
replace languages with files of the same shape in the folder named by
``CHILDSAFE_WARNING_TEXTS``. English is the fallback and always served; any
other language is served only when its file says who reviewed it and when
(``reviewed_by``, ``reviewed_on``): an unreviewed translation of this message
can do harm. Every help link goes through a counting redirect that the caller
builds (``help_href``), so the page itself needs no script.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from childsafe.deter.resources import HelpResource
from childsafe.errors import InputFormatError

__all__ = ["HELP_KINDS", "WarningText", "help_target", "load_warning_text", "render_warning_page"]

#: The ways a resource can be reached, as they appear in help links.
HELP_KINDS = ("phone", "web", "chat")

_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


@dataclass(frozen=True)
class WarningText:
    """Everything the page and the check answer say, in one language."""

    lang: str
    title: str
    body: str
    help_heading: str
    help_intro: str
    call: str  # "{phone}" and "{name}" are filled in
    website: str
    chat: str
    hours: str  # "{hours}" is filled in
    leave: str


def _read_text(path: Path | Any, where: str, fallback: bool) -> WarningText | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not fallback and not (data.get("reviewed_by") and data.get("reviewed_on")):
            return None  # not reviewed: not served
        return WarningText(**{f.name: str(data[f.name]) for f in fields(WarningText)})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFormatError(f"{where}: not a usable warning text ({exc})") from None


def load_warning_text(lang: str, texts: Path | None = None) -> WarningText:
    """The reviewed text in ``lang`` (``cy``, ``en-GB``, or an Accept-Language
    header's list, first choice first), else English. Texts in the folder
    ``texts`` (``Settings.warning_texts``) win over the packaged ones."""
    folders: list[Any] = [files("childsafe.deter").joinpath("data")]
    if texts is not None:
        folders.insert(0, texts)
    candidates = []
    for part in lang.lower().split(",")[:10]:  # "cy" or an Accept-Language header: "cy-GB,cy;q=0.9,en;q=0.5"
        tag = part.split(";", 1)[0].strip()
        if _LANG.match(tag) and not part.replace(" ", "").endswith(";q=0"):
            candidates += [tag, tag.split("-", 1)[0]]
    for candidate in [*candidates, "en"]:
        for folder in folders:
            path = folder.joinpath(f"warning-{candidate}.json")
            if path.is_file():
                text = _read_text(path, str(path), fallback=candidate == "en")
                if text is not None:
                    return text
    raise InputFormatError("warning-en.json is missing: reinstall childsafe")


def help_target(resource: HelpResource, kind: str) -> str | None:
    """Where a help link of ``kind`` leads: a ``tel:`` address or a web page."""
    if kind == "phone" and resource.phone:
        return "tel:" + re.sub(r"[^0-9+]", "", resource.phone)
    if kind == "web":
        return resource.url
    if kind == "chat":
        return resource.chat_url
    return None


_templates = Environment(loader=PackageLoader("childsafe.deter", "templates"), autoescape=select_autoescape(["html"]))


def render_warning_page(
    text: WarningText,
    resources: list[HelpResource],
    help_href: Callable[[HelpResource, str], str],
    leave_href: str | None = None,
) -> str:
    """The page as HTML; ``help_href(resource, kind)`` gives each help link's (counting) address."""
    services = []
    for resource in resources:
        # str.replace, not str.format: the text files must not reach into objects.
        name = resource.name
        services.append(
            {
                "name": name,
                "phone": resource.phone,
                "url": resource.url,
                "chat_url": resource.chat_url,
                "hours": resource.hours,
                "phone_href": help_href(resource, "phone"),
                "url_href": help_href(resource, "web"),
                "chat_href": help_href(resource, "chat"),
                "call_label": text.call.replace("{phone}", resource.phone or "").replace("{name}", name),
                "website_label": text.website.replace("{name}", name),
                "chat_label": text.chat.replace("{name}", name),
                "hours_label": text.hours.replace("{hours}", resource.hours or ""),
            }
        )
    return _templates.get_template("warning.html").render(text=text, services=services, leave_href=leave_href)
