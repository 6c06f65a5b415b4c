"""The referrals table: one row a report, its state and the step its
sending reached, each change committed with its audit event in one
transaction, so that what NCMEC returned (a report id, a file id) is never
known to the audit log without being stored, nor stored without being
audited.

States: ``draft`` -> ``submitted`` -> ``uploaded`` -> ``finished`` for
NCMEC, ``draft`` -> ``packaged`` for the NCA, ``retracted`` from any but
``finished``, and ``failed`` when the last attempt failed (``step`` then
says how far it had got, and a new attempt resumes there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from childsafe.errors import NotFoundError, UsageError
from childsafe.referrals.model import ReferralReport
from childsafe.store import append_audit
from childsafe.store.models import Referral, utc_now

__all__ = [
    "STATES",
    "ReferralInfo",
    "get_referral",
    "insert_referral",
    "list_referrals",
    "record_failure",
    "record_step",
]

STATES = ("draft", "submitted", "uploaded", "finished", "packaged", "retracted", "failed")
#: The longest error kept (one line).
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ReferralInfo:
    """A referral as the CLI and the API show it."""

    id: int
    destination: str
    sha256: str
    state: str
    step: str
    remote_report_id: str | None
    remote_files: list[dict[str, Any]]
    submit_sent_at: datetime | None
    attempts: int
    last_error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    report: dict[str, Any]

    @property
    def contents(self) -> ReferralReport:
        """The report, as dataclasses."""
        return ReferralReport.from_dict(self.report)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (times in ISO 8601)."""
        return {
            "id": self.id, "destination": self.destination, "sha256": self.sha256, "state": self.state,
            "step": self.step, "remote_report_id": self.remote_report_id, "remote_files": self.remote_files,
            "submit_sent_at": self.submit_sent_at.isoformat() if self.submit_sent_at else None,
            "attempts": self.attempts, "last_error": self.last_error, "created_by": self.created_by,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "report": self.report,
        }  # fmt: skip


def _info(row: Row[Any]) -> ReferralInfo:
    return ReferralInfo(
        row.id, row.destination, row.sha256, row.state, row.step, row.remote_report_id, list(row.remote_files or []),
        row.submit_sent_at, row.attempts, row.last_error, row.created_by, row.created_at, row.updated_at,
        dict(row.report),
    )  # fmt: skip


def insert_referral(engine: Engine, destination: str, report: ReferralReport, actor: str) -> ReferralInfo:
    """A new draft referral of ``report``, audited (``referral.create``)."""
    now = utc_now()
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        inserted = connection.execute(
            insert(Referral).values(
                destination=destination, sha256=report.file.sha256, state="draft", step="draft",
                report=report.to_dict(), remote_files=[], attempts=0, created_by=actor, created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key  # fmt: skip
        referral_id = int(inserted[0]) if inserted else 0
        append_audit(
            connection,
            "referral.create",
            {"referral": referral_id, "destination": destination, "sha256": report.file.sha256,
             "banks": sorted({m.bank for m in report.matches})},
            actor,
        )  # fmt: skip
    return get_referral(engine, referral_id)


def get_referral(engine: Engine, referral_id: int) -> ReferralInfo:
    """The referral with this id; ``NotFoundError`` when there is none."""
    if not 1 <= referral_id < 2**63:  # past a database integer: no such row, not an overflow
        raise NotFoundError(f"no referral {referral_id}")
    with engine.connect() as connection:
        row = connection.execute(select(Referral).where(Referral.id == referral_id)).first()
    if row is None:
        raise NotFoundError(f"no referral {referral_id}")
    return _info(row)


def list_referrals(engine: Engine, state: str | None = None) -> list[ReferralInfo]:
    """Every referral, newest first, or those in one state."""
    if state is not None and state not in STATES:
        raise UsageError(f"{{field}} must be one of {', '.join(STATES)}", field="state")
    query = select(Referral).order_by(Referral.id.desc())
    if state is not None:
        query = query.where(Referral.state == state)
    with engine.connect() as connection:
        return [_info(row) for row in connection.execute(query)]


def record_step(
    engine: Engine,
    referral_id: int,
    action: str,
    detail: dict[str, Any],
    actor: str,
    **values: Any,
) -> None:
    """Set ``values`` on the referral (a step reached, an id returned) and
    append the audit event ``action`` in the same transaction. ``detail``
    names the referral, never a credential or the file's bytes."""
    with engine.connect().execution_options(sqlite_immediate=True) as connection, connection.begin():
        connection.execute(update(Referral).where(Referral.id == referral_id).values(updated_at=utc_now(), **values))
        append_audit(connection, action, {"referral": referral_id, **detail}, actor)


def record_failure(engine: Engine, referral_id: int, error: str, actor: str) -> None:
    """The last attempt failed: state ``failed``, the one-line reason kept
    and audited (``referral.fail``); the step reached is kept."""
    reason = error.splitlines()[0][:MAX_ERROR_CHARS] if error else "failed"
    record_step(engine, referral_id, "referral.fail", {"error": reason}, actor, state="failed", last_error=reason)
