"""Render ``docs/lint-rules.md`` from the rules' docstrings (a test keeps the file current).

    python -m flowpolicy.lint.docs > docs/lint-rules.md
"""

from __future__ import annotations

from flowpolicy.lint.rules import RULES


def render_rules_markdown() -> str:
    lines = [
        "# flowpolicy lint rules",
        "",
        "<!-- Generated from the rule docstrings by `python -m flowpolicy.lint.docs`;"
        " do not edit. -->",
        "",
        "| Code | Name | Summary |",
        "| --- | --- | --- |",
    ]
    for rule in RULES:
        lines.append(f"| [{rule.code}](#{rule.code.lower()}) | `{rule.name}` | {rule.summary} |")
    lines += [
        "",
        "Suppress a finding with `# noqa: CODE` (or a bare `# noqa`) on its line; see the",
        "README for the `flowpolicy lint` options.",
    ]
    for rule in RULES:
        title, _, body = rule.doc.partition("\n")
        lines += ["", f"## {rule.code}", "", f"**{title}**", "", body.strip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_rules_markdown(), end="")
