"""``obproject.projectbase`` of the stand-in: ``flowpolicy.projectbase``."""

from flowpolicy.projectbase import *  # noqa: F403
from flowpolicy.projectbase import __all__  # noqa: F401
