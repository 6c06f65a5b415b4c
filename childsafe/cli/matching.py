"""Hashing and matching: ``childsafe hash``, ``lookup`` and ``match``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from childsafe.cli._common import (
    CommandContext,
    JsonOption,
    PathsArgument,
    WorkersOption,
    command_context,
    print_json,
    progress,
    sub_app,
)
from childsafe.errors import UsageError
from childsafe.parallel import default_workers

if TYPE_CHECKING:
    from childsafe.index import Match, Matcher

__all__ = ["format_hash_line", "hash_command", "lookup_command", "match_command", "print_matches", "index_app"]

index_app = sub_app("The match index: snapshots that new service replicas start from.")


def format_hash_line(item: dict[str, Any]) -> str:
    """One file's hashes as the tab-separated line ``childsafe hash`` prints."""
    if item["error"] and not item["sha1"]:
        return f"{item['path']}\tERROR {item['error']}"
    pdq = f"pdq={item['pdq']} q={item['pdq_quality']}" if item["pdq"] else "pdq=-"
    error = f"\tERROR {item['error']}" if item["error"] else ""
    return f"{item['path']}\t{item['mime']}\t{item['size']}\tsha1={item['sha1']}\t{pdq}{error}"


def print_matches(matches: list[Match], indent: str = "  ") -> None:
    """One ``MATCH ...`` line a match, under the line of what was matched."""
    for match in matches:
        category = f" category {match.category}" if match.category else ""
        source = f" source {match.source_id}" if match.source_id else ""
        print(
            f"{indent}MATCH bank {match.bank} entry {match.entry_id}{source}{category}:"
            f" {match.signal} distance {match.distance} transform {match.transform}"
        )


def open_matcher(context: CommandContext, part_only: bool = False) -> Matcher:
    """A matcher over the command's database, brought up to date with the
    banks (of one shard only if ``part_only``: see ``index.open_matcher``)."""
    from childsafe.index import open_matcher as matcher_for

    matcher = matcher_for(context.engine, context.settings, part_only=part_only)
    matcher.sync()
    return matcher


def hash_command(
    paths: PathsArgument,
    json_output: JsonOption = False,
    workers: WorkersOption = None,
    vpdq_out: Annotated[
        Path | None,
        typer.Option("--vpdq-out", help="Write each video's frame hashes here, in Meta's vPDQ text format."),
    ] = None,
) -> None:
    """Hash files: md5, sha1, sha256 and PDQ (vPDQ for videos), one line (JSON Lines with --json) a file."""
    from childsafe.signals import hash_paths
    from childsafe.signals.vpdq import vpdq_folder, write_vpdq_file

    with command_context({"vpdq_out": "--vpdq-out"}) as context, progress("hashing") as advance:
        if vpdq_out is not None:
            vpdq_folder(vpdq_out)
        for result in hash_paths(paths, context.settings.limits, workers or default_workers(), videos=True):
            if vpdq_out is not None and result.video is not None and result.video.features:
                write_vpdq_file(vpdq_out, result.path, result.video.features)
            item = result.to_dict()
            if json_output:
                print_json(item)
            else:
                print(format_hash_line(item), flush=False)
            advance(result.size)


def lookup_command(
    queries: Annotated[
        list[str] | None, typer.Argument(help="SIGNAL:VALUE pairs; none: read one a line from stdin.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Match hashes without files (the fast path for systems that hash elsewhere)."""
    from childsafe.signals import parse_signal_value

    with command_context() as context:
        matcher = open_matcher(context)
        lines = queries if queries else (line.strip() for line in sys.stdin)
        batch: list[str] = []

        def run(batch: list[str]) -> None:
            parsed = []
            for text in batch:
                try:
                    parsed.append(parse_signal_value(text))
                except UsageError as exc:
                    raise UsageError(f"query {text!r:.80}: {exc}") from None
            for text, matches in zip(batch, matcher.lookup(parsed), strict=True):
                if json_output:
                    print_json({"query": text, "matches": [m.to_dict() for m in matches]})
                else:
                    print(f"{text}\t{len(matches)} match(es)")
                    print_matches(matches)

        for text in lines:
            if text and not text.startswith("#"):
                batch.append(text)
            if len(batch) >= 10_000:
                run(batch)
                batch = []
        if batch:
            run(batch)


def match_command(
    paths: PathsArgument,
    json_output: JsonOption = False,
    workers: WorkersOption = None,
) -> None:
    """Hash files and match each against every bank (trying all 8 rotations and flips)."""
    from childsafe.detect import match_prepared, prepare_paths, useful_steps

    with command_context() as context, progress("matching") as advance:
        settings = context.settings
        matcher = open_matcher(context)
        steps = useful_steps(matcher, settings.limits.query_variants)
        for prepared in prepare_paths(paths, settings.limits, workers or default_workers(), steps):
            result = prepared.hashes
            matches = match_prepared(matcher, prepared)
            if json_output:
                print_json({**result.to_dict(), "matches": [m.to_dict() for m in matches]})
            else:
                print(format_hash_line(result.to_dict()))
                print_matches(matches)
            advance(result.size)


@index_app.command("snapshot")
def index_snapshot_command(
    folder: Annotated[Path, typer.Argument(help="The folder to save every bank's index into (made if missing).")],
    json_output: JsonOption = False,
) -> None:
    """Save every bank's index, up to date, into FOLDER: a replica given it as
    CHILDSAFE_INDEX_SNAPSHOT loads it and then follows the change log, instead
    of building its index from the database."""
    with command_context() as context:
        written = open_matcher(context, part_only=True).write_snapshot(folder)
    if json_output:
        print_json(written)
        return
    for bank in written["banks"]:
        sizes = ", ".join(f"{signal} {size:,}" for signal, size in bank["sizes"].items() if size)
        print(f"{bank['bank']}: change {bank['seq']} ({sizes or 'empty'})")
    print(f"saved into {written['folder']} at change {written['seq']}")
