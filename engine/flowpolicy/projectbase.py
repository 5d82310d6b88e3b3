"""``obproject.projectbase`` on flowpolicy: ``ProjectFlow`` and ``self.prj``."""

from flowpolicy.runtime.project import (
    ProjectContext,
    ProjectFlow,
    project_pypi,
    resolve_scope,
    toml_parser,
)

__all__ = ["ProjectContext", "ProjectFlow", "project_pypi", "resolve_scope", "toml_parser"]
