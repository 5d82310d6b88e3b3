"""``obproject.project_schedule`` of the stand-in: ``flowpolicy.project_schedule``."""

from flowpolicy.project_schedule import *  # noqa: F403
from flowpolicy.project_schedule import __all__  # noqa: F401
