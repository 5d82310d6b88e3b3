"""What a lint rule is: a permanent code, a short summary, its docstring as documentation,
and a check over one call site. Rules are plain module-level objects listed in
:data:`flowpolicy.lint.rules.RULES`; nothing is discovered by globbing."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from flowpolicy.lint.callsites import CallSite, Value
from flowpolicy.policy.model import NamingRules

#: Every lint code: "FPL" and three digits (policy diagnostics use "FP").
#: ``\Z``, not ``$``, which would also let "FPL001" plus a newline through.
CODE_PATTERN = re.compile(r"^FPL\d{3}\Z")


@dataclass(frozen=True)
class RuleContext:
    """What the rules know about the policy in force for one file.

    ``declared`` maps declared asset names to their type ("data"/"model"); it is None when
    no policy applies (the stock naming preset only), so declaration rules stay silent.
    ``required_annotations`` maps declared asset names to the annotation keys the policy
    requires on each of their instances.
    """

    naming: NamingRules
    declared: Mapping[str, str] | None = None
    policy_source: str | None = None
    required_annotations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: A check yields (where, message) pairs; ``where`` is the argument the problem is in.
Check = Callable[[CallSite, RuleContext], Iterator[tuple[Value, str]]]


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    #: The rule module's ``__doc__`` (what / why / example); :attr:`doc` is it cleaned up.
    docstring: str
    #: None for rules the runner applies itself (unparsable file, unused noqa).
    check: Check | None = None
    #: Whether the rule also judges the names declared in the policy YAML.
    checks_declared_names: bool = False

    @classmethod
    def from_doc(cls, docstring: str, summary: str, check: Check | None = None, *,
                 checks_declared_names: bool = False) -> Rule:
        """The rule a module documents: its docstring starts with the code and the name
        (``FPL001 environment-word: ...``), so they are written once."""
        code, name = docstring.partition(":")[0].split()
        return cls(code, name, summary, docstring, check, checks_declared_names)

    @property
    def doc(self) -> str:
        """The rule's documentation: its module docstring (what / why / example)."""
        return inspect.cleandoc(self.docstring)
