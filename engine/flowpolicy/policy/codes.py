"""The permanent diagnostic codes of the policy loader.

FP0xx: the file cannot be read as YAML. FP1xx: the document breaks the JSON Schema.
FP2xx: the document is well-formed but means something impossible (semantic checks).
Codes are never renumbered or reused; ``docs/policy-reference.md`` lists them.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # Reading YAML
    "FP001": "YAML syntax error (the message shows the numbered lines around the fault)",
    "FP002": "the file is not valid UTF-8",
    "FP003": "the file is empty (no document, or only comments)",
    "FP004": "the top level is not a mapping",
    "FP005": "duplicate key in a mapping",
    "FP006": "a YAML tag that would construct an object, or any other non-standard tag",
    "FP007": "alias expansion too large (nodes or text), recursive alias, or nesting too deep",
    "FP008": "a mapping key that is not a plain scalar",
    "FP009": "a number that is not finite (.inf, .nan)",
    "FP010": "the file cannot be read",
    # JSON Schema
    "FP101": "unknown property (typo?)",
    "FP102": "required property missing",
    "FP103": "value of the wrong type",
    "FP104": "value not among the allowed ones",
    "FP105": "string does not have the required form (identifier, branch, instance spec, ...)",
    "FP106": "number out of range",
    "FP107": "too few or too many items or characters",
    "FP108": "duplicate items in a list",
    "FP109": "value matches none of the allowed alternatives",
    "FP199": "other schema violation",
    # Semantics
    "FP201": "extends: unknown preset or missing file",
    "FP202": "extends: policies extend each other in a cycle",
    "FP203": "reference to an asset that is not declared",
    "FP204": "asset of the wrong type for its use (champion needs a model, drift a data asset)",
    "FP205": "promotion edge names a branch that is not declared",
    "FP206": "promotion requirement that is not a gate of the edge's assets or a champion rule",
    "FP207": "promotion edges form a cycle (they must form a DAG)",
    "FP208": "promotion edge from a branch to itself, twice for one asset, or promoting nothing",
    "FP209": "drift level thresholds do not strictly increase",
    "FP210": "the first drift level's threshold is not 0",
    "FP211": "drift event for a level that is not declared",
    "FP212": "gate check with min greater than max",
    "FP213": "gate checks one metric twice",
    "FP214": "declared asset name does not match naming.pattern",
    "FP215": "declared asset name contains a forbidden word",
    "FP216": "naming.pattern is not a valid RE2 regular expression (no backreferences or "
             "lookaround)",
    "FP217": "name is a Python keyword (names become Python identifiers in generated flows)",
    "FP218": "reserved name (gate named champion, alias latest, drift level none or "
             "indeterminate)",
    "FP219": "drift rule compares an instance with itself, or reports into the monitored asset",
    "FP220": "both max_age and max_age_seconds are set",
    "FP221": "champion rule without a metric, or drift rule without levels (after defaults)",
    "FP222": "naming.allowed_words names a word that no forbidden_words list forbids",
    "FP223": "a drift column's levels name a level that the rule does not declare",
    "FP224": "drift column_settings name a column that the rule's columns leave out",
    "FP225": "triggers could start each other forever (the trigger graph has a cycle)",
    "FP226": "trigger entry that names no flow or several, a rule the policy does not have, "
             "an undeclared branch, or a Parameter the flow does not take from events",
    "FP227": "two trigger entries say what starts one flow on one branch",
    "FP228": "trigger flow path that is not a relative path inside the project",
}
