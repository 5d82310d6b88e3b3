"""``obproject.evals_logger`` of the stand-in: ``flowpolicy.evals_logger``."""

from flowpolicy.evals_logger import *  # noqa: F403
from flowpolicy.evals_logger import __all__  # noqa: F401
