"""Hash lists: ``childsafe bank create|set-webhook|import|list|show|export|delete|add``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, stderr, sub_app

__all__ = ["app"]

app = sub_app("Hash lists (banks): create, import, list, show, export, delete.")


@app.command("create")
def bank_create_command(
    name: Annotated[str, typer.Argument(help="Name of the new bank.")],
    scheme: Annotated[str, typer.Option("--scheme", help="Category scheme: uk, us-vics, ncmec or none.")] = "none",
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="match, or suppress (known false positives: cancels perceptual matches, never exact digests).",
        ),
    ] = "match",
    pdq_threshold: Annotated[
        int | None, typer.Option("--pdq-threshold", help="PDQ match distance for this bank (0-63; default 31).")
    ] = None,
    action: Annotated[
        str,
        typer.Option(
            "--action", help="What a match does in the service: none, webhook, preserve, refer-ncmec, refer-nca."
        ),
    ] = "none",
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Where webhook events are POSTed.")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option("--webhook-secret", help="Key that signs webhook events (16+ characters; required).")
    ] = None,
    preserve_days: Annotated[
        int | None, typer.Option("--preserve-days", help="How long preserved uploads are kept (default 90).")
    ] = None,
    vpdq_query_percent: Annotated[
        float | None,
        typer.Option("--vpdq-query-percent", help="Videos: share of the query's frames that must match (default 80)."),
    ] = None,
    vpdq_compared_percent: Annotated[
        float | None,
        typer.Option(
            "--vpdq-compared-percent",
            help="Videos: share of the known video's frames that must match (default 0; 80 with query 0 finds compilations).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an empty bank."""
    from childsafe.banks import BankAction, VideoRule, create_bank

    with command_context() as context:
        info = create_bank(
            context.engine, name, scheme, kind, pdq_threshold,
            BankAction(action, webhook_url, webhook_secret, preserve_days, context.settings.webhook_allow_private),
            video_rule=VideoRule(vpdq_query_percent, vpdq_compared_percent),
        )  # fmt: skip
    _print_bank(info.to_dict(), json_output)


@app.command("set-webhook")
def bank_set_webhook_command(
    name: Annotated[str, typer.Argument(help="The bank.")],
    webhook_secret: Annotated[
        str, typer.Option("--webhook-secret", help="Key that signs webhook events (16+ characters).")
    ],
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="Where webhook events are POSTed (default: the bank's URL).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Give a bank a webhook, or a new secret or URL; events waiting in the outbox use them."""
    from childsafe.banks import set_webhook

    with command_context() as context:
        waiting = set_webhook(context.engine, name, webhook_secret, webhook_url, context.settings.webhook_allow_private)
    if json_output:
        print_json({"bank": name, "action": "webhook", "waiting_events": waiting})
    else:
        print(f"{name}: webhook set; {waiting} waiting events will use it")


def _print_bank(info: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(info)
        return
    threshold = info["pdq_threshold"] if info["pdq_threshold"] is not None else "31 (default)"
    signals = ", ".join(f"{k} {v}" for k, v in info["signals"].items()) or "none"
    print(f"{info['name']}: {info['kind']} bank, scheme {info['scheme']}, PDQ threshold {threshold}")
    if info["vpdq_query_percent"] is not None or info["vpdq_compared_percent"] is not None:
        query, compared = info["vpdq_query_percent"], info["vpdq_compared_percent"]
        print(f"  videos match at {80.0 if query is None else query}% of the query's frames"
              f" and {0.0 if compared is None else compared}% of the known video's")  # fmt: skip
    print(f"  {info['entries']} entries; signals: {signals}")
    for record in info["imports"]:
        print(
            f"  imported {record['file']} (sha256 {record['sha256'][:16]}...) as {record['format']}"
            f" by {record['importer']} at {record['at']}: +{record['added']} ~{record['updated']}"
            f" -{record['removed']} rejected {record['rejected']}"
        )


@app.command("import")
def bank_import_command(
    name: Annotated[str, typer.Argument(help="Bank to import into (created if missing).")],
    file: Annotated[Path, typer.Argument(help="The hash list: text, CSV or VICS JSON.")],
    file_format: Annotated[
        str, typer.Option("--format", help="auto, text, csv, vics or vpdq (one video's frame hashes).")
    ] = "auto",
    signal: Annotated[
        str | None, typer.Option("--signal", help="Signal of bare hashes (needed for 64-hex: sha256 or pdq).")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="Category for entries without one.")] = None,
    vics_profile: Annotated[
        str | None,
        typer.Option("--vics-profile", help="How VICS Category numbers map: us or uk (default: uk for uk banks)."),
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Make the bank equal to the file.")] = False,
    scheme: Annotated[str, typer.Option("--scheme", help="Scheme of the bank if it is created.")] = "none",
    kind: Annotated[str, typer.Option("--kind", help="Kind of the bank if it is created.")] = "match",
    json_output: JsonOption = False,
) -> None:
    """Import a hash list into a bank: all of it or nothing; importing again adds nothing."""
    from childsafe.banks import import_bank_file

    with command_context() as context:
        result = import_bank_file(
            context.engine,
            name,
            file,
            file_format=file_format,
            signal=signal,
            category=category,
            vics_profile=vics_profile,
            replace=replace,
            create={"scheme": scheme, "kind": kind},
        )
    if json_output:
        print_json(result.to_dict())
    else:
        print(
            f"{result.bank}: {result.added} added, {result.updated} updated, {result.removed} removed,"
            f" {result.rejected} rejected"
        )


@app.command("list")
def bank_list_command(json_output: JsonOption = False) -> None:
    """List the banks."""
    from childsafe.banks import list_banks

    with command_context() as context:
        banks = [info.to_dict() for info in list_banks(context.engine)]
    if json_output:
        print_json(banks)
        return
    if not banks:
        print("no banks yet: `childsafe bank import NAME FILE` creates one")
    for info in banks:
        print(f"{info['name']}\t{info['kind']}\t{info['scheme']}\t{info['entries']} entries")


@app.command("show")
def bank_show_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Show a bank: settings, counts by signal, and where its entries came from."""
    from childsafe.banks import bank_info

    with command_context() as context:
        info = bank_info(context.engine, name)
    _print_bank(info.to_dict(), json_output)


@app.command("export")
def bank_export_command(
    name: Annotated[str, typer.Argument()],
    file_format: Annotated[
        str, typer.Option("--format", help="text, csv, vics or vpdq (a bank of one video).")
    ] = "csv",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (complete or not at all) instead of stdout.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Export a bank in a format its supplier's tools read; re-importing it gives the same bank."""
    from childsafe.banks import export_bank, export_bank_file

    with command_context() as context:
        if out is None:
            count = export_bank(context.engine, name, file_format, sys.stdout)
        else:
            count = export_bank_file(context.engine, name, file_format, out)
    if out is not None:
        if json_output:
            print_json({"bank": name, "format": file_format, "entries": count, "out": str(out)})
        else:
            print(f"wrote {count} entries of {name} to {out}")


@app.command("delete")
def bank_delete_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Delete a bank and all its entries."""
    from childsafe.banks import delete_bank

    with command_context() as context:
        delete_bank(context.engine, name)
    if json_output:
        print_json({"bank": name, "deleted": True})
    else:
        print(f"deleted bank {name}")


@app.command("add")
def bank_add_command(
    name: Annotated[str, typer.Argument(help="Bank to add to (must exist).")],
    files: Annotated[list[Path], typer.Argument(help="Media files to hash and add, one entry each.")],
    category: Annotated[str | None, typer.Option("--category", help="Category of the new entries.")] = None,
    source_id: Annotated[str | None, typer.Option("--id", help="Source id (default: each file's name).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Hash media files and add one entry for each (md5, sha1, sha256 and PDQ together)."""
    from childsafe.banks import add_files_to_bank

    with command_context() as context:
        result = add_files_to_bank(context.engine, name, files, context.settings.limits, category, source_id)
    if json_output:
        print_json(result.to_dict())
    else:
        print(f"{name}: {result.added} added, {result.rejected} rejected")
        for problem in result.problems:
            stderr.print(problem, markup=False, highlight=False, soft_wrap=True)
