"""Audit contracts: what services publish so that the audit log records it.

``AccessRefused`` is published by any service whose access control refuses a request
(gateway token rejected, coordinator approval by a principal without the role, ...).
It travels on ``verbund.commands`` keyed by the principal, next to the commands the
principal was (or was not) allowed to issue; the audit service records every one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas import SCHEMA_VERSION
from schemas.common import Contract, Timestamp

Text = Annotated[str, Field(min_length=1, max_length=200)]


class AccessRefused(Contract):
    """A request was refused by access control. Never carries the credential itself."""

    type: Literal["AccessRefused"] = "AccessRefused"
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION)
    principal: Text = Field(
        description="Who asked: coordinator id, partner id, or 'anonymous' / a token hash "
        "prefix when the credential did not identify anyone."
    )
    role: Annotated[str, Field(max_length=100)] = Field(
        default="", description="The role the principal holds ('' when unknown)."
    )
    action: Text = Field(description="What was attempted, e.g. 'approve_run', 'post_events'.")
    resource: Text = Field(description="What it was attempted on, e.g. a run id or a topic.")
    reason: Annotated[str, Field(min_length=1, max_length=500)] = Field(
        description="Why it was refused, e.g. 'role coordinator required', 'token revoked'."
    )
    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")] = Field(
        default="unknown", description="The service that refused the request."
    )
    at: Timestamp
