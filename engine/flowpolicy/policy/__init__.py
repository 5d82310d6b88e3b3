"""Policy language: the frozen IR and (in ``loader``) the only code that reads raw YAML."""

from flowpolicy.policy.model import (
    CHAMPION_REQUIREMENT,
    AssetDecl,
    ChampionRule,
    Check,
    CompileSettings,
    DriftColumn,
    DriftLevel,
    DriftRule,
    Gate,
    NamingRules,
    Policy,
    PromotionEdge,
    SourceLocation,
)

__all__ = [
    "CHAMPION_REQUIREMENT",
    "AssetDecl",
    "ChampionRule",
    "Check",
    "CompileSettings",
    "DriftColumn",
    "DriftLevel",
    "DriftRule",
    "Gate",
    "NamingRules",
    "Policy",
    "PromotionEdge",
    "SourceLocation",
]
