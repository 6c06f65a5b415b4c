"""Fixtures of the referral tests: a loopback NCMEC, settings that point at
it, and an upload matched and preserved by the service's own action code."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from ncmec_server import NcmecServer
from referral_support import PASSWORD, USER, Preserved, picture_with_exif

from childsafe.actions.on_match import act_on_matches
from childsafe.banks import BankAction, NewEntry, add_entries, create_bank
from childsafe.config import HttpSettings, ReferralSettings, Settings
from childsafe.index import Match
from childsafe.signals import hash_file


@pytest.fixture
def ncmec() -> Iterator[NcmecServer]:
    server = NcmecServer(USER, PASSWORD)
    yield server
    server.close()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """NCMEC's user and password in the environment, as an operator sets them."""
    monkeypatch.setenv("CHILDSAFE_NCMEC_USER", USER)
    monkeypatch.setenv("CHILDSAFE_NCMEC_PASSWORD", PASSWORD)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, ncmec: NcmecServer) -> Settings:
    """Settings on the test database, quick timeouts, NCMEC at the loopback server."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Settings(
        home=home,
        database_url=database_url,
        http=HttpSettings(connect_timeout=2, read_timeout=1.0, request_seconds=5, retries=2, backoff_seconds=0.01),
        referrals=ReferralSettings(
            ncmec_url=ncmec.url, reporter_name="Ada Reporter", reporter_email="safety@example.org",
            reporter_organisation="Example Platform",
        ),
    )  # fmt: skip


@pytest.fixture
def preserved(engine: sa.Engine, settings: Settings, tmp_path: Path) -> Preserved:
    """An upload that matched a ``preserve`` bank (scheme ncmec, category A1),
    preserved by ``act_on_matches`` as the service does."""
    data = picture_with_exif()
    sha256 = hashlib.sha256(data).hexdigest()
    create_bank(engine, "known", "ncmec", action=BankAction("preserve", preserve_days=30))
    entry_id = str(add_entries(engine, "known", [NewEntry([("sha256", sha256)], "A1", "supplier-17")]).ids[0])
    upload = tmp_path / "upload.jpg"
    upload.write_bytes(data)
    hashes = hash_file(upload)
    match = Match("known", entry_id, "supplier-17", "sha256", sha256, 0, "A1", "original")
    act_on_matches(engine, settings.home, [match], hashes, data, "platform-key")
    return Preserved(data, sha256, entry_id)
