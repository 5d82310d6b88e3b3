"""Render ``docs/policy-reference.md`` from the policy JSON Schema, the stock presets and the
diagnostic codes, so the reference cannot drift from what the loader accepts.

Regenerate with ``python -m flowpolicy.policy.reference > docs/policy-reference.md``;
a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flowpolicy.policy.codes import CODES
from flowpolicy.resources import policy_schema, presets_dir

# Sections of the reference: (title, $defs name or None for the top level, intro).
_SECTIONS = (
    ("Top level", None, "A policy file is one YAML mapping with these keys."),
    ("naming", "naming", "Naming rules for asset names, checked on the policy's own `assets` "
                         "and by `flowpolicy lint` in code."),
    ("assets.&lt;name&gt;", "asset", "One declared asset."),
    ("gates.&lt;name&gt;", "gate", "A quality gate."),
    ("gates.&lt;name&gt;.checks[]", "check", "One metric bound of a gate."),
    ("champion.&lt;asset&gt;", "championRule", "The champion/challenger rule of a model asset."),
    ("promotion[]", "promotionEdge", "One promotion edge."),
    ("drift.&lt;asset&gt;", "driftRule", "The drift monitor of a data asset."),
    ("defaults.champion", "championDefaults", "Filled into every champion rule that does not "
                                              "set the key."),
    ("defaults.drift", "driftDefaults", "Filled into every drift rule that does not set the "
                                        "key."),
)

_MERGE_RULES = """\
`extends:` lists policies merged *under* the file, in order: `flowpolicy:<preset>` names a
stock preset, anything else is a path to a YAML file relative to the extending file.
Extended files may extend others; a cycle is an error (FP202).

* Later entries are merged over earlier ones, and the extending file over all of them.
* Mappings merge key by key, recursively; a key only one side has is kept.
* Scalars, lists and values of different types: the extending (upper) file wins and replaces
  the value whole. So `branches`, `promotion`, `checks`, `required_annotations` and
  `columns` are replaced, never appended.
* `levels` mappings are replaced whole too (their thresholds are one ordered set).
* Exception: `naming.forbidden_words` and `naming.allowed_words` are unions (the extended
  file's words first).
* Under everything lies the stock `flowpolicy:naming` preset, whether or not a file extends
  it: its `pattern` holds unless the policy sets its own, its environment words unless the
  policy lists them in `naming.allowed_words` (list them all to turn the rule off).
* `defaults.champion` / `defaults.drift` are filled into each rule after merging: a rule's own
  key always wins; `levels` from defaults are taken whole.
* Errors are reported in the file that wrote the offending line, preset files included.
* `max_age` accepts a duration (`"90m"`, `"24h"`, `"7d"`, `"2w"`, `"30s"`) or integer seconds;
  the loaded policy holds it as `max_age_seconds` (which may also be written directly).
* Omitted `promotion[].assets` means every declared model asset; omitted `require` means every
  gate declared on the edge's assets. Level order matters: list levels from the lowest
  threshold (0) up.
"""

_NAMES = """\
Names that become Python names in generated flows follow one rule, checked by the schema
(FP105) and against Python keywords (FP217): **asset, gate, level, metric, event and alias
names** are lower-case identifiers, `^[a-z][a-z0-9_]{0,62}$`, and not a Python keyword.
Branch names are `^[a-z0-9][a-z0-9_]{0,63}$` (obproject's sanitised form), the project name
`^[a-z0-9_]{1,128}$` (Metaflow's @project). Instance specs are `latest`, `latest-N`, `vN` or
`@alias`. Reserved: a gate may not be called `champion` (promotion requirements use that word)
and an alias may not be `latest` (FP218).

Every `pattern` in the schema matches the whole string: `$` is the end of the text (as in
ECMA-262), so `"champion\n"` is not an identifier. flowpolicy evaluates the patterns, and
`naming.pattern`, on RE2.

Declared asset names must also obey the policy's `naming` (the stock `flowpolicy:naming`
rules, changed by the policy's own): they must match `naming.pattern` (FP214) and contain
no forbidden word as a whole `_`/`-` token (FP215, case-insensitive). So `production_data`
and `staging_features` are refused while `user_transactions`, `fraud_classifier`,
`test_split`, `dev_set`, `productivity_metrics` and `devices` are fine.

`naming.pattern` is searched in the name, in RE2 syntax: Python's `re` without
backreferences, lookahead/lookbehind, atomic groups, possessive repeats or conditionals, so
matching takes linear time; those constructs are refused with the reason (FP216).
"""


def _resolve(node: dict) -> tuple[str | None, dict]:
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return name, policy_schema()["$defs"][name]
    return None, node


def _type_of(node: dict) -> str:
    ref_name, target = _resolve(node)
    if "const" in target:
        return f"`{json.dumps(target['const'])}`"
    if "enum" in target:
        return " or ".join(f"`{value}`" for value in target["enum"])
    if "anyOf" in target and "type" not in target:
        return " or ".join(_type_of(option) for option in target["anyOf"])
    kind = target.get("type")
    if kind == "array":
        return f"list of {_type_of(target.get('items', {}))}"
    if kind == "object":
        values = target.get("additionalProperties")
        if isinstance(values, dict):
            return f"mapping of name → {_type_of(values)}"
        return f"mapping ({ref_name})" if ref_name else "mapping"
    if kind == "string" and "pattern" in target:
        return f"string `{target['pattern']}`"
    if kind in ("number", "integer"):
        if "minimum" in target and "maximum" in target:
            return f"{kind} in [{target['minimum']}, {target['maximum']}]"
        bounds = [f"≥ {target['minimum']}" if "minimum" in target else "",
                  f"≤ {target['maximum']}" if "maximum" in target else ""]
        return " ".join(filter(None, [kind, *bounds]))
    return kind or "any"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(node: dict) -> Iterator[str]:
    required = set(node.get("required", ()))
    yield "| key | type | required | description |"
    yield "|---|---|---|---|"
    for key, prop in node.get("properties", {}).items():
        description = prop.get("description") or _resolve(prop)[1].get("description", "")
        yield (f"| `{key}` | {_cell(_type_of(prop))} | {'yes' if key in required else ''} | "
               f"{_cell(description)} |")


def render_reference() -> str:
    """The full markdown text of docs/policy-reference.md."""
    schema = policy_schema()
    out = [
        "# Policy reference",
        "",
        "<!-- Generated from schemas/policy.schema.json, policies/ and the diagnostic codes by",
        "     `python -m flowpolicy.policy.reference > docs/policy-reference.md`. Do not edit. -->",
        "",
        schema["description"],
        "",
        "Editors that speak the YAML language server autocomplete and check a policy when its",
        "first line is `# yaml-language-server: $schema=<path or URL of policy.schema.json>`;",
        "`flowpolicy schema --path` prints where the installed schema is.",
        "",
    ]
    for title, def_name, intro in _SECTIONS:
        node = schema if def_name is None else schema["$defs"][def_name]
        out += [f"## {title}", "", intro, "", *_table(node), ""]
        for example in node.get("examples", [])[:1]:
            out += ["Example:", "", "```json", json.dumps(example), "```", ""]
    levels = schema["$defs"]["levels"]
    out += ["## Drift levels", "", levels["description"], "",
            "```json", json.dumps(levels["examples"][0]), "```", ""]
    out += ["## Names", "", _NAMES]
    out += ["## extends and merge rules", "", _MERGE_RULES]
    out += ["## Stock presets", "", "Use them with `extends: [flowpolicy:<name>]`.", ""]
    for preset in sorted(presets_dir().glob("*.yaml")):
        out += [f"### flowpolicy:{preset.stem}", "", "```yaml",
                preset.read_text(encoding="utf-8").rstrip("\n"), "```", ""]
    out += ["## Diagnostic codes", "",
            "Every problem is reported as `file:line:col: CODE $.json.path: message`. Loading "
            "stops after the first stage that finds problems (YAML, extends, schema, "
            "semantics), reporting all of that stage's problems at once.", "",
            "| code | meaning |", "|---|---|"]
    out += [f"| {code} | {_cell(meaning)} |" for code, meaning in CODES.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_reference())
