"""Credentials for outside services (hash exchanges, referrals): read when
they are needed, from an environment variable or a file only its owner can
read, and kept out of everything stored, logged or printed. What the
database keeps is only *where* they are (an exchange's ``credentials_env``
or ``credentials_file``); referrals take theirs from ``CHILDSAFE_NCMEC_*``
settings (``ReferralSettings``)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from childsafe.config import environment_secret
from childsafe.errors import UsageError

__all__ = ["check_credentials_file", "load_credentials", "read_credentials_file", "user_and_password"]

#: The longest credentials file read (a token, a user and password).
MAX_CREDENTIALS_BYTES = 64 * 1024


def check_credentials_file(path: Path) -> Path:
    """``path`` made absolute, if it is a file that only its owner may read or
    write; ``UsageError`` saying ``chmod 600`` otherwise."""
    path = path.expanduser().absolute()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise UsageError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"the credentials file {path} is not a file")
    if mode & 0o077:
        raise UsageError(f"the credentials file {path} may be read by others; run chmod 600 {path}")
    return path


def read_credentials_file(path: Path) -> str | None:
    """The text of a credentials file (stripped; ``None`` when empty), checked
    owner-only first: it may have been changed since it was configured."""
    path = check_credentials_file(path)
    data = path.read_bytes()[:MAX_CREDENTIALS_BYTES]
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise UsageError(f"the credentials file {path} is not UTF-8 text") from None


def load_credentials(settings: dict[str, Any]) -> str | None:
    """The credentials an exchange's settings point to (``None`` when it has
    none), read now; a missing environment variable is an error naming it."""
    variable = settings.get("credentials_env")
    if variable:
        value = environment_secret(str(variable))
        if value is None:
            raise UsageError(f"the environment variable {variable} that holds this exchange's credentials is not set")
        return value.strip()
    file = settings.get("credentials_file")
    if file:
        return read_credentials_file(Path(str(file)))
    return None


def user_and_password(text: str, where: str) -> tuple[str, str]:
    """``user:password`` split at its first colon; ``UsageError`` naming
    ``where`` (never the text) when it is not that."""
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise UsageError(f"{where} must hold user:password")
    return user, password
