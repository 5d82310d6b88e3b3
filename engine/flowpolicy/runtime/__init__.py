"""What flows import at run time: ``ProjectFlow``, ``Asset``, ``promote_assets``, events.

Names resolve lazily so importing this package stays cheap (no Metaflow import until a
name that needs it is used). ``decisions``, ``drift`` and ``steps`` (what the generated
flows' steps call) are imported directly by callers.
"""

from __future__ import annotations

from flowpolicy import lazy_names

_LAZY = {
    "ProjectFlow": "flowpolicy.runtime.project",
    "ProjectContext": "flowpolicy.runtime.project",
    "Asset": "flowpolicy.runtime.assets",
    "AssetInstance": "flowpolicy.runtime.assets",
    "promote_assets": "flowpolicy.runtime.promote",
    "load_model": "flowpolicy.runtime.loading",
    "resolve_model": "flowpolicy.runtime.loading",
    "ModelInstance": "flowpolicy.runtime.loading",
    "ProjectEvent": "flowpolicy.runtime.events",
    "project_trigger": "flowpolicy.runtime.triggers",
    "project_schedule": "flowpolicy.runtime.triggers",
    "highlight": "flowpolicy.runtime.highlight",
    "mirror_champion": "flowpolicy.runtime.tags",
    "mirror_champion_tag": "flowpolicy.runtime.tags",
    "sanitize_branch": "flowpolicy.runtime.branch",
    "resolve_branch": "flowpolicy.runtime.branch",
    "resolve_project": "flowpolicy.runtime.branch",
}

__all__ = list(_LAZY)


__getattr__ = lazy_names(__name__, _LAZY)
