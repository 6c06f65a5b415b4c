"""The threatexchange kind: a clear one-line error without the library, and
with it, its local ``file`` exchange (no network) fetched."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import bank_entries

from childsafe.config import HttpSettings
from childsafe.errors import UsageError
from childsafe.exchanges import add_exchange, fetch_exchange

INSTALLED = importlib.util.find_spec("threatexchange") is not None


def test_without_the_library_the_error_says_how_to_install_it(
    bank_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes ``import threatexchange`` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "threatexchange", None)
    with pytest.raises(UsageError, match=r"needs python-threatexchange: pip install 'childsafe\[threatexchange\]'"):
        add_exchange(bank_engine, "tx", "threatexchange", "shared", {"api": "sample"})


@pytest.mark.skipif(
    not INSTALLED, reason="python-threatexchange is not installed (pip install 'childsafe[threatexchange]')"
)
def test_a_local_file_exchange_is_fetched(bank_engine: sa.Engine, http: HttpSettings, tmp_path: Path) -> None:
    signals = tmp_path / "signals.txt"
    pdqs = ["f" * 64, "0f" * 32]
    signals.write_text("".join(f"pdq {value}\n" for value in pdqs))
    add_exchange(bank_engine, "tx", "threatexchange", "shared", {"api": "file", "file": str(signals)})
    assert fetch_exchange(bank_engine, "tx", http).counts.added == 2
    assert {signals for signals, _, _ in bank_entries(bank_engine)} == {f"pdq:{v}" for v in pdqs}
