"""``obproject.project_events`` of the stand-in: ``flowpolicy.project_events``."""

from flowpolicy.project_events import *  # noqa: F403
from flowpolicy.project_events import __all__  # noqa: F401
