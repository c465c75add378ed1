"""Verbund's contracts: pydantic models of every event, command and file format.

JSON Schema documents and the AsyncAPI description in this folder are generated
from these models (``verbund schemas generate``); a test fails when they drift.
"""

from typing import Final

SCHEMA_VERSION: Final = 1
