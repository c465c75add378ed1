"""Who is asking the console: the common identities (:mod:`services.common.identity`).

The console accepts every role; its route table (``services.console.api.ROUTE_POLICIES``)
says which role may use which endpoint, and the views say what each role sees. Tokens come
from the credentials file and, for compatibility, the legacy per-role token files
(coordinators, operators, partners' gateway tokens).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.common.identity import (
    ROLE_PERMISSIONS,
    AuthenticationFailed,
    IdentityStore,
    Principal,
    Role,
    bearer_token,
)
from services.common.tokens import TokenStore

COORDINATOR = Role.COORDINATOR.value
OPERATOR = Role.OPERATOR.value
AUDITOR = Role.AUDITOR.value
PARTNER = Role.PARTNER.value

__all__ = [
    "AUDITOR",
    "COORDINATOR",
    "OPERATOR",
    "PARTNER",
    "ROLE_PERMISSIONS",
    "Principal",
    "Unauthenticated",
    "authenticate",
    "bearer_token",
    "legacy_identities",
]


class Unauthenticated(Exception):
    """No usable bearer token; the message says why (never echoes the token)."""


def legacy_identities(
    coordinators: TokenStore, others: Mapping[str, TokenStore] | None = None
) -> IdentityStore:
    """An identity store over legacy token files: ``coordinators`` and ``{role: store}``."""
    legacy = [(coordinators, Role.COORDINATOR)]
    legacy += [(store, Role(role)) for role, store in (others or {}).items()]
    return IdentityStore(None, legacy)


def authenticate(
    header: str | None,
    identities: IdentityStore | TokenStore,
    others: Mapping[str, TokenStore] | None = None,
) -> Principal:
    """The principal behind an ``Authorization: Bearer ...`` header, or :class:`Unauthenticated`.

    ``identities`` is the service's identity store, or (older callers) the coordinator
    tokens with ``others`` mapping further roles to their legacy token files."""
    if isinstance(identities, TokenStore):
        identities = legacy_identities(identities, others)
    try:
        return identities.authenticate_header(header)
    except AuthenticationFailed as exc:
        raise Unauthenticated(exc.message) from None
