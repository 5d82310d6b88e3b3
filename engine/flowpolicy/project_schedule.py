"""``obproject.project_schedule`` on flowpolicy: branch-aware ``@schedule``."""

from flowpolicy.runtime.triggers import (
    VALID_SCHEDULE_KEYS,
    ProjectScheduleException,
    project_schedule,
)

__all__ = ["VALID_SCHEDULE_KEYS", "ProjectScheduleException", "project_schedule"]
