"""Legacy per-service token files; moved to :mod:`services.common.tokens` (re-exported here)."""

from services.common.tokens import (
    HASH_PREFIX,
    TOKEN_PREFIX,
    TokenFileError,
    TokenStore,
    hash_token,
    issue_token,
    new_token,
    read_token_file,
    revoke_tokens,
)

__all__ = [
    "HASH_PREFIX",
    "TOKEN_PREFIX",
    "TokenFileError",
    "TokenStore",
    "hash_token",
    "issue_token",
    "new_token",
    "read_token_file",
    "revoke_tokens",
]
