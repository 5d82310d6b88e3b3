"""``@project_trigger`` and ``@project_schedule``: obproject's branch-aware deployment decorators.

Both act for the branch a flow is deployed for
(:func:`flowpolicy.runtime.branch.deployment_branch`: the ``project_spec`` branch, else
obproject.toml's ``[dev-assets] branch``, else ``FLOWPOLICY_BRANCH``). With no branch they
leave the flow as it is and say so, as obproject does: only a deployed flow is triggered or
scheduled.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from metaflow import FlowMutator
from metaflow.exception import MetaflowException

from flowpolicy.registry.base import event_wire_name
from flowpolicy.runtime.branch import (
    config_dict,
    decorated_project_name,
    deployment_branch,
    sanitize_branch,
)

#: The keys of one ``@project_schedule`` entry: Metaflow ``@schedule``'s arguments.
VALID_SCHEDULE_KEYS = {"cron", "daily", "weekly", "hourly", "timezone"}


class ProjectTriggerException(MetaflowException):
    headline = "\nProject Trigger Exception"

    def __init__(self, msg: str):
        super().__init__(msg)


class ProjectScheduleException(MetaflowException):
    headline = "\nProject Schedule Exception"

    def __init__(self, msg: str):
        super().__init__(msg)


def _project_configs(mutable_flow, decorator: str, error: type[MetaflowException]
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    configs = dict(mutable_flow.configs)
    if "project_config" not in configs:
        raise error(f"You can apply @{decorator} only to ProjectFlows")
    return config_dict(configs.get("project_config")), config_dict(configs.get("project_spec"))


class project_trigger(FlowMutator):
    """``@project_trigger(event="name")``: Metaflow's ``@trigger`` on
    ``prj.<project>.<branch>.<name>`` for the branch the flow is deployed for.

    flowpolicy's additions, both optional: ``parameters={"instance": "instance"}`` maps
    payload fields to the flow's Parameters (Metaflow's ``@trigger`` mapping, so a triggered
    run judges the instance the event names), and ``branches=[...]`` limits the decorator to
    deployments on those (sanitised) branches, so a flow can listen to a different event on
    each branch by stacking one decorator per branch set. Outside ``branches`` it adds
    nothing."""

    def init(self, *args, **kwargs) -> None:
        self.event_suffix = kwargs.get("event") or (args[0] if args else None)
        if not self.event_suffix:
            raise AttributeError("Specify an event name: @project_trigger(event=NAME)")
        self.parameters = dict(kwargs.get("parameters") or {})
        branches = kwargs.get("branches")
        self.branches = None if branches is None else {sanitize_branch(b) for b in branches}

    def pre_mutate(self, mutable_flow) -> None:
        config, spec = _project_configs(mutable_flow, "project_trigger",
                                        ProjectTriggerException)
        project_name = decorated_project_name(mutable_flow) or config.get("project")
        if not project_name:
            raise ProjectTriggerException(
                "@project_trigger needs a ProjectFlow with a project name")
        branch = deployment_branch(config, spec)
        if not branch:
            print(f"[@project_trigger] No branch resolved for project {project_name}.")
            return
        branch = sanitize_branch(branch)
        if self.branches is not None and branch not in self.branches:
            return
        event = event_wire_name(project_name, branch, self.event_suffix)
        trigger = {"name": event, "parameters": self.parameters} if self.parameters else event
        mutable_flow.add_decorator("trigger", deco_kwargs={"event": trigger},
                                   duplicates=mutable_flow.ERROR)


class project_schedule(FlowMutator):
    """``@project_schedule({"main": {"daily": True}, "release/*": {"hourly": True}})``:
    Metaflow's ``@schedule`` with the spec of the first branch pattern (``fnmatch``, in
    insertion order, on the unsanitised branch) that the deployed branch matches."""

    def init(self, schedule_map) -> None:
        if not isinstance(schedule_map, dict):
            raise ProjectScheduleException(
                "@project_schedule expects a dict mapping branch patterns to schedule specs. "
                "Example: @project_schedule({'main': {'daily': True}})")
        if not schedule_map:
            raise ProjectScheduleException("@project_schedule schedule map cannot be empty.")
        for pattern, spec in schedule_map.items():
            if not isinstance(spec, dict):
                raise ProjectScheduleException(
                    f"Schedule spec for pattern '{pattern}' must be a dict, got "
                    f"{type(spec).__name__}. Example: {{'{pattern}': {{'daily': True}}}}")
            invalid = set(spec) - VALID_SCHEDULE_KEYS
            if invalid:
                raise ProjectScheduleException(
                    f"Invalid schedule keys {invalid} for pattern '{pattern}'. "
                    f"Valid keys: {VALID_SCHEDULE_KEYS}")
        self.schedule_map = schedule_map

    def pre_mutate(self, mutable_flow) -> None:
        config, spec = _project_configs(mutable_flow, "project_schedule",
                                        ProjectScheduleException)
        branch = deployment_branch(config, spec)
        if not branch:
            print("[@project_schedule] No branch resolved. Schedule not applied.")
            return
        for pattern, schedule in self.schedule_map.items():
            if fnmatch.fnmatch(branch, pattern):
                print(f"[@project_schedule] Branch '{branch}' matched pattern '{pattern}'. "
                      f"Applying schedule: {schedule}")
                mutable_flow.add_decorator("schedule", deco_kwargs=schedule,
                                           duplicates=mutable_flow.ERROR)
                return
        print(f"[@project_schedule] Branch '{branch}' did not match any pattern in "
              f"{list(self.schedule_map)}. No schedule applied.")
