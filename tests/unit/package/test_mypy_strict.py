"""The package type-checks under strict mypy (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import REPO


@pytest.mark.slow
def test_mypy_strict_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/tmp/childsafe-mypy-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
