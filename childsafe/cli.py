"""The ``childsafe`` command line: each command parses its arguments, calls
one function of the package, and formats the result. No logic lives here.

Conventions (SPEC): ``--json`` for machine output on stdout; progress and
messages on stderr; exit 0 when the job ran (per-item problems are in the
output), 1 when it failed, 2 for bad usage or unparseable input.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from childsafe import __version__
from childsafe.config import Settings
from childsafe.errors import ChildsafeError, InputFormatError, UsageError
from childsafe.parallel import default_workers

app = typer.Typer(
    name="childsafe",
    help="Detect known abuse images by hash, deter searches for them, and measure what works.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain one-line usage errors, as SPEC asks
)
db_app = typer.Typer(help="The database: where it is and its schema.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
audit_app = typer.Typer(
    help="The audit log: who did what, chained so tampering shows.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(audit_app, name="audit")
apikey_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(apikey_app, name="apikey")
deter_app = typer.Typer(
    help="Prevention: term and URL lists, checks, counters.", no_args_is_help=True, rich_markup_mode=None
)
deter_terms_app = typer.Typer(
    help="Term lists (licensed; loaded by the operator).", no_args_is_help=True, rich_markup_mode=None
)
deter_urls_app = typer.Typer(
    help="URL lists (licensed; loaded by the operator).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(deter_app, name="deter")
deter_app.add_typer(deter_terms_app, name="terms")
deter_app.add_typer(deter_urls_app, name="urls")
bank_app = typer.Typer(
    help="Hash lists (banks): create, import, list, show, export, delete.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(bank_app, name="bank")
evaluate_app = typer.Typer(
    help="Did a campaign change a count? Before-after rate ratios and interrupted time series.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(evaluate_app, name="evaluate")
cases_app = typer.Typer(help="Case events and the enforcement figures counted from them.", no_args_is_help=True,
                        rich_markup_mode=None)  # fmt: skip
app.add_typer(cases_app, name="cases")
report_app = typer.Typer(help="Printable reports (HTML and PDF) for a council or commissioner.", no_args_is_help=True,
                         rich_markup_mode=None)  # fmt: skip
app.add_typer(report_app, name="report")

_stderr = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
PathsArgument = Annotated[list[str], typer.Argument(help="Files or folders (walked recursively).")]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Processes to work with (default: the number of cores).")
]


def _fail(message: str, code: int) -> NoReturn:
    _stderr.print(f"childsafe: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    """Our exceptions as one-line messages and SPEC exit codes."""
    try:
        yield
    except (UsageError, InputFormatError) as exc:
        _fail(str(exc), 2)
    except ChildsafeError as exc:
        _fail(str(exc), 1)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A progress display on stderr (only when stderr is a terminal); yields
    a function to call with the bytes of each finished item."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} files, {task.fields[mb]:.0f} MB"),
        TimeElapsedColumn(),
        console=_stderr,
        transient=True,
        disable=not _stderr.is_terminal,
    )
    with progress:
        task = progress.add_task(label, total=None, mb=0.0)
        total = 0

        def advance(size: int) -> None:
            nonlocal total
            total += size
            progress.update(task, advance=1, mb=total / 1e6)

        yield advance


def _format_hash_line(item: dict[str, Any]) -> str:
    if item["error"] and not item["sha1"]:
        return f"{item['path']}\tERROR {item['error']}"
    pdq = f"pdq={item['pdq']} q={item['pdq_quality']}" if item["pdq"] else "pdq=-"
    error = f"\tERROR {item['error']}" if item["error"] else ""
    return f"{item['path']}\t{item['mime']}\t{item['size']}\tsha1={item['sha1']}\t{pdq}{error}"


@app.command("hash")
def hash_command(
    paths: PathsArgument,
    json_output: JsonOption = False,
    workers: WorkersOption = None,
) -> None:
    """Hash files: md5, sha1, sha256 and PDQ, one line (JSON Lines with --json) a file."""
    from childsafe.signals import hash_paths

    settings = Settings.from_env()
    with _errors_to_exit_codes(), _progress("hashing") as advance:
        for result in hash_paths(paths, settings.limits, workers or default_workers()):
            item = result.to_dict()
            if json_output:
                _print_json(item)
            else:
                print(_format_hash_line(item), flush=False)
            advance(result.size)


@app.command("demo")
def demo_command(
    json_output: JsonOption = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="A new or empty folder for the demo case, or one an earlier demo made (default: CHILDSAFE_HOME/demo).",
        ),
    ] = None,
) -> None:
    """Build a small benign case and a demo bank, scan it, and say where the report is."""
    from childsafe.demo import run_demo

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        result = run_demo(settings, out)
    if json_output:
        _print_json(
            {
                "folder": str(result.folder),
                "database": result.database,
                "out": str(result.scan.out),
                "summary": result.scan.summary,
                "outputs": result.scan.outputs,
            }
        )
    else:
        print(result.describe())


@db_app.command("upgrade")
def db_upgrade_command(json_output: JsonOption = False) -> None:
    """Bring the database schema up to date (also done automatically on first use)."""
    from childsafe.store import open_database, schema_revision

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        engine = open_database(settings.database_url)
        revision = schema_revision(engine)
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if json_output:
        _print_json({"database": url, "revision": revision})
    else:
        print(f"{url}: schema at revision {revision}")


def _open_engine(settings: Settings) -> Any:
    from childsafe.store import open_database

    return open_database(settings.database_url)


def _open_matcher(settings: Settings) -> Any:
    from childsafe.index import Matcher, index_root

    matcher = Matcher(_open_engine(settings), index_root(settings.home, settings.database_url))
    matcher.sync()
    return matcher


@bank_app.command("create")
def bank_create_command(
    name: Annotated[str, typer.Argument(help="Name of the new bank.")],
    scheme: Annotated[str, typer.Option("--scheme", help="Category scheme: uk, us-vics, ncmec or none.")] = "none",
    kind: Annotated[str, typer.Option("--kind", help="match, or suppress (known false positives: cancels perceptual matches, never exact digests).")] = "match",
    pdq_threshold: Annotated[
        int | None, typer.Option("--pdq-threshold", help="PDQ match distance for this bank (0-63; default 31).")
    ] = None,
    action: Annotated[
        str, typer.Option("--action", help="What a match does in the service: none, webhook, preserve.")
    ] = "none",
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Where webhook events are POSTed.")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option("--webhook-secret", help="Key that signs webhook events (16+ characters; required).")
    ] = None,
    preserve_days: Annotated[
        int | None, typer.Option("--preserve-days", help="How long preserved uploads are kept (default 90).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an empty bank."""
    from childsafe.banks import BankAction, create_bank

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        info = create_bank(
            _open_engine(settings), name, scheme, kind, pdq_threshold,
            BankAction(action, webhook_url, webhook_secret, preserve_days, settings.webhook_allow_private),
        )  # fmt: skip
    _print_bank(info.to_dict(), json_output)


@bank_app.command("set-webhook")
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

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        waiting = set_webhook(
            _open_engine(settings), name, webhook_secret, webhook_url, settings.webhook_allow_private
        )
    if json_output:
        _print_json({"bank": name, "action": "webhook", "waiting_events": waiting})
    else:
        print(f"{name}: webhook set; {waiting} waiting events will use it")


def _print_bank(info: dict[str, Any], json_output: bool) -> None:
    if json_output:
        _print_json(info)
        return
    threshold = info["pdq_threshold"] if info["pdq_threshold"] is not None else "31 (default)"
    signals = ", ".join(f"{k} {v}" for k, v in info["signals"].items()) or "none"
    print(f"{info['name']}: {info['kind']} bank, scheme {info['scheme']}, PDQ threshold {threshold}")
    print(f"  {info['entries']} entries; signals: {signals}")
    for record in info["imports"]:
        print(
            f"  imported {record['file']} (sha256 {record['sha256'][:16]}...) as {record['format']}"
            f" by {record['importer']} at {record['at']}: +{record['added']} ~{record['updated']}"
            f" -{record['removed']} rejected {record['rejected']}"
        )


@bank_app.command("import")
def bank_import_command(
    name: Annotated[str, typer.Argument(help="Bank to import into (created if missing).")],
    file: Annotated[Path, typer.Argument(help="The hash list: text, CSV or VICS JSON.")],
    file_format: Annotated[str, typer.Option("--format", help="auto, text, csv or vics.")] = "auto",
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

    with _errors_to_exit_codes():
        result = import_bank_file(
            _open_engine(Settings.from_env()),
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
        _print_json(result.to_dict())
    else:
        print(
            f"{result.bank}: {result.added} added, {result.updated} updated, {result.removed} removed,"
            f" {result.rejected} rejected"
        )


@bank_app.command("list")
def bank_list_command(json_output: JsonOption = False) -> None:
    """List the banks."""
    from childsafe.banks import list_banks

    with _errors_to_exit_codes():
        banks = [info.to_dict() for info in list_banks(_open_engine(Settings.from_env()))]
    if json_output:
        _print_json(banks)
        return
    if not banks:
        print("no banks yet: `childsafe bank import NAME FILE` creates one")
    for info in banks:
        print(f"{info['name']}\t{info['kind']}\t{info['scheme']}\t{info['entries']} entries")


@bank_app.command("show")
def bank_show_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Show a bank: settings, counts by signal, and where its entries came from."""
    from childsafe.banks import bank_info

    with _errors_to_exit_codes():
        info = bank_info(_open_engine(Settings.from_env()), name)
    _print_bank(info.to_dict(), json_output)


@bank_app.command("export")
def bank_export_command(
    name: Annotated[str, typer.Argument()],
    file_format: Annotated[str, typer.Option("--format", help="text, csv or vics.")] = "csv",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (complete or not at all) instead of stdout.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Export a bank in a format its supplier's tools read; re-importing it gives the same bank."""
    from childsafe.banks import export_bank
    from childsafe.fileio import atomic_file

    with _errors_to_exit_codes():
        engine = _open_engine(Settings.from_env())
        if out is None:
            count = export_bank(engine, name, file_format, sys.stdout)
        else:
            with atomic_file(out) as handle:
                count = export_bank(engine, name, file_format, handle)
    if out is not None:
        if json_output:
            _print_json({"bank": name, "format": file_format, "entries": count, "out": str(out)})
        else:
            print(f"wrote {count} entries of {name} to {out}")


@bank_app.command("delete")
def bank_delete_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Delete a bank and all its entries."""
    from childsafe.banks import delete_bank

    with _errors_to_exit_codes():
        delete_bank(_open_engine(Settings.from_env()), name)
    if json_output:
        _print_json({"bank": name, "deleted": True})
    else:
        print(f"deleted bank {name}")


@bank_app.command("add")
def bank_add_command(
    name: Annotated[str, typer.Argument(help="Bank to add to (must exist).")],
    files: Annotated[list[Path], typer.Argument(help="Media files to hash and add, one entry each.")],
    category: Annotated[str | None, typer.Option("--category", help="Category of the new entries.")] = None,
    source_id: Annotated[str | None, typer.Option("--id", help="Source id (default: each file's name).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Hash media files and add one entry for each (md5, sha1, sha256 and PDQ together)."""
    from childsafe.banks import add_files_to_bank

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        result = add_files_to_bank(_open_engine(settings), name, files, settings.limits, category, source_id)
    if json_output:
        _print_json(result.to_dict())
    else:
        print(f"{name}: {result.added} added, {result.rejected} rejected")
        for problem in result.problems:
            _stderr.print(problem, markup=False, highlight=False, soft_wrap=True)


def _print_matches(matches: list[Any], indent: str = "  ") -> None:
    for match in matches:
        category = f" category {match.category}" if match.category else ""
        source = f" source {match.source_id}" if match.source_id else ""
        print(
            f"{indent}MATCH bank {match.bank} entry {match.entry_id}{source}{category}:"
            f" {match.signal} distance {match.distance} transform {match.transform}"
        )


@app.command("lookup")
def lookup_command(
    queries: Annotated[
        list[str] | None, typer.Argument(help="SIGNAL:VALUE pairs; none: read one a line from stdin.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Match hashes without files (the fast path for systems that hash elsewhere)."""
    from childsafe.signals import parse_signal_value

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        matcher = _open_matcher(settings)
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
                    _print_json({"query": text, "matches": [m.to_dict() for m in matches]})
                else:
                    print(f"{text}\t{len(matches)} match(es)")
                    _print_matches(matches)

        for text in lines:
            if text and not text.startswith("#"):
                batch.append(text)
            if len(batch) >= 10_000:
                run(batch)
                batch = []
        if batch:
            run(batch)


@app.command("match")
def match_command(
    paths: PathsArgument,
    json_output: JsonOption = False,
    workers: WorkersOption = None,
) -> None:
    """Hash files and match each against every bank (trying all 8 rotations and flips)."""
    from childsafe.detect import match_prepared, prepare_paths, useful_steps

    settings = Settings.from_env()
    with _errors_to_exit_codes(), _progress("matching") as advance:
        matcher = _open_matcher(settings)
        steps = useful_steps(matcher, settings.limits.query_variants)
        for prepared in prepare_paths(paths, settings.limits, workers or default_workers(), steps):
            result = prepared.hashes
            matches = match_prepared(matcher, prepared)
            if json_output:
                _print_json({**result.to_dict(), "matches": [m.to_dict() for m in matches]})
            else:
                print(_format_hash_line(result.to_dict()))
                _print_matches(matches)
            advance(result.size)


@app.command("scan")
def scan_command(
    evidence: Annotated[Path, typer.Argument(help="A folder, an archive or a single file; never modified.")],
    case: Annotated[str, typer.Option("--case", help="The case id, written into every report.")],
    out: Annotated[Path, typer.Option("--out", help="A new folder for the reports.")],
    workers: WorkersOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted scan in --out.")] = False,
    report_every: Annotated[
        float, typer.Option("--report-every", help="Seconds between rewrites of the incomplete reports while scanning.")
    ] = 60.0,
    json_output: JsonOption = False,
) -> None:
    """Scan seized media (archives included) and write the case reports."""
    from rich.progress import DownloadColumn, TimeRemainingColumn, TransferSpeedColumn

    from childsafe.triage import ScanProgress, ScanRequest, scan_evidence

    settings = Settings.from_env()
    request = ScanRequest(evidence, case, out, workers or default_workers(), resume, tuple(sys.argv), report_every)
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} items, {task.fields[matches]} matched"),
        TimeRemainingColumn(),
        console=_stderr,
        transient=True,
        disable=not _stderr.is_terminal,
    )
    with _errors_to_exit_codes(), progress:
        task = progress.add_task("scan", total=None, files=0, matches=0)

        def show(state: ScanProgress) -> None:
            progress.update(
                task, completed=state.bytes, total=state.bytes_total or None, files=state.files, matches=state.matches
            )

        result = scan_evidence(request, settings, show)
    if json_output:
        _print_json(
            {
                "out": str(result.out),
                "summary": result.summary,
                "outputs": result.outputs,
                "read_now": result.read_now,
                "done_before": result.done_before,
            }
        )
        return
    summary = result.summary
    print(
        f"Case {case}: {summary['files']} items ({summary['images']} images, {summary['videos']} videos),"
        f" {summary['errors']} with errors"
    )
    print(
        f"  matched: {summary['matched_files']} items, {summary['matched_unique']} distinct;"
        f" images left for review: {summary['unmatched_images']}"
    )
    for label, counts in summary["by_category"].items():
        print(f"  category {label}: {counts['files']} files, {counts['unique']} unique")
    print(f"Reports in {result.out}: " + ", ".join(result.outputs))


@audit_app.command("verify")
def audit_verify_command(
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="A scan's manifest.json: also check the log still holds its audit anchor."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check the audit log's hash chain; exit 1 if an event was changed, added, moved or removed."""
    from childsafe.store import anchor_from_manifest, verify_audit_chain

    with _errors_to_exit_codes():
        anchor = anchor_from_manifest(manifest) if manifest is not None else None
        report = verify_audit_chain(_open_engine(Settings.from_env()), anchor)
    if json_output:
        _print_json(report.to_dict())
    elif report.intact:
        anchored = f"; holds the manifest's anchor (event {anchor.events})" if anchor else ""
        head = report.head.head if report.head else ""
        print(f"audit log intact: {report.events} events, each chained to the one before{anchored}; head {head}")
    elif report.first_broken is None:
        print(f"audit log BROKEN: {report.reason}")
    else:
        print(f"audit log BROKEN at event {report.first_broken}: {report.reason}")
    if not report.intact:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list_command(
    action: Annotated[str | None, typer.Option("--action", help="Only events of this action (e.g. scan).")] = None,
    json_output: JsonOption = False,
) -> None:
    """List audit events, oldest first (JSON Lines with --json)."""
    from childsafe.store import audit_events

    with _errors_to_exit_codes():
        events = audit_events(_open_engine(Settings.from_env()), action)
    for event in events:
        record = {
            "id": event.id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "detail": event.detail,
        }
        if json_output:
            _print_json(record)
        else:
            print(f"{record['id']}\t{record['at']}\t{event.actor}\t{event.action}\t{json.dumps(event.detail)[:200]}")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (matching, banks) with uvicorn."""
    import logging

    import uvicorn

    from childsafe.store import open_database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with _errors_to_exit_codes():
        open_database(Settings.from_env().database_url).dispose()  # migrate once, before the workers start
    uvicorn.run(
        "childsafe.service.app:create_app", factory=True, host=host, port=port, workers=workers,
        log_level="warning", access_log=False,
    )  # fmt: skip


@apikey_app.command("create")
def apikey_create_command(
    name: Annotated[str, typer.Argument(help="A name for the key (who or what uses it).")],
    role: Annotated[str, typer.Option("--role", help="admin, curator, matcher or deter.")],
    json_output: JsonOption = False,
) -> None:
    """Make an API key; it is printed once and stored only as a hash."""
    from childsafe.actions.keys import create_api_key

    with _errors_to_exit_codes():
        key = create_api_key(_open_engine(Settings.from_env()), name, role)
    if json_output:
        _print_json({"name": name, "role": role, "key": key})
    else:
        print(key)
        _stderr.print(f"API key {name!r} ({role}). It is shown only now: store it safely.", highlight=False)


@apikey_app.command("list")
def apikey_list_command(json_output: JsonOption = False) -> None:
    """List API keys (names and roles; never the keys)."""
    from childsafe.actions.keys import list_api_keys

    with _errors_to_exit_codes():
        keys = [k.to_dict() for k in list_api_keys(_open_engine(Settings.from_env()))]
    if json_output:
        _print_json(keys)
    for key in [] if json_output else keys:
        print(f"{key['name']}\t{key['role']}\t{key['created_at']}\t{'revoked' if key['revoked'] else 'active'}")


@apikey_app.command("revoke")
def apikey_revoke_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Revoke an API key: it stops working within a second."""
    from childsafe.actions.keys import revoke_api_key

    with _errors_to_exit_codes():
        revoke_api_key(_open_engine(Settings.from_env()), name)
    if json_output:
        _print_json({"name": name, "revoked": True})
    else:
        print(f"revoked {name}")


@app.command("webhooks")
def webhooks_command(
    dead: Annotated[bool, typer.Option("--dead", help="Only events that could not be delivered.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List the webhook outbox: each event, its attempts and whether it was delivered."""
    from sqlalchemy import select

    from childsafe.store.models import WebhookEvent

    with _errors_to_exit_codes():
        engine = _open_engine(Settings.from_env())
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if dead:
            query = query.where(WebhookEvent.dead_at.is_not(None))
        with engine.connect() as connection:
            events = connection.execute(query).all()
    for event in events:
        state = "delivered" if event.delivered_at else ("dead" if event.dead_at else "pending")
        record = {"id": event.id, "bank": event.bank, "url": event.url, "state": state, "attempts": event.attempts,
                  "created_at": event.created_at.isoformat(), "last_error": event.last_error}  # fmt: skip
        if json_output:
            _print_json(record)
        else:
            print(f"{event.id}\t{event.bank}\t{state}\t{event.attempts} attempts\t{event.last_error or ''}")


@app.command("purge-preserved")
def purge_preserved_command(json_output: JsonOption = False) -> None:
    """Delete preserved uploads whose retention period has passed (each one audited)."""
    from childsafe.actions.preservation import purge_expired

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        purged = purge_expired(_open_engine(settings), settings.home)
    if json_output:
        _print_json({"purged": purged})
    else:
        print(f"purged {purged} preserved upload(s) past their retention")


def _import_deter_list(kind: str, file: Path, list_name: str, lang: str, json_output: bool) -> None:
    from childsafe.deter.lists import import_list

    with _errors_to_exit_codes():
        result = import_list(_open_engine(Settings.from_env()), kind, file, list_name, lang)
    if json_output:
        _print_json(result.to_dict())
    else:
        print(f"{result.list}: {result.added} {kind}s added, {result.total} in the list")


@deter_terms_app.command("import")
def deter_terms_import_command(
    file: Annotated[Path, typer.Argument(help="One term a line; # starts a comment.")],
    list_name: Annotated[str, typer.Option("--list", help="Name of the list.")] = "terms",
    lang: Annotated[str, typer.Option("--lang", help="Language of the terms.")] = "en",
    json_output: JsonOption = False,
) -> None:
    """Add a file of terms to a term list (entries already there are not added again)."""
    _import_deter_list("term", file, list_name, lang, json_output)


@deter_urls_app.command("import")
def deter_urls_import_command(
    file: Annotated[Path, typer.Argument(help="One URL a line; an entry ending in * is a prefix.")],
    list_name: Annotated[str, typer.Option("--list", help="Name of the list.")] = "urls",
    json_output: JsonOption = False,
) -> None:
    """Add a file of URLs to a URL list."""
    _import_deter_list("url", file, list_name, "", json_output)


@deter_app.command("check")
def deter_check_command(
    text: Annotated[str, typer.Argument(help="The search text to check.")],
    url: Annotated[str | None, typer.Option("--url", help="A URL to check as well.")] = None,
    region: Annotated[str, typer.Option("--region", help="ISO 3166 region of the person (GB, GB-SCT, US...).")] = "GB",
    lang: Annotated[str, typer.Option("--lang", help="Language of the warning.")] = "en",
    json_output: JsonOption = False,
) -> None:
    """Check a search (and a URL): whether to intercept, and the warning with help to show."""
    from childsafe.deter.prevention import Prevention

    with _errors_to_exit_codes():
        settings = Settings.from_env()
        prevention = Prevention(_open_engine(settings), settings.help_resources, settings.warning_texts)
        answer = prevention.check(text, url, region, lang)
    if json_output:
        _print_json(answer)
    elif not answer["intercept"]:
        print("no match: nothing to intercept")
    else:
        print(f"INTERCEPT ({answer['matched']['kind']} list {answer['matched']['list']})")
        print(answer["warning"]["title"])
        for resource in answer["warning"]["resources"]:
            print(f"  {resource['name']}: {resource['phone'] or ''} {resource['url'] or ''}")


@deter_app.command("stats")
def deter_stats_command(json_output: JsonOption = False) -> None:
    """Counters of interceptions and help clicks per day, region, list and outcome (counts under 10 shown as <10)."""
    from childsafe.deter.counters import deter_stats

    with _errors_to_exit_codes():
        stats = deter_stats(_open_engine(Settings.from_env()))
    if json_output:
        _print_json(stats)
        return
    for row in stats:
        print(f"{row['day']}\t{row['region']}\t{row['list']}\t{row['outcome']}\t{row['count']}")


def _date_option(option: str, text: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r:.40} is not a date (YYYY-MM-DD)") from None


SubjectOption = Annotated[str, typer.Option("--subject", help="What is counted, for the sentences: 'Help-seeking'.")]


@evaluate_app.command("before-after")
def evaluate_before_after_command(
    before: Annotated[int, typer.Option("--before", help="Events in the period before.")],
    after: Annotated[int, typer.Option("--after", help="Events in the period after.")],
    before_days: Annotated[float, typer.Option("--before-days", help="Length of the period before.")] = 1.0,
    after_days: Annotated[float, typer.Option("--after-days", help="Length of the period after.")] = 1.0,
    control_before: Annotated[
        int | None, typer.Option("--control-before", help="A control region's events before.")
    ] = None,
    control_after: Annotated[
        int | None, typer.Option("--control-after", help="The control region's events after.")
    ] = None,
    subject: SubjectOption = "The rate",
    json_output: JsonOption = False,
) -> None:
    """The rate ratio of two periods with its exact 95% interval and p-value (with a control: the ratio of ratios)."""
    from childsafe.measure.rates import before_after, describe_change

    with _errors_to_exit_codes():
        result = before_after(before, after, before_days, after_days, control_before, control_after)
    if json_output:
        _print_json(result.to_dict())
    else:
        print(describe_change(result, subject))


def _campaign_series(
    file: Path | None, counters: str | None, period: str, start_text: str, region: str | None, control: str | None
) -> Any:
    """The series (from a CSV file or the prevention counters), fitted; and the whole-period rate ratio."""
    from childsafe.measure.series import deterrence_series, interrupted_series, read_series_csv, whole_period_change

    start = _date_option("--start", start_text)
    if (file is None) == (counters is None):
        raise UsageError("give a FILE.csv or --counters OUTCOME (childsafe's own prevention counters), not both")
    if file is not None:
        series = read_series_csv(file, [name for name in (region, control) if name is not None])
        if region is None:
            if len(series) > 1:
                raise UsageError(f"{file.name} holds {len(series)} regions: choose one with --region")
            region = next(iter(series))
        treated, controls = series[region], series[control] if control else None
    else:
        engine = _open_engine(Settings.from_env())
        treated = deterrence_series(engine, str(counters), region, period)
        controls = deterrence_series(engine, str(counters), control, period) if control else None
    result = interrupted_series(treated, start, controls, region, control)
    return result, whole_period_change(treated, start)


FileArgument = Annotated[Path | None, typer.Argument(help="Counts as date,region,count[,days] (one row a period).")]
CountersOption = Annotated[
    str | None,
    typer.Option("--counters", help="Use childsafe's prevention counters for this outcome instead of a file."),
]
PeriodOption = Annotated[str, typer.Option("--period", help="With --counters: week or month.")]
StartOption = Annotated[str, typer.Option("--start", help="The campaign's first day (YYYY-MM-DD).")]
RegionOption = Annotated[str | None, typer.Option("--region", help="The region to evaluate.")]
ControlOption = Annotated[str | None, typer.Option("--control", help="A control region without the campaign.")]


@evaluate_app.command("series")
def evaluate_series_command(
    start: StartOption,
    file: FileArgument = None,
    region: RegionOption = None,
    control: ControlOption = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the series, fit and counterfactual to this PNG.")
    ] = None,
    counters: CountersOption = None,
    period: PeriodOption = "week",
    subject: SubjectOption = "Count",
    json_output: JsonOption = False,
) -> None:
    """Interrupted time series: the level and trend change at --start, with 95% intervals."""
    from childsafe.measure.plots import series_figure
    from childsafe.measure.rates import percent_text

    with _errors_to_exit_codes():
        result, _ = _campaign_series(file, counters, period, start, region, control)
        if plot is not None:
            title = f"{subject}, {result.region or 'all regions'}: start {result.start}"
            series_figure(result, plot, title, subject)
    if json_output:
        _print_json(result.to_dict())
        return
    level, trend = result.level_change, result.trend_change
    print(f"Level change at {result.start}: {percent_text(level.ratio)} "
          f"(95% CI {percent_text(level.ci95[0])} to {percent_text(level.ci95[1])})")  # fmt: skip
    print(f"Trend change per period: {percent_text(trend.ratio)} "
          f"(95% CI {percent_text(trend.ci95[0])} to {percent_text(trend.ci95[1])})")  # fmt: skip
    print(f"Method: {result.method}; overdispersion {result.dispersion:.2f}")


@cases_app.command("import")
def cases_import_command(
    file: Annotated[Path, typer.Argument(help="Case events: case_id,date,event,area.")], json_output: JsonOption = False
) -> None:
    """Add case events (referral, opened, warrant, charged, closed); rows already held add nothing."""
    from childsafe.measure.cases import import_cases

    with _errors_to_exit_codes():
        imported = import_cases(_open_engine(Settings.from_env()), file)
    if json_output:
        _print_json(imported.to_dict())
    else:
        print(f"{imported.added} new case events ({imported.rows} rows read); {imported.total} held")


FromOption = Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")]
ToOption = Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), included.")]
AreaOption = Annotated[str | None, typer.Option("--area", help="Only this area.")]


@cases_app.command("stats")
def cases_stats_command(
    first: FromOption, last: ToOption, area: AreaOption = None, json_output: JsonOption = False
) -> None:
    """Referrals (and their change on the period before), warrants, charges and live cases."""
    from childsafe.measure.cases import case_stats

    with _errors_to_exit_codes():
        stats = case_stats(
            _open_engine(Settings.from_env()), _date_option("--from", first), _date_option("--to", last), area
        )
    if json_output:
        _print_json(stats.to_dict())
        return
    change = "n/a" if stats.referrals_change_pct is None else f"{stats.referrals_change_pct:+.1f}%"
    print(f"referrals {stats.referrals} (previous period {stats.referrals_previous}, {change}); "
          f"warrants {stats.warrants}; charged {stats.charged}; live cases {stats.live_cases}")  # fmt: skip


OutOption = Annotated[Path, typer.Option("--out", help="Folder for report.html, report.pdf, chart.png, figures.json.")]


@report_app.command("campaign")
def report_campaign_command(
    out: OutOption,
    start: StartOption,
    file: FileArgument = None,
    region: RegionOption = None,
    control: ControlOption = None,
    counters: CountersOption = None,
    period: PeriodOption = "week",
    subject: SubjectOption = "Help-seeking",
    title: Annotated[str | None, typer.Option("--title", help="The report's title.")] = None,
) -> None:
    """A campaign's evaluation as an HTML page and a PDF, with the chart."""
    from childsafe.measure.reports import campaign_page, write_report

    with _errors_to_exit_codes():
        result, overall = _campaign_series(file, counters, period, start, region, control)
        files = write_report(campaign_page(result, overall, subject, title), out)
    print(f"wrote {', '.join(str(path) for path in files)}")


@report_app.command("enforcement")
def report_enforcement_command(out: OutOption, first: FromOption, last: ToOption, area: AreaOption = None) -> None:
    """Enforcement figures for a period as an HTML page and a PDF, with events by month."""
    from childsafe.measure.cases import case_stats, monthly_events
    from childsafe.measure.reports import enforcement_page, write_report

    with _errors_to_exit_codes():
        engine = _open_engine(Settings.from_env())
        start, end = _date_option("--from", first), _date_option("--to", last)
        stats = case_stats(engine, start, end, area)
        files = write_report(enforcement_page(stats, monthly_events(engine, start, end, area), start, end, area), out)
    print(f"wrote {', '.join(str(path) for path in files)}")


@app.command("version")
def version_command(json_output: JsonOption = False) -> None:
    """Print the version of childsafe."""
    if json_output:
        _print_json({"name": "childsafe", "version": __version__})
    else:
        print(f"childsafe {__version__}")


def main() -> None:
    """Entry point of the ``childsafe`` console script."""
    # Everything childsafe writes - the database, a scan's state and reports,
    # preserved uploads, saved indexes - concerns criminal cases: readable by
    # its owner only, whatever umask the shell had (workers inherit it).
    os.umask(0o077)
    try:
        with _errors_to_exit_codes():  # also what a command raises outside its own (a bad setting, say)
            app()
    except typer.Exit as stop:  # raised by _fail here, outside Typer
        sys.exit(stop.exit_code)
