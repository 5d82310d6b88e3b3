"""FPL001 environment-word: an asset name contains an environment word.

**What it does.** Splits the asset name into whole tokens at ``_`` and ``-`` and reports a
token that is one of the policy's ``naming.forbidden_words`` (case-insensitive). The stock
``flowpolicy:naming`` preset forbids environment words such as ``production``, ``prod``,
``staging`` and ``uat`` (full list in ``policies/naming.yaml``); ``dev`` and ``test`` are
allowed because they are also ML split names.
Only whole tokens count: ``product_embeddings`` does not contain ``prod``. In an f-string
only the constant text is judged, and only tokens that cannot grow into another word.

**Why it is bad.** The branch carries the environment (``dev`` → ``staging`` → ``prod``);
an asset is promoted from branch to branch under the *same* name. A name like
``fraud_model_prod`` is wrong the moment it is promoted, and breaks the promotion edges,
gates and champion rules that refer to the asset by name.

**Example.**

```python
self.prj.register_model("fraud_model_prod", "model")  # FPL001
self.prj.register_model("fraud_model", "model")       # ok: the branch says prod
```
"""

from __future__ import annotations

from collections.abc import Iterator

from flowpolicy.lint.callsites import DYNAMIC, CallSite, Value
from flowpolicy.lint.rule import Rule, RuleContext
from flowpolicy.policy.semantic import forbidden_tokens

#: Stands for a dynamic part: a token touching it may be longer than what is written.
_UNKNOWN = "\0"


def environment_words(value: Value, forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden words that are certainly whole tokens of ``value``, each once; tokens
    are split as the policy validator splits declared names (FP215)."""
    if not forbidden:
        return []
    text = "".join(_UNKNOWN if p is DYNAMIC else p for p in value.parts)
    return list(dict.fromkeys(forbidden_tokens(text, forbidden)))


def check(site: CallSite, ctx: RuleContext) -> Iterator[tuple[Value, str]]:
    if site.name is None:
        return
    words = environment_words(site.name, ctx.naming.forbidden_words)
    if words:
        listed = ", ".join(repr(w) for w in words)
        plural = "s" if len(words) > 1 else ""
        yield site.name, (
            f"{site.name_label} {site.name.display()} contains environment word{plural} {listed}; "
            "name assets by what they are, the branch carries the environment"
        )


RULE = Rule.from_doc(__doc__, "Asset name contains an environment word", check,
                     checks_declared_names=True)
