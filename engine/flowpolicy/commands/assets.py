"""``flowpolicy assets list | show NAME | history NAME``: what the registry holds.

``list`` shows every asset scope (project, branch, type, name) with its newest version and
aliases; ``show`` the instances of one asset with annotations, aliases, evidence and
consumers; ``history`` the versions and alias moves of one asset in time order. Without
``--branch``/``--type`` every branch and type holding the name is shown; without
``--project`` the project comes from FLOWPOLICY_PROJECT / obproject.toml, or (for ``list``)
every project. The registry is opened read-only: never created, migrated or written. Every
report names the registry it read (a ``registry`` line, or key in JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flowpolicy.errors import EXIT_OK, RegistryError

HELP = "show assets, instances, aliases and their history from the asset registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show", "history"),
                        help="list assets, show one asset's instances, or its history")
    parser.add_argument("name", nargs="?", help="asset name (for show and history)")
    add_scope_arguments(parser)
    parser.add_argument("--type", dest="asset_type", choices=("data", "model"),
                        help="only data or only model assets")
    parser.add_argument("--limit", type=int, default=20,
                        help="instances to show per asset, newest first (default 20; 0 = all)")


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project (default: FLOWPOLICY_PROJECT, obproject.toml)")
    parser.add_argument("--branch", help="asset branch (sanitised as obproject does)")
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def open_existing(url: str | None):
    """Open the registry read-only, refusing to create a new file just to report on it."""
    from flowpolicy.registry import open_existing_registry

    return open_existing_registry(
        url, read_only=True,
        missing="nothing registered yet, or set FLOWPOLICY_REGISTRY / --registry to the "
                "right file")


def scope_filters(args: argparse.Namespace, *, all_projects: bool) -> tuple[str | None,
                                                                            str | None]:
    from flowpolicy.runtime.branch import resolve_project, sanitize_branch

    branch = sanitize_branch(args.branch) if args.branch else None
    if args.project:
        return args.project, branch
    try:
        return resolve_project(), branch
    except RegistryError:
        if all_projects:
            return None, branch
        raise


def run(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.name:
        raise RegistryError(f"flowpolicy assets {args.action} needs an asset NAME")
    if args.action == "list" and args.name:
        raise RegistryError("flowpolicy assets list takes no NAME (use show NAME)")
    registry = open_existing(args.registry)
    project, branch = scope_filters(args, all_projects=args.action == "list")
    # history also tells of deleted assets: a deletion keeps what it hides
    summaries = registry.assets(project, branch, args.asset_type,
                                include_deleted=args.action == "history")
    if args.action == "list":
        report = [_summary(registry, s) for s in summaries]
        _emit(args.format, registry.url, report, _format_list)
        return EXIT_OK
    chosen = [s for s in summaries if s.scope.name == args.name]
    if not chosen:
        where = f"{project or 'any project'}/{branch or 'any branch'}"
        known = sorted({s.scope.name for s in summaries})
        raise RegistryError(
            f"no asset {args.name!r} in {where} of registry {registry.url}"
            + (f"; assets there: {', '.join(known)}" if known else "; no assets there"))
    limit = None if args.limit == 0 else args.limit
    if args.action == "show":
        report = [_show(registry, s, limit) for s in chosen]
        _emit(args.format, registry.url, report, _format_show)
    else:
        report = [_history(registry, s) for s in chosen]
        _emit(args.format, registry.url, report, _format_history)
    return EXIT_OK


# -- gathering -------------------------------------------------------------------------------


def _scope_dict(scope) -> dict[str, str]:
    return {"project": scope.project, "branch": scope.branch, "type": scope.asset_type,
            "name": scope.name}


def _summary(registry, summary) -> dict[str, Any]:
    return {**_scope_dict(summary.scope), "latest": f"v{summary.latest_version}",
            "description": summary.description, "updated_at": summary.updated_at,
            "aliases": {a: f"v{v}" for a, v in registry.aliases(summary.scope).items()}}


def _show(registry, summary, limit: int | None) -> dict[str, Any]:
    scope = summary.scope
    aliases = registry.aliases(scope)
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    consumers: dict[int, list[dict[str, Any]]] = {}
    for use in registry.consumers(scope):
        consumers.setdefault(use.version, []).append(
            {"consumer": use.consumer.to_dict(), "at": use.at})
    instances = []
    for record in registry.instances(scope, limit):
        instances.append({
            "id": record.id, "created_at": record.created_at,
            "created_by": record.created_by.to_dict(), "kind": record.kind,
            "description": record.description, "annotations": dict(record.annotations),
            "tags": dict(record.tags), "blobs": list(record.blobs),
            "aliases": sorted(by_version.get(record.version, [])),
            "evidence": [e.to_dict() for e in registry.evidence(scope, record.id)],
            "consumers": consumers.get(record.version, []),
        })
    return {**_summary(registry, summary), "instances": instances}


def _history(registry, summary) -> dict[str, Any]:
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


# -- printing -------------------------------------------------------------------------------


def _emit(fmt: str, registry_url: str, report: list[dict[str, Any]], text) -> None:
    """``{"registry": URL, "assets": [...]}`` as JSON, or a ``registry URL`` line and text."""
    if fmt == "json":
        json.dump({"registry": registry_url, "assets": report}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"registry {registry_url}\n" + text(report))


def _entity(ref: dict[str, str]) -> str:
    return f"{ref['entity_kind']} {ref['entity_id']}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   + "\n" for row in rows)


def _format_list(report: list[dict[str, Any]]) -> str:
    if not report:
        return "no assets registered\n"
    rows = [["PROJECT", "BRANCH", "TYPE", "NAME", "LATEST", "ALIASES", "UPDATED"]]
    for item in report:
        aliases = ", ".join(f"@{a}→{v}" for a, v in item["aliases"].items()) or "-"
        rows.append([item["project"], item["branch"], item["type"], item["name"],
                     item["latest"], aliases, item["updated_at"]])
    return _table(rows)


def _format_show(report: list[dict[str, Any]]) -> str:
    out = []
    for item in report:
        out.append(f"{item['type']} asset {item['name']} in {item['project']}/{item['branch']}"
                   f" (latest {item['latest']})"
                   + (f": {item['description']}" if item["description"] else "") + "\n")
        for inst in item["instances"]:
            aliases = " ".join(f"@{a}" for a in inst["aliases"])
            out.append(f"  {inst['id']:<6} {inst['created_at']}  {inst['kind']}  "
                       f"by {_entity(inst['created_by'])}{'  ' + aliases if aliases else ''}\n")
            if inst["annotations"]:
                pairs = ", ".join(f"{k}={v}" for k, v in inst["annotations"].items())
                out.append(f"         annotations: {pairs}\n")
            if inst["tags"]:
                out.append("         tags: "
                           + ", ".join(f"{k}={v}" for k, v in inst["tags"].items()) + "\n")
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


def _format_history(report: list[dict[str, Any]]) -> str:
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
