"""Hash exchanges: ``childsafe exchange add|list|fetch|remove``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, stderr, sub_app

__all__ = ["app"]

app = sub_app("Hash exchanges: hash lists fetched into banks on a schedule (a URL, NCMEC, ThreatExchange).")


@app.command("add")
def exchange_add_command(
    name: Annotated[str, typer.Argument(help="A name for the exchange.")],
    kind: Annotated[str, typer.Option("--kind", help="url, ncmec or threatexchange.")],
    bank: Annotated[str, typer.Option("--bank", help="The bank its entries go into (it must exist).")],
    url: Annotated[
        str | None,
        typer.Option("--url", help="url: the list's address; ncmec: the API's (default: NCMEC's industry one)."),
    ] = None,
    every: Annotated[int, typer.Option("--every", help="Seconds between fetches in the service (at least 60).")] = 3600,
    credentials_file: Annotated[
        Path | None,
        typer.Option("--credentials-file", help="A file (chmod 600) holding user:password or a token."),
    ] = None,
    credentials_env: Annotated[
        str | None, typer.Option("--credentials-env", help="An environment variable holding them instead.")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="url: auto, text, csv or vics (default auto).")
    ] = None,
    signal: Annotated[
        str | None, typer.Option("--signal", help="url: signal of bare 64-hex hashes (sha256 or pdq).")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="url: category of entries without one.")] = None,
    vics_profile: Annotated[str | None, typer.Option("--vics-profile", help="url: us or uk.")] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="ncmec: first fetch from this date (default: everything).")
    ] = None,
    api: Annotated[str | None, typer.Option("--api", help="threatexchange: sample or file.")] = None,
    file: Annotated[str | None, typer.Option("--file", help="threatexchange file API: the signals file.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Add an exchange; its first fetch is due at once (``exchange fetch`` or the service)."""
    from childsafe.exchanges import add_exchange

    given = {
        "url": url, "format": file_format, "signal": signal, "category": category, "vics_profile": vics_profile,
        "start": start, "api": api, "file": file,
    }  # fmt: skip
    with command_context({"every": "--every"}) as context:
        info = add_exchange(
            context.engine,
            name,
            kind,
            bank,
            {key: value for key, value in given.items() if value is not None},
            every_seconds=every,
            credentials_file=credentials_file,
            credentials_env=credentials_env,
        )
    if json_output:
        print_json(info.to_dict())
    else:
        print(f"exchange {info.name}: {info.kind} {info.source} into bank {info.bank}, every {info.every_seconds} s")


@app.command("list")
def exchange_list_command(json_output: JsonOption = False) -> None:
    """List the exchanges: source, bank, schedule, last fetch (never a credential)."""
    from childsafe.exchanges import list_exchanges

    with command_context() as context:
        exchanges = [info.to_dict() for info in list_exchanges(context.engine)]
    if json_output:
        print_json(exchanges)
        return
    for info in exchanges:
        last = info["last_outcome"] or "never fetched"
        if info["last_error"]:
            last += f": {info['last_error']}"
        counts = info["last_counts"] or {}
        added = f" (+{counts.get('added', 0)} -{counts.get('removed', 0)})" if counts else ""
        print(
            f"{info['name']}\t{info['kind']}\t{info['bank']}\t{info['source']}\tevery {info['every_seconds']} s\t{last}{added}"
        )


@app.command("fetch")
def exchange_fetch_command(
    name: Annotated[str, typer.Argument(help="The exchange to fetch now.")],
    json_output: JsonOption = False,
) -> None:
    """Fetch an exchange into its bank now, resuming an unfinished fetch."""
    from childsafe.exchanges import fetch_exchange

    with command_context() as context:
        result = fetch_exchange(context.engine, name, context.settings.http)
    if json_output:
        print_json(result.to_dict())
        return
    resumed = " (resumed)" if result.resumed else ""
    counts = result.counts
    print(
        f"{result.exchange}: {result.outcome}{resumed}: {counts.added} added, {counts.updated} updated,"
        f" {counts.removed} removed, {counts.rejected} rejected into bank {result.bank}"
    )
    if counts.rejected:
        stderr.print(f"{counts.rejected} entries had no signal childsafe matches", highlight=False)


@app.command("remove")
def exchange_remove_command(
    name: Annotated[str, typer.Argument(help="The exchange to remove.")],
    json_output: JsonOption = False,
) -> None:
    """Remove an exchange; the entries it brought stay in the bank."""
    from childsafe.exchanges import remove_exchange

    with command_context() as context:
        remove_exchange(context.engine, name)
    if json_output:
        print_json({"name": name, "removed": True})
    else:
        print(f"removed exchange {name}")
