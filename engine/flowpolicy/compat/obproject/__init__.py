"""flowpolicy's stand-in for Outerbounds' ``obproject`` (opt-in: see :mod:`flowpolicy.compat`)."""

from flowpolicy.compat import refuse_to_shadow

refuse_to_shadow()

from flowpolicy import (  # noqa: E402 - only once no real obproject is there
    AssetInstance,
    EntityRef,
    ProjectEvent,
    ProjectFlow,
    highlight,
    project_schedule,
    project_trigger,
    promote_assets,
)

METAFLOW_PACKAGE_POLICY = "include"

__all__ = ["AssetInstance", "EntityRef", "ProjectEvent", "ProjectFlow", "highlight",
           "project_schedule", "project_trigger", "promote_assets"]
