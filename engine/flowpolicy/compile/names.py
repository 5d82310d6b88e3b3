"""Every identifier the compiler writes into a generated flow is derived and checked here.

Policy strings reach generated code in two ways only: as Python literals (``repr``, see
:mod:`flowpolicy.compile.render`) or as identifiers and docstring words built from names this
module has validated against the policy schema's own pattern for that kind of name (read
from the schema, so the rule is written once). Anything else is a :class:`CompileError`
pointing at the policy line that holds the offending name.
"""

from __future__ import annotations

import keyword
import re

from flowpolicy.errors import CompileError
from flowpolicy.policy.model import Policy
from flowpolicy.policy.patterns import search
from flowpolicy.resources import policy_schema

#: Compiler-made names: Metaflow Parameter names and flow class names.
PARAMETER_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,79}")
CLASS_PATTERN = re.compile(r"[A-Z][A-Za-z0-9]{0,120}Flow")

#: Names a Parameter may not take: Metaflow's reserved CLI options (``metaflow.parameters``),
#: FlowSpec attributes, obproject's reserved Configs, ProjectFlow's ``registration_policy``
#: Config and its ``prj`` context.
RESERVED_PARAMETERS = frozenset(
    {
        "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run_id_file",
        "max_num_splits", "max_workers", "max_log_size", "user_namespace", "run_id",
        "task_id", "runner_attribute_file",
        "cmd", "foreach_stack", "index", "input", "merge_artifacts", "next", "script_name",
        "name",
        "project_config", "project_deps", "project_spec", "registration_policy", "prj",
    }
)
#: Step names Metaflow's linter refuses, plus ``run``, which shadows the CLI command.
RESERVED_STEPS = frozenset({"name", "next", "input", "index", "cmd", "run"})


def error_at(policy: Policy, json_path: str, message: str) -> CompileError:
    """A CompileError for the policy node at ``json_path``: ``file:line:col: path: message``."""
    return CompileError(f"{policy.locate(json_path)}: {json_path}: {message}")


def _check_schema_rule(
    policy: Policy, value: object, definition: str, json_path: str, what: str
) -> str:
    """``value`` if it obeys the policy schema's ``$defs/<definition>`` pattern (the one rule
    for that kind of name; the IR may have been built without the loader, so it is checked
    again before it is written as code)."""
    pattern = policy_schema()["$defs"][definition]["pattern"]
    if not isinstance(value, str) or not search(pattern, value):
        raise error_at(
            policy, json_path,
            f"{what} {value!r} cannot be used in generated code: it must match {pattern}",
        )
    return value


def check_name(policy: Policy, value: object, json_path: str, what: str) -> str:
    """A policy name that will be part of an identifier (asset, gate, metric, level)."""
    return _check_schema_rule(policy, value, "identifier", json_path, what)


def check_event(policy: Policy, value: object, json_path: str, what: str) -> str:
    """An event name, mentioned in docstrings."""
    return _check_schema_rule(policy, value, "eventName", json_path, what)


def check_trigger_event(policy: Policy, value: object, json_path: str) -> str:
    """An event a generated flow is triggered by: a policy event or a lifecycle event."""
    return _check_schema_rule(policy, value, "triggerEvent", json_path, "trigger event")


def check_branch(policy: Policy, value: object, json_path: str, what: str) -> str:
    """A branch name, mentioned in docstrings."""
    return _check_schema_rule(policy, value, "branchName", json_path, what)


def check_project(policy: Policy) -> str:
    """The Metaflow ``@project`` name."""
    return _check_schema_rule(policy, policy.project, "projectName", "$.project", "project")


def flow_class_name(policy: Policy, name: str, suffix: str, json_path: str) -> str:
    """The generated class for rule ``name``: ``quality`` + ``Gate`` → ``QualityGateFlow``
    (``fraud_model`` is ``FraudModel``; ``name`` has passed :func:`check_name`)."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    class_name = f"{camel}{suffix}Flow"
    if not CLASS_PATTERN.fullmatch(class_name):
        raise error_at(policy, json_path, f"{name!r} does not give a valid flow class name")
    return class_name


def parameter_name(
    policy: Policy, name: str, json_path: str, taken: set[str] | frozenset[str] = frozenset()
) -> str:
    """A Metaflow Parameter name: lower-case identifier, not a keyword, not reserved by
    Metaflow or obproject, and not one of ``taken`` (the flow's other names)."""
    if not PARAMETER_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise error_at(policy, json_path, f"parameter name {name!r} is not a valid identifier")
    if name in RESERVED_PARAMETERS:
        raise error_at(policy, json_path, f"parameter name {name!r} is reserved by Metaflow")
    if name in taken:
        raise error_at(
            policy, json_path, f"parameter name {name!r} clashes with another name in the flow"
        )
    return name
