"""The review workbench's commands: ``childsafe review export-bank``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, sub_app

__all__ = ["app"]

app = sub_app("Grading what no list knew: graded pictures into a bank.")


@app.command("export-bank")
def review_export_bank_command(
    case_out: Annotated[Path, typer.Argument(help="A scan's output folder, with its grades.")],
    bank: Annotated[str, typer.Option("--bank", help="The bank to add the graded items to (made if missing).")],
    two_person: Annotated[
        bool,
        typer.Option(
            "--two-person/--no-two-person",
            help="Add grades of the most severe category only once a second reviewer confirmed them.",
        ),
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Write the case's reports again with its grades, and add its graded
    pictures and videos to a bank, with who graded them and when."""
    from childsafe.review import export_graded, write_graded_reports
    from childsafe.store import os_user

    with command_context() as context:
        write_graded_reports(case_out, context.settings, os_user())
        result = export_graded(context.engine, case_out, bank, os_user(), two_person)
    if json_output:
        print_json(result.to_dict())
    else:
        print(
            f"{result.bank}: {result.added} graded items added ({result.already_in_bank} already there);"
            f" left out: {result.not_indecent} not indecent, {result.awaiting_confirmation} awaiting a second reviewer"
        )
