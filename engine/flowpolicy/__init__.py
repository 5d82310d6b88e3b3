"""flowpolicy: declarative promotion policies for Metaflow projects.

``from flowpolicy import ProjectFlow, Asset`` gives the obproject-compatible runtime; the
names are resolved lazily so that ``import flowpolicy`` (and the CLI) does not pay for
importing Metaflow.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "ProjectFlow": "flowpolicy.runtime.project",
    "ProjectContext": "flowpolicy.runtime.project",
    "Asset": "flowpolicy.runtime.assets",
    "ProjectEvent": "flowpolicy.runtime.events",
    "project_trigger": "flowpolicy.runtime.project",
    "promote_assets": "flowpolicy.runtime.promote",
    "load_model": "flowpolicy.runtime.loading",
    "resolve_model": "flowpolicy.runtime.loading",
    "load_policy": "flowpolicy.policy.loader",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowpolicy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
