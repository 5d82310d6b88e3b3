"""Who is acting: the running Metaflow task, else the user (as obproject's entity refs)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

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


def running_flow() -> Any | None:
    """Metaflow's ``current`` inside a running task, else None (without importing Metaflow)."""
    if "metaflow" not in sys.modules:
        return None
    from metaflow import current

    return current if current.is_running_flow else None


def current_entity() -> EntityRef:
    """``task Flow/run/step/task`` inside a running task, else ``user <name>``."""
    current = running_flow()
    if current is not None and current.pathspec:
        return EntityRef("task", current.pathspec)
    return EntityRef("user", username())


def entity_ref(kind: str, entity_id: str) -> dict[str, str]:
    """obproject's entity reference dict: ``{"entity_kind": kind, "entity_id": entity_id}``."""
    return {"entity_kind": kind, "entity_id": entity_id}


def task_ref(flow: str, run_id: str, step: str, task_id: str) -> dict[str, str]:
    """The entity reference of task ``flow/run_id/step/task_id``."""
    return entity_ref("task", f"{flow}/{run_id}/{step}/{task_id}")


def user_ref(user_id: str) -> dict[str, str]:
    """The entity reference of user ``user_id``."""
    return entity_ref("user", user_id)
