"""``obproject.project_events`` on flowpolicy: ``ProjectEvent`` and ``@project_trigger``."""

from flowpolicy.registry.base import event_wire_name
from flowpolicy.runtime.events import ProjectEvent
from flowpolicy.runtime.triggers import ProjectTriggerException, project_trigger

__all__ = ["ProjectEvent", "ProjectTriggerException", "event_name", "project_trigger"]


def event_name(name: str, project: str, branch: str) -> str:
    """``prj.<project>.<branch>.<name>`` (obproject's argument order)."""
    return event_wire_name(project, branch, name)
