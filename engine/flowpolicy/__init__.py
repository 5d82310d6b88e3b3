"""flowpolicy: declarative promotion policies for Metaflow projects.

``from flowpolicy import ProjectFlow, Asset`` gives the obproject-compatible runtime; the
names are resolved lazily so that ``import flowpolicy`` (and the CLI) does not pay for
importing Metaflow.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: What ``from flowpolicy import ...`` gives beside the version: the runtime's names (each
#: imported where :mod:`flowpolicy.runtime` says it lives) and the policy loader.
_RUNTIME = ("ProjectFlow", "ProjectContext", "Asset", "ProjectEvent", "project_trigger",
            "promote_assets")

__all__ = ["__version__", *_RUNTIME, "load_policy"]


def __getattr__(name: str):
    if name in _RUNTIME:
        from flowpolicy import runtime

        value = getattr(runtime, name)
    elif name == "load_policy":
        from flowpolicy.policy.loader import load_policy as value
    else:
        raise AttributeError(f"module 'flowpolicy' has no attribute {name!r}")
    globals()[name] = value
    return value
