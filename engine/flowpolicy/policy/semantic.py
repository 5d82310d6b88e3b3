"""Semantic checks: what the schema cannot say. Runs on a schema-valid, merged document with
defaults applied; every problem is a located :class:`Diagnostic` with a stable FP2xx code."""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.policy.model import (
    CHAMPION_REQUIREMENT,
    INDETERMINATE,
    NO_LEVEL,
    TRIGGER_TARGETS,
    DriftRule,
    SourceLocation,
    TriggerDecl,
    locate,
)
from flowpolicy.policy.patterns import PatternError, compile_pattern, search
from flowpolicy.policy.source import child_path

#: Instance aliases may not shadow the instance spec keyword.
RESERVED_ALIASES = frozenset({"latest"})
#: Drift verdicts that are not levels: no threshold reached, or left open by the bound.
RESERVED_LEVELS = frozenset({NO_LEVEL, INDETERMINATE})

#: The Parameters of each generated flow an event may set: instance specs and branches.
TRIGGER_PARAMETERS: dict[str, tuple[str, ...]] = {
    "gate": ("instance",),
    "champion": ("candidate",),
    "promotion": ("instance", "source", "target"),
    "drift": ("current", "reference"),
}


def words_in_force(naming: Mapping) -> list[str]:
    """A ``naming`` document's forbidden words less its ``allowed_words``."""
    allowed = set(naming.get("allowed_words", ()))
    return [word for word in naming.get("forbidden_words", ()) if word not in allowed]


def edge_assets(edge: Mapping, doc: Mapping) -> list[str]:
    """What a promotion edge promotes: its ``assets``, else every declared model asset."""
    if "assets" in edge:
        return list(edge["assets"])
    return [name for name, a in (doc.get("assets") or {}).items() if a["type"] == "model"]


def edge_requirements(edge: Mapping, doc: Mapping) -> list[str]:
    """What a promotion edge requires: its ``require``, else every gate declared on the
    assets it promotes."""
    if "require" in edge:
        return list(edge["require"])
    assets = set(edge_assets(edge, doc))
    return [name for name, g in (doc.get("gates") or {}).items() if g["asset"] in assets]


def forbidden_tokens(name: str, forbidden_words) -> list[str]:
    """The forbidden words that appear as whole ``_``/``-`` separated tokens of ``name``,
    case-insensitive (``fraud-Prod_v2`` has the tokens ``fraud``, ``prod``, ``v2``)."""
    words = {word.lower() for word in forbidden_words}
    return [token for token in re.split(r"[_\-]+", name.lower()) if token and token in words]


class _Checker:
    def __init__(self, doc: dict, locations: Mapping[str, SourceLocation], source: str):
        self.doc = doc
        self.locations = locations
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def report(self, code: str, path: str, message: str) -> None:
        loc = locate(self.locations, path, self.source)
        self.diagnostics.append(loc.diagnostic(code, message, path))

    # -- helpers ------------------------------------------------------------------------
    @property
    def assets(self) -> dict:
        return self.doc.get("assets") or {}

    def asset_ref(self, name: str, path: str, want: str | None = None, role: str = "") -> bool:
        asset = self.assets.get(name)
        if asset is None:
            declared = ", ".join(self.assets) or "none"
            self.report("FP203", path, f"asset {name!r} is not declared under assets "
                                       f"(declared: {declared})")
            return False
        if want is not None and asset["type"] != want:
            self.report("FP204", path, f"{role} needs a {want} asset, but {name!r} is "
                                       f"declared as {asset['type']}")
            return False
        return True

    def branch_ref(self, branch: str, path: str, code: str) -> bool:
        branches = self.doc.get("branches") or []
        if branch in branches:
            return True
        self.report(code, path, f"branch {branch!r} is not declared under branches "
                                f"(declared: {', '.join(branches) or 'none'})")
        return False

    def not_keyword(self, name: str, path: str, what: str) -> None:
        if keyword.iskeyword(name):
            self.report("FP217", path, f"{what} {name!r} is a Python keyword; generated flows "
                                       "use it as a Python name")

    def events_not_keywords(self, rule: dict, path: str, keys: tuple[str, ...]) -> None:
        for key in keys:
            if key in rule:
                self.not_keyword(rule[key], f"{path}.{key}", "event name")

    # -- checks ---------------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        self.check_naming()
        self.check_gates()
        self.check_champions()
        self.check_promotion()
        self.check_drift()
        self.check_triggers()
        return self.diagnostics  # the loader puts them in file order

    def check_naming(self) -> None:
        naming = self.doc.get("naming") or {}
        pattern = naming.get("pattern")
        if pattern is not None:
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                self.report("FP216", "$.naming.pattern",
                            f"{pattern!r} is not a valid regular expression: {exc}")
                pattern = None
        forbidden = naming.get("forbidden_words", ())
        for index, word in enumerate(naming.get("allowed_words", ())):
            if word not in forbidden:
                self.report("FP222", child_path("$.naming.allowed_words", index),
                            f"{word!r} is not a forbidden word, so allowing it changes "
                            f"nothing (forbidden: {', '.join(forbidden) or 'none'})")
        in_force = words_in_force(naming)
        for name in self.assets:
            path = child_path("$.assets", name)
            self.not_keyword(name, path, "asset name")
            if pattern is not None and not search(pattern, name):
                self.report("FP214", path, f"asset name {name!r} does not match the naming "
                                           f"pattern {pattern!r}")
            words = forbidden_tokens(name, in_force)
            if words:
                self.report("FP215", path,
                            f"asset name {name!r} contains the forbidden word "
                            f"{', '.join(map(repr, words))}: environments are branches, not "
                            "part of a name (register it on the branch instead, or list the "
                            "word in naming.allowed_words)")

    def check_gates(self) -> None:
        for name, gate in (self.doc.get("gates") or {}).items():
            path = child_path("$.gates", name)
            if name == CHAMPION_REQUIREMENT:
                self.report("FP218", path, f"a gate may not be called {name!r}: promotion "
                                           "requirements use that word for the champion rule")
            self.not_keyword(name, path, "gate name")
            self.asset_ref(gate["asset"], f"{path}.asset")
            seen: dict[str, int] = {}
            for index, check in enumerate(gate["checks"]):
                check_path = child_path(f"{path}.checks", index)
                metric = check["metric"]
                self.not_keyword(metric, f"{check_path}.metric", "metric")
                if metric in seen:
                    self.report("FP213", f"{check_path}.metric",
                                f"metric {metric!r} is already checked by checks[{seen[metric]}]"
                                "; put min and max in one check")
                seen.setdefault(metric, index)
                low, high = check.get("min"), check.get("max")
                if low is not None and high is not None and low > high:
                    self.report("FP212", check_path, f"min {low} is greater than max {high}: "
                                                     "no value can pass")
            self.events_not_keywords(gate, path, ("on_pass", "on_fail"))

    def check_champions(self) -> None:
        for name, rule in (self.doc.get("champion") or {}).items():
            path = child_path("$.champion", name)
            self.asset_ref(name, path, "model", "a champion rule")
            if "metric" not in rule:
                self.report("FP221", path, "champion rule has no metric (set metric here or in "
                                           "defaults.champion)")
            else:
                self.not_keyword(rule["metric"], f"{path}.metric", "metric")
            alias = rule.get("alias")
            if alias in RESERVED_ALIASES:
                self.report("FP218", f"{path}.alias", f"alias {alias!r} is reserved")
            self.events_not_keywords(rule, path, ("on_promote", "on_keep"))

    def check_promotion(self) -> None:
        gates = self.doc.get("gates") or {}
        champions = self.doc.get("champion") or {}
        edges: list[tuple[str, str, int]] = []
        promoted: dict[tuple[str, str, str], int] = {}
        for index, edge in enumerate(self.doc.get("promotion") or []):
            path = child_path("$.promotion", index)
            source, target = edge["from"], edge["to"]
            known = True
            for end, branch in (("from", source), ("to", target)):
                known &= self.branch_ref(branch, f"{path}.{end}", "FP205")
            if source == target:
                self.report("FP208", path, f"edge promotes from {source!r} to itself")
            elif known:
                edges.append((source, target, index))
            assets = edge_assets(edge, self.doc)
            if "assets" not in edge and not assets:
                self.report("FP208", path, "edge names no assets and no model asset is "
                                           "declared, so it promotes nothing")
            for position, asset in enumerate(assets):
                asset_path = child_path(f"{path}.assets", position)
                if "assets" in edge and not self.asset_ref(asset, asset_path):
                    continue
                key = (source, target, asset)
                if key in promoted:
                    self.report("FP208", asset_path if "assets" in edge else path,
                                f"{asset!r} is already promoted from {source!r} to {target!r} "
                                f"by promotion[{promoted[key]}]")
                promoted.setdefault(key, index)
            for position, requirement in enumerate(edge.get("require") or []):
                req_path = child_path(f"{path}.require", position)
                if requirement == CHAMPION_REQUIREMENT:
                    for asset in assets:
                        if asset not in champions:
                            self.report("FP206", req_path,
                                        f"requires the champion, but {asset!r} has no "
                                        "champion rule")
                elif requirement not in gates:
                    self.report("FP206", req_path,
                                f"{requirement!r} is neither a declared gate "
                                f"(declared: {', '.join(gates) or 'none'}) nor "
                                f"{CHAMPION_REQUIREMENT!r}")
                elif gates[requirement]["asset"] not in assets:
                    self.report("FP206", req_path,
                                f"gate {requirement!r} checks {gates[requirement]['asset']!r}, "
                                "which this edge does not promote")
            if edge.get("alias") in RESERVED_ALIASES:
                self.report("FP218", f"{path}.alias", f"alias {edge['alias']!r} is reserved")
        self._check_cycles(edges)

    def _check_cycles(self, edges: list[tuple[str, str, int]]) -> None:
        successors: dict[str, list[tuple[str, int]]] = {}
        for source, target, index in edges:
            successors.setdefault(source, []).append((target, index))
        state: dict[str, str] = {}
        stack: list[str] = []

        def visit(branch: str) -> None:
            state[branch] = "open"
            stack.append(branch)
            for target, index in successors.get(branch, []):
                if state.get(target) == "open":
                    cycle = [*stack[stack.index(target):], target]
                    self.report("FP207", child_path("$.promotion", index),
                                "promotion edges form a cycle: " + " -> ".join(cycle))
                elif target not in state:
                    visit(target)
            stack.pop()
            state[branch] = "done"

        for branch in list(successors):
            if branch not in state:
                visit(branch)

    def check_drift(self) -> None:
        for name, rule in (self.doc.get("drift") or {}).items():
            path = child_path("$.drift", name)
            self.asset_ref(name, path, "data", "a drift rule")
            report = rule.get("report_asset")
            if report is not None:
                if report == name:
                    self.report("FP219", f"{path}.report_asset",
                                "the drift report cannot be registered as the monitored asset "
                                "itself (it would become the next comparison)")
                else:
                    self.asset_ref(report, f"{path}.report_asset", "data", "report_asset")
            current = rule.get("current", DriftRule.current)
            reference = rule.get("reference", DriftRule.reference)
            if current == reference:
                self.report("FP219", f"{path}.reference",
                            f"current and reference are both {reference!r}: an "
                            "instance compared with itself never drifts")
            if "max_age" in rule and "max_age_seconds" in rule:
                self.report("FP220", f"{path}.max_age_seconds",
                            "set max_age or max_age_seconds, not both")
            levels = rule.get("levels")
            if levels is None:
                self.report("FP221", path, "drift rule has no levels (set levels here or in "
                                           "defaults.drift)")
                levels = {}
            for level in levels:
                level_path = child_path(f"{path}.levels", level)
                self.not_keyword(level, level_path, "level name")
                if level in RESERVED_LEVELS:
                    self.report("FP218", level_path,
                                f"a drift level may not be called {level!r}: verdicts use "
                                "that word (no threshold reached, or a sketch verdict the "
                                "error bound leaves open)")
            self.check_level_order(levels, f"{path}.levels", levels)
            declared = rule.get("columns")
            for column, settings in (rule.get("column_settings") or {}).items():
                settings_path = child_path(f"{path}.column_settings", column)
                if declared is not None and column not in declared:
                    self.report("FP224", settings_path,
                                f"column {column!r} is not among the rule's columns "
                                f"({', '.join(declared)}): add it there, or drop its settings")
                overrides = settings.get("levels")
                if overrides:
                    column_path = f"{settings_path}.levels"
                    self.check_column_levels(levels, overrides, column_path, column)
            for level, event in (rule.get("events") or {}).items():
                event_path = child_path(f"{path}.events", level)
                if level not in levels and level != INDETERMINATE:
                    self.report("FP211", event_path,
                                f"{level!r} is not one of this rule's levels "
                                f"({', '.join(levels) or 'none'}) nor {INDETERMINATE!r}")
                self.not_keyword(event, event_path, "event name")

    def check_column_levels(self, levels: dict, overrides: dict, path: str, column: str
                            ) -> None:
        unknown = [level for level in overrides if level not in levels]
        for level in unknown:
            self.report("FP223", child_path(path, level),
                        f"{level!r} is not one of this rule's levels "
                        f"({', '.join(levels) or 'none'}); a column's levels change the "
                        "rule's thresholds, they add no level")
        if not unknown:
            self.check_level_order({**levels, **overrides}, path, overrides,
                                   f" (column {column!r}: its levels over the rule's)")

    def check_level_order(self, levels: dict, path: str, written: dict, where: str = "") -> None:
        """Thresholds start at 0 and strictly increase; reported at a level of ``written``
        (the mapping that was written at ``path``), else at ``path``."""
        previous: tuple[str, float] | None = None
        for level, threshold in levels.items():
            level_path = child_path(path, level) if level in written else path
            if previous is None and threshold != 0:
                self.report("FP210", level_path,
                            f"the first level ({level!r}) must have threshold 0 so that "
                            f"every statistic has a level; it has {threshold}{where}")
            if previous is not None and threshold <= previous[1]:
                self.report("FP209", level_path,
                            f"level {level!r} ({threshold}) must be above the level "
                            f"before it, {previous[0]!r} ({previous[1]}){where}: list levels "
                            "from lowest to highest threshold")
            previous = (level, threshold)

    def check_triggers(self) -> None:
        branches = self.doc.get("branches") or []
        rules = {"gate": self.doc.get("gates") or {},
                 "champion": self.doc.get("champion") or {},
                 "promotion": {a for e in self.doc.get("promotion") or []
                               for a in edge_assets(e, self.doc)},
                 "drift": self.doc.get("drift") or {}}
        seen: dict[tuple[str, str, str], int] = {}
        for index, entry in enumerate(self.doc.get("triggers") or []):
            path = child_path("$.triggers", index)
            kinds = [kind for kind in TRIGGER_TARGETS if kind in entry]
            if len(kinds) != 1:
                self.report("FP226", path, "a trigger names exactly one flow: one of "
                            + ", ".join(TRIGGER_TARGETS)
                            + (f" (this one names {', '.join(kinds)})" if kinds else ""))
                continue
            kind = kinds[0]
            target = entry[kind]
            if kind == "flow":
                self._check_flow_path(target, f"{path}.flow")
            elif target not in rules[kind]:
                known = ", ".join(sorted(rules[kind])) or "none"
                self.report("FP226", f"{path}.{kind}",
                            f"no {kind} flow {target!r}: the policy generates {kind} flows "
                            f"for {known}")
            enabled = entry.get("enabled", TriggerDecl.enabled)
            if enabled and "event" not in entry:
                self.report("FP226", path, "name the event that starts the flow "
                                           "(event: ...), or switch it off (enabled: false)")
            if not enabled and "event" in entry:
                self.report("FP226", f"{path}.event", "a switched-off trigger (enabled: false) "
                                                      "names no event")
            if kind != "flow":
                allowed = TRIGGER_PARAMETERS[kind]
                for parameter in entry.get("parameters") or {}:
                    if parameter not in allowed:
                        self.report("FP226", child_path(f"{path}.parameters", parameter),
                                    f"{kind} flows take {', '.join(allowed)} from an event "
                                    f"(thresholds come from the policy), not {parameter!r}")
                for key in ("registers", "publishes"):
                    if key in entry:
                        self.report("FP226", f"{path}.{key}",
                                    f"{key} is for flow: entries; what a generated flow "
                                    "registers and publishes follows from its rule")
            for position, asset in enumerate(entry.get("registers") or []):
                self.asset_ref(asset, child_path(f"{path}.registers", position))
            for position, branch in enumerate(entry.get("branches") or []):
                if branches:  # with none declared, a flow runs on any branch
                    self.branch_ref(branch, child_path(f"{path}.branches", position), "FP226")
            for branch in entry.get("branches") or branches or ["*"]:
                key = (kind, target, branch)
                if key in seen:
                    where = "every branch" if branch == "*" else f"branch {branch!r}"
                    self.report("FP227", path,
                                f"triggers[{seen[key]}] already says what starts the {kind} "
                                f"flow {target!r} on {where}; one deployed flow listens to "
                                "one event")
                seen.setdefault(key, index)

    def _check_flow_path(self, target: str, path: str) -> None:
        parts = target.split("/")
        if target.startswith("/") or any(part in ("", ".", "..") for part in parts):
            self.report("FP228", path, f"flow {target!r} must be a relative path inside the "
                                       "project (no leading /, no . or .. parts)")


def semantic_diagnostics(
    doc: dict, locations: Mapping[str, SourceLocation], source: str
) -> list[Diagnostic]:
    """Every semantic problem of a schema-valid document with defaults applied."""
    return _Checker(doc, locations, source).run()
