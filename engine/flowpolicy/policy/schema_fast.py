"""A fast, conservative verdict that a policy document is valid under the policy schema.

Why it exists: a valid document then never needs jsonschema, whose import alone (with
``referencing`` and the bundled metaschemas) is about 65 ms, half of what ``flowpolicy
validate`` of the example policy takes (measured with ``bench/validate.py``). Validity is
decided by closures compiled once from the same schema; a document they do not pass goes
through jsonschema (:mod:`flowpolicy.policy.schema`), which then finds and words the errors.

The closures are conservative: True means jsonschema accepts the document (the tests hold
them to that on generated documents), False only "ask jsonschema". A keyword they do not
know disables them altogether.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import cache

from flowpolicy.policy.patterns import compile_pattern
from flowpolicy.resources import policy_schema

_ANNOTATIONS = frozenset({"description", "examples", "title", "default", "$comment"})


def _inline_refs(node: object, defs: Mapping[str, object], trail: tuple[str, ...] = ()) -> object:
    """``node`` with every local ``#/$defs/X`` reference replaced by its target, so the
    closures are compiled from one tree (the policy schema has no recursion). A reference
    with validation keywords beside it, or one that would recurse, is kept as it is (and
    then disables the verdict)."""
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
    regex = compile_pattern(argument)  # RE2, as the validator: "$" is the end of the text
    return lambda value: type(value) is not str or regex.search(value) is not None


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


def _fast_size(kind, compare):
    """``minLength``, ``maxItems`` and the like: the size of a ``kind`` value against a bound."""
    def make(argument, schema):
        return lambda value: type(value) is not kind or compare(len(value), argument)
    return make


def _fast_enum(argument, schema):
    # same type and equal: stricter than jsonschema (1 == 1.0 there), never looser
    allowed = [(type(item), item) for item in argument]
    return lambda value: any(type(value) is kind and value == item for kind, item in allowed)


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
    "minimum": _fast_bound(operator.ge),
    "maximum": _fast_bound(operator.le),
    "enum": _fast_enum,
    "const": lambda argument, schema: _fast_enum([argument], schema),
    "minLength": _fast_size(str, operator.ge),
    "maxLength": _fast_size(str, operator.le),
    "minItems": _fast_size(list, operator.ge),
    "minProperties": _fast_size(dict, operator.ge),
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
