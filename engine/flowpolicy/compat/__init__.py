"""Run a flow written for Outerbounds' ``obproject`` on flowpolicy without editing it.

This folder holds an ``obproject`` package (``obproject``, ``obproject.assets``,
``obproject.projectbase``, ``obproject.project_events``, ``obproject.project_schedule``,
``obproject.evals_logger``) that re-exports flowpolicy's counterparts. It is importable as
``obproject`` only when this folder is on the module path, which nothing does unless asked:

    python -m flowpolicy.compat flow.py run --branch x        # run one flow this way
    PYTHONPATH="$(python -m flowpolicy.compat --path)" python flow.py run

It never stands in for a real obproject: when another ``obproject`` can be imported (the
``ob-project-utils`` package is installed, or one is on the path), the launcher refuses and
importing the stand-in raises ImportError, so a flow never runs against the wrong library.
"""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent


def _is_shim_dir(entry: str) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == SHIM_DIR
    except OSError:
        return False


def real_obproject(path: list[str] | None = None) -> str | None:
    """Where another ``obproject`` package would be imported from (the search path without
    this folder), or None."""
    import sys

    entries = [e for e in (sys.path if path is None else path) if not _is_shim_dir(e)]
    spec = importlib.machinery.PathFinder.find_spec("obproject", entries)
    if spec is None:
        return None
    return spec.origin or ", ".join(spec.submodule_search_locations or ()) or "obproject"


def shadow_refusal(found: str) -> str:
    return (f"flowpolicy's obproject stand-in will not shadow the real obproject at {found}: "
            "uninstall ob-project-utils from this environment to run obproject flows on "
            "flowpolicy unchanged, or change the flow's import to flowpolicy")


def refuse_to_shadow() -> None:
    """ImportError when a real obproject is importable (called by the stand-in)."""
    found = real_obproject()
    if found is not None:
        raise ImportError(shadow_refusal(found))
