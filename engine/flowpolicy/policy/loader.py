"""Load policy YAML into the frozen :class:`~flowpolicy.policy.model.Policy`.

The only place raw policy documents exist. Loading runs in stages, each reporting every
problem it finds before stopping: read YAML (FP0xx) -> resolve ``extends`` (FP201, FP202) ->
JSON Schema on the merged document (FP1xx) -> fill ``defaults`` -> semantic checks (FP2xx) ->
build the IR. Any problem raises :class:`~flowpolicy.errors.PolicyError` carrying all
diagnostics of the first failing stage, each located in the file that wrote the node.

Finding policy files (:func:`find_policy_files`): paths that are files are taken as given;
directories are searched recursively (by :func:`flowpolicy.walk.walk_files`, which skips
hidden folders, virtualenvs, ``node_modules``, ``build``, ``dist`` and the like) for
``*.yaml``/``*.yml`` files that have a top-level ``version:`` or ``project:`` key or the
``policy.schema.json`` modeline. Stock presets have neither, so they are not picked up.
With no paths, ``./policies/`` is searched if it exists, else the current directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.errors import FlowpolicyError, PolicyError
from flowpolicy.policy.merge import STOCK_NAMING, ExtendsResolver, apply_defaults
from flowpolicy.policy.model import (
    TRIGGER_TARGETS,
    AssetDecl,
    ChampionRule,
    Check,
    CompileSettings,
    DriftColumn,
    DriftLevel,
    DriftRule,
    Gate,
    NamingRules,
    Policy,
    PromotionEdge,
    RegistrationRules,
    TriggerDecl,
    frozen_map,
)
from flowpolicy.policy.schema import schema_diagnostics
from flowpolicy.policy.semantic import (
    edge_assets,
    edge_requirements,
    semantic_diagnostics,
    words_in_force,
)
from flowpolicy.policy.source import SourceDoc, parse_text, read_file
from flowpolicy.resources import presets_dir
from flowpolicy.walk import walk_files

__all__ = [
    "default_naming",
    "find_policy_files",
    "load_policy",
    "load_policy_text",
    "parse_duration",
    "preset_policy",
    "require_policy_files",
]

#: Where policies live by default, relative to the working folder (the project root).
POLICY_DIR = "policies"

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_POLICY_MARKERS = re.compile(r"^(version|project)\s*:|policy\.schema\.json", re.MULTILINE)


def parse_duration(value: int | str) -> int:
    """Seconds of a schema-valid duration: integer seconds or ``<n><s|m|h|d|w>``."""
    if isinstance(value, int):
        return value
    return int(value[:-1]) * _DURATION_UNITS[value[-1]]


def load_policy(path: str | os.PathLike) -> Policy:
    """Load, merge, validate and build the policy in the file at ``path``.

    Raises :class:`PolicyError` with every diagnostic of the first failing stage.
    """
    file = Path(path)
    display = os.fspath(path)
    doc, problems = read_file(file, display)
    return _load(doc, problems, display, file.resolve().parent, (file.resolve(),))


def load_policy_text(text: str, source: str = "<string>") -> Policy:
    """Load a policy from YAML text; ``source`` names it in messages and anchors relative
    ``extends`` paths (the current directory when it is not a path)."""
    doc, problems = parse_text(text.removeprefix("\ufeff"), source)
    base = Path.cwd() if source.startswith("<") else Path(source).resolve().parent
    return _load(doc, problems, source, base, ())


def _raise_if(diagnostics: list[Diagnostic]) -> None:
    if diagnostics:
        raise PolicyError(sorted(diagnostics, key=lambda d: (d.path, d.line, d.col, d.code)))


def _load(doc: SourceDoc | None, problems: list[Diagnostic], source: str, base_dir: Path,
          chain: tuple[Path, ...]) -> Policy:
    _raise_if(problems)
    assert doc is not None  # no diagnostics means the document was built
    resolver = ExtendsResolver(presets_dir())
    merged = resolver.resolve_policy(doc, base_dir, chain)
    _raise_if(resolver.diagnostics)
    _raise_if(schema_diagnostics(merged.data, merged.locations, source))
    # The merged document was parsed by this call and nothing else holds it: fill in place.
    data, locations = merged.data, merged.locations
    apply_defaults(data, locations)
    _raise_if(semantic_diagnostics(data, locations, source))
    policy = _build(data, locations, source)
    from flowpolicy.triggers import loop_diagnostics  # needs the IR: the whole trigger table

    _raise_if(loop_diagnostics(policy))
    return policy


def _number(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _drift_columns(settings: dict | None) -> dict[str, DriftColumn]:
    return {
        name: DriftColumn(name, levels=frozen_map({level: float(t) for level, t in
                                                   column.get("levels", {}).items()}),
                          **_given(column, "statistic"))
        for name, column in (settings or {}).items()
    }


def _given(doc: dict, *keys: str) -> dict:
    """The entries of ``doc`` among ``keys``: an absent key takes the IR's own default
    (:mod:`flowpolicy.policy.model` is the one place defaults are written)."""
    return {key: doc[key] for key in keys if key in doc}


def _build(doc: dict, locations: dict, source: str) -> Policy:
    """The IR of a valid, merged document with defaults applied."""
    naming_doc = doc["naming"]  # the stock naming rules lie under every policy
    naming = NamingRules(
        forbidden_words=tuple(words_in_force(naming_doc)),
        allowed_words=tuple(naming_doc.get("allowed_words", ())),
        **_given(naming_doc, "pattern", "declared_only"),
    )
    assets = {
        name: AssetDecl(name=name, type=a["type"],
                        required_annotations=tuple(a.get("required_annotations", ())),
                        **_given(a, "description"))
        for name, a in (doc.get("assets") or {}).items()
    }
    gates = {
        name: Gate(
            name=name,
            asset=g["asset"],
            checks=tuple(Check(metric=c["metric"], min=_number(c.get("min")),
                               max=_number(c.get("max"))) for c in g["checks"]),
            **_given(g, "on_pass", "on_fail"),
        )
        for name, g in (doc.get("gates") or {}).items()
    }
    champions = {}
    for name, rule in (doc.get("champion") or {}).items():
        fields = _given(rule, "direction", "alias", "on_promote", "on_keep")
        if "min_improvement" in rule:
            fields["min_improvement"] = float(rule["min_improvement"])
        champions[name] = ChampionRule(asset=name, metric=rule["metric"], **fields)
    promotion = [
        PromotionEdge(source=edge["from"], target=edge["to"],
                      assets=tuple(edge_assets(edge, doc)),
                      require=tuple(edge_requirements(edge, doc)), **_given(edge, "alias"))
        for edge in doc.get("promotion") or []
    ]
    drift = {}
    for name, rule in (doc.get("drift") or {}).items():
        max_age = rule.get("max_age_seconds", rule.get("max_age"))
        drift[name] = DriftRule(
            asset=name,
            levels=tuple(DriftLevel(level, float(t)) for level, t in rule["levels"].items()),
            columns=tuple(rule.get("columns", ())),
            column_settings=frozen_map(_drift_columns(rule.get("column_settings"))),
            events=frozen_map(rule.get("events")),
            max_age_seconds=None if max_age is None else parse_duration(max_age),
            **_given(rule, "statistic", "mode", "current", "reference", "report_asset"),
        )
    return Policy(
        project=doc["project"],
        version=doc["version"],
        naming=naming,
        assets=frozen_map(assets),
        branches=tuple(doc.get("branches", ())),
        gates=frozen_map(gates),
        champions=frozen_map(champions),
        promotion=tuple(promotion),
        drift=frozen_map(drift),
        compile=CompileSettings(**_given(doc.get("compile") or {}, "output_dir")),
        registration=RegistrationRules(
            **_given(doc.get("registration") or {}, "max_versions_per_task")),
        triggers=tuple(_trigger(entry) for entry in doc.get("triggers") or []),
        extends=tuple(doc.get("extends", ())),
        source=source,
        locations=frozen_map(locations),
    )


def _trigger(entry: dict) -> TriggerDecl:
    [kind] = [key for key in TRIGGER_TARGETS if key in entry]  # semantics checked: one
    return TriggerDecl(
        kind=kind, target=entry[kind], branches=tuple(entry.get("branches", ())),
        parameters=frozen_map(entry.get("parameters")),
        registers=tuple(entry.get("registers", ())), publishes=tuple(entry.get("publishes", ())),
        **_given(entry, "event", "enabled"))


@cache
def default_naming() -> NamingRules:
    """The naming rules of the stock ``flowpolicy:naming`` preset (used when no policy is
    found)."""
    return preset_policy(STOCK_NAMING).naming


@cache
def preset_policy(*refs: str) -> Policy:
    """A policy made of the stock presets ``refs`` (``flowpolicy:<name>``) and nothing else:
    what ``flowpolicy lint --policy flowpolicy:naming`` lints against. Raises PolicyError
    (FP201) for an unknown preset."""
    text = f"version: 1\nproject: preset\nextends: {json.dumps(list(refs))}\n"
    return load_policy_text(text, f"<{', '.join(refs)}>")


def _looks_like_policy(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return True  # let the loader report why it cannot be read
    return bool(_POLICY_MARKERS.search(head))


def _search(directory: Path) -> list[Path]:
    candidates = (Path(found) for found in walk_files(directory, (".yaml", ".yml")))
    return [candidate for candidate in candidates if _looks_like_policy(candidate)]


def find_policy_files(paths: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Policy files named by ``paths`` (see the module docstring for the search rules).

    Raises :class:`FlowpolicyError` (exit 2) for a path that does not exist.
    """
    if not paths:
        paths = [Path(POLICY_DIR)] if Path(POLICY_DIR).is_dir() else [Path(".")]
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(_search(path))
        else:
            raise FlowpolicyError(f"no such file or directory: {os.fspath(given)}")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def load_policies(paths: Sequence[str | os.PathLike] = ()) -> list[Policy]:
    """Load every policy :func:`require_policy_files` finds; raises PolicyError for an
    invalid one."""
    return [load_policy(path) for path in require_policy_files(paths)]


def require_policy_files(paths: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """:func:`find_policy_files`, but finding none is a :class:`FlowpolicyError` (exit 2)
    naming where it searched and what makes a file a policy file."""
    files = find_policy_files(paths)
    if not files:
        searched = ", ".join(map(os.fspath, paths)) or "policies/ or the current directory"
        raise FlowpolicyError(
            f"no policy files found in {searched} (searched for *.yaml and *.yml files with a "
            "top-level 'version:' or 'project:' key, or the policy.schema.json modeline)")
    return files


def require_one_policy_file(path: str | os.PathLike | None, command: str, verb: str) -> Path:
    """The one policy file ``flowpolicy COMMAND [POLICY]`` works on: ``path``, or the only one
    found where :func:`require_policy_files` looks; several found is a FlowpolicyError
    asking to name the one to ``verb``."""
    files = require_policy_files([path] if path else [])
    if len(files) > 1:
        raise FlowpolicyError(
            f"found {len(files)} policies ({', '.join(map(str, files))}); name the one to "
            f"{verb}: flowpolicy {command} POLICY")
    return files[0]
