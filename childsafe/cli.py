"""The ``childsafe`` command line: each command parses its arguments, calls
one function of the package, and formats the result. No logic lives here.

Conventions (SPEC): ``--json`` for machine output on stdout; progress and
messages on stderr; exit 0 when the job ran (per-item problems are in the
output), 1 when it failed, 2 for bad usage or unparseable input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

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

_stderr = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
T = TypeVar("T")


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
    paths: Annotated[list[str], typer.Argument(help="Files or folders (walked recursively).")],
    json_output: JsonOption = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes to hash with (default: the number of cores).")
    ] = None,
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
        Path | None, typer.Option("--out", help="Folder for the generated samples (default: CHILDSAFE_HOME/demo).")
    ] = None,
) -> None:
    """Generate benign sample images and hash them: a tour on embedded defaults."""
    from childsafe.demo import run_demo

    settings = Settings.from_env()
    with _errors_to_exit_codes():
        summary = run_demo(settings, out)
    if json_output:
        _print_json(summary.to_dict())
        return
    for item in summary.items:
        print(_format_hash_line(item.to_dict()))
    _stderr.print(summary.describe(), highlight=False, soft_wrap=True)


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


@app.command("version")
def version_command(json_output: JsonOption = False) -> None:
    """Print the version of childsafe."""
    if json_output:
        _print_json({"name": "childsafe", "version": __version__})
    else:
        print(f"childsafe {__version__}")


def main() -> None:
    """Entry point of the ``childsafe`` console script."""
    app()
