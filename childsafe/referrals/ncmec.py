"""NCMEC's CyberTipline Reporting API, as its public documentation
(https://report.cybertip.org/ispws/documentation) describes it: HTTP Basic
credentials NCMEC gives a registered reporter, and

- ``GET /status``: can we connect and authenticate;
- ``POST /submit``: a report's XML opens a report; the ``reportResponse``
  answer carries ``responseCode`` (0: accepted) and the ``reportId``;
- ``POST /upload``: a form of ``id`` (the report) and ``file``; answers the
  ``fileId``;
- ``POST /fileinfo``: a ``fileDetails`` XML about one uploaded file (its
  hashes, whether anyone at the platform viewed it, EXIF);
- ``POST /finish`` (``id``): the report is complete and goes to NCMEC's
  analysts; ``POST /retract`` (``id``): an unfinished report is withdrawn.

The XML is built with lxml, in the documentation's element order, and
checked against ``ncmec_report.xsd`` (ours, written from that
documentation) or NCMEC's own schema when the operator has it
(``CHILDSAFE_NCMEC_XSD``) before anything is sent. Answers are parsed with
entities and network access off. Every request goes through
``childsafe.http_client`` (timeouts, retries, TLS, proxies); ``/submit``
and ``/upload`` create something, so they are never sent twice by a retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import httpx
from lxml import etree

from childsafe.config import HttpSettings, ReferralSettings, environment_secret
from childsafe.errors import RemoteError, RemoteOutcomeUnknown, UsageError
from childsafe.http_client import Fetched, make_client, post, request, shown_url
from childsafe.referrals.model import ReferralReport
from childsafe.secrets import read_credentials_file, user_and_password

__all__ = [
    "CyberTipline",
    "NcmecAnswer",
    "file_details_xml",
    "ncmec_credentials",
    "parse_answer",
    "report_xml",
    "validate",
]

#: Our schema of the report and file details (see its header).
SCHEMA = Path(__file__).with_name("ncmec_report.xsd")
#: The largest answer read: NCMEC's are a few hundred bytes.
MAX_ANSWER_BYTES = 256 * 1024
#: NCMEC's category scale (the ``ncmec`` bank scheme) as its ``industryClassification``.
_CLASSIFICATIONS = frozenset({"A1", "A2", "B1", "B2"})
#: The longest text element in our schema.
MAX_TEXT = 4000
#: Our signals as NCMEC's ``hashType``.
_HASH_TYPES = (("md5", "MD5"), ("sha1", "SHA1"), ("sha256", "SHA256"), ("pdq", "PDQ"))


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def report_xml(report: ReferralReport) -> bytes:
    """The ``/submit`` document: the incident, the reporting person and the
    user the platform names, and the matched entries as additional
    information. ``UsageError`` when the reporter's e-mail (which NCMEC
    requires) is not set."""
    if not report.reporter.email:
        raise UsageError("a report to NCMEC needs the reporter's e-mail: set CHILDSAFE_REPORTER_EMAIL")
    root = etree.Element("report")
    summary = _add(root, "incidentSummary")
    _add(summary, "incidentType", report.incident_type)
    _add(summary, "incidentDateTime", _time(report.incident_time))
    person = _add(_add(root, "reporter"), "reportingPerson")
    first, last = report.reporter.first_and_last
    if first:
        _add(person, "firstName", first)
    if last:
        _add(person, "lastName", last)
    _add(person, "email", report.reporter.email)
    uploader = report.uploader
    if uploader.ids or uploader.ip:
        reported = _add(root, "personOrUserReported")
        if uploader.ids:
            _add(reported, "espIdentifier", uploader.ids[0])
        if uploader.ip:
            event = _add(reported, "ipCaptureEvent")
            _add(event, "ipAddress", uploader.ip)
            _add(event, "eventName", "Upload")
            _add(event, "dateTime", _time(report.upload_time))
        if len(uploader.ids) > 1:
            _add(reported, "additionalInfo", _capped("Other identifiers: " + ", ".join(uploader.ids[1:])))
    _add(root, "additionalInfo", _capped(_matches_text(report)))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _capped(text: str) -> str:
    """At most the schema's 4,000 characters (a report matching many entries says how many were left out)."""
    if len(text) <= MAX_TEXT:
        return text
    return text[: MAX_TEXT - 40].rsplit(";", 1)[0] + f"; ... ({len(text):,} characters in all)"


def _matches_text(report: ReferralReport) -> str:
    found = "; ".join(
        f"bank {m.bank} entry {m.entry_id}"
        + (f" (source id {m.source_id})" if m.source_id else "")
        + (f" category {m.category}" if m.category else "")
        for m in report.matches
    )
    return f"Detected by hash matching against known material: {found}. Uploaded {_time(report.upload_time)}."


def file_details_xml(report: ReferralReport, report_id: str, file_id: str) -> bytes:
    """The ``/fileinfo`` document of the reported file: its name, hashes,
    NCMEC's classification when a matched bank uses that scale, the
    upload's address and the EXIF summary. ``fileViewedByEsp`` is false: a
    hash match is reported without anyone at the platform opening the file."""
    root = etree.Element("fileDetails")
    _add(root, "reportId", report_id)
    _add(root, "fileId", file_id)
    _add(root, "originalFileName", report.file.name)
    _add(root, "fileViewedByEsp", "false")
    _add(root, "fileRelevance", "Reported")
    classification = next((m.category for m in report.matches if m.category in _CLASSIFICATIONS), None)
    if classification:
        _add(root, "industryClassification", classification)
    for signal, hash_type in _HASH_TYPES:
        value = getattr(report.file, signal)
        if value:
            _add(root, "originalFileHash", value).set("hashType", hash_type)
    if report.uploader.ip:
        event = _add(root, "ipCaptureEvent")
        _add(event, "ipAddress", report.uploader.ip)
        _add(event, "eventName", "Upload")
        _add(event, "dateTime", _time(report.upload_time))
    if report.exif:
        details = _add(root, "details")
        details.set("type", "EXIF")
        for name, value in report.exif.items():
            pair = _add(details, "nameValuePair")
            _add(pair, "name", name)
            _add(pair, "value", value)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@cache
def _schema(path: Path) -> etree.XMLSchema:
    try:
        return etree.XMLSchema(etree.parse(str(path), _safe_parser()))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise UsageError(f"cannot read the NCMEC schema {path}: {str(exc).splitlines()[0][:200]}") from None


def validate(document: bytes, schema: Path | None = None) -> None:
    """Check a report or file details against ``schema`` (ours by default);
    ``UsageError`` naming the first problem: nothing invalid is sent."""
    checker = _schema(schema or SCHEMA)
    tree = etree.fromstring(document, _safe_parser())
    if not checker.validate(tree):
        error = checker.error_log.last_error
        raise UsageError(f"the report does not match the NCMEC schema: line {error.line}: {error.message[:300]}")


def _safe_parser() -> etree.XMLParser:
    """No entities, no DTDs, no network: an answer cannot make us read a file or expand without bound."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class NcmecAnswer:
    """What NCMEC answered: ``responseCode`` (0 is success), its description,
    and the ids it carried (``reportId``, ``fileId``)."""

    code: int
    description: str
    report_id: str | None
    file_id: str | None


def parse_answer(body: bytes, where: str) -> NcmecAnswer:
    """An answer of NCMEC's (``reportResponse`` or ``reportDoneResponse``);
    ``RemoteError`` for anything that is not one, or a refusal."""
    try:
        root = etree.fromstring(body, _safe_parser())
    except etree.XMLSyntaxError:
        raise RemoteError(f"{where}: the answer is not XML; is this NCMEC's reporting API?") from None
    if root is None:
        raise RemoteError(f"{where}: the answer is empty")

    def text(name: str) -> str | None:
        found = root.find(f".//{{*}}{name}")
        if found is None:
            found = root.find(f".//{name}")
        return (found.text or "").strip() if found is not None else None

    code = text("responseCode")
    if code is None or not code.lstrip("-").isdigit():
        raise RemoteError(f"{where}: the answer has no responseCode; is this NCMEC's reporting API?")
    return NcmecAnswer(int(code), text("responseDescription") or "", text("reportId"), text("fileId"))


def ncmec_credentials(settings: ReferralSettings) -> tuple[str, str]:
    """NCMEC's user and password, read now: from ``CHILDSAFE_NCMEC_USER`` and
    ``CHILDSAFE_NCMEC_PASSWORD``, else the owner-only file
    ``CHILDSAFE_NCMEC_CREDENTIALS_FILE`` (``user:password``)."""
    user, password = environment_secret("CHILDSAFE_NCMEC_USER"), environment_secret("CHILDSAFE_NCMEC_PASSWORD")
    if user and password:
        return user, password
    if settings.ncmec_credentials_file:
        text = read_credentials_file(settings.ncmec_credentials_file)
        if text:
            return user_and_password(text, f"the credentials file {settings.ncmec_credentials_file}")
    raise UsageError(
        "no NCMEC credentials: set CHILDSAFE_NCMEC_USER and CHILDSAFE_NCMEC_PASSWORD, "
        "or CHILDSAFE_NCMEC_CREDENTIALS_FILE (a chmod 600 file holding user:password)"
    )


class CyberTipline:
    """A client of one CyberTipline Reporting API (``base_url``: NCMEC's test
    or production address). Each method is one documented call; a
    ``responseCode`` other than 0 raises ``RemoteError`` with NCMEC's words."""

    def __init__(self, base_url: str, credentials: tuple[str, str], http: HttpSettings) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.client = make_client(http, auth=httpx.BasicAuth(*credentials))

    @classmethod
    def from_settings(cls, settings: ReferralSettings, http: HttpSettings) -> CyberTipline:
        """The client ``CHILDSAFE_NCMEC_URL`` and the credentials name;
        ``UsageError`` when either is missing (no address is assumed)."""
        if not settings.ncmec_url:
            raise UsageError(
                "NCMEC is not configured: set CHILDSAFE_NCMEC_URL to NCMEC's test "
                "(https://exttest.cybertip.org/ispws) or production address"
            )
        return cls(settings.ncmec_url, ncmec_credentials(settings), http)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def __enter__(self) -> CyberTipline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _answer(self, fetched: Fetched, path: str) -> NcmecAnswer:
        where = f"NCMEC {shown_url(self._url(path))}"
        answer = parse_answer(fetched.body, where)
        if answer.code != 0:
            raise RemoteError(f"{where}: refused (responseCode {answer.code}: {answer.description[:200]})")
        return answer

    def _post(
        self,
        path: str,
        *,
        idempotent: bool,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> NcmecAnswer:
        try:
            fetched = post(
                self.client, self._url(path), self.http, content=content, data=data, files=files, headers=headers,
                idempotent=idempotent, max_bytes=MAX_ANSWER_BYTES,
            )  # fmt: skip
        except RemoteError as error:
            if error.body:
                # A 4xx with NCMEC's reportResponse says why (a schema error, a finished report).
                try:
                    answer = parse_answer(error.body, "")
                except RemoteError:
                    raise error from None
                raise RemoteError(f"{error}: responseCode {answer.code}: {answer.description[:200]}") from None
            raise
        try:
            return self._answer(fetched, path)
        except RemoteError as error:
            if idempotent or "refused (responseCode" in str(error):
                raise
            # A 2xx we cannot read to a call that creates something: it may have been done.
            raise RemoteOutcomeUnknown(f"{error}; NCMEC may have acted on it: check before sending it again") from None

    def status(self) -> str:
        """``GET /status``: NCMEC's description of the connection (it names the user)."""
        fetched = request(self.client, "GET", self._url("/status"), self.http, max_bytes=MAX_ANSWER_BYTES)
        return self._answer(fetched, "/status").description

    def submit(self, document: bytes) -> str:
        """``POST /submit``: open a report; its id. Never retried once sent."""
        answer = self._post("/submit", idempotent=False, content=document, headers={"Content-Type": "text/xml"})
        if not answer.report_id:
            raise RemoteError("NCMEC /submit: the answer has no reportId")
        return answer.report_id

    def upload(self, report_id: str, name: str, data: bytes, mime: str) -> str:
        """``POST /upload``: add the file to the report; its file id."""
        answer = self._post("/upload", idempotent=False, data={"id": report_id}, files={"file": (name, data, mime)})
        if not answer.file_id:
            raise RemoteError("NCMEC /upload: the answer has no fileId")
        return answer.file_id

    def file_info(self, document: bytes) -> None:
        """``POST /fileinfo``: a file's details (sending them again replaces them)."""
        self._post("/fileinfo", idempotent=True, content=document, headers={"Content-Type": "text/xml"})

    def finish(self, report_id: str) -> None:
        """``POST /finish``: the report is complete. Not retried once sent:
        NCMEC refuses to finish a finished report, so a retry after a lost
        answer would turn success into an error."""
        self._post("/finish", idempotent=False, data={"id": report_id})

    def retract(self, report_id: str) -> None:
        """``POST /retract``: withdraw an unfinished report."""
        self._post("/retract", idempotent=True, data={"id": report_id})
