"""JSON Schema validation of a (merged) policy document, every error located in its YAML file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cache

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.policy.model import SourceLocation, locate
from flowpolicy.policy.patterns import search
from flowpolicy.policy.schema_fast import fast_verdict
from flowpolicy.policy.source import child_path
from flowpolicy.resources import policy_schema

#: The code of each JSON Schema keyword's errors (any other keyword: FP199).
_KEYWORDS_BY_CODE = {
    "FP101": ("additionalProperties",),
    "FP102": ("required",),
    "FP103": ("type",),
    "FP104": ("enum", "const"),
    "FP105": ("pattern",),
    "FP106": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "FP107": ("minItems", "maxItems", "minLength", "maxLength", "minProperties",
              "maxProperties"),
    "FP108": ("uniqueItems",),
    "FP109": ("anyOf", "oneOf", "not"),
}
_CODES = {keyword: code for code, keywords in _KEYWORDS_BY_CODE.items() for keyword in keywords}

_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
    "integer": "an integer", "boolean": "true or false", "null": "null",
}


def _pattern(validator, pattern, instance, schema):
    """The ``pattern`` keyword on RE2, where ``$`` is the end of the text as in ECMA-262
    (Python's ``re``, which jsonschema uses, also lets ``$`` match before a final newline,
    so ``"champion\\n"`` would pass as an identifier)."""
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator():
    from jsonschema import Draft202012Validator, validators

    policy_validator = validators.extend(Draft202012Validator, {"pattern": _pattern})
    return policy_validator(policy_schema())


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
        return []  # valid: jsonschema is not even imported
    found: dict[tuple, Diagnostic] = {}
    for error in _validator().iter_errors(data):
        for code, path, message in _messages(error):
            loc = locate(locations, path, source)
            diagnostic = loc.diagnostic(code, message, path)
            found.setdefault((diagnostic.path, path, code, message), diagnostic)
    return list(found.values())  # the loader puts them in file order
