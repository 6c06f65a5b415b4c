"""Where referrals go, in one place: each destination's name, what it is,
and how a referral to it is sent and retracted. The CLI, the HTTP API and
the bank actions all take a destination's name from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from childsafe.config import Settings
from childsafe.errors import UsageError
from childsafe.referrals.nca import UnpublishedNcaApi, nca_package
from childsafe.referrals.sending import retract_ncmec, send_ncmec
from childsafe.referrals.store import ReferralInfo, record_step

__all__ = ["DESTINATIONS", "Destination", "get_destination"]


@dataclass(frozen=True)
class Destination:
    """A place reports go: ``send`` carries a referral on from the step it
    reached (``confirm_resubmit``: see ``sending.py``); ``retract`` withdraws it."""

    name: str
    description: str
    send: Callable[[Engine, Settings, ReferralInfo, str, bool], None]
    retract: Callable[[Engine, Settings, ReferralInfo, str], None]


def _send_ncmec(engine: Engine, settings: Settings, info: ReferralInfo, actor: str, confirm: bool) -> None:
    send_ncmec(engine, settings, info, actor, confirm_resubmit=confirm)


def _send_nca(engine: Engine, settings: Settings, info: ReferralInfo, actor: str, confirm: bool) -> None:
    # Raises until the NCA publishes its API (nothing is recorded: nothing was tried).
    UnpublishedNcaApi().submit(nca_package(info.contents, info.id), b"")


def _retract_here(engine: Engine, settings: Settings, info: ReferralInfo, actor: str) -> None:
    """A package is entered in the portal by a person: withdrawing it here only marks it."""
    if info.state != "retracted":
        record_step(engine, info.id, "referral.retract", {}, actor, state="retracted", last_error=None)


DESTINATIONS: dict[str, Destination] = {
    "ncmec": Destination("ncmec", "NCMEC's CyberTipline (US), through its Reporting API", _send_ncmec, retract_ncmec),
    "nca": Destination("nca", "the UK's National Crime Agency: a package for its portal", _send_nca, _retract_here),
}


def get_destination(name: str) -> Destination:
    """The destination called ``name``; ``UsageError`` naming the others."""
    try:
        return DESTINATIONS[name]
    except KeyError:
        raise UsageError(
            f"{{field}} must be one of {', '.join(DESTINATIONS)}, not {name!r:.40}", field="destination"
        ) from None
