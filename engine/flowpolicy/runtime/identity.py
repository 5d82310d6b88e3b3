"""Who is acting: the running Metaflow task, else the user (as obproject's entity refs)."""

from __future__ import annotations

import getpass
import os
import sys

from flowpolicy.registry.base import EntityRef


def username() -> str:
    """Metaflow's user rule: ``METAFLOW_USER``, else the login name."""
    for var in ("METAFLOW_USER", "USER", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def current_entity() -> EntityRef:
    """``task Flow/run/step/task`` inside a running task, else ``user <name>``."""
    if "metaflow" in sys.modules:
        from metaflow import current

        if current.is_running_flow and current.pathspec:
            return EntityRef("task", current.pathspec)
    return EntityRef("user", username())
