"""Who is asking: principals, roles and their bearer tokens (stored only as hashes).

A **principal** is one identity with one role:

- ``partner``: a member organisation (its id is the partner id); one identity per
  organisation, possibly several tokens (one per system, or during a rotation);
- ``operator``: an alliance operations team member (dashboards, aggregates);
- ``coordinator``: a crisis coordinator (triggers, approves and rejects runs);
- ``auditor``: reads the audit record (runs, decisions), changes nothing.

The **credentials file** (``VERBUND_CREDENTIALS_FILE``, default
``$VERBUND_DATA_DIR/credentials.yaml``) maps each token hash to what it stands for::

    sha256:9f86d0...:
      principal: klinikum-nord
      role: partner
      token_id: 9f86d081884c
      created: '2025-01-01T00:00:00+00:00'
      expires: '2025-04-01T00:00:00+00:00'   # optional

Tokens are ``vbd_`` + 256 random bits (:func:`secrets.token_urlsafe`). An unsalted SHA-256
is enough to store such a token: there is nothing to brute-force, unlike a password. The
clear token is shown once, when it is issued, and never stored or logged. ``token_id`` is
the first 12 hex digits of the hash: short enough to list and to name in the audit log,
useless for logging in.

The legacy per-service token files (``{id: [sha256:...]}``, :mod:`services.gateway.tokens`)
keep working: a service reads them with the role they always meant (the gateway's file:
``partner``; the coordinator's file: ``coordinator``) next to the credentials file.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from schemas.common import PARTNER_ID_PATTERN
from schemas.config_files import UnreadableFile, read_data
from services.common.tokens import TokenStore, hash_token, new_token


class Role(StrEnum):
    PARTNER = "partner"
    OPERATOR = "operator"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"


ROLES: tuple[Role, ...] = tuple(Role)
# Coarse hints for user interfaces (what to offer); the route policies of each service
# (services/common/access.py) are what is enforced.
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.COORDINATOR: frozenset({"view", "approve"}),
    Role.OPERATOR: frozenset({"view"}),
    Role.AUDITOR: frozenset({"view"}),
    Role.PARTNER: frozenset({"view"}),
}
PRINCIPAL_ID_PATTERN = PARTNER_ID_PATTERN  # lower-case letters, digits and '-', 2..40
TOKEN_ID_LENGTH = 12
_PRINCIPAL_RE = re.compile(PRINCIPAL_ID_PATTERN)
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class CredentialsError(ValueError):
    """The credentials file is unreadable or malformed, or a request to change it is invalid."""


class AuthenticationFailed(Exception):
    """No usable credential; ``reason`` is one of ``missing``, ``malformed``, ``unknown``,
    ``expired``. The message never echoes the token. ``principal`` is set when the token was
    recognised (an expired one)."""

    def __init__(self, reason: str, message: str, principal: Principal | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.principal = principal


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its id, its role and the id of the token it used."""

    id: str
    role: Role
    token_id: str = ""

    @property
    def name(self) -> str:  # the console's older name for the id
        return self.id

    def owns(self, partner_id: str) -> bool:
        """Whether a resource of ``partner_id`` is this principal's own (partners only)."""
        return self.role is Role.PARTNER and self.id == partner_id

    def may(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())

    def view(self) -> dict[str, object]:
        """Who this is, for a session endpoint (no token, no token id)."""
        permissions = sorted(ROLE_PERMISSIONS.get(self.role, frozenset()))
        return {"principal": self.id, "role": self.role.value, "permissions": permissions}


def token_id_of(token_hash: str) -> str:
    return token_hash.split(":", 1)[-1][:TOKEN_ID_LENGTH]


def hash_token_id(token: str) -> str:
    """The short id of a clear token (what logs and the audit log may name)."""
    return token_id_of(hash_token(token))


@dataclass(frozen=True)
class Credential:
    """One stored token: never the token itself, only its hash and what it stands for."""

    token_hash: str
    principal: str
    role: Role
    created: datetime
    expires: datetime | None = None

    @property
    def token_id(self) -> str:
        return token_id_of(self.token_hash)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def to_yaml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "principal": self.principal,
            "role": self.role.value,
            "token_id": self.token_id,
            "created": self.created.isoformat(),
        }
        if self.expires is not None:
            entry["expires"] = self.expires.isoformat()
        return entry

    def listing(self, now: datetime) -> dict[str, Any]:
        """What ``verbund access list`` shows: no token, no hash."""
        return {
            "token_id": self.token_id,
            "principal": self.principal,
            "role": self.role.value,
            "created": self.created.isoformat(timespec="seconds"),
            "expires": self.expires.isoformat(timespec="seconds") if self.expires else None,
            "expired": self.expired(now),
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise CredentialsError(f"{where}: {value!r} is not an ISO 8601 time") from exc
    else:
        raise CredentialsError(f"{where}: expected an ISO 8601 time")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def check_principal_id(principal: str) -> str:
    if not _PRINCIPAL_RE.fullmatch(principal):
        raise CredentialsError(
            f"{principal!r} is not a valid principal id ({PRINCIPAL_ID_PATTERN})"
        )
    return principal


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise CredentialsError(
            f"{value!r} is not a role; one of {', '.join(r.value for r in ROLES)}"
        ) from None


# -- the credentials file ------------------------------------------------------------------


def read_credentials(path: Path) -> dict[str, Credential]:
    """Read and validate a credentials file; a missing file holds no credentials."""
    if not path.exists():
        return {}
    try:
        data = read_data(path)
    except UnreadableFile as exc:
        raise CredentialsError(f"credentials file {path}: cannot read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CredentialsError(f"credentials file {path}: expected a mapping token hash: entry")
    result: dict[str, Credential] = {}
    roles: dict[str, Role] = {}
    for token_hash, entry in data.items():
        where = f"credentials file {path}: {str(token_hash)[:20]}..."
        if not isinstance(token_hash, str) or not _HASH_RE.match(token_hash):
            raise CredentialsError(f"{where}: key must be 'sha256:' + 64 hex digits")
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where}: expected principal, role, created[, expires]")
        try:
            principal = check_principal_id(str(entry.get("principal", "")))
            role = parse_role(str(entry.get("role", "")))
        except CredentialsError as exc:
            raise CredentialsError(f"{where}: {exc}") from None
        if roles.setdefault(principal, role) is not role:
            raise CredentialsError(
                f"{where}: {principal} holds role {roles[principal].value} in another entry"
            )
        expires = entry.get("expires")
        result[token_hash] = Credential(
            token_hash=token_hash,
            principal=principal,
            role=role,
            created=_parse_time(entry.get("created"), f"{where}: created"),
            expires=_parse_time(expires, f"{where}: expires") if expires is not None else None,
        )
    return result


def write_credentials(path: Path, credentials: dict[str, Credential]) -> None:
    """Replace the file atomically (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {h: c.to_yaml() for h, c in sorted(credentials.items())}
    text = yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def issue(
    path: Path,
    principal: str,
    role: Role | str,
    expires_days: float | None = None,
    now: datetime | None = None,
) -> tuple[str, Credential]:
    """Create a token for ``principal`` with ``role``; returns (clear token, its credential).

    A principal has one role: issuing a different role to an existing principal is refused.
    """
    check_principal_id(principal)
    role = parse_role(role) if isinstance(role, str) else role
    if expires_days is not None and expires_days <= 0:
        raise CredentialsError("--expires-days must be positive")
    now = now or utcnow()
    credentials = read_credentials(path)
    for existing in credentials.values():
        if existing.principal == principal and existing.role is not role:
            raise CredentialsError(
                f"{principal} already holds role {existing.role.value}; "
                "revoke its tokens first or use another principal id"
            )
    token = new_token()
    expires = now + timedelta(days=expires_days) if expires_days is not None else None
    credential = Credential(hash_token(token), principal, role, now, expires)
    credentials[credential.token_hash] = credential
    write_credentials(path, credentials)
    return token, credential


def list_credentials(path: Path, principal: str | None = None) -> list[Credential]:
    credentials = read_credentials(path).values()
    chosen = [c for c in credentials if principal is None or c.principal == principal]
    return sorted(chosen, key=lambda c: (c.principal, c.created, c.token_id))


def _by_token_id(credentials: dict[str, Credential], token_id: str) -> Credential:
    matches = [c for c in credentials.values() if c.token_id == token_id]
    if not matches:
        raise CredentialsError(f"no token with id {token_id!r} (see `verbund access list`)")
    return matches[0]


def rotate(
    path: Path, token_id: str, grace_hours: float = 0.0, now: datetime | None = None
) -> tuple[str, Credential, Credential | None]:
    """Issue a new token for the owner of ``token_id`` (same role, same lifetime) and retire
    the old one: at once (``grace_hours=0``), or by letting it expire ``grace_hours`` from
    now so partner systems can switch over. Returns (new token, new credential, the old
    credential as it remains, or ``None`` when it was removed)."""
    if grace_hours < 0:
        raise CredentialsError("--grace-hours must not be negative")
    now = now or utcnow()
    credentials = read_credentials(path)
    old = _by_token_id(credentials, token_id)
    lifetime = old.expires - old.created if old.expires is not None else None
    token = new_token()
    new = Credential(
        hash_token(token), old.principal, old.role, now, now + lifetime if lifetime else None
    )
    credentials[new.token_hash] = new
    kept: Credential | None = None
    if grace_hours > 0:
        until = now + timedelta(hours=grace_hours)
        kept = replace(old, expires=min(old.expires, until) if old.expires else until)
        credentials[old.token_hash] = kept
    else:
        del credentials[old.token_hash]
    write_credentials(path, credentials)
    return token, new, kept


def revoke(
    path: Path, token_id: str | None = None, principal: str | None = None
) -> list[Credential]:
    """Remove one token (by id) or every token of a principal; returns what was removed."""
    if (token_id is None) == (principal is None):
        raise CredentialsError("name either a token id or a principal")
    credentials = read_credentials(path)
    if token_id is not None:
        removed = [_by_token_id(credentials, token_id)]
    else:
        removed = [c for c in credentials.values() if c.principal == principal]
    for credential in removed:
        del credentials[credential.token_hash]
    if removed:
        write_credentials(path, credentials)
    return removed


# -- looking tokens up -----------------------------------------------------------------------


@dataclass
class CredentialStore:
    """The credentials file in memory, re-read when it changes (checked at most every
    ``reload_interval`` seconds). A missing file holds nobody until it appears; a file that
    becomes invalid keeps the last good credentials (:attr:`last_error` says why)."""

    path: Path
    reload_interval: float = 1.0
    _by_hash: dict[str, Credential] = field(default_factory=dict, repr=False)
    _version: tuple[int, int, int] | None = (-2, 0, 0)
    _checked: float = float("-inf")
    last_error: str | None = None

    @classmethod
    def load(cls, path: Path, reload_interval: float = 1.0) -> CredentialStore:
        """Load now; raises :class:`CredentialsError` (fail fast at start-up)."""
        store = cls(path=path, reload_interval=reload_interval)
        store._version = store._file_version()
        store._by_hash = read_credentials(path)
        store._checked = time.monotonic()
        return store

    def _file_version(self) -> tuple[int, int, int] | None:
        """(mtime, inode, size): every write replaces the file (new inode), so two writes
        within one timestamp tick are still told apart."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_ino, stat.st_size)

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.reload_interval:
            return
        self._checked = now
        try:
            version = self._file_version()
        except OSError as exc:
            self.last_error = f"credentials file {self.path}: {exc}"
            return
        if version == self._version:
            return
        try:
            self._by_hash = read_credentials(self.path)
            self.last_error = None
        except CredentialsError as exc:
            self.last_error = str(exc)
        self._version = version

    def lookup(self, token_hash: str) -> Credential | None:
        self.refresh()
        return self._by_hash.get(token_hash)

    def principals(self) -> set[str]:
        return {c.principal for c in self._by_hash.values()}


@dataclass
class IdentityStore:
    """Every source of credentials a service accepts: the credentials file (if any) and
    legacy token files, each read with the role it stands for."""

    credentials: CredentialStore | None = None
    legacy: list[tuple[TokenStore, Role]] = field(default_factory=list)

    @classmethod
    def legacy_only(cls, tokens: TokenStore, role: Role) -> IdentityStore:
        return cls(None, [(tokens, role)])

    def authenticate(self, token: str, now: datetime | None = None) -> Principal:
        token_hash = hash_token(token)
        token_id = token_id_of(token_hash)
        if self.credentials is not None:
            credential = self.credentials.lookup(token_hash)
            if credential is not None:
                principal = Principal(credential.principal, credential.role, token_id)
                if credential.expired(now or utcnow()):
                    raise AuthenticationFailed("expired", "token expired", principal)
                return principal
        for tokens, role in self.legacy:
            owner = tokens.partner_for(token)
            if owner is not None:
                return Principal(owner, role, token_id)
        raise AuthenticationFailed("unknown", "unknown or revoked token")

    def authenticate_header(self, header: str | None, now: datetime | None = None) -> Principal:
        """The principal behind ``Authorization: Bearer <token>``."""
        if not header or not header.strip():
            raise AuthenticationFailed(
                "missing", "missing Authorization header; send 'Authorization: Bearer <token>'"
            )
        token = bearer_token(header)
        if token is None:
            raise AuthenticationFailed("malformed", "Authorization must be 'Bearer <token>'")
        return self.authenticate(token, now)

    @property
    def problems(self) -> list[str]:
        """Sources that failed to reload (the last good content is in use)."""
        sources: Iterable[CredentialStore | TokenStore] = [
            *([self.credentials] if self.credentials else []),
            *(tokens for tokens, _ in self.legacy),
        ]
        problems = []
        for source in sources:
            source.refresh()
            if source.last_error is not None and source.path.exists():
                problems.append(source.last_error)
        return problems


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def build_identities(
    credentials_file: Path | None,
    legacy: Iterable[tuple[Path | None, Role]] = (),
    reload_interval: float = 1.0,
) -> IdentityStore:
    """The identity store of a service: the credentials file (which may not exist yet) and
    each legacy token file that exists. Malformed files fail fast."""
    from services.common.tokens import TokenFileError

    store = IdentityStore(
        CredentialStore.load(credentials_file, reload_interval) if credentials_file else None
    )
    for path, role in legacy:
        if path is None:
            continue
        if not path.exists():  # picked up when it appears
            store.legacy.append((TokenStore(path=path, reload_interval=reload_interval), role))
            continue
        try:
            store.legacy.append((TokenStore.load(path, reload_interval), role))
        except TokenFileError as exc:
            raise CredentialsError(str(exc)) from exc
    return store
