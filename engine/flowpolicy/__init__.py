"""flowpolicy: declarative promotion policies for Metaflow projects.

``from flowpolicy import ProjectFlow, Asset`` gives the obproject-compatible runtime: every
name ``obproject`` exports is here, and ``flowpolicy.assets``, ``flowpolicy.projectbase``,
``flowpolicy.project_events``, ``flowpolicy.project_schedule`` and ``flowpolicy.evals_logger``
mirror obproject's modules. The names are resolved lazily so that ``import flowpolicy`` (and
the CLI) does not pay for importing Metaflow.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ProjectFlow": "flowpolicy.runtime.project",
    "ProjectContext": "flowpolicy.runtime.project",
    "Asset": "flowpolicy.runtime.assets",
    "ProjectEvent": "flowpolicy.runtime.events",
    "project_trigger": "flowpolicy.runtime.triggers",
    "project_schedule": "flowpolicy.runtime.triggers",
    "ProjectTriggerException": "flowpolicy.runtime.triggers",
    "ProjectScheduleException": "flowpolicy.runtime.triggers",
    "highlight": "flowpolicy.runtime.highlight",
    "AssetInstance": "flowpolicy.runtime.assets",
    "EntityRef": "flowpolicy.registry.base",
    "promote_assets": "flowpolicy.runtime.promote",
    "load_model": "flowpolicy.runtime.loading",
    "resolve_model": "flowpolicy.runtime.loading",
    "load_policy": "flowpolicy.policy.loader",
}

__all__ = ["__version__", *_LAZY]


def lazy_names(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports each of ``names`` (name -> module)
    the first time it is asked for, so ``package`` stays cheap to import."""
    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__getattr__ = lazy_names(__name__, _LAZY)


class _Package(types.ModuleType):
    """``flowpolicy.project_schedule`` is the decorator, as ``obproject.project_schedule``
    is, even after the module of that name (obproject's layout) has been imported: the
    import system binds a submodule onto its package, and this attribute ignores that."""

    @property
    def project_schedule(self):
        return __getattr__("project_schedule")

    @project_schedule.setter
    def project_schedule(self, value) -> None:
        pass


sys.modules[__name__].__class__ = _Package
