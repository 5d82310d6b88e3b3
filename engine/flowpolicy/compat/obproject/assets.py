"""``obproject.assets`` of the stand-in: ``flowpolicy.assets``."""

from flowpolicy.assets import *  # noqa: F403
from flowpolicy.assets import __all__  # noqa: F401
