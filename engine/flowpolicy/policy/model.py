"""The policy intermediate representation.

The loader (``flowpolicy.policy.loader``) is the only place raw YAML exists; it returns a
frozen :class:`Policy`, and the compiler, linter, checker and runtime read only that.
Every collection is a tuple or a read-only mapping, so a ``Policy`` cannot be changed after
loading, and :meth:`Policy.to_document` gives back a plain document that loads to an equal
policy with the same :attr:`Policy.hash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.policy.patterns import search

AssetType = Literal["data", "model"]
Direction = Literal["maximize", "minimize"]

#: The requirement name a promotion edge uses to demand the champion decision.
CHAMPION_REQUIREMENT = "champion"


def frozen_map(items: Mapping | None = None) -> Mapping:
    """A read-only mapping (insertion order kept) for use inside the frozen IR."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class SourceLocation:
    """Where a node came from: 1-based line and column in a policy (or preset) file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def diagnostic(self, code: str, message: str, json_path: str = "$") -> Diagnostic:
        """A policy diagnostic here: ``file:line:col: CODE json_path: message``."""
        return Diagnostic(code, "error", message, path=self.file, line=self.line, col=self.col,
                          json_path=json_path)


def locate(locations: Mapping[str, SourceLocation], json_path: str, source: str) -> SourceLocation:
    """Where ``json_path`` was written, else its nearest located ancestor, else the start of
    ``source``."""
    path = json_path
    while path not in locations:
        if path in ("$", ""):
            return SourceLocation(source, 1, 1)
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else "$"
    return locations[path]


def _with_set(doc: dict, **fields) -> dict:
    """``doc`` plus those of ``fields`` that are set (not None, not empty): a field left at
    its default is not written, so a document carries only what its policy says."""
    doc.update((key, value) for key, value in fields.items() if value not in (None, [], {}))
    return doc


@dataclass(frozen=True)
class NamingRules:
    """Rules every asset name follows. The defaults here are "no rule"; a loaded policy
    always carries the stock ``flowpolicy:naming`` rules under its own (see the loader).

    ``forbidden_words`` are the words in force (``allowed_words`` already taken out);
    ``allowed_words`` is kept so :meth:`to_document` loads back to the same rules.
    """

    pattern: str | None = None
    forbidden_words: tuple[str, ...] = ()
    declared_only: bool = False
    allowed_words: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        """Whether ``name`` obeys :attr:`pattern` (searched, on RE2: linear time)."""
        if self.pattern is None:
            return True
        return search(self.pattern, name)

    def to_document(self) -> dict:
        return _with_set({"forbidden_words": list(self.forbidden_words),
                          "declared_only": self.declared_only},
                         pattern=self.pattern, allowed_words=list(self.allowed_words))


@dataclass(frozen=True)
class AssetDecl:
    name: str
    type: AssetType
    description: str | None = None
    required_annotations: tuple[str, ...] = ()

    def to_document(self) -> dict:
        return _with_set({"type": self.type}, description=self.description,
                         required_annotations=list(self.required_annotations))


@dataclass(frozen=True)
class Check:
    """One metric bound of a gate; ``min <= value <= max``, both inclusive, either optional."""

    metric: str
    min: float | None = None
    max: float | None = None

    def to_document(self) -> dict:
        return _with_set({"metric": self.metric}, min=self.min, max=self.max)


@dataclass(frozen=True)
class Gate:
    name: str
    asset: str
    checks: tuple[Check, ...]
    on_pass: str | None = None
    on_fail: str | None = None

    def to_document(self) -> dict:
        doc = {"asset": self.asset, "checks": [c.to_document() for c in self.checks]}
        return _with_set(doc, on_pass=self.on_pass, on_fail=self.on_fail)


@dataclass(frozen=True)
class ChampionRule:
    """Challenger replaces champion when it beats it by at least ``min_improvement``."""

    asset: str
    metric: str
    direction: Direction = "maximize"
    min_improvement: float = 0.0
    alias: str = "champion"
    on_promote: str | None = None
    on_keep: str | None = None

    def to_document(self) -> dict:
        doc = {
            "metric": self.metric,
            "direction": self.direction,
            "min_improvement": self.min_improvement,
            "alias": self.alias,
        }
        return _with_set(doc, on_promote=self.on_promote, on_keep=self.on_keep)


@dataclass(frozen=True)
class PromotionEdge:
    """An asset may move from branch ``source`` to ``target`` once ``require`` holds.

    ``require`` names gates, or :data:`CHAMPION_REQUIREMENT` for the champion rule of the
    asset. ``alias`` is set on the promoted instance on the target branch.
    """

    source: str
    target: str
    assets: tuple[str, ...]
    require: tuple[str, ...] = ()
    alias: str = "candidate"

    def to_document(self) -> dict:
        return {
            "from": self.source,
            "to": self.target,
            "assets": list(self.assets),
            "require": list(self.require),
            "alias": self.alias,
        }


@dataclass(frozen=True)
class DriftLevel:
    name: str
    threshold: float


DriftStatistic = Literal["ks", "linf", "psi", "chi2"]
#: The drift verdict when no threshold is reached.
NO_LEVEL = "none"
#: The drift verdict of a sketch-mode run whose error bound leaves the level open.
INDETERMINATE = "indeterminate"
DriftMode = Literal["exact", "sketch"]


@dataclass(frozen=True)
class DriftColumn:
    """Settings of one drift column: its statistic, and thresholds (by the rule's level
    names) that replace the rule's for this column only."""

    name: str
    statistic: DriftStatistic = "ks"
    levels: Mapping[str, float] = field(default_factory=frozen_map)

    def to_document(self) -> dict:
        return _with_set({"statistic": self.statistic}, levels=dict(self.levels))


@dataclass(frozen=True)
class DriftRule:
    """Compare two instances of a data asset; the level is the most severe level any column
    reaches (for ks columns under the rule's levels: the highest threshold max(D) reaches)."""

    asset: str
    levels: tuple[DriftLevel, ...]
    statistic: Literal["ks"] = "ks"
    mode: DriftMode = "exact"
    current: str = "latest"
    reference: str = "latest-1"
    #: Declared columns, in order (empty: every numeric column both instances have).
    columns: tuple[str, ...] = ()
    #: Settings of some columns (statistic, levels); every other column keeps the rule's.
    column_settings: Mapping[str, DriftColumn] = field(default_factory=frozen_map)
    report_asset: str | None = None
    events: Mapping[str, str] = field(default_factory=frozen_map)
    max_age_seconds: int | None = None

    def column(self, name: str) -> DriftColumn:
        """The settings of column ``name``: its own, else the rule's (ks, rule levels)."""
        return self.column_settings.get(name) or DriftColumn(name)

    def compared_columns(self, numeric_in_common: list[str]) -> list[str]:
        """The columns compared, in order: the declared ones (else ``numeric_in_common``),
        then those of ``column_settings`` not among them."""
        names = list(self.columns or numeric_in_common)
        return names + [name for name in self.column_settings if name not in names]

    def to_document(self) -> dict:
        doc: dict = {
            "statistic": self.statistic,
            "current": self.current,
            "reference": self.reference,
            "levels": {lvl.name: lvl.threshold for lvl in self.levels},
        }
        if self.mode != "exact":
            doc["mode"] = self.mode
        return _with_set(
            doc,
            columns=list(self.columns),
            column_settings={name: column.to_document()
                             for name, column in self.column_settings.items()},
            report_asset=self.report_asset,
            events=dict(self.events),
            max_age_seconds=self.max_age_seconds,
        )


@dataclass(frozen=True)
class CompileSettings:
    """Where generated flows go, relative to the policy file unless absolute."""

    output_dir: str = "flows"

    def to_document(self) -> dict:
        return {"output_dir": self.output_dir}


@dataclass(frozen=True)
class RegistrationRules:
    """Run-time limits on registration that ``self.prj`` of a running flow enforces."""

    #: Versions of one asset a single task may register before the run warns.
    max_versions_per_task: int = 1

    def to_document(self) -> dict:
        return {"max_versions_per_task": self.max_versions_per_task}


#: What a trigger entry starts: a generated flow (by its rule) or a hand-written one.
TRIGGER_TARGETS: tuple[str, ...] = ("gate", "champion", "promotion", "drift", "flow")


@dataclass(frozen=True)
class TriggerDecl:
    """One ``triggers:`` entry: on the ``branches`` it names (empty: every branch the flow
    runs on), ``event`` starts the flow of ``kind`` ``target`` (a gate's name, an asset's
    champion / promotion / drift rule, or a hand-written flow file relative to the project
    root), each Parameter in ``parameters`` set from the payload field it names; or, with
    ``enabled`` false, nothing starts it there. ``registers`` / ``publishes``: the assets and
    events a hand-written flow produces, which the loop check follows."""

    kind: str
    target: str
    event: str | None = None
    enabled: bool = True
    branches: tuple[str, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=frozen_map)
    registers: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()

    def to_document(self) -> dict:
        doc: dict = {self.kind: self.target}
        if self.event is not None:
            doc["event"] = self.event
        if not self.enabled:
            doc["enabled"] = False
        return _with_set(doc, branches=list(self.branches), parameters=dict(self.parameters),
                         registers=list(self.registers), publishes=list(self.publishes))


@dataclass(frozen=True)
class Policy:
    """A loaded, merged, validated policy. Build it only through the loader."""

    project: str
    version: int = 1
    naming: NamingRules = field(default_factory=NamingRules)
    assets: Mapping[str, AssetDecl] = field(default_factory=frozen_map)
    branches: tuple[str, ...] = ()
    gates: Mapping[str, Gate] = field(default_factory=frozen_map)
    champions: Mapping[str, ChampionRule] = field(default_factory=frozen_map)
    promotion: tuple[PromotionEdge, ...] = ()
    drift: Mapping[str, DriftRule] = field(default_factory=frozen_map)
    compile: CompileSettings = field(default_factory=CompileSettings)
    registration: RegistrationRules = field(default_factory=RegistrationRules)
    triggers: tuple[TriggerDecl, ...] = ()
    extends: tuple[str, ...] = ()
    #: The file this policy was loaded from ("<string>" when loaded from text).
    source: str = field(default="<string>", compare=False)
    #: JSON path ("$.assets.fraud_model") -> where that node was written, for messages.
    locations: Mapping[str, SourceLocation] = field(
        default_factory=frozen_map, compare=False, repr=False
    )

    def to_document(self) -> dict:
        """The merged policy as a plain document (``extends`` already applied)."""
        document = {
            "version": self.version,
            "project": self.project,
            "naming": self.naming.to_document(),
            "assets": {name: a.to_document() for name, a in self.assets.items()},
            "branches": list(self.branches),
            "gates": {name: g.to_document() for name, g in self.gates.items()},
            "champion": {name: c.to_document() for name, c in self.champions.items()},
            "promotion": [e.to_document() for e in self.promotion],
            "drift": {name: d.to_document() for name, d in self.drift.items()},
            "compile": self.compile.to_document(),
        }
        # Written only when it differs from the default, so that policies from before this
        # section existed keep their hash (and the evidence recorded under it stays valid).
        if self.registration != RegistrationRules():
            document["registration"] = self.registration.to_document()
        if self.triggers:  # likewise: no section, the same hash as before it existed
            document["triggers"] = [t.to_document() for t in self.triggers]
        return document

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_document`: stable across key order,
        comments, formatting and file location."""
        canonical = json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def locate(self, json_path: str) -> SourceLocation:
        """Best known location of a JSON path: the node itself, else its nearest ancestor."""
        return locate(self.locations, json_path, self.source)

    def edges_into(self, branch: str) -> tuple[PromotionEdge, ...]:
        return tuple(e for e in self.promotion if e.target == branch)

    def edges_for_asset(self, asset: str) -> tuple[PromotionEdge, ...]:
        return tuple(e for e in self.promotion if asset in e.assets)
