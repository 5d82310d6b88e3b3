"""``extends:`` resolution and the merge rules, plus ``defaults:`` filling.

Merge rules (documented in docs/policy-reference.md):

* ``extends`` entries are merged in order, each over the ones before it, and the extending
  file over all of them. Extended files may extend others; a cycle is an error (FP202).
* Mappings merge key by key, recursively. A key only one side has is kept as it is.
* On scalars, lists and type mismatches the extending (upper) side wins, replacing the value
  whole: ``branches``, ``promotion``, ``checks``, ``required_annotations`` are replaced.
  Drift ``levels`` mappings are replaced whole as well: their thresholds are one ordered set.
* ``naming.forbidden_words`` and ``naming.allowed_words`` are the exception: the union,
  lower sides' words first.
* Under everything lies the stock ``flowpolicy:naming`` preset, whether or not a file extends
  it: its pattern and environment words hold unless the policy sets its own pattern or
  names words in ``naming.allowed_words``
  (:func:`flowpolicy.policy.semantic.words_in_force`).
* The merged document keeps the top file's own ``extends`` list (for the record); extended
  files' ``extends`` are consumed.

Locations travel with values: every JSON path of the merged document still points at the file
and line that supplied it, so errors in a preset point into the preset.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.policy.model import SourceLocation
from flowpolicy.policy.source import SourceDoc, child_path, read_file

PRESET_PREFIX = "flowpolicy:"
#: The preset merged under every policy.
STOCK_NAMING = "flowpolicy:naming"
UNION_LISTS = frozenset({"$.naming.forbidden_words", "$.naming.allowed_words"})
Locations = dict[str, SourceLocation]


def within(key: str, path: str) -> bool:
    """Whether JSON path ``key`` is ``path`` or below it."""
    return key == path or key.startswith(path + ".") or key.startswith(path + "[")


def subtree(locations: Locations, path: str) -> Iterator[tuple[str, SourceLocation]]:
    """Entries of ``locations`` at ``path`` or below it."""
    return ((key, loc) for key, loc in locations.items() if within(key, path))


def moved(locations: Locations, old: str, new: str) -> Locations:
    """The subtree at ``old`` re-rooted at ``new``."""
    return {new + key[len(old):]: loc for key, loc in subtree(locations, old)}


def merge_values(
    lower: object, lower_locs: Locations, upper: object, upper_locs: Locations, path: str
) -> tuple[object, Locations]:
    """Merge ``upper`` over ``lower`` at ``path``; returns the value and its locations."""
    if isinstance(lower, dict) and isinstance(upper, dict) and not path.endswith(".levels"):
        value: dict = {}
        locs: Locations = {}
        if path in upper_locs or path in lower_locs:
            locs[path] = upper_locs.get(path) or lower_locs[path]
        for key in [*lower, *(k for k in upper if k not in lower)]:
            key_path = child_path(path, key)
            if key not in upper:
                value[key] = lower[key]
                locs.update(subtree(lower_locs, key_path))
            elif key not in lower:
                value[key] = upper[key]
                locs.update(subtree(upper_locs, key_path))
            else:
                value[key], sub = merge_values(lower[key], lower_locs, upper[key], upper_locs,
                                               key_path)
                locs.update(sub)
        return value, locs
    if path in UNION_LISTS and isinstance(lower, list) and isinstance(upper, list):
        value_list = list(lower)
        locs = dict(subtree(lower_locs, path))
        if path in upper_locs:
            locs[path] = upper_locs[path]
        for index, word in enumerate(upper):
            if word in value_list:
                continue
            locs.update(moved(upper_locs, child_path(path, index),
                              child_path(path, len(value_list))))
            value_list.append(word)
        return value_list, locs
    return upper, dict(subtree(upper_locs, path))


class ExtendsResolver:
    """Loads a file and everything it extends; collects every diagnostic on the way."""

    def __init__(self, presets_dir: Path):
        self.presets_dir = presets_dir
        self.diagnostics: list[Diagnostic] = []

    def _target(self, ref: str, base_dir: Path) -> Path | None:
        if ref.startswith(PRESET_PREFIX):
            name = ref[len(PRESET_PREFIX):]
            return self.presets_dir / f"{name}.yaml" if name else None
        return (base_dir / ref).resolve()

    def resolve_policy(self, doc: SourceDoc, base_dir: Path,
                       chain: tuple[Path, ...]) -> SourceDoc:
        """``doc`` with everything it extends merged under it, and the stock ``naming``
        rules under all of that: no policy loses them by forgetting ``extends``."""
        merged = self.resolve(doc, base_dir, chain)
        if not isinstance(merged.data, dict):
            return merged
        stock = self._load(STOCK_NAMING, base_dir, chain, SourceLocation(doc.source, 1, 1), 0)
        if stock is None:
            return merged
        # Only the naming section is merged: re-rooting every location of a large policy
        # for one small section would cost more than the rest of the merge.
        data = dict(merged.data)
        locs = {k: v for k, v in merged.locations.items() if not within(k, "$.naming")}
        data["naming"], naming_locs = merge_values(
            stock.data["naming"], stock.locations, data.get("naming", {}), merged.locations,
            "$.naming")
        locs.update(naming_locs)
        return SourceDoc(doc.source, data, locs)

    def resolve(self, doc: SourceDoc, base_dir: Path, chain: tuple[Path, ...]) -> SourceDoc:
        """``doc`` with everything it extends merged under it."""
        data = doc.data
        refs = data.get("extends") if isinstance(data, dict) else None
        if not isinstance(refs, list) or not refs:
            return doc  # no extends, or a malformed one the schema will report
        merged_data: object = {}
        merged_locs: Locations = {}
        for index, ref in enumerate(refs):
            if not isinstance(ref, str):
                continue
            where = doc.locations.get(child_path("$.extends", index),
                                      SourceLocation(doc.source, 1, 1))
            base = self._load(ref, base_dir, chain, where, index)
            if base is None:
                continue
            base_data = dict(base.data)
            base_data.pop("extends", None)
            base_locs = {k: v for k, v in base.locations.items() if not within(k, "$.extends")}
            merged_data, merged_locs = merge_values(merged_data, merged_locs, base_data,
                                                    base_locs, "$")
        value, locs = merge_values(merged_data, merged_locs, data, doc.locations, "$")
        return SourceDoc(doc.source, value, locs)

    def _load(self, ref: str, base_dir: Path, chain: tuple[Path, ...],
              where: SourceLocation, index: int) -> SourceDoc | None:
        path_text = child_path("$.extends", index)
        target = self._target(ref, base_dir)
        if target is None or not target.is_file():
            if ref.startswith(PRESET_PREFIX):
                hint = "stock presets: " + ", ".join(
                    sorted(PRESET_PREFIX + p.stem for p in self.presets_dir.glob("*.yaml")))
                message = f"unknown preset {ref!r} ({hint})"
            else:
                message = f"extended file {ref!r} not found (looked for {target})"
            self.diagnostics.append(where.diagnostic("FP201", message, path_text))
            return None
        resolved = target.resolve()
        if resolved in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(resolved):], resolved))
            self.diagnostics.append(where.diagnostic("FP202", f"extends cycle: {cycle}",
                                                     path_text))
            return None
        loaded, problems = read_file(target, str(target))
        self.diagnostics.extend(problems)
        if loaded is None or problems or not isinstance(loaded.data, dict):
            return None
        return self.resolve(loaded, target.parent, (*chain, resolved))


def apply_defaults(data: dict, locations: Locations) -> None:
    """Fill every champion and drift rule's missing keys from ``defaults`` (in place).

    Runs on a schema-valid document; filled values keep the location of the default, so a
    bad default is reported where it is written.
    """
    defaults = data.get("defaults") or {}
    for section in ("champion", "drift"):
        section_defaults = defaults.get(section) or {}
        for name, rule in (data.get(section) or {}).items():
            rule_path = child_path(child_path("$", section), name)
            for key, default in section_defaults.items():
                if key in rule:
                    continue
                if key == "max_age" and "max_age_seconds" in rule:
                    continue
                rule[key] = copy.deepcopy(default)
                locations.update(moved(locations,
                                       child_path(child_path("$.defaults", section), key),
                                       child_path(rule_path, key)))
