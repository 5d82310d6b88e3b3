"""The lint rules, one module each, in code order. Codes are permanent: a retired rule
keeps its code reserved, a new rule takes the next free one."""

from __future__ import annotations

from flowpolicy.lint.rule import Rule
from flowpolicy.lint.rules import (
    fpl001_environment_word,
    fpl002_name_pattern,
    fpl003_undeclared_asset,
    fpl004_asset_type_mismatch,
    fpl005_instance_spec,
    fpl006_dynamic_name,
    fpl007_register_in_loop,
    fpl008_checkpoint_registration,
    fpl009_checkpoint_as_model,
    fpl010_missing_annotations,
    fpl900_unparsable_file,
    fpl901_unused_noqa,
)

RULES: tuple[Rule, ...] = (
    fpl001_environment_word.RULE,
    fpl002_name_pattern.RULE,
    fpl003_undeclared_asset.RULE,
    fpl004_asset_type_mismatch.RULE,
    fpl005_instance_spec.RULE,
    fpl006_dynamic_name.RULE,
    fpl007_register_in_loop.RULE,
    fpl008_checkpoint_registration.RULE,
    fpl009_checkpoint_as_model.RULE,
    fpl010_missing_annotations.RULE,
    fpl900_unparsable_file.RULE,
    fpl901_unused_noqa.RULE,
)

RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}

UNPARSABLE_FILE = fpl900_unparsable_file.RULE.code
UNUSED_NOQA = fpl901_unused_noqa.RULE.code
