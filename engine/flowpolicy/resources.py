"""Locate the data that ships with flowpolicy: JSON Schemas and stock policy presets.

In a wheel they live in ``flowpolicy/_data/``; in a source checkout (editable install)
they are the top-level ``schemas/`` and ``policies/`` folders.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def _data_root(kind: str) -> Path:
    packaged = _PACKAGE_DIR / "_data" / kind
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent.parent / kind
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"flowpolicy installation is missing its {kind}/ folder")


def presets_dir() -> Path:
    return _data_root("policies")


def schema_path(name: str = "policy") -> Path:
    return _data_root("schemas") / f"{name}.schema.json"


@cache
def policy_schema() -> dict:
    """The policy JSON Schema (Draft 2020-12) shipped with flowpolicy."""
    return json.loads(schema_path("policy").read_text(encoding="utf-8"))


def templates_dir() -> Path:
    return _PACKAGE_DIR / "compile" / "templates"
