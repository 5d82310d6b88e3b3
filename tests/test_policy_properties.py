"""Property tests of the loader: no input escapes as anything but PolicyError, and valid
policies round-trip (to_document -> YAML -> load) to the same hash."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpolicy.errors import PolicyError
from flowpolicy.policy.loader import load_policy, load_policy_text
from flowpolicy.policy.model import Policy

EXAMPLE = (Path(__file__).resolve().parent.parent / "examples" / "fraud_detection" / "policies"
           / "fraud.yaml")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

SCHEMA_WORDS = [
    "version", "project", "extends", "naming", "pattern", "forbidden_words", "declared_only",
    "assets", "type", "data", "model", "description", "required_annotations", "branches",
    "gates", "asset", "checks", "metric", "min", "max", "on_pass", "on_fail", "champion",
    "direction", "maximize", "min_improvement", "alias", "on_promote", "promotion", "from",
    "to", "require", "drift", "statistic", "ks", "current", "reference", "levels",
    "report_asset", "events", "max_age", "max_age_seconds", "defaults", "compile",
    "output_dir", "latest", "latest-1", "flowpolicy:naming", "flowpolicy:drift", "dev", "prod",
]
YAML_BITS = [":", ": ", "\n", "\n  ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ",
             "!!python/object/apply:os.system ", "!!str ", "? ", "'", '"', "#", "|", ">",
             "---\n", "1", "0.5", ".nan", "~", "true", "\t", "%YAML 1.1\n"]


def load_only_policy_errors(text: str) -> None:
    try:
        result = load_policy_text(text)
    except PolicyError as exc:
        assert exc.diagnostics
        for diagnostic in exc.diagnostics:
            assert diagnostic.line >= 1 and diagnostic.col >= 1
            assert diagnostic.code.startswith("FP")
    else:
        assert isinstance(result, Policy)


@SETTINGS
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    load_only_policy_errors(text)


@SETTINGS
@given(st.lists(st.sampled_from(SCHEMA_WORDS + YAML_BITS), max_size=40).map("".join))
def test_yaml_like_text(text: str) -> None:
    load_only_policy_errors(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_in_a_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        path.write_bytes(raw)
        try:
            load_policy(path)
        except PolicyError as exc:
            assert exc.diagnostics


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=True),
    st.sampled_from(SCHEMA_WORDS), st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(SCHEMA_WORDS), st.text(max_size=8))
yaml_data = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=30,
)


@SETTINGS
@given(st.dictionaries(keys, yaml_data, max_size=8),
       st.sampled_from([{}, {"version": 1, "project": "demo"}]))
def test_arbitrary_yaml_shaped_data(data: dict, base: dict) -> None:
    load_only_policy_errors(yaml.safe_dump({**base, **data}, allow_unicode=True))


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


EXAMPLE_DOC = load_policy(EXAMPLE).to_document()
EXAMPLE_PATHS = [p for p in _paths(EXAMPLE_DOC) if p]


@SETTINGS
@given(st.sampled_from(EXAMPLE_PATHS), yaml_data)
def test_mutated_example_policy(path: tuple, replacement) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLE_DOC, sort_keys=False))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    load_only_policy_errors(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


# -- valid policies ------------------------------------------------------------------------

NAMES = ["user_transactions", "fraud_model", "clicks", "ranker", "scores", "embeddings",
         "churn_classifier", "test_split"]
BRANCHES = ["dev", "staging", "qa", "prod", "canary"]
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def valid_documents(draw) -> dict:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    assets = {n: {"type": draw(st.sampled_from(["data", "model"]))} for n in names}
    models = [n for n, a in assets.items() if a["type"] == "model"]
    datas = [n for n, a in assets.items() if a["type"] == "data"]
    doc: dict = {"version": 1, "project": draw(st.sampled_from(["demo", "fraud_detection"])),
                 "assets": assets}
    if draw(st.booleans()):
        doc["extends"] = ["flowpolicy:naming"]
    gates = {}
    for index, name in enumerate(draw(st.lists(st.sampled_from(names), max_size=3))):
        low, high = sorted(draw(st.lists(finite, min_size=2, max_size=2)))
        check = {"metric": f"m{index}"}
        if draw(st.booleans()):
            check["min"] = low
        if draw(st.booleans()) or "min" not in check:
            check["max"] = high
        gates[f"gate_{index}"] = {"asset": name, "checks": [check]}
    doc["gates"] = gates
    doc["champion"] = {
        m: {"metric": "score", "direction": draw(st.sampled_from(["maximize", "minimize"])),
            "min_improvement": draw(st.floats(0, 1))}
        for m in models if draw(st.booleans())
    }
    branches = draw(st.lists(st.sampled_from(BRANCHES), min_size=2, max_size=4, unique=True))
    doc["branches"] = branches
    if models:
        edges = []
        for source, target in zip(branches, branches[1:], strict=False):
            edge_assets = draw(st.lists(st.sampled_from(models), min_size=1, unique=True))
            require = [g for g, spec in gates.items() if spec["asset"] in edge_assets]
            if all(a in doc["champion"] for a in edge_assets) and draw(st.booleans()):
                require.append("champion")
            edges.append({"from": source, "to": target, "assets": edge_assets,
                          "require": require})
        doc["promotion"] = edges
    drift = {}
    for name in datas:
        if draw(st.booleans()):
            steps = draw(st.lists(st.floats(0.01, 0.3), min_size=1, max_size=3))
            thresholds = [0.0]
            for step in steps:
                if thresholds[-1] + step <= 1:
                    thresholds.append(thresholds[-1] + step)
            levels = {f"level_{i}": t for i, t in enumerate(thresholds)}
            drift[name] = {"levels": levels, "events": {"level_0": "drift_seen"},
                           "max_age": draw(st.sampled_from(["24h", 600, "7d"]))}
    doc["drift"] = drift
    return doc


@SETTINGS
@given(valid_documents())
def test_valid_policies_round_trip_to_the_same_hash(doc: dict) -> None:
    policy = load_policy_text(yaml.safe_dump(doc, sort_keys=False))
    again = load_policy_text(yaml.safe_dump(policy.to_document(), sort_keys=False))
    assert again.hash == policy.hash
    assert again.to_document() == policy.to_document()
    for check in (c for g in again.gates.values() for c in g.checks):
        assert check.min is None or math.isfinite(check.min)
