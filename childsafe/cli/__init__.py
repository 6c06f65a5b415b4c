"""The ``childsafe`` command line: each command parses its arguments, calls
one function of the package, and formats the result. No logic lives here.

Conventions (docs/spec.md): ``--json`` for machine output on stdout; progress and
messages on stderr; exit 0 when the job ran (per-item problems are in the
output), 1 when it failed, 2 for bad usage or unparseable input.

One module per area holds its commands (``matching``, ``banks``, ``exchanges``, ``triage``,
``service``, ``deter``, ``measure``, ``referrals``) over ``_common``; this module puts them
together as the ``childsafe`` app, in the order ``childsafe --help`` lists
them, and holds ``db upgrade``, ``version`` and the entry point ``main``.
"""

from __future__ import annotations

import os
import sys

import typer

from childsafe import __version__
from childsafe.cli import banks, deter, exchanges, matching, measure, referrals, review, service, triage
from childsafe.cli._common import JsonOption, command_context, errors_to_exit_codes, print_json, sub_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="childsafe",
    help="Detect known abuse images by hash, deter searches for them, and measure what works.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain one-line usage errors, as docs/spec.md asks
)
db_app = sub_app("The database: where it is and its schema.")


@db_app.command("upgrade")
def db_upgrade_command(json_output: JsonOption = False) -> None:
    """Bring the database schema up to date (also done automatically on first use)."""
    from childsafe.store import schema_revision

    with command_context() as context:
        engine = context.engine
        revision = schema_revision(engine)
    url = engine.url.render_as_string(hide_password=True)
    if json_output:
        print_json({"database": url, "revision": revision})
    else:
        print(f"{url}: schema at revision {revision}")


def version_command(json_output: JsonOption = False) -> None:
    """Print the version of childsafe."""
    if json_output:
        print_json({"name": "childsafe", "version": __version__})
    else:
        print(f"childsafe {__version__}")


# The commands, then the groups, in the order `childsafe --help` has always
# listed them (Typer lists a Typer's commands before its groups).
app.command("hash")(matching.hash_command)
app.command("demo")(triage.demo_command)
app.command("lookup")(matching.lookup_command)
app.command("match")(matching.match_command)
app.command("scan")(triage.scan_command)
app.command("serve")(service.serve_command)
app.command("webhooks")(service.webhooks_command)
app.command("purge-preserved")(service.purge_preserved_command)
app.command("version")(version_command)
app.add_typer(db_app, name="db")
app.add_typer(triage.audit_app, name="audit")
app.add_typer(service.apikey_app, name="apikey")
app.add_typer(deter.app, name="deter")
app.add_typer(banks.app, name="bank")
app.add_typer(exchanges.app, name="exchange")
app.add_typer(matching.index_app, name="index")
app.add_typer(review.app, name="review")
app.add_typer(measure.evaluate_app, name="evaluate")
app.add_typer(measure.cases_app, name="cases")
app.add_typer(measure.report_app, name="report")
measure.report_app.command("referral")(referrals.referral_command)
measure.report_app.command("referral-send")(referrals.referral_send_command)
measure.report_app.command("referral-retract")(referrals.referral_retract_command)
measure.report_app.command("referrals")(referrals.referrals_command)


def main() -> None:
    """Entry point of the ``childsafe`` console script."""
    # Everything childsafe writes - the database, a scan's state and reports,
    # preserved uploads, saved indexes - concerns criminal cases: readable by
    # its owner only, whatever umask the shell had (workers inherit it).
    os.umask(0o077)
    try:
        with errors_to_exit_codes():  # also what a command raises outside its own (a bad setting, say)
            app()
    except typer.Exit as stop:  # raised by fail() here, outside Typer
        sys.exit(stop.exit_code)
