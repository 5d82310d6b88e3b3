"""Everything the report shows, read from a registry through its public Protocol.

One pass over the registry: every asset scope with its instances, aliases, alias moves and
evidence, and every event, grouped by (project, branch). Nothing is written; the caller opens
the registry read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flowpolicy.registry.base import (
    AliasMove,
    EventRecord,
    EvidenceRecord,
    InstanceRecord,
    Registry,
    Scope,
)


@dataclass(frozen=True)
class ScopeHistory:
    """One asset on one branch: its instances, alias moves and evidence, oldest first."""

    scope: Scope
    description: str
    latest_version: int
    instances: tuple[InstanceRecord, ...]
    aliases: Mapping[str, int]
    alias_moves: tuple[AliasMove, ...]
    evidence: tuple[EvidenceRecord, ...]


@dataclass(frozen=True)
class BranchHistory:
    """The assets and the events of one branch of one project."""

    project: str
    branch: str
    scopes: tuple[ScopeHistory, ...]
    events: tuple[EventRecord, ...]

    @property
    def first_seen(self) -> str:
        """When anything first happened on the branch (orders dev before staging before prod
        without knowing the policy)."""
        times = [s.instances[0].created_at for s in self.scopes if s.instances]
        times += [e.created_at for e in self.events[:1]]
        return min(times, default="")


@dataclass(frozen=True)
class RegistryHistory:
    url: str
    project: str | None
    branch: str | None
    branches: tuple[BranchHistory, ...]

    @property
    def scopes(self) -> tuple[ScopeHistory, ...]:
        return tuple(s for b in self.branches for s in b.scopes)

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.scopes)

    @property
    def evidence_count(self) -> int:
        return sum(len(s.evidence) for s in self.scopes)

    @property
    def alias_move_count(self) -> int:
        return sum(len(s.alias_moves) for s in self.scopes)

    @property
    def event_count(self) -> int:
        return sum(len(b.events) for b in self.branches)


def read_history(registry: Registry, project: str | None = None,
                 branch: str | None = None) -> RegistryHistory:
    """The history of every asset and event matching ``project`` / ``branch`` (None: all)."""
    scopes: dict[tuple[str, str], list[ScopeHistory]] = {}
    for summary in registry.assets(project, branch):
        scope = summary.scope
        instances = tuple(reversed(registry.instances(scope, None)))
        evidence = [record for instance in instances
                    for record in registry.evidence(scope, instance.id)]
        evidence.sort(key=lambda record: record.created_at)
        scopes.setdefault((scope.project, scope.branch), []).append(ScopeHistory(
            scope=scope, description=summary.description,
            latest_version=summary.latest_version, instances=instances,
            aliases=registry.aliases(scope), alias_moves=tuple(registry.alias_history(scope)),
            evidence=tuple(evidence)))
    events: dict[tuple[str, str], list[EventRecord]] = {}
    for event in registry.events(project, branch):
        events.setdefault((event.project, event.branch), []).append(event)
    # models first: on most branches they are what a reviewer came to see
    branches = [BranchHistory(key[0], key[1],
                              tuple(sorted(scopes.get(key, ()), key=lambda s: (
                                  s.scope.asset_type != "model", s.scope.name))),
                              tuple(events.get(key, ())))
                for key in {**scopes, **events}]
    branches.sort(key=lambda b: (b.project, b.first_seen, b.branch))
    return RegistryHistory(registry.url, project, branch, tuple(branches))
