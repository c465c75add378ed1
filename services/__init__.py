"""Verbund services: gateway, ledger, coordinator, audit, console, and their common runtime."""
