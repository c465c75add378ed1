"""Who is asking: one function from the Authorization header to a :class:`Principal`.

Today every valid token is a coordinator's (the coordinator tokens file, the same format and
:class:`TokenStore` as the gateway's). Partner logins and role-based views add roles here:
the API only ever asks :meth:`Principal.may`.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.gateway.tokens import TokenStore, hash_token

COORDINATOR = "coordinator"
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    COORDINATOR: frozenset({"view", "approve"}),
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


def authenticate(header: str | None, coordinators: TokenStore) -> Principal:
    """The principal behind an ``Authorization: Bearer ...`` header, or :class:`Unauthenticated`."""
    token = bearer_token(header)
    if token is None:
        raise Unauthenticated("bearer token required")
    name = coordinators.partner_for(token)
    if name is None:
        raise Unauthenticated("unknown token")
    return Principal(name, COORDINATOR, hash_token(token).split(":", 1)[-1][:12])
