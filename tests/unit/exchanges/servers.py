"""Loopback HTTP servers that stand in for hash-sharing services in tests:
real sockets, real HTTP, and the ways real services fail (5xx, a dropped
connection, a stall, a trickle, refused credentials). The standard
library's server, because misbehaving at the socket level is plain there."""

from __future__ import annotations

import base64
import http.server
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from support import free_port, serve_in_thread


@dataclass
class Reply:
    """What the server does with one request: a status, headers and body;
    or ``drop`` (close the connection without a word); ``delay`` seconds of
    silence first; ``trickle`` seconds between bytes of the body."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    trickle: float = 0.0


@dataclass
class Request:
    """One request the server had: method, path with query, headers (lower-case names)."""

    path: str
    headers: dict[str, str]

    def basic_auth(self) -> str | None:
        """``user:password`` of an HTTP Basic header, if any."""
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        return base64.b64decode(value[6:]).decode()


class LocalServer:
    """A threaded HTTP server on 127.0.0.1; ``handler(request) -> Reply`` answers each GET."""

    def __init__(self, handler: Callable[[Request], Reply]) -> None:
        self.port = free_port()
        self.handler = handler
        self.requests: list[Request] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                server.requests.append(request)
                reply = server.handler(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.trickle:
                        for offset in range(len(reply.body)):
                            self.wfile.write(reply.body[offset : offset + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what a stalled server sees

            def log_message(self, *args: object) -> None:
                pass

        self.server, self.thread = serve_in_thread(self.port, Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
