"""The promotion graph of a policy, drawn as Mermaid or Graphviz DOT.

Branches are nodes. Each promotion edge is an arrow labelled with the assets it carries, what
it requires (each gate with its bounds, the champion rule with its metric) and the alias it
sets on the target branch. Given a registry, each branch node also lists the instance that
holds each alias on that branch now.

Drawing happens in two steps: :func:`build_graph` turns the policy (and the registry) into a
:class:`PromotionGraph` whose labels are plain text lines, and a renderer writes one format.
Each branch node also lists what starts which flow there (the trigger table,
:mod:`flowpolicy.triggers`): ``on promote_model: promotion of fraud_model``.

Every piece of text a renderer writes goes through that format's escaper, so no policy or
registry text (a file path, an asset name registered by hand) can break the diagram:

- Mermaid: labels are double-quoted strings in which only letters, digits, space and
  ``_ . , : ; @ / + = ( ) [ ] - ' * ! ?`` (and printable non-ASCII characters) stand for
  themselves; every other character is written as Mermaid's entity code ``#<decimal>;``, so a
  label cannot end its string (``"``), start an entity, a comment or a directive (``#``,
  ``%``), turn into HTML or Markdown (``< > & `````) or an arrow.
- DOT: labels are double-quoted strings with ``\\`` and ``"`` escaped, so no escape sequence
  of Graphviz's (``\\n``, ``\\N``, ``\\G`` …) can come from the text, and ``&`` written as
  ``&amp;`` (Graphviz decodes HTML entities in labels).

Control and line-separator characters are first spelled out visibly (``\\x0a``) for both, and
comments get the same treatment, so nothing a label or comment holds starts a new line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from flowpolicy.compile.flows import source_label
from flowpolicy.errors import EXIT_FINDINGS, FlowpolicyError
from flowpolicy.inventory import open_to_read
from flowpolicy.policy.loader import load_policy, require_one_policy_file
from flowpolicy.policy.model import CHAMPION_REQUIREMENT, Policy, PromotionEdge
from flowpolicy.registry.base import Registry, Scope
from flowpolicy.request import GraphRequest
from flowpolicy.runtime.decisions import bounds_text, show_number
from flowpolicy.triggers import flow_label, trigger_table


@dataclass(frozen=True)
class BranchNode:
    """A branch; ``label`` is its text, one entry per line (the name first)."""

    name: str
    label: tuple[str, ...]


@dataclass(frozen=True)
class PromotionArrow:
    """A promotion edge from branch ``source`` to ``target``, with its label lines."""

    source: str
    target: str
    label: tuple[str, ...]


@dataclass(frozen=True)
class PromotionGraph:
    """What a renderer draws: comment lines, branch nodes, promotion arrows."""

    comments: tuple[str, ...]
    branches: tuple[BranchNode, ...]
    arrows: tuple[PromotionArrow, ...]


def build_graph(policy: Policy, source: str, registry: Registry | None = None) -> PromotionGraph:
    """The promotion graph of ``policy`` (``source`` names its file in the header comment);
    with ``registry``, each branch lists the current holder of every alias on it."""
    comments = [f"promotion graph of project {policy.project}, drawn by flowpolicy graph",
                f"policy {source} (policy {policy.short_hash})"]
    if registry is not None:
        comments.append(f"aliases as held in registry {registry.url}")
    triggers = trigger_table(policy).triggers
    branches = tuple(
        BranchNode(name, (name, *_trigger_lines(triggers, name),
                          *(() if registry is None
                            else _alias_lines(registry, policy.project, name))))
        for name in policy.branches)  # the loader demands every edge's branches declared
    arrows = tuple(PromotionArrow(e.source, e.target, _edge_lines(policy, e))
                   for e in policy.promotion)
    return PromotionGraph(tuple(comments), branches, arrows)


def _trigger_lines(triggers, branch: str) -> tuple[str, ...]:
    """What starts which flow on ``branch``: ``on promote_model: promotion of fraud_model``."""
    return tuple(f"on {t.event}: {flow_label(t.kind, t.rule)}"
                 for t in triggers if t.applies_to(branch))


def _edge_lines(policy: Policy, edge: PromotionEdge) -> tuple[str, ...]:
    lines = [", ".join(edge.assets)]
    for requirement in edge.require:
        if requirement == CHAMPION_REQUIREMENT:
            lines += [_champion_line(policy, asset, len(edge.assets) > 1)
                      for asset in edge.assets]
        else:
            gate = policy.gates.get(requirement)
            bounds = "; ".join(bounds_text(c.metric, c.min, c.max, signs=("≤", "≥"))
                                 for c in gate.checks) if gate else "undeclared"
            lines.append(f"gate {requirement}: {bounds}")
    if not edge.require:
        lines.append("no requirements")
    lines.append(f"sets @{edge.alias}")
    return tuple(lines)


def _champion_line(policy: Policy, asset: str, name_asset: bool) -> str:
    rule = policy.champions.get(asset)
    whose = f" of {asset}" if name_asset else ""
    if rule is None:
        return f"champion{whose}: no champion rule"
    by = show_number(rule.min_improvement)
    return f"champion{whose}: {rule.direction} {rule.metric}, by ≥ {by}"


def _alias_lines(registry: Registry, project: str, branch: str) -> tuple[str, ...]:
    lines = []
    for summary in registry.assets(project, branch):
        scope: Scope = summary.scope
        lines += [f"{scope.name} @{alias} v{version}"
                  for alias, version in sorted(registry.aliases(scope).items())]
    return tuple(lines) or ("no aliases set",)


# -- escaping -------------------------------------------------------------------------------

_MERMAID_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:;@/+=()[]-'*!?")


def printable(text: str) -> str:
    """``text`` with control, format and line/paragraph-separator characters spelled out as
    ``\\xNN`` / ``\\uNNNN``, so it stays on one line wherever it is written."""
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ"
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text)


def mermaid_text(text: str) -> str:
    """``text`` as the inside of a double-quoted Mermaid label (see the module docstring)."""
    return "".join(
        ch if ch in _MERMAID_PLAIN or ord(ch) > 0x7F else f"#{ord(ch)};"
        for ch in printable(text))


def dot_text(text: str) -> str:
    """``text`` as the inside of a double-quoted DOT string (see the module docstring)."""
    return printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


# -- renderers ------------------------------------------------------------------------------


def _node_ids(graph: PromotionGraph) -> dict[str, str]:
    """Branches get generated ids (``b0`` …): a branch named ``end`` or ``graph`` would be a
    keyword of either language."""
    return {node.name: f"b{i}" for i, node in enumerate(graph.branches)}


def to_mermaid(graph: PromotionGraph) -> str:
    """A Mermaid flowchart, left to right, as GitHub renders it in a ```mermaid block."""
    ids = _node_ids(graph)
    out = [f"%% {mermaid_text(line)}" for line in graph.comments]
    out.append("flowchart LR")
    for node in graph.branches:
        out.append(f'    {ids[node.name]}["{_mermaid_label(node.label)}"]')
    for arrow in graph.arrows:
        out.append(f'    {ids[arrow.source]} -->|"{_mermaid_label(arrow.label)}"| '
                   f'{ids[arrow.target]}')
    return "\n".join(out) + "\n"


def _mermaid_label(lines: tuple[str, ...]) -> str:
    return "<br/>".join(mermaid_text(line) for line in lines)


def to_dot(graph: PromotionGraph) -> str:
    """A Graphviz digraph, left to right (``dot -Tsvg`` draws it)."""
    ids = _node_ids(graph)
    out = [f"// {printable(line)}" for line in graph.comments]
    out += ["digraph promotion {",
            "    rankdir=LR;",
            '    node [shape=box, style=rounded, fontname="Helvetica"];',
            '    edge [fontname="Helvetica", fontsize=10];']
    for node in graph.branches:
        out.append(f'    {ids[node.name]} [label="{_dot_label(node.label)}"];')
    for arrow in graph.arrows:
        out.append(f'    {ids[arrow.source]} -> {ids[arrow.target]} '
                   f'[label="{_dot_label(arrow.label)}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_label(lines: tuple[str, ...]) -> str:
    return "\\n".join(dot_text(line) for line in lines)


#: ``--format`` name -> renderer.
FORMATS: Mapping[str, Callable[[PromotionGraph], str]] = MappingProxyType(
    {"mermaid": to_mermaid, "dot": to_dot})


@dataclass(frozen=True)
class GraphResult:
    text: str
    #: What the drawing leaves out (no promotion edges, no assets in the registry).
    notes: tuple[str, ...] = ()


def draw(request: GraphRequest) -> GraphResult:
    """The promotion graph of one policy in ``request.format``; a policy without branches
    is an error with exit code 1 (nothing to draw). The registry, when asked for, is opened
    read-only and never created."""
    path = require_one_policy_file(request.policy, "graph", "draw")
    policy = load_policy(path)
    if not policy.branches:  # and so no promotion edges either
        raise FlowpolicyError(f"{path} declares no branches: nothing to draw",
                              exit_code=EXIT_FINDINGS)
    registry = (open_to_read(request.registry, "no alias holders to show") if request.holders
                else None)
    notes = []
    if not policy.promotion:
        notes.append(f"{path} declares no promotion edges; the graph shows its branches "
                     "only")
    if registry is not None and not registry.assets(policy.project):
        notes.append(f"registry {registry.url} holds no assets of project {policy.project}")
    drawn = build_graph(policy, source_label(policy), registry)
    return GraphResult(FORMATS[request.format](drawn), tuple(notes))
