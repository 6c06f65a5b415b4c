"""The HTTP service and what it acts on: ``childsafe serve``, ``apikey
create|list|revoke``, ``webhooks`` and ``purge-preserved``."""

from __future__ import annotations

from typing import Annotated

import typer

from childsafe.cli._common import JsonOption, command_context, print_json, stderr, sub_app

__all__ = ["apikey_app", "purge_preserved_command", "serve_command", "webhooks_command"]

apikey_app = sub_app("API keys for the HTTP service.")


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (matching, banks) with uvicorn."""
    import logging

    import uvicorn

    from childsafe.config import ServiceOptions

    with command_context() as context:
        context.engine  # noqa: B018 - opening it migrates the schema once, before the workers start
        ServiceOptions.from_env()  # a bad setting stops here, one line, not in every worker
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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

    with command_context() as context:
        key = create_api_key(context.engine, name, role)
    if json_output:
        print_json({"name": name, "role": role, "key": key})
    else:
        print(key)
        stderr.print(f"API key {name!r} ({role}). It is shown only now: store it safely.", highlight=False)


@apikey_app.command("list")
def apikey_list_command(json_output: JsonOption = False) -> None:
    """List API keys (names and roles; never the keys)."""
    from childsafe.actions.keys import list_api_keys

    with command_context() as context:
        keys = [k.to_dict() for k in list_api_keys(context.engine)]
    if json_output:
        print_json(keys)
    for key in [] if json_output else keys:
        print(f"{key['name']}\t{key['role']}\t{key['created_at']}\t{'revoked' if key['revoked'] else 'active'}")


@apikey_app.command("revoke")
def apikey_revoke_command(name: Annotated[str, typer.Argument()], json_output: JsonOption = False) -> None:
    """Revoke an API key: it stops working within a second."""
    from childsafe.actions.keys import revoke_api_key

    with command_context() as context:
        revoke_api_key(context.engine, name)
    if json_output:
        print_json({"name": name, "revoked": True})
    else:
        print(f"revoked {name}")


def webhooks_command(
    dead: Annotated[bool, typer.Option("--dead", help="Only events that could not be delivered.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List the webhook outbox: each event, its attempts and whether it was delivered."""
    from childsafe.store.outbox import outbox_events

    with command_context() as context:
        events = outbox_events(context.engine, dead_only=dead)
    for event in events:
        if json_output:
            print_json(event.to_dict())
        else:
            print(f"{event.id}\t{event.bank}\t{event.state}\t{event.attempts} attempts\t{event.last_error or ''}")


def purge_preserved_command(json_output: JsonOption = False) -> None:
    """Delete preserved uploads whose retention period has passed (each one audited)."""
    from childsafe.actions.preservation import purge_expired

    with command_context() as context:
        purged = purge_expired(context.engine, context.settings.home)
    if json_output:
        print_json({"purged": purged})
    else:
        print(f"purged {purged} preserved upload(s) past their retention")
