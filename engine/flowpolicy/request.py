"""The request object of every :mod:`flowpolicy.api` call: plain frozen dataclasses.

They live apart from the code that serves them so that building one loads nothing else
(``flowpolicy --help`` and each command import only what they run). A field left at its
default means what the command line means without the option; the fields several requests
have mean the same in each:

- ``paths`` / ``policies``: policy files or folders (default: ./policies/ if it exists, else
  the current folder);
- ``registry``: the registry URL (default: FLOWPOLICY_REGISTRY, else .flowpolicy/registry.db
  at the project root);
- ``project``: default FLOWPOLICY_PROJECT / obproject.toml (where a report can cover them
  all: else every project); ``branch``: default every branch (sanitised as obproject does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

AssetsAction = Literal["list", "show", "history"]


@dataclass(frozen=True)
class ValidateRequest:
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompileRequest:
    paths: tuple[str, ...] = ()
    #: Write every policy's flows here instead of its ``compile.output_dir``.
    output_dir: str | None = None
    #: Write nothing; report each generated file as current or stale.
    check: bool = False


@dataclass(frozen=True)
class LintRequest:
    paths: tuple[str, ...] = (".",)
    policies: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    report_unused_noqa: bool = False
    jobs: int | None = None
    #: Lint the asset names declared in the policy files themselves.
    lint_policy_files: bool = True


@dataclass(frozen=True)
class CheckRequest:
    policies: tuple[str, ...] = ()
    registry: str | None = None
    #: Branches to check live (default: every branch the policy declares).
    branches: tuple[str, ...] = ()
    static: bool = True
    live: bool = True
    #: Code to lint (default: each policy's project root, the folder above policies/).
    src: tuple[str, ...] = ()
    #: Local Metaflow datastore root (the folder holding .metaflow) for the champion tag
    #: check; default: Metaflow's own configuration (METAFLOW_DATASTORE_SYSROOT_LOCAL).
    metaflow_root: str | None = None
    #: The time drift report ages are measured against (default: now).
    now: datetime | None = None


@dataclass(frozen=True)
class PlanRequest:
    policies: tuple[str, ...] = ()
    registry: str | None = None
    #: Only these branches (a promotion is shown when it leaves or enters one of them).
    branches: tuple[str, ...] = ()
    #: Local Metaflow datastore root for loading drift inputs (see CheckRequest).
    metaflow_root: str | None = None


@dataclass(frozen=True)
class AssetsRequest:
    action: AssetsAction = "list"
    #: The asset, for ``show`` and ``history``.
    name: str | None = None
    project: str | None = None
    branch: str | None = None
    asset_type: Literal["data", "model"] | None = None
    #: Instances per asset for ``show``, newest first; None: all.
    limit: int | None = 20
    registry: str | None = None


@dataclass(frozen=True)
class EventsRequest:
    #: Only events with this name (e.g. ``model_promoted``).
    name: str | None = None
    #: Default: every project.
    project: str | None = None
    branch: str | None = None
    registry: str | None = None
    #: With :func:`flowpolicy.api.follow_events`: stop after this many seconds (default:
    #: follow until interrupted).
    follow_for: float | None = None


@dataclass(frozen=True)
class EventRunsRequest:
    """``flowpolicy events --runs``: each event with the runs ``flowpolicy dispatch`` started
    for it, how they ended, and the events those published in turn."""

    #: Default: every project.
    project: str | None = None
    branch: str | None = None
    registry: str | None = None
    #: The newest this many events (0: all).
    limit: int = 500


DispatchMode = Literal["once", "follow", "list"]


@dataclass(frozen=True)
class DispatchRequest:
    """``flowpolicy dispatch``: start the flows the policy's triggers name for new events."""

    #: The policy file (default: the one policy under ./policies/).
    policy: str | None = None
    #: ``once``: drain what is pending and return; ``follow``: keep going (until
    #: ``follow_for``); ``list``: the trigger table, start nothing.
    mode: DispatchMode = "once"
    follow_for: float | None = None
    #: ``once``: give up (exit 1) with work still pending after this many seconds.
    timeout: float = 1800.0
    #: Start at most this many runs, then stop (exit 1).
    max_runs: int = 1000
    #: How long a claimed start stays with its dispatcher before another may take it over.
    lease: float = 30.0
    #: Also accept Argo Events webhook posts on 127.0.0.1:PORT (0: a free port); None: no.
    webhook: int | None = None
    #: The runs use it too.
    registry: str | None = None
    #: Where progress lines go (each start, each end), as they happen.
    echo: Callable[[str], None] = print


@dataclass(frozen=True)
class RegistryInfoRequest:
    registry: str | None = None


@dataclass(frozen=True)
class RegistryCopyRequest:
    #: Registry URL to copy from, opened read-only.
    source: str
    #: Registry URL to copy into; refused when it holds anything unless ``replace``.
    destination: str
    replace: bool = False


@dataclass(frozen=True)
class ReportRequest:
    output: Path
    registry: str | None = None
    project: str | None = None
    branch: str | None = None


@dataclass(frozen=True)
class GraphRequest:
    #: The policy file (default: the one policy under ./policies/).
    policy: str | None = None
    format: Literal["mermaid", "dot"] = "mermaid"
    #: Show which instance holds each alias on each branch, read from :attr:`registry`.
    holders: bool = False
    #: Read only with ``holders``.
    registry: str | None = None


@dataclass(frozen=True)
class DemoRequest:
    #: A new or empty folder for the scratch project (default: a new temporary folder).
    directory: str | None = None
    #: An empty registry URL to run on (default: a new SQLite file in the scratch folder).
    registry: str | None = None
    #: Where progress lines go (default: standard output).
    echo: Callable[[str], None] = print


@dataclass(frozen=True, kw_only=True)
class LifecycleRequest:
    """What ``promote``, ``rollback`` and ``alias`` share."""

    asset: str
    project: str | None = None
    #: The project's policy is found among these (default: ./policies/).
    policies: tuple[str, ...] = ()
    registry: str | None = None
    #: Why: kept in the alias history (required to force a move, or to move by hand).
    reason: str | None = None
    #: Decide and report; write nothing (the registry is opened read-only).
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class PromoteRequest(LifecycleRequest):
    """Promote an instance along a declared edge, as the promotion flow would."""

    source: str
    target: str
    instance: str = "latest"


@dataclass(frozen=True, kw_only=True)
class RollbackRequest(LifecycleRequest):
    """Return an alias to its previous holder, or to ``to``."""

    branch: str
    #: Default: the alias the policy's promotions set on the branch.
    alias: str | None = None
    to: str | None = None
    #: Move even to an instance failing the alias's gates (needs a reason).
    force: bool = False


@dataclass(frozen=True, kw_only=True)
class AliasRequest(LifecycleRequest):
    """Set (to ``to``) or unset an alias by hand."""

    action: Literal["set", "unset"]
    alias: str
    branch: str
    to: str | None = None
    force: bool = False


@dataclass(frozen=True)
class ServeRequest:
    """What ``flowpolicy serve`` is asked for; None means the default (see
    :func:`flowpolicy.serve.open_server`)."""

    asset: str
    branch: str | None = None
    alias: str | None = None
    project: str | None = None
    registry: str | None = None
    #: ``MODULE:FUNCTION`` returning the predictor for an instance.
    loader: str | None = None
    datastore: str | None = None
    policies: tuple[str, ...] = ()
    ignore_gates: bool = False
    allow_unset: bool = False
    probe: str | None = None
    host: str = "127.0.0.1"
    #: 0 picks a free port.
    port: int = 8000
