"""A loopback stand-in for NCMEC's CyberTipline Reporting API, as its public
documentation describes it: HTTP Basic credentials; ``GET /status``;
``POST /submit`` (a report's XML, checked against the same schema the
client uses) answering a ``reportResponse`` with a new ``reportId``;
``POST /upload`` (a form of ``id`` and ``file``) answering a ``fileId``;
``POST /fileinfo`` (``fileDetails`` XML, checked); ``POST /finish`` and
``POST /retract`` (``id``). Calls out of order are refused as NCMEC
refuses them (a report that is not open: finished, retracted or never
opened; a file that is not in it; a finish before any upload).

``faults[path]`` is a queue of ways to fail the next calls to ``path``:
``"500"``, ``"drop"`` (close the connection without a word), ``"slow"``
(answer after ``slow_seconds``), ``"malformed"`` (a 200 that is not XML)."""

from __future__ import annotations

import base64
import http.server
import itertools
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs

from lxml import etree
from support import free_port, serve_in_thread

from childsafe.referrals.ncmec import SCHEMA


@dataclass
class Report:
    xml: bytes
    state: str = "open"  # open, finished, retracted
    files: dict[str, dict[str, bytes | str | None]] = field(default_factory=dict)


class NcmecServer:
    """The server, on 127.0.0.1 in a thread: ``calls`` lists every request's path in order."""

    def __init__(self, user: str = "reporter", password: str = "correct horse battery") -> None:
        self.credentials = f"{user}:{password}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls: list[str] = []
        self.reports: dict[str, Report] = {}
        self.faults: dict[str, list[str]] = {}
        self.slow_seconds = 3.0
        self.schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
        self._ids = itertools.count(7001)
        self._file_ids = itertools.count(1)
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                server._handle(self, b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                server._handle(self, self.rfile.read(length))

            def log_message(self, *args: object) -> None:
                pass

        self.server, self.thread = serve_in_thread(self.port, Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the protocol --------------------------------------------------------

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.calls.append(path)
            fault = self.faults.get(path, []).pop(0) if self.faults.get(path) else None
        if fault == "drop":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "500":
            return _send(handler, 500, b"<html>Internal Server Error</html>", "text/html")
        if fault == "malformed":
            return _send(handler, 200, b"<reportResponse><responseCode>0</respon", "text/xml")
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Basic ") or base64.b64decode(auth[6:]).decode() != self.credentials:
            return _send(handler, 401, b"Unauthorized", "text/plain")
        with self._lock:
            status, answer = self._answer(path, handler, body)
        if fault == "slow":
            time.sleep(self.slow_seconds)  # done, and answered too late
        _send(handler, status, answer, "text/xml")

    def _answer(self, path: str, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        if path == "/status" and handler.command == "GET":
            return 200, _response(0, "Remote User : reporter")
        if handler.command != "POST":
            return 405, _response(1, "Method not allowed")
        if path == "/submit":
            problem = self._invalid(body, "report")
            if problem:
                return 400, _response(4100, f"Report XML failed validation: {problem}")
            report_id = str(next(self._ids))
            self.reports[report_id] = Report(body)
            return 200, _response(0, "Success", report_id=report_id)
        form, files = _form(handler, body)
        if path == "/fileinfo":
            problem = self._invalid(body, "fileDetails")
            if problem:
                return 400, _response(4100, f"File details failed validation: {problem}")
            details = etree.fromstring(body)
            report_id, file_id = details.findtext("reportId"), details.findtext("fileId")
            report = self.reports.get(report_id or "")
            if report is None or report.state != "open" or file_id not in report.files:
                return 400, _response(4200, "No such open report or file")
            report.files[file_id]["details"] = body
            return 200, _response(0, "Success", report_id=report_id)
        report_id = form.get("id", "")
        report = self.reports.get(report_id)
        if report is None or report.state != "open":
            return 400, _response(4200, f"Report {report_id} is not open")
        if path == "/upload":
            if "file" not in files:
                return 400, _response(4300, "No file")
            file_id = f"f{next(self._file_ids)}"
            name, data = files["file"]
            report.files[file_id] = {"name": name, "data": data, "details": None}
            return 200, _response(0, "Success", report_id=report_id, file_id=file_id)
        if path == "/finish":
            if not report.files:
                return 400, _response(4400, "A report needs a file before it is finished")
            report.state = "finished"
            return 200, _done(report_id, list(report.files))
        if path == "/retract":
            report.state = "retracted"
            return 200, _response(0, "Success", report_id=report_id)
        return 404, _response(1, "Not found")

    def _invalid(self, body: bytes, root: str) -> str | None:
        try:
            document = etree.fromstring(body)
        except etree.XMLSyntaxError as exc:
            return str(exc)
        if document.tag != root:
            return f"expected {root}, got {document.tag}"
        if not self.schema.validate(document):
            return str(self.schema.error_log.last_error)
        return None


def _form(
    handler: http.server.BaseHTTPRequestHandler, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A urlencoded or multipart form: its fields and its files (name, bytes)."""
    kind = handler.headers.get("Content-Type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}, {}
    if kind.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + body)
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename:
                files[str(name)] = (filename, payload)
            else:
                fields[str(name)] = payload.decode()
        return fields, files
    return {}, {}


def _response(code: int, description: str, report_id: str | None = None, file_id: str | None = None) -> bytes:
    root = etree.Element("reportResponse")
    etree.SubElement(root, "responseCode").text = str(code)
    etree.SubElement(root, "responseDescription").text = description
    if report_id:
        etree.SubElement(root, "reportId").text = report_id
    if file_id:
        etree.SubElement(root, "fileId").text = file_id
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _done(report_id: str, file_ids: list[str]) -> bytes:
    root = etree.Element("reportDoneResponse")
    etree.SubElement(root, "responseCode").text = "0"
    etree.SubElement(root, "reportId").text = report_id
    files = etree.SubElement(root, "files")
    for file_id in file_ids:
        etree.SubElement(files, "fileId").text = file_id
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _send(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up waiting
