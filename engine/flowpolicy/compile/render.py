"""All of the compiler's Jinja lives here: one environment, its filters, one render call.

Templates receive plain values that :mod:`flowpolicy.compile.flows` has already validated.
The only way a value enters the code is a filter:

- ``py``: a Python literal (``repr``) of a string, number, bool, None, tuple, list, mapping or
  policy IR object; non-finite floats are refused, so nothing can render as a bare name.
- ``comment``: text for a ``#`` comment with every control character escaped, so a file
  name cannot end the comment line.

:class:`OutputBudget` bounds what one policy may generate: a fixed allowance per flow for
the template's own text plus a small multiple of the policy's size for what the policy
supplies. Crossing it is a CompileError located at the rule of the largest flow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from functools import cache

from flowpolicy.errors import CompileError
from flowpolicy.policy.source import child_path
from flowpolicy.resources import templates_dir

#: Where a literal breaks into one item per line.
LINE_WIDTH = 88
_IR_MODULE = "flowpolicy.policy.model"


def literal(value: object, indent: int = 0, used: int | None = None) -> str:
    """Python source for ``value``. ``indent`` is the indentation of the line the literal is
    on and ``used`` how many characters precede it there (default: ``indent``); a literal
    that does not fit in :data:`LINE_WIDTH` is laid out one item per line. Raises
    CompileError for anything that is not plain data."""
    if type(value) in _ONE_LINE:  # most literals are names and numbers: nothing to lay out
        return _flat(value, {})
    return _layout(value, indent, indent if used is None else used, {})


def _layout(value: object, indent: int, used: int, flat_of: dict[int, tuple[object, str]]) -> str:
    flat = _flat(value, flat_of)
    shape = _shape(type(value))
    if used + len(flat) + 1 <= LINE_WIDTH or shape not in _CONTAINERS:
        return flat
    inner = indent + 4
    if shape == "mapping":
        items = []
        for key, item in value.items():
            prefix = f"{_flat(key, flat_of)}: "
            items.append(prefix + _layout(item, inner, inner + len(prefix), flat_of))
        open_, close = "{", "}"
    elif shape in ("tuple", "list"):
        items = [_layout(item, inner, inner, flat_of) for item in value]
        open_, close = ("(", ")") if shape == "tuple" else ("[", "]")
    else:
        items = [f"{name}={_layout(item, inner, inner + len(name) + 1, flat_of)}"
                 for name, item in _ir_fields(value)]
        open_, close = f"{type(value).__name__}(", ")"
    body = "".join(f"{' ' * inner}{item},\n" for item in items)
    return f"{open_}\n{body}{' ' * indent}{close}"


_CONTAINERS = frozenset({"mapping", "tuple", "list", "ir"})
_ONE_LINE = frozenset({str, float, int, bool, type(None)})


def _ir_fields(value: object) -> list[tuple[str, object]]:
    """The fields of an IR object that differ from their defaults, in declaration order;
    fields excluded from comparison (source file, locations) never reach generated code."""
    fields = []
    for name, default in _field_defaults(type(value)):
        current = getattr(value, name)
        if default is _REQUIRED or current != default:
            fields.append((name, current))
    return fields


_REQUIRED = object()


@cache
def _field_defaults(cls: type) -> tuple[tuple[str, object], ...]:
    out = []
    for field in dataclasses.fields(cls):
        if not field.compare:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = _REQUIRED
        out.append((field.name, default))
    return tuple(out)


def _flat(value: object, flat_of: dict[int, tuple[object, str]]) -> str:
    """``value`` on one line. ``flat_of`` remembers containers already written, so laying
    out nested containers does not write their children again."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None or kind is bool or kind is int:
        return repr(value)
    if kind is float:
        if not math.isfinite(value):
            raise CompileError(f"{value!r} cannot be written into a flow: numbers must be finite")
        return repr(value)
    known = flat_of.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    shape = _shape(kind)
    if shape == "mapping":
        text = "{" + ", ".join(
            f"{_flat(k, flat_of)}: {_flat(v, flat_of)}" for k, v in value.items()) + "}"
    elif shape == "tuple":
        inner = ", ".join([_flat(v, flat_of) for v in value])
        text = f"({inner},)" if len(value) == 1 else f"({inner})"
    elif shape == "list":
        text = "[" + ", ".join([_flat(v, flat_of) for v in value]) + "]"
    elif shape == "ir":
        args = ", ".join([f"{name}={_flat(v, flat_of)}" for name, v in _ir_fields(value)])
        text = f"{kind.__name__}({args})"
    elif shape == "scalar":  # subclasses of str, int, float: written as the plain value
        return _flat(_plain_value(value), flat_of)
    else:
        raise CompileError(f"cannot write a {kind.__name__} into a generated flow")
    flat_of[id(value)] = (value, text)  # holding value keeps its id from being reused
    return text


@cache
def _shape(kind: type) -> str | None:
    """How :func:`_flat` writes values of type ``kind`` (bool, int, float and str exactly
    are handled before it is asked)."""
    if issubclass(kind, (str, int, float)):
        return "scalar"
    if issubclass(kind, Mapping):
        return "mapping"
    if issubclass(kind, tuple):
        return "tuple"
    if issubclass(kind, list):
        return "list"
    if dataclasses.is_dataclass(kind) and kind.__module__ == _IR_MODULE:
        return "ir"
    return None


def _plain_value(value: str | int | float) -> str | int | float:
    """The built-in value inside an instance of a subclass, read with the base type's own
    method so no override (``__str__`` of an enum, say) decides what is written."""
    for base, plain in ((str, str.__str__), (int, int.__int__), (float, float.__float__)):
        if isinstance(value, base):
            return plain(value)
    raise TypeError(type(value).__name__)


def _string(value: str) -> str:
    """``repr``, but double-quoted when the text holds no quote at all (the house style of
    the hand-written code around it); the characters between the quotes are repr's."""
    text = repr(value)
    if text[0] == "'" and '"' not in value and "'" not in value:
        return f'"{text[1:-1]}"'
    return text


def comment(text: object) -> str:
    """``text`` made safe for a ``#`` comment: control and non-ASCII characters escaped."""
    return str(text).encode("ascii", "backslashreplace").decode("ascii").translate(_CONTROL)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


@cache
def _environment():
    import jinja2  # on first render: compiling a policy loads Jinja, nothing else does

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # package data: no stat() of every template on every render
    )
    env.filters["py"] = literal
    env.filters["comment"] = comment
    return env


#: Characters of generated text allowed per flow for the template's own text (the largest
#: template writes under 6,000 for a one-rule policy).
FLOW_ALLOWANCE = 16_000
#: ...plus this many times the size of the policy (its canonical JSON document) for the
#: names, numbers and literals the policy supplies: each appears in a few places of its
#: rule's flows, never in every flow.
OUTPUT_RATIO = 8

#: Where each kind of flow's rule is written in a policy.
_RULE_SECTIONS = {"gate": "$.gates", "champion": "$.champion", "drift": "$.drift"}


class OutputBudget:
    """Counts what a policy's flows add up to; :meth:`charge` each one as it is rendered."""

    def __init__(self, policy, flows: int):
        self.policy = policy
        self.limit = FLOW_ALLOWANCE * flows + OUTPUT_RATIO * policy_size(policy)
        self.used = 0
        self.largest: tuple[int, object] | None = None

    def charge(self, plan, source: str) -> str:
        """``source`` (the rendered flow of ``plan``), or CompileError once the flows so far
        exceed the budget."""
        self.used += len(source)
        if self.largest is None or len(source) > self.largest[0]:
            self.largest = (len(source), plan)
        if self.used > self.limit:
            size, largest = self.largest
            path = _rule_path(self.policy, largest)
            raise CompileError(
                f"{self.policy.locate(path)}: {path}: the generated flows would exceed "
                f"{self.limit} characters ({FLOW_ALLOWANCE} per flow plus {OUTPUT_RATIO} times "
                f"the policy's {policy_size(self.policy)}); the largest, {largest.file_name}, is "
                f"{size} characters: this rule repeats more of the policy than a flow needs")
        return source


def policy_size(policy) -> int:
    """Characters of the policy's canonical document (what its hash is computed from)."""
    import json

    return len(json.dumps(policy.to_document(), sort_keys=True, separators=(",", ":")))


def _rule_path(policy, plan) -> str:
    if plan.kind in _RULE_SECTIONS:
        return child_path(_RULE_SECTIONS[plan.kind], plan.rule)
    # a promotion flow exists because an edge promotes its asset
    first = next(i for i, edge in enumerate(policy.promotion) if plan.rule in edge.assets)
    return child_path("$.promotion", first)


def render(template: str, context: Mapping[str, object]) -> str:
    """Render one template of ``compile/templates/`` with ``context``."""
    import jinja2

    try:
        return _environment().get_template(template).render(**context)
    except jinja2.UndefinedError as exc:  # a template asked for a value flows.py did not give
        raise CompileError(f"template {template}: {exc.message}") from exc
