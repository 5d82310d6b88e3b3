"""``obproject.evals_logger`` on flowpolicy: ``self.prj.evals``."""

from flowpolicy.runtime.project import MAGIC_PREFIX, EvalsLogger

__all__ = ["MAGIC_PREFIX", "EvalsLogger"]
