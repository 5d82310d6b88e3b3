"""JSON Schema validation of a (merged) policy document, every error located in its YAML file."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from functools import cache

from flowpolicy.errors import Diagnostic
from flowpolicy.policy.model import SourceLocation, locate
from flowpolicy.policy.source import child_path
from flowpolicy.resources import schema_path

_CODES = {
    "additionalProperties": "FP101",
    "required": "FP102",
    "type": "FP103",
    "enum": "FP104",
    "const": "FP104",
    "pattern": "FP105",
    "minimum": "FP106",
    "maximum": "FP106",
    "exclusiveMinimum": "FP106",
    "exclusiveMaximum": "FP106",
    "minItems": "FP107",
    "maxItems": "FP107",
    "minLength": "FP107",
    "maxLength": "FP107",
    "minProperties": "FP107",
    "maxProperties": "FP107",
    "uniqueItems": "FP108",
    "anyOf": "FP109",
    "oneOf": "FP109",
    "not": "FP109",
}

_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
    "integer": "an integer", "boolean": "true or false", "null": "null",
}


@cache
def policy_schema() -> dict:
    """The policy JSON Schema (Draft 2020-12) shipped with flowpolicy."""
    return json.loads(schema_path("policy").read_text(encoding="utf-8"))


_ANNOTATIONS = frozenset({"description", "examples", "title", "default", "$comment"})


def _inline_refs(node: object, defs: Mapping[str, object], trail: tuple[str, ...] = ()) -> object:
    """``node`` with every local ``#/$defs/X`` reference replaced by its target.

    Resolving a ``$ref`` is the most expensive step of jsonschema's validation (a registry
    lookup per visit); the policy schema has no recursion, so inlining once gives the same
    verdicts several times faster. A reference with validation keywords beside it, or one
    that would recurse, is kept as it is.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs, trail) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if name in defs and name not in trail and set(siblings) <= _ANNOTATIONS:
            target = _inline_refs(defs[name], defs, (*trail, name))
            return {**siblings, **target} if isinstance(target, dict) else target
    return {key: (value if key == "$defs" else _inline_refs(value, defs, trail))
            for key, value in node.items()}


@cache
def _validator():
    from jsonschema import Draft202012Validator

    schema = policy_schema()
    return Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


# -- the fast verdict -----------------------------------------------------------------------
#
# jsonschema visits every node through a generic, evolving validator: about 10 us a node,
# a quarter of a second for a policy of 1,000 assets. Nearly every document it sees is
# valid, so validity is first decided by closures compiled once from the same schema; only a
# document they do not pass goes through jsonschema, which then finds and words the errors.
# The closures are conservative: True means jsonschema accepts the document (the tests hold
# them to that on generated documents), False only "ask jsonschema". A keyword they do not
# know disables them altogether.

#: Exact Python types per JSON type: a subset of what jsonschema's Draft 2020-12 checker
#: accepts (1.0 is an integer there, not here); bool is never a number in either.
_TYPE_TESTS = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}
_NUMERIC = (int, float)


class _Unsupported(Exception):
    """The schema uses a keyword the fast verdict does not implement."""


def _fast_check(schema: object):
    """A function deciding, conservatively, that a document is valid under ``schema``."""
    if schema is True:
        return lambda value: True
    if not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    tests = []
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("$schema", "$id", "$defs"):
            continue
        make = _FAST_KEYWORDS.get(keyword)
        if make is None:
            raise _Unsupported(keyword)
        tests.append(make(argument, schema))
    if not tests:
        return lambda value: True
    if len(tests) == 1:
        return tests[0]

    def check(value):
        for test in tests:
            if not test(value):
                return False
        return True
    return check


def _fast_type(argument, schema):
    names = argument if isinstance(argument, list) else [argument]
    checks = [_TYPE_TESTS[name] for name in names]
    return lambda value: any(check(value) for check in checks)


def _fast_properties(argument, schema):
    subschemas = {name: _fast_check(sub) for name, sub in argument.items()}

    def check(value):
        if type(value) is not dict:
            return True
        for key, item in value.items():
            sub = subschemas.get(key)
            if sub is not None and not sub(item):
                return False
        return True
    return check


def _fast_additional(argument, schema):
    if "patternProperties" in schema:
        raise _Unsupported("patternProperties")
    known = frozenset(schema.get("properties", {}))
    if argument is False:
        return lambda value: type(value) is not dict or known.issuperset(value)
    sub = _fast_check(argument)

    def check(value):
        if type(value) is not dict:
            return True
        return all(sub(item) for key, item in value.items() if key not in known)
    return check


def _fast_pattern(argument, schema):
    import re

    search = re.compile(argument).search
    return lambda value: type(value) is not str or search(value) is not None


def _fast_items(argument, schema):
    if "prefixItems" in schema:
        raise _Unsupported("prefixItems")
    sub = _fast_check(argument)
    return lambda value: type(value) is not list or all(sub(item) for item in value)


def _fast_required(argument, schema):
    names = tuple(argument)
    return lambda value: type(value) is not dict or all(name in value for name in names)


def _fast_unique(argument, schema):
    if not argument:
        return lambda value: True
    # strings only: jsonschema's equality of 1, 1.0 and True is not Python's
    return lambda value: type(value) is not list or (
        all(type(item) is str for item in value) and len(set(value)) == len(value))


def _fast_property_names(argument, schema):
    sub = _fast_check(argument)
    return lambda value: type(value) is not dict or all(sub(key) for key in value)


def _fast_bound(compare):
    def make(argument, schema):
        return lambda value: (type(value) not in _NUMERIC) or compare(value, argument)
    return make


def _fast_enum(argument, schema):
    # same type and equal: stricter than jsonschema (1 == 1.0 there), never looser
    allowed = [(type(item), item) for item in argument]
    return lambda value: any(type(value) is kind and value == item for kind, item in allowed)


def _fast_const(argument, schema):
    return _fast_enum([argument], schema)


def _fast_min_length(argument, schema):
    return lambda value: type(value) is not str or len(value) >= argument


def _fast_min_size(kind):
    def make(argument, schema):
        return lambda value: type(value) is not kind or len(value) >= argument
    return make


def _fast_any_of(argument, schema):
    subs = [_fast_check(sub) for sub in argument]
    return lambda value: any(sub(value) for sub in subs)


_FAST_KEYWORDS = {
    "type": _fast_type,
    "properties": _fast_properties,
    "additionalProperties": _fast_additional,
    "pattern": _fast_pattern,
    "items": _fast_items,
    "required": _fast_required,
    "uniqueItems": _fast_unique,
    "propertyNames": _fast_property_names,
    "minimum": _fast_bound(lambda value, bound: value >= bound),
    "maximum": _fast_bound(lambda value, bound: value <= bound),
    "enum": _fast_enum,
    "const": _fast_const,
    "minLength": _fast_min_length,
    "minItems": _fast_min_size(list),
    "minProperties": _fast_min_size(dict),
    "anyOf": _fast_any_of,
}


@cache
def fast_verdict():
    """The compiled validity check of the policy schema, or None when the schema uses a
    keyword it does not implement (then every document goes through jsonschema)."""
    schema = policy_schema()
    try:
        return _fast_check(_inline_refs(schema, schema.get("$defs", {})))
    except (_Unsupported, KeyError):
        return None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    for python_type, name in ((dict, "a mapping"), (list, "a list"), (str, "a string"),
                              (int, "an integer"), (float, "a number")):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _described(error) -> str | None:
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if not description:
        return None
    return description[0].lower() + description[1:].rstrip(".")


def _path(parts: Iterable) -> str:
    path = "$"
    for part in parts:
        path = child_path(path, part)
    return path


def _messages(error) -> Iterable[tuple[str, str, str]]:
    """(code, json path, message) for one jsonschema error."""
    path = _path(error.absolute_path)
    keyword = error.validator
    in_property_names = "propertyNames" in error.absolute_schema_path
    if in_property_names:
        # The instance is the offending key itself; point at that key, not its mapping.
        path = child_path(path, error.instance)
    if keyword == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        for key in error.instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(str(key), known, n=1)
            message = f"unknown property {key!r}"
            message += f"; did you mean {hint[0]!r}?" if hint else \
                f" (allowed: {', '.join(known)})"
            yield "FP101", child_path(path, key), message
        return
    if keyword in ("anyOf", "oneOf") and error.context:
        if all(sub.validator == "required" for sub in error.context):
            needed = ", ".join(repr(sub.validator_value[0]) for sub in error.context)
            yield "FP102", path, f"set at least one of {needed}"
            return
        described = _described(error)
        if described:
            yield "FP109", path, f"{_short(error.instance)} is not valid here: expected " \
                f"{described}"
            return
        from jsonschema.exceptions import best_match

        yield from _messages(best_match(error.context))
        return
    code = _CODES.get(keyword, "FP199")
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        message = f"missing required property {missing!r}"
    elif keyword == "type":
        expected = error.validator_value
        names = [_TYPE_NAMES.get(t, t) for t in
                 (expected if isinstance(expected, list) else [expected])]
        message = f"expected {' or '.join(names)}, got {_kind(error.instance)}" \
            f" ({_short(error.instance)})"
        if "string" in expected and isinstance(error.instance, (bool, int, float)):
            # YAML reads yes/no/on/off as booleans and 1.0 as a number: quoting keeps text.
            message += "; put it in quotes to make it a string"
    elif keyword == "pattern":
        described = _described(error)
        what = "key" if in_property_names else "value"
        message = f"{what} {_short(error.instance)} must be {described}" if described else \
            f"{what} {_short(error.instance)} does not match {error.validator_value!r}"
    elif keyword == "const":
        message = f"{_short(error.instance)} is not allowed; the only value is " \
            f"{error.validator_value!r}"
    else:
        message = error.message
    yield code, path, message


def schema_diagnostics(
    data: object, locations: Mapping[str, SourceLocation], source: str
) -> list[Diagnostic]:
    """Every schema error of ``data``, located; empty when the document is valid."""
    fast = fast_verdict()
    if fast is not None and fast(data):
        return []
    found: dict[tuple, Diagnostic] = {}
    for error in _validator().iter_errors(data):
        for code, path, message in _messages(error):
            loc = locate(locations, path, source)
            diagnostic = Diagnostic(loc.file, loc.line, loc.col, code, message, path)
            found.setdefault((diagnostic.file, path, code, message), diagnostic)
    return sorted(found.values(), key=lambda d: (d.file, d.line, d.col, d.code))
