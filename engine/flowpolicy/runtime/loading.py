"""Loading a model outside a flow: in a server, a notebook or a batch job.

:func:`resolve_model` finds one instance by spec (``latest``, ``vN``, ``@production`` …) on
a branch, peeking (no lineage is recorded) at a registry opened read-only, so nothing is
ever created or written. :func:`load_model` then hands it back loaded: an ``artifact``-kind
instance from the Metaflow task that produced it, an external-kind instance (blobs in S3, a
Hugging Face id …) through a loader of yours, which receives the :class:`ModelInstance`::

    from flowpolicy import load_model

    model = load_model("fraud_model", "@production", project="fraud_detection", branch="prod",
                       datastore="/srv/metaflow")

Artifacts are read through the Metaflow client, with ``namespace(None)`` (the producer is
usually another user's or a scheduler's run). ``datastore`` is the folder that holds the
``.metaflow`` directory the flows wrote to (Metaflow's ``local@<folder>``); without it,
Metaflow's own configuration decides (``METAFLOW_DATASTORE_SYSROOT_LOCAL``, else the nearest
``.metaflow`` above the working directory, or the configured metadata service). Metaflow's
namespace and metadata provider are process-wide settings: they are switched for the load
and put back afterwards, under a lock, so loads in several threads do not interleave.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.registry import open_existing_registry
from flowpolicy.registry.base import InstanceRecord, Registry, Scope
from flowpolicy.runtime.branch import resolve_branch, resolve_project

#: The datastore folder Metaflow writes under, inside ``datastore``.
METAFLOW_DIR = ".metaflow"

_metaflow_settings = threading.Lock()


class ModelLoadError(FlowpolicyError):
    """An instance resolved, but its model cannot be loaded (wrong kind, the producing task
    or its artifact not found, a loader that fails)."""


@dataclass(frozen=True)
class ModelInstance:
    """One resolved instance of a model asset: what a loader receives.

    ``record`` is the registry's immutable record; ``datastore`` where its artifact is read
    from (None: Metaflow's configuration).
    """

    record: InstanceRecord
    datastore: str | None = None

    @property
    def scope(self) -> Scope:
        return self.record.scope

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.record.annotations

    @property
    def blobs(self) -> tuple[str, ...]:
        return self.record.blobs

    @property
    def producer(self) -> str:
        """The entity that registered it (for an artifact, ``Flow/run/step/task``)."""
        return self.record.created_by.entity_id

    def describe(self) -> str:
        scope = self.scope
        return f"{scope.name} {self.id} ({scope.project}/{scope.branch})"

    def artifact(self) -> Any:
        """The Metaflow artifact behind an ``artifact``-kind instance, read from the task that
        produced it (the task recorded as ``created_by``; the artifact named by the
        ``artifact`` annotation)."""
        if self.kind != "artifact":
            raise ModelLoadError(
                f"{self.describe()} is of kind {self.kind!r}, not a Metaflow artifact: load "
                f"its blobs ({', '.join(self.blobs) or 'none'}) with a loader of your own")
        name = self.annotations.get("artifact")
        if not name:
            raise ModelLoadError(
                f"{self.describe()} is an artifact but has no 'artifact' annotation naming it")
        return load_task_artifact(self.producer, name, datastore=self.datastore,
                                  what=self.describe())


def resolve_model(
    name: str,
    instance: str = "latest",
    *,
    project: str | None = None,
    branch: str | None = None,
    registry: Registry | str | None = None,
    datastore: str | os.PathLike | None = None,
) -> ModelInstance:
    """The instance of model ``name`` that ``instance`` names on ``branch`` of ``project``
    (defaults as for :class:`~flowpolicy.runtime.assets.Asset`). The registry (a backend or a
    URL; default ``FLOWPOLICY_REGISTRY`` / the project's file) is opened read-only: a missing
    file is a RegistryError, never created."""
    if registry is None or isinstance(registry, str):
        registry = open_existing_registry(
            registry, read_only=True,
            missing="no model has been registered there (or point FLOWPOLICY_REGISTRY at the "
                    "right file)")
    scope = Scope(resolve_project(project), resolve_branch(explicit=branch), "model", name)
    record = registry.resolve(scope, instance)
    return ModelInstance(record, None if datastore is None else datastore_folder(datastore))


def load_model(name: str, instance: str = "latest", *,
               loader: Callable[[ModelInstance], Any] | None = None, **where: Any) -> Any:
    """Resolve as :func:`resolve_model` does (``where``: its ``project``, ``branch``,
    ``registry`` and ``datastore``), then return ``loader(instance)``, or without a loader
    the instance's Metaflow artifact (:meth:`ModelInstance.artifact`)."""
    resolved = resolve_model(name, instance, **where)
    return resolved.artifact() if loader is None else loader(resolved)


def datastore_folder(datastore: str | os.PathLike) -> str:
    """The folder holding ``.metaflow`` (the ``.metaflow`` folder itself is accepted too)."""
    path = Path(datastore).expanduser().resolve()
    if path.name == METAFLOW_DIR:
        path = path.parent
    if not (path / METAFLOW_DIR).is_dir():
        raise ModelLoadError(
            f"datastore {path} holds no {METAFLOW_DIR} folder: give the folder the flows wrote "
            f"to (their METAFLOW_DATASTORE_SYSROOT_LOCAL, or the folder they ran in)")
    return str(path)


def load_task_artifact(task: str, artifact: str, *, datastore: str | None = None,
                       what: str | None = None) -> Any:
    """Artifact ``artifact`` of Metaflow task ``task`` (``Flow/run/step/task``), read in
    every namespace from ``datastore`` (None: Metaflow's configuration)."""
    from metaflow import Task
    from metaflow.exception import MetaflowNotFound

    subject = what or f"task {task}"
    with metaflow_reading(datastore) as where:
        try:
            found = Task(task)
        except MetaflowNotFound:
            raise ModelLoadError(
                f"{subject} was produced by task {task}, which Metaflow's metadata at {where} "
                "does not know: point datastore= (flowpolicy serve --datastore) at the folder "
                "holding the .metaflow the flow wrote to, or set "
                "METAFLOW_DATASTORE_SYSROOT_LOCAL") from None
        if artifact not in found:
            raise ModelLoadError(f"{subject}: task {task} has no artifact {artifact!r}")
        return found[artifact].data


@contextmanager
def metaflow_reading(datastore: str | None = None) -> Iterator[str]:
    """Metaflow's client reading every namespace (and from ``datastore`` if given) for the
    duration; yields the metadata provider in use, for messages."""
    from metaflow import default_metadata, get_metadata, get_namespace, metadata, namespace

    with _metaflow_settings:
        previous_namespace = get_namespace()
        previous_metadata = get_metadata() if datastore else None
        try:
            namespace(None)
            if datastore:
                metadata(f"local@{datastore}")
            yield get_metadata()
        finally:
            namespace(previous_namespace)
            if previous_metadata is not None:
                try:
                    metadata(previous_metadata)
                except ValueError:  # the previous one named no folder (nothing found yet)
                    default_metadata()
