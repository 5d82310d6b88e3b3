"""``ProjectFlow`` and ``self.prj``: obproject's flow base class on a flowpolicy registry.

``ProjectFlow`` is a ``FlowSpec`` that carries Metaflow's ``@project``. Its name comes from
``FLOWPOLICY_PROJECT`` or ``obproject.toml`` in the working directory (read once, at run
start, into the ``project_config`` Config so every task — local or remote — sees the same
value). A subclass may instead decorate itself with ``@project(name="...")``; then that
decorator is kept and nothing is added. ``self.prj`` is a :class:`ProjectContext`, created on
first use, one per process, exactly as obproject's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from metaflow import Config, FlowMutator, FlowSpec, project
from metaflow.exception import MetaflowException

from flowpolicy.registry.base import event_wire_name
from flowpolicy.runtime.assets import Asset, AssetInstance
from flowpolicy.runtime.branch import (
    PROJECT_FILE,
    deployed_branch,
    env_branch,
    read_project_file,
    resolve_branch,
    sanitize_branch,
)
from flowpolicy.runtime.events import ProjectEvent
from flowpolicy.runtime.registration import RegistrationGuard, policy_limits

_context: ProjectContext | None = None

#: The annotation that names an instance's drift profile artifact.
DRIFT_PROFILE_ANNOTATION = "drift_profile"


def _parse_project_config(text: str) -> dict[str, Any]:
    """Config parser: the given TOML text, else obproject.toml in the working directory;
    ``FLOWPOLICY_PROJECT`` overrides the project name either way."""
    import tomllib

    config = tomllib.loads(text) if text and text.strip() else read_project_file()
    if os.environ.get("FLOWPOLICY_PROJECT"):
        config["project"] = os.environ["FLOWPOLICY_PROJECT"]
    return config


def _parse_registration_policy(text: str) -> dict[str, Any]:
    """Config parser: the given JSON, else the registration limits of ./policies/ by project
    (see :mod:`flowpolicy.runtime.registration`)."""
    import json

    return json.loads(text) if text and text.strip() else policy_limits()


class ProjectNameMissing(MetaflowException):
    headline = "No project name"


class project_from_config(FlowMutator):
    """Adds ``@project(name=<project_config.project>)`` unless the flow already has one."""

    def pre_mutate(self, mutable_flow) -> None:
        if mutable_flow.has_decorator("project"):
            return
        config = dict(mutable_flow.configs).get("project_config") or {}
        name = config.get("project")
        if not name:
            raise ProjectNameMissing(
                "ProjectFlow needs a project name: set FLOWPOLICY_PROJECT, add "
                f"{PROJECT_FILE} with project = \"...\" to the working directory, or decorate "
                "the flow with @project(name=\"...\")"
            )
        mutable_flow.add_decorator(project, deco_kwargs={"name": str(name)},
                                   duplicates=mutable_flow.IGNORE)


class project_trigger(FlowMutator):
    """``@project_trigger(event="name")``: obproject's trigger on ``prj.<project>.<branch>.name``.

    The branch is the deploy-time branch (``project_spec``), else obproject.toml's
    ``[dev-assets] branch``, else ``FLOWPOLICY_BRANCH``/``OB_BRANCH``; with none of them the
    flow is left as it is (obproject does the same), since only a deployed flow is triggered.
    """

    def init(self, *args, **kwargs) -> None:
        self.event_suffix = kwargs.get("event") or (args[0] if args else None)
        if not self.event_suffix:
            raise AttributeError("Specify an event name: @project_trigger(event=NAME)")

    def pre_mutate(self, mutable_flow) -> None:
        configs = dict(mutable_flow.configs)
        config = _config_dict(configs.get("project_config"))
        explicit = [kwargs.get("name") for _, _, _, kwargs
                    in mutable_flow.get_decorator_specs("project")]
        project_name = next((n for n in explicit if n), None) or config.get("project")
        if not project_name:
            raise ProjectNameMissing("@project_trigger needs a ProjectFlow with a project name")
        branch = (deployed_branch(_config_dict(configs.get("project_spec")))
                  or (config.get("dev-assets") or {}).get("branch")
                  or env_branch())
        if not branch:
            print(f"[@project_trigger] no deployed branch for project {project_name}; "
                  "not triggering")
            return
        event = event_wire_name(project_name, sanitize_branch(branch), self.event_suffix)
        mutable_flow.add_decorator("trigger", deco_kwargs={"event": event},
                                   duplicates=mutable_flow.ERROR)


@project_from_config
class ProjectFlow(FlowSpec):
    """A FlowSpec in a project: ``@project`` plus ``self.prj`` for assets and events.

    The Configs ``project_config`` and ``project_spec`` are reserved (as in obproject), and
    so is flowpolicy's ``registration_policy``.
    """

    project_config = Config("project_config", default_value="", parser=_parse_project_config)
    project_spec = Config("project_spec", default_value="{}")
    registration_policy = Config("registration_policy", default_value="",
                                 parser=_parse_registration_policy)

    @property
    def prj(self) -> ProjectContext:
        global _context
        if _context is None:
            _context = ProjectContext(self)
        return _context


class ProjectContext:
    """``self.prj``: project, branches, and obproject's asset and event helpers.

    Registration writes to ``write_branch``; consumption reads ``read_branch``, which is the
    write branch unless obproject.toml's ``[dev-assets] branch`` redirects reads of a
    non-main branch (obproject's rule).
    """

    def __init__(self, flow: FlowSpec):
        from metaflow import current

        self.flow = flow
        config = _config_dict(getattr(flow, "project_config", None))
        spec = _config_dict(getattr(flow, "project_spec", None))
        self.project_config = config
        self.project_spec = spec
        self.project: str = (getattr(current, "project_name", None)
                             or str(config.get("project") or ""))
        self.write_branch = resolve_branch(spec)
        dev_read = (config.get("dev-assets") or {}).get("branch")
        # obproject's rule: a branch other than main may read another branch's assets
        use_dev_read = bool(dev_read) and self.write_branch != "main"
        self.read_branch = sanitize_branch(dev_read) if use_dev_read else self.write_branch
        self.branch = self.read_branch
        self._read_asset = Asset(project=self.project, branch=self.read_branch)
        self._write_asset = (self._read_asset if self.read_branch == self.write_branch
                             else Asset(project=self.project, branch=self.write_branch))
        self.asset = self._read_asset
        self.evals = EvalsLogger(self.project, self.write_branch, self._write_asset.meta)
        self._registrations = RegistrationGuard.for_project(
            _config_dict(getattr(flow, "registration_policy", None)), self.project)
        registry = f"registry {self._write_asset.registry.url}"
        if self.read_branch != self.write_branch:
            print(f"Asset client: read from {self.project}/{self.read_branch}, "
                  f"write to {self.project}/{self.write_branch}; {registry}")
        else:
            print(f"Asset client: {self.project}/{self.write_branch} (read-write); {registry}")

    # -- events -------------------------------------------------------------------------

    def publish_event(self, name: str, payload: Mapping[str, Any] | None = None
                      ) -> dict[str, Any] | None:
        return ProjectEvent(name, project=self.project, branch=self.write_branch).publish(payload)

    def safe_publish_event(self, name: str, payload: Mapping[str, Any] | None = None
                           ) -> dict[str, Any] | None:
        return ProjectEvent(name, project=self.project,
                            branch=self.write_branch).safe_publish(payload)

    # -- registration -------------------------------------------------------------------

    def _artifact_annotations(self, artifact: str, annotations: Mapping[str, Any] | None
                              ) -> dict[str, Any]:
        from metaflow import current

        merged: dict[str, Any] = {"artifact": artifact}
        if current.is_running_flow and current.pathspec:
            merged["run_pathspec"] = current.pathspec
        merged.update(annotations or {})  # user keys win, as in obproject
        return merged

    def _require_artifact(self, artifact: str) -> None:
        if not hasattr(self.flow, artifact):
            raise AttributeError(
                f"The flow doesn't have an artifact '{artifact}'. Is self.{artifact} set?")

    def _register(self, asset_type: str, name: str, kind: str,
                  annotations: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
                  description: str | None, *, artifact: str | None = None,
                  blobs: Sequence[str] | None = None) -> dict[str, Any] | None:
        """Register flow attribute ``artifact``, or (without one) external ``blobs``."""
        if artifact is not None:
            self._require_artifact(artifact)
            annotations = self._artifact_annotations(artifact, annotations)
            what = f"Registered {asset_type} asset"
        else:
            what = f"Registered external {asset_type} asset (kind={kind})"
        self._registrations.note(asset_type, name)
        register = (self._write_asset.register_model_asset if asset_type == "model"
                    else self._write_asset.register_data_asset)
        response = register(name, kind=kind, blobs=blobs, annotations=annotations, tags=tags,
                            description=description)
        _report(what, name, response)
        return response

    def register_data(self, name: str, artifact: str,
                      annotations: Mapping[str, Any] | None = None,
                      tags: Mapping[str, Any] | None = None,
                      description: str | None = None, *,
                      drift_profile: bool = False) -> dict[str, Any] | None:
        """Register flow attribute ``self.<artifact>`` as a new instance of data ``name``.

        ``drift_profile=True`` (a flowpolicy addition) also stores the table's drift profile
        (:func:`flowpolicy.runtime.drift.profile_data`: a quantile sketch per numeric column,
        a frequency table per other column) as artifact ``<artifact>_drift_profile``, named by
        the instance's ``drift_profile`` annotation; sketch-mode drift then never loads this
        instance's data. The artifact may be a table or chunked data (a Parquet path, a
        memmap), which is profiled a chunk at a time.
        """
        if drift_profile:
            from flowpolicy.runtime.drift import profile_data

            self._require_artifact(artifact)
            profile_artifact = f"{artifact}_drift_profile"
            setattr(self.flow, profile_artifact,
                    profile_data(getattr(self.flow, artifact)).to_dict())
            annotations = {**(annotations or {}), DRIFT_PROFILE_ANNOTATION: profile_artifact}
        return self._register("data", name, "artifact", annotations, tags, description,
                              artifact=artifact)

    def register_model(self, name: str, artifact: str,
                       annotations: Mapping[str, Any] | None = None,
                       tags: Mapping[str, Any] | None = None,
                       description: str | None = None) -> dict[str, Any] | None:
        """Register flow attribute ``self.<artifact>`` as a new instance of model ``name``."""
        return self._register("model", name, "artifact", annotations, tags, description,
                              artifact=artifact)

    def register_external_data(self, name: str, blobs: Sequence[str], kind: str,
                               annotations: Mapping[str, Any] | None = None,
                               tags: Mapping[str, Any] | None = None,
                               description: str | None = None) -> dict[str, Any] | None:
        """Register data living outside Metaflow (``blobs`` are URIs, ``kind`` says what)."""
        return self._register("data", name, kind, annotations, tags, description, blobs=blobs)

    def register_external_model(self, name: str, blobs: Sequence[str], kind: str,
                                annotations: Mapping[str, Any] | None = None,
                                tags: Mapping[str, Any] | None = None,
                                description: str | None = None) -> dict[str, Any] | None:
        """Register a model living outside Metaflow (``blobs`` are URIs, ``kind`` says what)."""
        return self._register("model", name, kind, annotations, tags, description, blobs=blobs)

    # -- consumption --------------------------------------------------------------------

    def list_data_instances(self, name: str) -> Iterator[AssetInstance]:
        return self._read_asset.list_data_asset_instances(name)

    def list_model_instances(self, name: str) -> Iterator[AssetInstance]:
        return self._read_asset.list_model_asset_instances(name)

    def get_data(self, name: str, instance: str = "latest") -> Any:
        """Consume data ``name`` and load its artifact from the producing task."""
        return _load_artifact("data", name,
                              self._read_asset.consume_data_asset(name, instance=instance))

    def get_data_profile(self, name: str, instance: str = "latest") -> Any | None:
        """Consume data ``name`` and load the drift profile stored when it was registered
        (a plain dict, see :class:`flowpolicy.runtime.drift.DriftProfile`), or None when it
        was registered without one."""
        ref = self._read_asset.consume_data_asset(name, instance=instance)
        artifact = ref["data_properties"]["annotations"].get(DRIFT_PROFILE_ANNOTATION)
        return None if artifact is None else _load_artifact("data", name, ref, artifact)

    def get_model(self, name: str, instance: str = "latest") -> Any:
        """Consume model ``name`` and load its artifact from the producing task."""
        return _load_artifact("model", name,
                              self._read_asset.consume_model_asset(name, instance=instance))


class EvalsLogger:
    """``self.prj.evals.log(message)``: obproject's evaluation log line on stdout, in the
    format the Outerbounds UI picks out of task logs."""

    _MARKER = "usm0jrb3"

    def __init__(self, project: str, branch: str, meta: Mapping[str, Any]):
        self.project = project
        self.branch = branch
        self.meta = dict(meta)

    def log(self, message: str) -> None:
        import json

        line = json.dumps({**self.meta, "content": message})
        print(f"{self._MARKER} {self.project} {self.branch} evals {line}")


def _load_artifact(asset_type: str, name: str, ref: Mapping[str, Any],
                   artifact: str | None = None) -> Any:
    """The artifact behind a consume response ``ref`` (or another artifact of the same
    task), read from its producing task."""
    properties = ref[f"{asset_type}_properties"]
    kind = properties[f"{asset_type}_kind"]
    if kind != "artifact":
        raise AttributeError(f"{asset_type.capitalize()} asset '{name}' doesn't seem like an "
                             f"artifact. It is of kind '{kind}'")
    from metaflow import Task, get_namespace, namespace

    previous = get_namespace()
    try:
        namespace(None)  # the producer may be another user's or another branch's run
        task = Task(ref["created_by"]["entity_id"])
        return task[artifact or properties["annotations"]["artifact"]].data
    finally:
        namespace(previous)


def _config_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {k: (_config_dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if isinstance(value, str):
        import json

        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _report(what: str, name: str, response: Mapping[str, Any] | None) -> None:
    version = f" {response['id']}" if response else ""
    print(f"{what}: {name}{version}", file=sys.stdout)
