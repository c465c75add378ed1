"""Who is asking: one function from the Authorization header to a :class:`Principal`.

Today every valid token is a coordinator's (the coordinator tokens file, the same format and
:class:`TokenStore` as the gateway's). Partner logins and role-based views add roles here:
the API only ever asks :meth:`Principal.may`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.gateway.tokens import TokenStore, hash_token

COORDINATOR = "coordinator"
OPERATOR = "operator"
AUDITOR = "auditor"
PARTNER = "partner"
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    COORDINATOR: frozenset({"view", "approve"}),
    OPERATOR: frozenset({"view"}),
    AUDITOR: frozenset({"view"}),
    # a partner's view is its own data only (services.console.views.VIEWS_BY_ROLE)
    PARTNER: frozenset({"view"}),
}


class Unauthenticated(Exception):
    """No usable bearer token; the message says why (never echoes the token)."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_id: str  # hash prefix of the token used, as the coordinator records it

    def may(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())

    def view(self) -> dict[str, object]:
        permissions = sorted(ROLE_PERMISSIONS.get(self.role, frozenset()))
        return {"principal": self.name, "role": self.role, "permissions": permissions}


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(
    header: str | None,
    coordinators: TokenStore,
    others: Mapping[str, TokenStore] | None = None,
) -> Principal:
    """The principal behind an ``Authorization: Bearer ...`` header, or :class:`Unauthenticated`.

    ``others`` maps further roles (operator, partner, ...) to their token stores; for partners
    the principal's name is the partner id (the gateway's tokens file)."""
    token = bearer_token(header)
    if token is None:
        raise Unauthenticated("bearer token required")
    stores = [(COORDINATOR, coordinators), *(others or {}).items()]
    for role, store in stores:
        name = store.partner_for(token)
        if name is not None:
            return Principal(name, role, hash_token(token).split(":", 1)[-1][:12])
    raise Unauthenticated("unknown token")
