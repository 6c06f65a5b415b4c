"""What every command of the ``childsafe`` command line shares: the stderr
console, the option types used by several commands, errors as one line and
an exit code, JSON output, the progress display, and the one way a command
gets its settings and database engine (:func:`command_context`).

Start-up time of ``childsafe --help`` matters, so nothing here imports
SQLAlchemy or the heavier parts of the package until a command runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from childsafe.config import Settings
from childsafe.errors import ChildsafeError, InputFormatError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "CommandContext",
    "JsonOption",
    "PathsArgument",
    "WorkersOption",
    "command_context",
    "date_option",
    "errors_to_exit_codes",
    "fail",
    "print_json",
    "progress",
    "stderr",
    "sub_app",
]

#: Progress and messages go to stderr; stdout carries only the output proper.
stderr = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
PathsArgument = Annotated[list[str], typer.Argument(help="Files or folders (walked recursively).")]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Processes to work with (default: the number of cores).")
]


def sub_app(help_text: str) -> typer.Typer:
    """A group of commands (``childsafe bank ...``) with the root's conventions:
    shows its help when called bare, plain one-line usage errors (docs/spec.md)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


def fail(message: str, code: int) -> NoReturn:
    """Print ``childsafe: error: MESSAGE`` on one line of stderr and exit with ``code``."""
    stderr.print(f"childsafe: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def errors_to_exit_codes(options: Mapping[str, str] | None = None) -> Iterator[None]:
    """Our exceptions as one-line messages and docs/spec.md exit codes: 2 for bad usage
    or unparseable input, 1 for any other failure. ``options`` names the
    option of an input whose option is not its name with dashes (``{"last": "--to"}``)."""
    try:
        yield
    except (UsageError, InputFormatError) as exc:
        fail(_for_cli(exc, options or {}), 2)
    except ChildsafeError as exc:
        fail(_for_cli(exc, options or {}), 1)


def _for_cli(error: ChildsafeError, options: Mapping[str, str]) -> str:
    """The message with the input it is about named as its option: ``--webhook-secret``."""
    if not error.field:
        return str(error)
    return error.worded(options.get(error.field, f"--{error.field.replace('_', '-')}"))


class CommandContext:
    """A command's settings and database engine, each made on first use (a
    command that needs neither reads no setting and opens no database), and
    the engine disposed by :func:`command_context` when the command ends."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        """The settings from the environment, read once."""
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def engine(self) -> Engine:
        """The database engine, opened (and migrated if needed) once."""
        if self._engine is None:
            from childsafe.store import open_database

            self._engine = open_database(self.settings.database_url)
        return self._engine

    def close(self) -> None:
        """Dispose of the engine if one was opened."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


@contextmanager
def command_context(options: Mapping[str, str] | None = None) -> Iterator[CommandContext]:
    """The settings and engine of one command, inside the error mapping of
    :func:`errors_to_exit_codes` (a bad setting is a usage error, exit 2); the
    engine is disposed at the end, whether the command succeeded or not.
    ``options``: as for :func:`errors_to_exit_codes`."""
    with errors_to_exit_codes(options):
        context = CommandContext()
        try:
            yield context
        finally:
            context.close()


def print_json(obj: Any) -> None:
    """One JSON document (or one JSON Lines record) on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


@contextmanager
def progress(label: str) -> Iterator[Callable[[int], None]]:
    """A progress display on stderr (only when stderr is a terminal); yields
    a function to call with the bytes of each finished item."""
    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} files, {task.fields[mb]:.0f} MB"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with display:
        task = display.add_task(label, total=None, mb=0.0)
        total = 0

        def advance(size: int) -> None:
            nonlocal total
            total += size
            display.update(task, advance=1, mb=total / 1e6)

        yield advance


def date_option(option: str, text: str) -> date:
    """``text`` as a date; a ``UsageError`` naming ``option`` when it is not one."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r:.40} is not a date (YYYY-MM-DD)") from None
