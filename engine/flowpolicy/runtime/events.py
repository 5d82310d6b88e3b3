"""``ProjectEvent``: obproject's event publisher, writing to the registry's events table.

On the wire an event is ``prj.<project>.<branch>.<name>``. The embedded registry keeps it in
its events table (what ``flowpolicy events`` shows); the Outerbounds backend forwards it to
the platform's event bus, where ``@trigger`` picks it up.

Names as obproject gives them: the project defaults to ``OB_PROJECT``, else the running
flow's; the branch to :func:`~flowpolicy.runtime.branch.event_branch` (``OB_BRANCH``, else
``FLOWPOLICY_BRANCH``, else the ``@project`` branch with ``prod`` → ``main`` and
``test.X``/``user.X`` → ``X``). An explicit branch is used as given, not sanitised again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from flowpolicy.registry import open_registry
from flowpolicy.registry.base import event_wire_name
from flowpolicy.runtime.branch import event_branch, resolve_project
from flowpolicy.runtime.identity import current_entity


class ProjectEvent:
    """``ProjectEvent(name, project=None, branch=None).publish(payload=None)``."""

    def __init__(self, name: str, project: str | None = None, branch: str | None = None):
        self.name = name
        self.project = project or os.environ.get("OB_PROJECT") or resolve_project()
        self.branch = branch or event_branch()
        self.event = event_wire_name(self.project, self.branch, name)

    def publish(self, payload: Mapping[str, Any] | None = None,
                ignore_errors: bool = False) -> dict[str, Any] | None:
        try:
            record = open_registry().publish_event(
                self.project, self.branch, self.name, payload, current_entity())
        except Exception:
            if ignore_errors:
                return None
            raise
        return record.to_dict()

    def safe_publish(self, payload: Mapping[str, Any] | None = None,
                     ignore_errors: bool = False) -> dict[str, Any] | None:
        """Publish, but a failure only prints a warning (a flow must not die for an event)."""
        try:
            return self.publish(payload)
        except Exception as exc:  # noqa: BLE001 - by contract nothing escapes
            print(f"flowpolicy: could not publish event {self.event}: {exc}", file=sys.stderr)
            return None
