"""``ProjectFlow`` and ``self.prj``: obproject's flow base class on a flowpolicy registry.

``ProjectFlow`` is a ``FlowSpec`` that carries Metaflow's ``@project`` with the name from
``project_config.project`` (obproject.toml in the working directory, or ``FLOWPOLICY_PROJECT``),
so ``--branch X`` and ``--production`` work as on any ``@project`` flow. A subclass may
instead decorate itself with ``@project(name="...")`` (obproject refuses that as a duplicate
decorator); then that decorator is kept. The Configs ``project_config``, ``project_deps``
(pyproject.toml; adds ``@pypi_base`` as obproject does) and ``project_spec`` (deploy time)
are reserved. ``self.prj`` is a :class:`ProjectContext`, created on first use, one per
process, exactly as obproject's.

The asset branches follow :mod:`flowpolicy.runtime.branch`. The start step of every run says
where its assets go (and when the branch is one the project's policies do not declare), and
tags the run ``asset_write_branch:<branch>`` (and ``asset_read_branch:<branch>`` when reads
go elsewhere), the tags obproject puts on its runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from metaflow import (
    Config,
    FlowMutator,
    FlowSpec,
    config_expr,
    project,
    pypi_base,
    pyproject_toml_parser,
    user_step_decorator,
)
from metaflow.exception import MetaflowException

from flowpolicy.errors import FlowpolicyError
from flowpolicy.runtime.assets import Asset, AssetInstance
from flowpolicy.runtime.branch import (
    PROJECT_FILE,
    BranchChoice,
    choose_write_branch,
    config_dict,
    declared_branches,
    decorated_project_name,
    note_deployment,
    read_branch_for,
    read_project_file,
    sanitize_branch,
)
from flowpolicy.runtime.events import ProjectEvent
from flowpolicy.runtime.loading import load_task_artifact
from flowpolicy.runtime.registration import RegistrationGuard, policy_limits

_context: ProjectContext | None = None

#: The annotation that names an instance's drift profile artifact.
DRIFT_PROFILE_ANNOTATION = "drift_profile"


def toml_parser(cfgstr: str) -> dict[str, Any]:
    """TOML text as a dict (obproject's parser of ``project_config``)."""
    import tomllib

    return tomllib.loads(cfgstr)


def _parse_project_config(text: str) -> dict[str, Any]:
    """Config parser: the given TOML text, else obproject.toml in the working directory;
    ``FLOWPOLICY_PROJECT`` overrides the project name either way."""
    config = toml_parser(text) if text and text.strip() else read_project_file()
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


def _has_project_decorator(flow_cls: type) -> bool:
    from metaflow.decorators import flow_decorators

    return any(d.name == "project" for d in flow_decorators(flow_cls))


def resolve_scope(project_config: Mapping[str, Any], project_spec: Mapping[str, Any] | None
                  ) -> tuple[str, str, str]:
    """``(project, write_branch, read_branch)`` as obproject's ``resolve_scope`` returns
    them: names as configured (:class:`ProjectContext` sanitises them)."""
    choice = choose_write_branch(project_spec)
    return (str(project_config["project"]), choice.raw,
            read_branch_for(choice.raw, project_config))


class project_scope(FlowMutator):
    """Refuses a flow without a project name (one clear line, not Metaflow's failing
    ``config_expr``) and wraps the start step in :func:`announce_scope`."""

    def pre_mutate(self, mutable_flow) -> None:
        if decorated_project_name(mutable_flow) is None:
            _require_project_name(mutable_flow)
        start = getattr(mutable_flow, "start", None)
        if start is not None:
            start.add_decorator(announce_scope, duplicates=start.IGNORE)


def _require_project_name(mutable_flow) -> None:
    if not config_dict(dict(mutable_flow.configs).get("project_config")).get("project"):
        raise ProjectNameMissing(
            "ProjectFlow needs a project name: set FLOWPOLICY_PROJECT, add "
            f"{PROJECT_FILE} with project = \"...\" to the working directory, or decorate "
            "the flow with @project(name=\"...\")")


class project_pypi(FlowMutator):
    """obproject's ``@pypi_base`` from the ``project_deps`` Config (pyproject.toml): added
    when it lists packages, unless obproject.toml says ``[dependencies]
    include_pyproject_toml = false`` or ``OBPROJECT_SKIP_PYPI_BASE=1``."""

    def pre_mutate(self, mutable_flow) -> None:
        if os.getenv("OBPROJECT_SKIP_PYPI_BASE") == "1":
            return
        configs = dict(mutable_flow.configs)
        project_config = config_dict(configs.get("project_config"))
        project_deps = config_dict(configs.get("project_deps"))
        include = (project_config.get("dependencies") or {}).get("include_pyproject_toml", True)
        if include and project_deps.get("packages"):
            mutable_flow.add_decorator(pypi_base, deco_kwargs=project_deps,
                                       duplicates=mutable_flow.ERROR)


@user_step_decorator
def announce_scope(step_name, flow, inputs=None):
    """At the start of a run: where its assets go and why, a warning for a branch the
    project's policies do not declare, and obproject's ``asset_*_branch`` run tags."""
    from metaflow import Run, current

    spec = config_dict(getattr(flow, "project_spec", None))
    note_deployment(spec)
    choice = choose_write_branch(spec)
    project_name = current.project_name
    write = choice.branch
    read = sanitize_branch(read_branch_for(choice.raw, config_dict(flow.project_config)))
    for line in scope_lines(project_name, choice, read):
        print(line)
    tags = [f"asset_write_branch:{write}"] + (
        [f"asset_read_branch:{read}"] if read != write else [])
    Run(f"{current.flow_name}/{current.run_id}", _namespace_check=False).add_tags(tags)
    yield


def scope_lines(project_name: str, choice: BranchChoice, read: str) -> list[str]:
    """What :func:`announce_scope` prints."""
    why = {"project_spec": "the deploy-time branch (project_spec)",
           "FLOWPOLICY_BRANCH": "FLOWPOLICY_BRANCH",
           "@project": f"Metaflow's @project branch {choice.raw}"}[choice.source]
    write = choice.branch
    reads = "" if read == write else f"; reads from {project_name}/{read}"
    lines = [f"flowpolicy: assets are written to {project_name}/{write}, from {why}{reads}"]
    if choice.ignored:
        lines.append(f"flowpolicy: FLOWPOLICY_BRANCH={choice.ignored!r} is ignored: this "
                     f"flow was deployed for branch {choice.raw!r}")
    try:
        declared = declared_branches(project_name)
    except FlowpolicyError as exc:
        first = str(exc).splitlines()[0]
        return [*lines, f"flowpolicy: branch {write} not checked against the policies: {first}"]
    if declared is not None and write not in declared.branches:
        lines.append(
            f"flowpolicy: warning: branch {write} is not declared by "
            f"{', '.join(declared.sources)} (branches: {', '.join(declared.branches)}); "
            f"the policy's gates and promotions do not cover it. Set FLOWPOLICY_BRANCH to "
            f"one of them to work on a declared branch.")
    return lines


@project_pypi
@project_scope
class ProjectFlow(FlowSpec):
    """A FlowSpec in a project: ``@project`` plus ``self.prj`` for assets and events.

    The Configs ``project_config``, ``project_deps`` and ``project_spec`` are reserved (as in
    obproject), and so is flowpolicy's ``registration_policy``.
    """

    project_config = Config("project_config", default_value="", parser=_parse_project_config)
    project_deps = Config("project_deps", default_value="", parser=pyproject_toml_parser)
    project_spec = Config("project_spec", default_value="{}")
    registration_policy = Config("registration_policy", default_value="",
                                 parser=_parse_registration_policy)

    def __init__(self, use_cli: bool = True):
        # Metaflow builds its top-level options (--branch, --production) from the flow
        # decorators present now; a subclass's own @project is there already
        if use_cli and not _has_project_decorator(type(self)):
            project(name=config_expr("project_config.project"))(type(self))
        super().__init__(use_cli)

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
        config = config_dict(getattr(flow, "project_config", None))
        spec = config_dict(getattr(flow, "project_spec", None))
        note_deployment(spec)
        self.project_config = config
        self.project_spec = spec
        choice = choose_write_branch(spec)
        self.project: str = (getattr(current, "project_name", None)
                             or str(config.get("project") or ""))
        self.write_branch = choice.branch
        self.read_branch = sanitize_branch(read_branch_for(choice.raw, config))
        self.branch = self.read_branch
        self._read_asset = Asset(project=self.project, branch=self.read_branch)
        self._write_asset = (self._read_asset if self.read_branch == self.write_branch
                             else Asset(project=self.project, branch=self.write_branch))
        self.asset = self._read_asset
        self.evals = EvalsLogger(project=self.project, branch=self.write_branch)
        self._registrations = RegistrationGuard.for_project(
            config_dict(getattr(flow, "registration_policy", None)), self.project)
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

    def __init__(self, project: str | None = None, branch: str | None = None):
        self.project = project
        self.branch = branch
        self.meta = Asset(project=project, branch=branch).meta

    def log(self, message: str) -> None:
        import json

        line = json.dumps({**self.meta, "content": message})
        print(f"{MAGIC_PREFIX} {self.project} {self.branch} evals {line}")


#: What the Outerbounds UI looks for in task logs to find evaluation lines.
MAGIC_PREFIX = "usm0jrb3"


def _load_artifact(asset_type: str, name: str, ref: Mapping[str, Any],
                   artifact: str | None = None) -> Any:
    """The artifact behind a consume response ``ref`` (or another artifact of the same
    task), read from its producing task."""
    properties = ref[f"{asset_type}_properties"]
    kind = properties[f"{asset_type}_kind"]
    if kind != "artifact":
        raise AttributeError(f"{asset_type.capitalize()} asset '{name}' doesn't seem like an "
                             f"artifact. It is of kind '{kind}'")
    # in every namespace: the producer may be another user's or another branch's run
    return load_task_artifact(ref["created_by"]["entity_id"],
                              artifact or properties["annotations"]["artifact"],
                              what=f"{asset_type} asset {name!r} {ref['id']}")


def _report(what: str, name: str, response: Mapping[str, Any] | None) -> None:
    version = f" {response['id']}" if response else ""
    print(f"{what}: {name}{version}", file=sys.stdout)
