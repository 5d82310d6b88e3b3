"""The loader API: IR built from the example, extends/merge rules, defaults, naming tokens,
locations, policy file discovery, and that YAML tags never execute anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowpolicy.errors import FlowpolicyError, PolicyError
from flowpolicy.policy.loader import (
    default_naming,
    find_policy_files,
    load_policy,
    load_policy_text,
    parse_duration,
)
from flowpolicy.policy.model import DriftLevel, PromotionEdge
from flowpolicy.policy.semantic import forbidden_tokens

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fraud_detection" / "policies" / "fraud.yaml"
HEAD = "version: 1\nproject: demo\n"


def codes(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    return [d.code for d in caught.value.diagnostics]


def test_example_policy_builds_the_agreed_ir() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.project == "fraud_detection"
    assert {n: a.type for n, a in policy.assets.items()} == {
        "fraud_features": "data", "fraud_model": "model", "drift_reports": "data"}
    assert policy.branches == ("dev", "staging", "prod")
    gate = policy.gates["quality"]
    assert (gate.asset, gate.on_pass, gate.on_fail) == (
        "fraud_model", "promote_model", "quality_gate_failed")
    assert [(c.metric, c.min, c.max) for c in gate.checks] == [("f1_score", 0.8, None)]
    champion = policy.champions["fraud_model"]
    assert (champion.metric, champion.direction, champion.min_improvement,
            champion.on_promote) == ("f1_score", "maximize", 0.02, "model_promoted")
    assert policy.promotion == (
        PromotionEdge("dev", "staging", ("fraud_model",), ("quality",), "candidate"),
        PromotionEdge("staging", "prod", ("fraud_model",), ("quality", "champion"),
                      "production"),
    )
    drift = policy.drift["fraud_features"]
    assert drift.levels == (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05),
                            DriftLevel("high", 0.1))
    assert (drift.current, drift.reference, drift.report_asset) == (
        "latest", "latest-1", "drift_reports")
    assert dict(drift.events) == {"high": "retrain_required"}
    assert policy.compile.output_dir == "../flows"
    assert policy.extends == ("flowpolicy:naming",)
    assert "prod" in policy.naming.forbidden_words


def test_example_carries_the_schema_modeline() -> None:
    first = EXAMPLE.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../../schemas/policy.schema.json"
    assert (EXAMPLE.parent / "../../../schemas/policy.schema.json").resolve().is_file()


def test_locations_point_at_yaml_lines() -> None:
    policy = load_policy(EXAMPLE)
    lines = EXAMPLE.read_text().splitlines()
    for path, needle in [("$.assets.fraud_model", "fraud_model:"),
                         ("$.gates.quality.checks[0]", "metric: f1_score"),
                         ("$.drift.fraud_features.levels.high", "levels:"),
                         ("$.promotion[1]", "from: staging")]:
        loc = policy.locate(path)
        assert loc.file == str(EXAMPLE)
        assert needle in lines[loc.line - 1], (path, loc)
    # Unknown paths fall back to the nearest located ancestor.
    assert policy.locate("$.gates.quality.nothing") == policy.locate("$.gates.quality")


def test_hash_ignores_formatting_order_and_location() -> None:
    a = load_policy_text(HEAD + "assets: {clicks: {type: data}, model: {type: model}}\n")
    b = load_policy_text("# comment\nproject: demo\nversion: 1\nassets:\n"
                         "  model:   {type: model}\n  clicks: {type: data}\n", "other.yaml")
    assert a.hash == b.hash and len(a.hash) == 64 and a.short_hash == a.hash[:12]
    c = load_policy_text(HEAD + "assets: {clicks: {type: model}}\n")
    assert c.hash != a.hash


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("production_data", ["production"]),
        ("staging_features", ["staging"]),
        ("fraud-model-prod", ["prod"]),
        ("QA_results", ["qa"]),
        ("user_transactions", []),
        ("fraud_classifier", []),
        ("test_split", []),
        ("dev_set", []),
        ("productivity_metrics", []),
        ("devices", []),
        ("product_catalog", []),
        ("prodigy", []),
    ],
)
def test_forbidden_words_match_whole_tokens(name: str, flagged: list[str]) -> None:
    assert forbidden_tokens(name, default_naming().forbidden_words) == flagged


def test_default_naming_is_the_stock_preset() -> None:
    naming = default_naming()
    assert naming.pattern == "^[a-z][a-z0-9_]{2,62}$"
    assert {"prod", "production", "staging"} <= set(naming.forbidden_words)
    assert not {"dev", "test"} & set(naming.forbidden_words)


# -- extends and merge rules -------------------------------------------------------------


def test_presets_fill_defaults_and_user_values_win() -> None:
    policy = load_policy_text(
        HEAD + "extends: [flowpolicy:champion, flowpolicy:drift, flowpolicy:promotion]\n"
        "assets: {clicks: {type: data}, ranker: {type: model}, scorer: {type: model}}\n"
        "gates: {ndcg_gate: {asset: ranker, checks: [{metric: ndcg, min: 0.3}]}}\n"
        "champion: {ranker: {metric: ndcg, min_improvement: 0.05}, scorer: {metric: auc}}\n"
        "drift: {clicks: {reference: '@baseline'}}\n")
    assert policy.champions["ranker"].min_improvement == 0.05  # own value wins
    assert policy.champions["scorer"].min_improvement == 0.01  # from the preset
    assert policy.champions["scorer"].alias == "champion"
    assert policy.drift["clicks"].reference == "@baseline"
    assert [lvl.name for lvl in policy.drift["clicks"].levels] == ["normal", "elevated", "high"]
    assert policy.branches == ("dev", "staging", "prod")
    # Preset edges name no assets/requirements: all models, every gate on them.
    assert policy.promotion[0].assets == ("ranker", "scorer")
    assert policy.promotion[0].require == ("ndcg_gate",)
    assert policy.promotion[1].alias == "production"
    # A filled-in default is located where the default is written (in the preset).
    assert policy.locate("$.champion.scorer.min_improvement").file.endswith("champion.yaml")


def test_lists_are_replaced_and_forbidden_words_are_united(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "extends: [flowpolicy:naming]\nnaming: {forbidden_words: [sandbox], declared_only: true}\n"
        "branches: [dev, staging, prod]\ncompile: {output_dir: generated}\n"
        "assets: {clicks: {type: data, description: base, required_annotations: [a, b]}}\n")
    policy_file = tmp_path / "team" / "policy.yaml"
    policy_file.parent.mkdir()
    policy_file.write_text(
        HEAD + "extends: [../base.yaml]\nnaming: {forbidden_words: [scratch, prod]}\n"
        "branches: [dev, prod]\n"
        "assets: {clicks: {type: data, required_annotations: [c]}, views: {type: data}}\n")
    policy = load_policy(policy_file)
    words = policy.naming.forbidden_words
    assert words[:7] == ("production", "prod", "preprod", "staging", "stg", "uat", "qa")
    assert words[7:] == ("sandbox", "scratch")
    assert policy.naming.declared_only is True  # mapping merged key by key
    assert policy.branches == ("dev", "prod")  # list replaced
    assert policy.assets["clicks"].required_annotations == ("c",)  # list replaced
    assert policy.assets["clicks"].description == "base"  # kept from the base
    assert list(policy.assets) == ["clicks", "views"]
    assert policy.compile.output_dir == "generated"
    assert policy.extends == ("../base.yaml",)


def test_levels_mapping_is_replaced_not_merged(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "defaults: {drift: {levels: {normal: 0, high: 0.1}}}\n")
    policy = load_policy_text(
        HEAD + f"extends: [{tmp_path / 'base.yaml'}]\n"
        "defaults: {drift: {levels: {ok: 0, warn: 0.02}}}\n"
        "assets: {clicks: {type: data}}\ndrift: {clicks: {}}\n")
    assert [lvl.name for lvl in policy.drift["clicks"].levels] == ["ok", "warn"]


def test_errors_inside_an_extended_file_point_into_it(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("assets:\n  staging_data: {type: data}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_text(HEAD + "extends: [flowpolicy:naming, base.yaml]\n",
                         str(tmp_path / "policy.yaml"))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.path, diagnostic.line) == ("FP215", str(base), 2)


def test_extends_cycle_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("extends: [a.yaml]\n")
    (tmp_path / "p.yaml").write_text(HEAD + "extends: [a.yaml]\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "p.yaml")
    assert [d.code for d in caught.value.diagnostics] == ["FP202"]
    assert "a.yaml -> b.yaml -> a.yaml" in caught.value.message


@pytest.mark.parametrize(("value", "seconds"),
                         [(3600, 3600), ("30s", 30), ("90m", 5400), ("24h", 86400),
                          ("7d", 604800), ("2w", 1209600)])
def test_max_age_durations(value: int | str, seconds: int) -> None:
    assert parse_duration(value) == seconds
    text = (HEAD + "assets: {clicks: {type: data}}\n"
            f"drift: {{clicks: {{levels: {{n: 0}}, max_age: {value}}}}}\n")
    policy = load_policy_text(text)
    assert policy.drift["clicks"].max_age_seconds == seconds
    assert policy.to_document()["drift"]["clicks"]["max_age_seconds"] == seconds


def test_all_errors_of_a_stage_are_reported_at_once() -> None:
    found = codes(HEAD + "assets: {fraud_model: {type: model, descripton: x}}\n"
                  "gates: {q: {asset: fraud_model, checks: [{metric: f1, min: 2}], on_pas: x}}\n"
                  "branches: [dev, dev]\n")
    assert sorted(found) == ["FP101", "FP101", "FP108"]


# -- YAML safety -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag_line",
    [
        "description: !!python/object/apply:os.system [{cmd}]",
        "description: !!python/object/new:os.system [{cmd}]",
        "description: !!python/name:os.system",
        "? !!python/object/apply:os.system [{cmd}]\n: x",
        "description: !custom {cmd}",
    ],
)
def test_object_tags_never_run(tmp_path: Path, tag_line: str) -> None:
    marker = tmp_path / "marker"
    text = HEAD + tag_line.format(cmd=f"'touch {marker}'") + "\n"
    found = codes(text)
    assert found and set(found) <= {"FP006", "FP008"}
    assert not marker.exists()


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control for the test above: the same text does run under PyYAML's unsafe loader, so
    the marker staying absent there proves flowpolicy refused it."""
    import yaml

    marker = tmp_path / "marker"
    text = HEAD + f"description: !!python/object/apply:os.system ['touch {marker}']\n"
    yaml.unsafe_load(text)
    assert marker.exists()


def test_merge_keys_and_anchors_are_supported() -> None:
    policy = load_policy_text(
        HEAD + "assets: {a_model: {type: model}, b_model: {type: model}}\n"
        "gates:\n  first: &g {asset: a_model, checks: [{metric: m, min: 1}], on_fail: bad}\n"
        "  second: {<<: *g, asset: b_model}\n")
    assert policy.gates["second"].asset == "b_model"
    assert policy.gates["second"].on_fail == "bad"


# -- discovery -----------------------------------------------------------------------------


def test_find_policy_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yaml").write_text(HEAD)
    (tmp_path / "policies" / "preset.yaml").write_text("naming: {declared_only: true}\n")
    (tmp_path / "policies" / "nested").mkdir()
    (tmp_path / "policies" / "nested" / "b.yml").write_text("project: x\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.yaml").write_text(HEAD)
    (tmp_path / "other.yaml").write_text(HEAD)
    monkeypatch.chdir(tmp_path)
    assert find_policy_files([]) == [Path("policies/a.yaml"), Path("policies/nested/b.yml")]
    assert find_policy_files(["."]) == [Path("other.yaml"), Path("policies/a.yaml"),
                                        Path("policies/nested/b.yml")]
    assert find_policy_files(["policies/preset.yaml"]) == [Path("policies/preset.yaml")]
    with pytest.raises(FlowpolicyError) as caught:
        find_policy_files(["missing.yaml"])
    assert caught.value.exit_code == 2
    os.remove("policies/a.yaml")
    os.remove("policies/nested/b.yml")
    assert find_policy_files([]) == []
