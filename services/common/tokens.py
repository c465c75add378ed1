"""Per-partner bearer tokens, stored hashed.

The tokens file (``VERBUND_GATEWAY_TOKENS_FILE``) is YAML or JSON mapping each
partner id to a list of token hashes::

    klinikum-nord:
      - sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

Tokens are 256-bit random strings, so an unsalted SHA-256 is enough: there is
nothing to brute-force. The clear token is shown once, by :func:`issue_token`,
and never stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from schemas.common import PARTNER_ID_PATTERN
from schemas.config_files import UnreadableFile, read_data

HASH_PREFIX = "sha256:"
TOKEN_PREFIX = "vbd_"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_PARTNER_RE = re.compile(PARTNER_ID_PATTERN)


class TokenFileError(ValueError):
    """The tokens file is unreadable or malformed; the message names the file and the entry."""


def hash_token(token: str) -> str:
    """The stored form of a clear token: ``sha256:<hex>``.

    A header with bytes that are not UTF-8 reaches the services as surrogates (aiohttp);
    ``surrogatepass`` hashes them like any other unknown token instead of raising."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def read_token_file(path: Path) -> dict[str, list[str]]:
    """Read and validate a tokens file: ``{partner_id: [hash, ...]}``."""
    try:
        data = read_data(path)
    except UnreadableFile as exc:
        raise TokenFileError(f"tokens file {path}: cannot read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TokenFileError(f"tokens file {path}: expected a mapping partner_id: [hash, ...]")
    result: dict[str, list[str]] = {}
    owners: dict[str, str] = {}
    for partner, hashes in data.items():
        if not isinstance(partner, str) or not _PARTNER_RE.match(partner):
            raise TokenFileError(f"tokens file {path}: {partner!r} is not a valid partner id")
        if not isinstance(hashes, list):
            raise TokenFileError(f"tokens file {path}: {partner}: expected a list of hashes")
        for index, value in enumerate(hashes):
            if not isinstance(value, str) or not _HASH_RE.match(value):
                raise TokenFileError(
                    f"tokens file {path}: {partner}[{index}]: expected 'sha256:' + 64 hex digits"
                )
            if owners.setdefault(value, partner) != partner:
                raise TokenFileError(
                    f"tokens file {path}: {partner}[{index}]: hash also belongs to {owners[value]}"
                )
        result[partner] = list(hashes)
    return result


def _write_token_file(path: Path, data: dict[str, list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(sorted(data.items())), sort_keys=True, default_flow_style=False)
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def issue_token(partner_id: str, tokens_file: Path) -> str:
    """Create a token for ``partner_id``, store its hash in ``tokens_file``, return the clear token.

    The file is created (mode 0600) if missing; existing tokens stay valid.
    """
    if not _PARTNER_RE.match(partner_id):
        raise ValueError(f"{partner_id!r} is not a valid partner id ({PARTNER_ID_PATTERN})")
    data = read_token_file(tokens_file) if tokens_file.exists() else {}
    token = new_token()
    data.setdefault(partner_id, []).append(hash_token(token))
    _write_token_file(tokens_file, data)
    return token


def revoke_tokens(partner_id: str, tokens_file: Path) -> int:
    """Remove every token of ``partner_id``; returns how many were removed."""
    data = read_token_file(tokens_file) if tokens_file.exists() else {}
    removed = len(data.pop(partner_id, []))
    if removed:
        _write_token_file(tokens_file, data)
    return removed


@dataclass
class TokenStore:
    """Maps token hashes to partner ids; re-reads the file when it changes.

    A file that becomes invalid while the gateway runs keeps the last good tokens
    (and :attr:`last_error` says why), so a typo cannot lock every partner out.
    """

    path: Path
    reload_interval: float = 1.0
    _by_hash: dict[str, str] = field(default_factory=dict, repr=False)
    _mtime: float = -1.0
    _checked: float = 0.0
    last_error: str | None = None

    @classmethod
    def load(cls, path: Path, reload_interval: float = 1.0) -> TokenStore:
        """Load the file now; raises :class:`TokenFileError` (fail fast at start-up)."""
        store = cls(path=path, reload_interval=reload_interval)
        store._load()
        return store

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime if self.path.exists() else -1.0
        data = read_token_file(self.path)
        self._by_hash = {h: partner for partner, hashes in data.items() for h in hashes}
        self._mtime = mtime
        self.last_error = None

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.reload_interval:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            self.last_error = f"tokens file {self.path}: {exc}"
            return
        if mtime != self._mtime:
            try:
                self._load()
            except TokenFileError as exc:
                self.last_error = str(exc)
                self._mtime = mtime

    def partner_for(self, token: str) -> str | None:
        """The partner a clear token belongs to, or ``None``."""
        self.refresh()
        return self._by_hash.get(hash_token(token))

    @property
    def partners(self) -> int:
        return len(set(self._by_hash.values()))
