"""The JSON Schema itself: valid Draft 2020-12, documented, closed, its examples valid; the
stock presets load; docs/policy-reference.md is generated from it and current."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from flowpolicy.policy.loader import load_policy_text
from flowpolicy.policy.reference import render_reference
from flowpolicy.policy.schema import _validator, policy_schema
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


# --- the fast verdict: a shortcut past jsonschema for valid documents ---------------------

@functools.cache
def _valid_documents() -> list[dict]:
    """Merged documents of every valid policy in the repository."""
    from flowpolicy.policy.loader import load_policy

    paths = [*REPO.glob("examples/*/policies/*.yaml"),
             *REPO.glob("tests/fixtures/policies/valid/*.yaml")]
    documents = [load_policy(path).to_document() for path in sorted(paths)]
    assert len(documents) >= 2
    return documents


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -0.1, 1.0, 2.5]),
    st.sampled_from(["", "x", "fraud_model", "Bad Name", "dev", "ks", "maximize", "champion",
                     "latest-1", "10d", "flowpolicy:naming", "a" * 70, "f1_score"]),
    st.just([]), st.just({}), st.just(["a", "a"]), st.just({"unknown": 1}),
)


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


@st.composite
def mutated_documents(draw) -> dict:
    """A valid document with a few nodes replaced, removed or added."""
    import copy

    document = copy.deepcopy(draw(st.sampled_from(_valid_documents())))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        value = copy.deepcopy(draw(VALUES))  # a fresh object: never the node it goes into
        if action == "replace":
            parent[path[-1]] = value
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "Bad Key", "min", "asset", "alias"]))] = value
        else:
            parent.append(value)
    return document


@settings(max_examples=400, deadline=None)
@given(mutated_documents())
def test_fast_verdict_never_passes_what_jsonschema_refuses(document: dict) -> None:
    from flowpolicy.policy.schema_fast import fast_verdict

    if fast_verdict()(document):
        assert not list(_validator().iter_errors(document))


def test_fast_verdict_passes_every_valid_policy() -> None:
    """Else it would be dead code: valid documents must not need jsonschema at all."""
    from flowpolicy.policy.schema_fast import fast_verdict

    verdict = fast_verdict()
    assert verdict is not None, "the policy schema uses a keyword the fast verdict lacks"
    for document in _valid_documents():
        assert verdict(document)


def test_fast_verdict_refuses_each_kind_of_schema_error() -> None:
    from flowpolicy.policy.schema_fast import fast_verdict

    verdict = fast_verdict()
    base = _valid_documents()[0]
    broken = [
        {**base, "extra": 1},                                    # additionalProperties
        {k: v for k, v in base.items() if k != "project"},       # required
        {**base, "version": "1"},                                # type
        {**base, "project": "Not A Name"},                       # pattern
        {**base, "branches": ["dev", "dev"]},                    # uniqueItems
        {**base, "assets": {"Bad Key": {"type": "data"}}},       # propertyNames
        {**base, "assets": {"thing": {"type": "table"}}},        # enum
    ]
    for document in broken:
        assert not verdict(document), document
        assert list(_validator().iter_errors(document)), document
