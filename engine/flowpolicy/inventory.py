"""What the registry holds, as plain data: ``flowpolicy assets list | show | history``,
``flowpolicy events [--follow]`` and ``flowpolicy registry info | copy``.

``list`` gives every asset scope (project, branch, type, name) with its newest version and
aliases; ``show`` the instances of one asset with annotations, aliases, evidence and
consumers; ``history`` its versions and alias moves in time order; ``events`` the published
project events, oldest first (followed: then each new one as it is published); ``info`` the
backend, location, schema version and sizes. These read the registry through its Protocol
and never write it; every report names the registry it read. ``copy`` moves a whole SQL
registry to another SQL backend (:func:`flowpolicy.registry.sql.copy_registry`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flowpolicy.errors import EXIT_OK, FlowpolicyError, RegistryError
from flowpolicy.registry import Registry, open_existing_registry, open_registry
from flowpolicy.registry.base import AssetSummary, Scope
from flowpolicy.registry.sql import CopyReport, SQLRegistry, copy_registry
from flowpolicy.request import (
    AssetsRequest,
    EventsRequest,
    RegistryCopyRequest,
    RegistryInfoRequest,
)
from flowpolicy.runtime.branch import resolve_project, sanitize_branch

#: What a report says when there is no registry file to read.
NO_REGISTRY = "nothing registered yet, or set FLOWPOLICY_REGISTRY / --registry to the right file"
#: The longest single wait of a follower, so an interrupt or its deadline is noticed.
FOLLOW_WAIT_S = 60.0


def open_to_read(url: str | None, nothing: str) -> Registry:
    """The registry behind ``url`` opened read-only: never created, migrated or written (an
    older schema is read as it is); a missing file is invalid input (RegistryError, exit 2)
    saying ``nothing`` (``"nothing to check"``) and how to point at the right file."""
    return open_existing_registry(
        url, read_only=True, missing=f"{nothing} (run the flows first, or point --registry / "
                                     "FLOWPOLICY_REGISTRY at the right file)")


@dataclass(frozen=True)
class InventoryReport:
    """What one read of the registry found: assets (``list``, ``show``, ``history``) or
    ``events``, as plain dicts."""

    registry: str
    view: Literal["list", "show", "history", "events"]
    items: tuple[dict[str, Any], ...]

    exit_code = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry,
                "events" if self.view == "events" else "assets": list(self.items)}

    def format_text(self) -> str:
        text = {"list": _format_list, "show": _format_show, "history": _format_history,
                "events": _format_events}
        return f"registry {self.registry}\n" + text[self.view](self.items)


def list_assets(request: AssetsRequest) -> InventoryReport:
    """The ``request.action`` report on the assets matching its filters."""
    if request.action != "list" and not request.name:
        raise FlowpolicyError(f"flowpolicy assets {request.action} needs an asset NAME")
    if request.action == "list" and request.name:
        raise FlowpolicyError("flowpolicy assets list takes no NAME (use show NAME)")
    registry = open_existing_registry(request.registry, read_only=True, missing=NO_REGISTRY)
    project = default_project(request.project, all_projects=request.action == "list")
    branch = sanitize_branch(request.branch) if request.branch else None
    # history also tells of deleted assets: a deletion keeps what it hides
    summaries = registry.assets(project, branch, request.asset_type,
                                include_deleted=request.action == "history")
    if request.action == "list":
        return InventoryReport(registry.url, request.action,
                               tuple(_summary(registry, s) for s in summaries))
    chosen = [s for s in summaries if s.scope.name == request.name]
    if not chosen:
        where = f"{project or 'any project'}/{branch or 'any branch'}"
        known = sorted({s.scope.name for s in summaries})
        raise RegistryError(
            f"no asset {request.name!r} in {where} of registry {registry.url}"
            + (f"; assets there: {', '.join(known)}" if known else "; no assets there"))
    return InventoryReport(registry.url, request.action, tuple(
        _show(registry, s, request.limit) if request.action == "show" else _history(registry, s)
        for s in chosen))


def list_events(request: EventsRequest) -> InventoryReport:
    if request.follow_for is not None:
        raise RegistryError(FOLLOW_FOR_ERROR)
    registry = open_existing_registry(request.registry, read_only=True, missing=NO_REGISTRY)
    branch = sanitize_branch(request.branch) if request.branch else None
    return InventoryReport(registry.url, "events", tuple(
        e.to_dict() for e in registry.events(request.project, branch, request.name)))


FOLLOW_FOR_ERROR = "--for takes a positive number of seconds, with --follow"


@dataclass(frozen=True)
class EventFollow:
    """A followed registry: ``batches`` yields the events so far (first, possibly empty),
    then each batch of new ones as they are published, until ``follow_for`` has passed."""

    registry: str
    batches: Iterator[tuple[dict[str, Any], ...]]

    @staticmethod
    def line(event: dict[str, Any], fmt: str) -> str:
        """One followed event as ``--format fmt`` prints it (JSON: one object a line)."""
        return json.dumps(event) if fmt == "json" else event_line(event)


def follow_events(request: EventsRequest) -> EventFollow:
    """The registry is opened (and its errors raised) here; reading starts with the first
    batch. PostgreSQL wakes the wait by NOTIFY; the SQLite file is looked at every 10 ms."""
    if request.follow_for is not None and request.follow_for <= 0:
        raise RegistryError(FOLLOW_FOR_ERROR)
    registry = open_existing_registry(request.registry, read_only=True, missing=NO_REGISTRY)
    branch = sanitize_branch(request.branch) if request.branch else None
    return EventFollow(registry.url, _batches(registry, request.project, branch, request.name,
                                              request.follow_for))


def _batches(registry: Registry, project: str | None, branch: str | None, name: str | None,
             seconds: float | None) -> Iterator[tuple[dict[str, Any], ...]]:
    deadline = None if seconds is None else time.monotonic() + seconds
    cursor = 0
    while True:
        # read the newest id first: an event published meanwhile is read now or next time
        newest = registry.newest_event_id()
        batch = tuple(registry.events(project, branch, name, after=cursor))
        yield tuple(e.to_dict() for e in batch)
        cursor = max([newest, *(e.id for e in batch)])
        left = FOLLOW_WAIT_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return
        registry.wait_for_events(cursor, min(left, FOLLOW_WAIT_S))


@dataclass(frozen=True)
class RegistryInfoReport:
    """``registry info``: the registry's URL and what its backend's ``info()`` states."""

    info: dict[str, Any]

    exit_code = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return dict(self.info)

    def format_text(self) -> str:
        info = self.info
        lines = [f"registry {info['registry']}",
                 f"  backend   {info['backend']} ({info['server']})",
                 f"  location  {info['location']}",
                 *(f"  {line}" for line in info.get("guarantees", ()))]
        if "schema_version" in info:
            lines += [f"  schema    version {info['schema_version']} (this flowpolicy writes "
                      f"{info['current_schema_version']})",
                      f"  size      {_bytes(info['bytes'])}",
                      f"  rows      {_rows(info['rows'])}"]
        return "".join(f"{line}\n" for line in lines)


def registry_info(request: RegistryInfoRequest) -> RegistryInfoReport:
    registry = open_existing_registry(request.registry, read_only=True, missing=NO_REGISTRY)
    return RegistryInfoReport({"registry": registry.url, **registry.info()})


@dataclass(frozen=True)
class RegistryCopyReport:
    """``registry copy``: what was copied, verified by row counts and content hash."""

    copy: CopyReport

    exit_code = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return self.copy.to_dict()

    def format_text(self) -> str:
        copy = self.copy
        replaced = " (its previous contents discarded)" if copy.replaced else ""
        return (f"copied {copy.source} → {copy.destination}{replaced}\n"
                f"  rows      {_rows(copy.digest.counts)}\n"
                f"  verified  row counts and content sha256 {copy.digest.sha256[:16]}… equal "
                "in both\n")


def registry_copy(request: RegistryCopyRequest) -> RegistryCopyReport:
    """Copy a whole SQL registry; a source with no rows, a destination that is not empty
    (unless ``replace``) and a copy that does not verify are refused: RegistryError, exit 1."""
    source = _sql_backend(open_existing_registry(
        request.source, read_only=True, missing="nothing to copy"), "source")
    if not any(source.digest().counts.values()):
        raise RegistryError(f"nothing to copy: {source.url} holds no rows", exit_code=1)
    destination = _sql_backend(open_registry(request.destination), "destination")
    return RegistryCopyReport(copy_registry(source, destination, replace=request.replace))


def _sql_backend(registry: Registry, role: str) -> SQLRegistry:
    if not isinstance(registry, SQLRegistry):
        raise RegistryError(f"{role} {registry.url}: copy works between SQL registries "
                            "(sqlite:///… and postgresql://…), not this backend")
    return registry


def default_project(project: str | None, *, all_projects: bool) -> str | None:
    """``project``, else the one FLOWPOLICY_PROJECT / obproject.toml names; with none named,
    None (every project) when ``all_projects``, else RegistryError."""
    if project:
        return project
    try:
        return resolve_project()
    except RegistryError:
        if all_projects:
            return None
        raise


def _format_events(events: Sequence[dict[str, Any]]) -> str:
    return "".join(f"{event_line(e)}\n" for e in events) if events else "no events\n"


def event_line(event: dict[str, Any]) -> str:
    """``created_at  name  by kind id  {payload}``: one event on one line."""
    payload = "" if event["payload"] is None else "  " + json.dumps(
        event["payload"], sort_keys=True)
    producer = event["producer"]
    return (f"{event['created_at']}  {event['event']}  "
            f"by {producer['entity_kind']} {producer['entity_id']}{payload}")


# -- gathering -------------------------------------------------------------------------------


def _scope_dict(scope: Scope) -> dict[str, str]:
    return {"project": scope.project, "branch": scope.branch, "type": scope.asset_type,
            "name": scope.name}


def _summary(registry: Registry, summary: AssetSummary) -> dict[str, Any]:
    return {**_scope_dict(summary.scope), "latest": f"v{summary.latest_version}",
            "description": summary.description, "updated_at": summary.updated_at,
            "aliases": {a: f"v{v}" for a, v in registry.aliases(summary.scope).items()}}


def _show(registry: Registry, summary: AssetSummary, limit: int | None) -> dict[str, Any]:
    scope = summary.scope
    by_version: dict[int, list[str]] = {}
    for alias, version in registry.aliases(scope).items():
        by_version.setdefault(version, []).append(alias)
    consumers: dict[int, list[dict[str, Any]]] = {}
    for use in registry.consumers(scope):
        consumers.setdefault(use.version, []).append(
            {"consumer": use.consumer.to_dict(), "at": use.at})
    instances = [{
        "id": record.id, "created_at": record.created_at,
        "created_by": record.created_by.to_dict(), "kind": record.kind,
        "description": record.description, "annotations": dict(record.annotations),
        "tags": dict(record.tags), "blobs": list(record.blobs),
        "aliases": sorted(by_version.get(record.version, [])),
        "evidence": [e.to_dict() for e in registry.evidence(scope, record.id)],
        "consumers": consumers.get(record.version, []),
    } for record in registry.instances(scope, limit)]
    return {**_summary(registry, summary), "instances": instances}


def _history(registry: Registry, summary: AssetSummary) -> dict[str, Any]:
    scope = summary.scope
    entries = [{"at": r.created_at, "event": "registered", "instance": r.id,
                "by": r.created_by.to_dict()}
               for r in registry.instances(scope, None, include_deleted=True)]
    entries += [{"at": m.at, "event": "alias", **m.to_dict()}
                for m in registry.alias_history(scope)]
    entries += [{"event": "deleted", **d.to_dict()} for d in registry.deletions(scope)]
    # registrations before alias moves at the same instant: a move needs its target first
    entries.sort(key=lambda e: (e["at"], e["event"] != "registered"))
    return {**_scope_dict(scope), "history": entries}


# -- text ------------------------------------------------------------------------------------


def _entity(ref: dict[str, str]) -> str:
    return f"{ref['entity_kind']} {ref['entity_id']}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in rows)


def _format_list(report: Sequence[dict[str, Any]]) -> str:
    if not report:
        return "no assets registered\n"
    rows = [["PROJECT", "BRANCH", "TYPE", "NAME", "LATEST", "ALIASES", "UPDATED"]]
    for item in report:
        aliases = ", ".join(f"@{a}→{v}" for a, v in item["aliases"].items()) or "-"
        rows.append([item["project"], item["branch"], item["type"], item["name"],
                     item["latest"], aliases, item["updated_at"]])
    return _table(rows)


def _format_show(report: Sequence[dict[str, Any]]) -> str:
    out = []
    for item in report:
        out.append(f"{item['type']} asset {item['name']} in {item['project']}/{item['branch']}"
                   f" (latest {item['latest']})"
                   + (f": {item['description']}" if item["description"] else "") + "\n")
        for inst in item["instances"]:
            aliases = " ".join(f"@{a}" for a in inst["aliases"])
            out.append(f"  {inst['id']:<6} {inst['created_at']}  {inst['kind']}  "
                       f"by {_entity(inst['created_by'])}{'  ' + aliases if aliases else ''}\n")
            for label in ("annotations", "tags"):
                if inst[label]:
                    pairs = ", ".join(f"{k}={v}" for k, v in inst[label].items())
                    out.append(f"         {label}: {pairs}\n")
            if inst["blobs"]:
                out.append(f"         blobs: {', '.join(inst['blobs'])}\n")
            for ev in inst["evidence"]:
                verdict = "pass" if ev["passed"] else "FAIL"
                out.append(f"         evidence: {ev['kind']} {ev['rule']} {verdict} "
                           f"({ev['created_at']}, policy {str(ev['policy_hash'])[:12]})\n")
            if inst["consumers"]:
                out.append(f"         consumed {len(inst['consumers'])}x, last by "
                           f"{_entity(inst['consumers'][-1]['consumer'])}\n")
    return "".join(out)


def _format_history(report: Sequence[dict[str, Any]]) -> str:
    out = []
    for item in report:
        out.append(f"{item['type']} asset {item['name']} in {item['project']}/{item['branch']}\n")
        for entry in item["history"]:
            if entry["event"] == "registered":
                line = f"{entry['instance']} registered by {_entity(entry['by'])}"
            elif entry["event"] == "deleted":
                dropped = ", ".join(f"@{a}→{v}" for a, v in entry["aliases"].items())
                line = (f"deleted (through {entry['deleted_through']}"
                        + (f"; aliases {dropped} dropped" if dropped else "")
                        + f") by {_entity(entry['by'])}"
                        + (f": {entry['reason']}" if entry["reason"] else ""))
            else:
                line = (f"@{entry['alias']} {entry['from'] or '(unset)'} → "
                        f"{entry['to'] or '(unset)'} "
                        f"by {_entity(entry['by'])}"
                        + (f": {entry['reason']}" if entry["reason"] else ""))
            out.append(f"  {entry['at']}  {line}\n")
    return "".join(out)


def _rows(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in counts.items())


def _bytes(size: int) -> str:
    value, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
