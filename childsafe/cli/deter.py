"""Prevention: ``childsafe deter terms|urls import``, ``deter check`` and ``deter stats``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, sub_app

__all__ = ["app"]

app = sub_app("Prevention: term and URL lists, checks, counters.")
terms_app = sub_app("Term lists (licensed; loaded by the operator).")
urls_app = sub_app("URL lists (licensed; loaded by the operator).")
app.add_typer(terms_app, name="terms")
app.add_typer(urls_app, name="urls")


def _import_deter_list(kind: str, file: Path, list_name: str, lang: str, json_output: bool) -> None:
    from childsafe.deter.lists import import_list

    with command_context() as context:
        result = import_list(context.engine, kind, file, list_name, lang)
    if json_output:
        print_json(result.to_dict())
    else:
        print(f"{result.list}: {result.added} {kind}s added, {result.total} in the list")


@terms_app.command("import")
def deter_terms_import_command(
    file: Annotated[Path, typer.Argument(help="One term a line; # starts a comment.")],
    list_name: Annotated[str, typer.Option("--list", help="Name of the list.")] = "terms",
    lang: Annotated[str, typer.Option("--lang", help="Language of the terms.")] = "en",
    json_output: JsonOption = False,
) -> None:
    """Add a file of terms to a term list (entries already there are not added again)."""
    _import_deter_list("term", file, list_name, lang, json_output)


@urls_app.command("import")
def deter_urls_import_command(
    file: Annotated[Path, typer.Argument(help="One URL a line; an entry ending in * is a prefix.")],
    list_name: Annotated[str, typer.Option("--list", help="Name of the list.")] = "urls",
    json_output: JsonOption = False,
) -> None:
    """Add a file of URLs to a URL list."""
    _import_deter_list("url", file, list_name, "", json_output)


@app.command("check")
def deter_check_command(
    text: Annotated[str, typer.Argument(help="The search text to check.")],
    url: Annotated[str | None, typer.Option("--url", help="A URL to check as well.")] = None,
    region: Annotated[str, typer.Option("--region", help="ISO 3166 region of the person (GB, GB-SCT, US...).")] = "GB",
    lang: Annotated[str, typer.Option("--lang", help="Language of the warning.")] = "en",
    json_output: JsonOption = False,
) -> None:
    """Check a search (and a URL): whether to intercept, and the warning with help to show."""
    from childsafe.deter.prevention import Prevention

    with command_context() as context:
        prevention = Prevention(context.engine, context.settings.help_resources, context.settings.warning_texts)
        answer = prevention.check(text, url, region, lang)
    if json_output:
        print_json(answer)
    elif not answer["intercept"]:
        print("no match: nothing to intercept")
    else:
        print(f"INTERCEPT ({answer['matched']['kind']} list {answer['matched']['list']})")
        print(answer["warning"]["title"])
        for resource in answer["warning"]["resources"]:
            print(f"  {resource['name']}: {resource['phone'] or ''} {resource['url'] or ''}")


@app.command("stats")
def deter_stats_command(json_output: JsonOption = False) -> None:
    """Counters of interceptions and help clicks per day, region, list and outcome (counts under 10 shown as <10)."""
    from childsafe.deter.counters import deter_stats

    with command_context() as context:
        stats = deter_stats(context.engine)
    if json_output:
        print_json(stats)
        return
    for row in stats:
        print(f"{row['day']}\t{row['region']}\t{row['list']}\t{row['outcome']}\t{row['count']}")
