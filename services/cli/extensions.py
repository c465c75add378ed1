"""Subcommands that live next to the code they drive (protocols, schemas, gateway)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    return None
