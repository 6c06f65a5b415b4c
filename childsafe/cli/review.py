"""The review workbench's commands: ``childsafe review CASE_OUT`` (the web
app) and ``childsafe review export-bank CASE_OUT --bank NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from childsafe.cli._common import JsonOption, command_context, print_json

__all__ = ["app"]


class _ServeByDefault(TyperGroup):
    """``childsafe review CASE_OUT`` runs ``serve``; ``childsafe review export-bank ...`` its command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: Typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ServeByDefault,
    help="Grading what no list knew: the review app (childsafe review CASE_OUT), graded pictures into a bank.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("serve", hidden=True)
def review_serve_command(
    case_out: Annotated[Path, typer.Argument(help="A scan's output folder.")],
    host: Annotated[
        str, typer.Option("--host", help="Where to listen: this machine (default), or any other with TLS.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8001,
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Who grades, in the grades and the audit log (default: you).")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM): needed off loopback.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")] = None,
    break_minutes: Annotated[
        float | None,
        typer.Option(
            "--break-minutes",
            help="Minutes of reviewing after which the page suggests a break (default: CHILDSAFE_REVIEW_BREAK_MINUTES, 45).",
        ),
    ] = None,
) -> None:
    """Serve the review app over a scanned case; prints a one-time login link."""
    import uvicorn

    from childsafe.review.app import ReviewSession, check_bind, create_review_app
    from childsafe.store import os_user

    with command_context() as context:
        secure = check_bind(host, tls_cert, tls_key)
        minutes = context.settings.review_break_minutes if break_minutes is None else break_minutes
        session = ReviewSession(
            case_out, reviewer or os_user(), context.engine, context.settings, break_minutes=minutes, secure=secure
        )
        session.load()
        print(f"Review {len(session.groups)} groups ({len(session.items)} items) at:")
        print(f"  {'https' if secure else 'http'}://{host}:{port}/login?token={session.login_token}")
        tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if secure else {}
        uvicorn.run(create_review_app(session), host=host, port=port, log_level="warning", **tls)  # type: ignore[arg-type]


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
        if result.videos_without_frames:
            print(result.frames_note())
