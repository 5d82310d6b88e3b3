"""Read-only access to Metaflow runs for the checker and the planner: which runs of a flow
carry a tag (the champion mirror), and artifacts of a task (drift inputs).

The client is used with ``namespace(None)`` (the runs may be another user's or branch's) and
runs are ordered by id, never through ``Flow.latest_run`` (a tag change rewrites a run's
timestamp). ``root`` points the client at a local datastore (``local@<root>``, the folder
holding ``.metaflow``) for callers whose process imported Metaflow with another one; without
it the client is configured as Metaflow configures it (``METAFLOW_DATASTORE_SYSROOT_LOCAL``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.runtime.tags import run_sort_key  # the champion flow's order of run ids


class MetaflowReadError(FlowpolicyError):
    """A run, task or artifact the check needs cannot be read from Metaflow."""


class MetaflowRuns:
    """Tag and artifact reads through the Metaflow client; each flow's runs are listed once."""

    def __init__(self, root: str | None = None):
        self.root = root
        #: flow name -> run id -> the run's user tags
        self._runs: dict[str, dict[str, frozenset[str]]] = {}

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        import metaflow
        from metaflow.client import core
        from metaflow.plugins.datastores.local_storage import LocalStorage

        # the raw value: get_namespace() would resolve a default one, which needs a user name
        previous_namespace = core.current_namespace
        # metaflow.metadata() switches the provider globally; remember what to put back
        provider = core.current_metadata
        info, datastore_root = getattr(provider, "INFO", None), LocalStorage.datastore_root
        try:
            if self.root:
                try:
                    metaflow.metadata(f"local@{self.root}")
                except ValueError as exc:
                    raise MetaflowReadError(
                        f"no Metaflow datastore at {self.root}: {exc}") from exc
            metaflow.namespace(None)
            yield metaflow
        finally:
            core.current_namespace = previous_namespace
            if self.root:
                core.current_metadata = provider
                if provider is not None and hasattr(provider, "INFO"):
                    provider.INFO = info
                LocalStorage.datastore_root = datastore_root

    def runs(self, flow_name: str) -> set[str]:
        """Ids of every run of ``flow_name`` (empty when the flow is unknown)."""
        return set(self._tags_by_run(flow_name))

    def tagged(self, flow_name: str, tag: str) -> list[str]:
        """Ids of the runs of ``flow_name`` carrying user tag ``tag``, ordered by id."""
        return sorted((run_id for run_id, tags in self._tags_by_run(flow_name).items()
                       if tag in tags), key=run_sort_key)

    def _tags_by_run(self, flow_name: str) -> dict[str, frozenset[str]]:
        if flow_name in self._runs:
            return self._runs[flow_name]
        from metaflow.exception import MetaflowNotFound

        with self.client() as mf:
            try:
                runs = {r.id: frozenset(r.user_tags) for r in mf.Flow(flow_name).runs()}
            except MetaflowNotFound:
                runs = {}
            except Exception as exc:  # the client raises many kinds; all mean "cannot read"
                raise MetaflowReadError(
                    f"cannot read the runs of Metaflow flow {flow_name}: {exc}") from exc
        self._runs[flow_name] = runs
        return runs

    def artifact(self, task_pathspec: str, name: str) -> Any:
        """The value of artifact ``name`` of task ``Flow/run/step/task``."""
        with self.client() as mf:
            try:
                return mf.Task(task_pathspec)[name].data
            except Exception as exc:
                raise MetaflowReadError(
                    f"cannot load artifact {name!r} of Metaflow task {task_pathspec}: {exc}"
                ) from exc

