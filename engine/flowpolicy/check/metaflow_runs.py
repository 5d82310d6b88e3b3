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


class MetaflowReadError(FlowpolicyError):
    """A run, task or artifact the check needs cannot be read from Metaflow."""


def run_sort_key(run_id: str) -> tuple[int, int | str]:
    return (0, int(run_id)) if run_id.isdigit() else (1, run_id)


def training_run(ref_or_annotations: dict[str, Any], created_by: str | None = None) -> str:
    """``Flow/run_id`` of the run that produced an instance: its ``run_pathspec``
    annotation (set by ``register_*``), else its creator's task pathspec."""
    pathspec = ref_or_annotations.get("run_pathspec") or created_by or ""
    return "/".join(pathspec.split("/")[:2])


class MetaflowRuns:
    """Tag and artifact reads through the Metaflow client, cached per flow."""

    def __init__(self, root: str | None = None):
        self.root = root
        self._tagged: dict[tuple[str, str], list[str]] = {}
        self._runs: dict[str, set[str]] = {}

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        import metaflow
        from metaflow.client import core

        # the raw value: get_namespace() would resolve a default one, which needs a user name
        previous_namespace = core.current_namespace
        saved = _save_metadata() if self.root else None
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
            if saved is not None:
                _restore_metadata(saved)

    def runs(self, flow_name: str) -> set[str]:
        """Ids of every run of ``flow_name`` (empty when the flow is unknown)."""
        if flow_name not in self._runs:
            self._load(flow_name)
        return self._runs[flow_name]

    def tagged(self, flow_name: str, tag: str) -> list[str]:
        """Ids of the runs of ``flow_name`` carrying user tag ``tag``, ordered by id."""
        if (flow_name, tag) not in self._tagged:
            self._load(flow_name, tag)
        return self._tagged[(flow_name, tag)]

    def _load(self, flow_name: str, tag: str | None = None) -> None:
        from metaflow.exception import MetaflowNotFound

        with self.client() as mf:
            try:
                runs = list(mf.Flow(flow_name).runs())
            except MetaflowNotFound:
                runs = []
            except Exception as exc:  # the client raises many kinds; all mean "cannot read"
                raise MetaflowReadError(
                    f"cannot read the runs of Metaflow flow {flow_name}: {exc}") from exc
            self._runs[flow_name] = {r.id for r in runs}
            if tag is not None:
                self._tagged[(flow_name, tag)] = sorted(
                    (r.id for r in runs if tag in r.user_tags), key=run_sort_key)

    def artifact(self, task_pathspec: str, name: str) -> Any:
        """The value of artifact ``name`` of task ``Flow/run/step/task``."""
        with self.client() as mf:
            try:
                return mf.Task(task_pathspec)[name].data
            except Exception as exc:
                raise MetaflowReadError(
                    f"cannot load artifact {name!r} of Metaflow task {task_pathspec}: {exc}"
                ) from exc


def _save_metadata() -> tuple[Any, Any, Any]:
    # metaflow.metadata() switches the provider globally; remember what to put back.
    from metaflow.client import core
    from metaflow.plugins.datastores.local_storage import LocalStorage

    provider = core.current_metadata
    return provider, getattr(provider, "INFO", None), LocalStorage.datastore_root


def _restore_metadata(saved: tuple[Any, Any, Any]) -> None:
    from metaflow.client import core
    from metaflow.plugins.datastores.local_storage import LocalStorage

    provider, info, root = saved
    core.current_metadata = provider
    if provider is not None and hasattr(provider, "INFO"):
        provider.INFO = info
    LocalStorage.datastore_root = root
