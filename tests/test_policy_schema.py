"""The JSON Schema itself: valid Draft 2020-12, documented, closed, its examples valid; the
stock presets load; docs/policy-reference.md is generated from it and current."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from flowpolicy.policy.loader import load_policy_text
from flowpolicy.policy.reference import render_reference
from flowpolicy.policy.schema import policy_schema
from flowpolicy.resources import presets_dir

REPO = Path(__file__).resolve().parent.parent
SCHEMA = policy_schema()


def subschemas(node: dict, path: str = "#"):
    """Every schema object reachable in the document, with a pointer-like path."""
    yield path, node
    for key in ("properties", "$defs"):
        for name, child in node.get(key, {}).items():
            yield from subschemas(child, f"{path}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(node.get(key), dict):
            yield from subschemas(node[key], f"{path}/{key}")
    for key in ("anyOf", "oneOf"):
        for index, child in enumerate(node.get(key, [])):
            yield from subschemas(child, f"{path}/{key}/{index}")


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_property_is_described_and_every_object_closed() -> None:
    for path, node in subschemas(SCHEMA):
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{path}/properties/{name} has no description"
        if node.get("type") == "object":
            assert "additionalProperties" in node, f"{path} is open to unknown keys"
            if "properties" in node:
                assert node["additionalProperties"] is False, path


@pytest.mark.parametrize("path", [p for p, n in subschemas(SCHEMA) if "examples" in n])
def test_schema_examples_are_valid(path: str) -> None:
    node = dict(subschemas(SCHEMA))[path]
    validator = Draft202012Validator({**node, "$defs": SCHEMA["$defs"]})
    for example in node["examples"]:
        assert not list(validator.iter_errors(example)), (path, example)


@pytest.mark.parametrize("preset", sorted(p.stem for p in presets_dir().glob("*.yaml")))
def test_each_preset_loads_alone(preset: str) -> None:
    policy = load_policy_text(
        f"version: 1\nproject: demo\nextends: ['flowpolicy:{preset}']\n"
        "assets: {clicks: {type: data}, ranker: {type: model}}\n"
        "champion: {ranker: {metric: ndcg, min_improvement: 0.1}}\n"
        "drift: {clicks: {levels: {normal: 0, high: 0.2}}}\n")
    assert policy.extends == (f"flowpolicy:{preset}",)


def test_presets_are_not_found_as_policies() -> None:
    from flowpolicy.policy.loader import find_policy_files

    assert find_policy_files([presets_dir()]) == []


def test_reference_doc_is_current() -> None:
    committed = (REPO / "docs" / "policy-reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/policy-reference.md is stale: run "
        "`python -m flowpolicy.policy.reference > docs/policy-reference.md`")
