"""HTTP gateway for partners without Kafka: POST /v1/events -> verbund.partner.events."""

from services.gateway.app import GatewayServer, create_app, run_gateway
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenFileError, TokenStore, hash_token, issue_token

__all__ = [
    "GatewayServer",
    "GatewaySettings",
    "TokenFileError",
    "TokenStore",
    "create_app",
    "hash_token",
    "issue_token",
    "run_gateway",
]
