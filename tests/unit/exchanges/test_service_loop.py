"""The service's exchange loop: a due exchange is fetched in the
background (the lease lets one worker of one replica do it), its entries
matched through the API; ``CHILDSAFE_EXCHANGE_POLL_SECONDS=0`` turns it off."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import md5s
from servers import LocalServer, Reply
from support import InProcessApp

from childsafe.actions.keys import create_api_key
from childsafe.banks import create_bank
from childsafe.config import ServiceOptions, Settings
from childsafe.exchanges import add_exchange, list_exchanges
from childsafe.service.app import create_app
from childsafe.store import open_database


def test_the_service_fetches_due_exchanges(tmp_path: Path) -> None:
    values = md5s(5, 40)
    body = "".join(f"{v}\n" for v in values).encode()
    server = LocalServer(lambda request: Reply(200, body, {"ETag": '"1"'}))
    environ = {"CHILDSAFE_HOME": str(tmp_path / "home"), "CHILDSAFE_EXCHANGE_POLL_SECONDS": "0.2"}
    settings, options = Settings.from_env(environ), ServiceOptions.from_env(environ)
    assert ServiceOptions.from_env({"CHILDSAFE_EXCHANGE_POLL_SECONDS": "off"}).exchange_poll_seconds == 0
    engine = open_database(settings.database_url)
    key = create_api_key(engine, "platform", "matcher")
    create_bank(engine, "shared")
    add_exchange(engine, "feed", "url", "shared", {"url": server.url("/list.txt")})
    app = InProcessApp(create_app(settings, options))
    try:
        deadline = time.monotonic() + 20
        while list_exchanges(engine)[0].last_outcome is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list_exchanges(engine)[0].last_outcome == "ok"
        answer = app.request(
            "GET", "/v1/match", params={"signal": "md5", "value": values[2]}, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200 and answer.json()["matches"], answer.text
    finally:
        app.close()
        server.close()
        engine.dispose()
    assert [request.path for request in server.requests] == ["/list.txt"]  # fetched once: the next is due in an hour
