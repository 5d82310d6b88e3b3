"""Read one policy YAML file into plain data plus the location of every node.

YAML is only scanned, parsed and composed into nodes (PyYAML's safe loader machinery, on
libyaml when available);
PyYAML's constructor never runs on a document. :class:`PolicyYAMLLoader` turns nodes into
plain values itself, accepting only the standard scalar, sequence and mapping tags, so no tag
(``!!python/object/apply:...`` included) can construct an object or call anything. It also
catches what PyYAML lets through: duplicate keys, alias expansion bombs, recursive aliases,
non-finite numbers.

JSON paths name nodes: ``$``, ``$.gates.quality.checks[0].min``, ``$.assets['odd key']``.
A mapping entry is located at its key, a list item at the item.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.policy.model import SourceLocation

#: Expanded nodes allowed in one document (a "billion laughs" document expands to far more).
MAX_NODES = 50_000
#: Nesting depth allowed; policies are a few levels deep.
MAX_DEPTH = 48
#: Characters of text (scalars and keys) a document may expand to through aliases: this many
#: times the file's own size, plus :data:`ALIAS_TEXT_FLOOR`. A file without aliases never
#: comes near it; one long string aliased into thousands of places (which ``compile`` would
#: write out again and again) does.
ALIAS_TEXT_RATIO = 16
ALIAS_TEXT_FLOOR = 64_000

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")}
_SCALAR_TAGS |= {"!", f"{_TAG}value", f"{_TAG}merge"}
_MERGE_TAG = f"{_TAG}merge"
_IDENTIFIER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANCHOR = re.compile(r"&[^\s,\[\]{}]+")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def child_path(parent: str, key: str | int) -> str:
    """The JSON path of a mapping entry (``str`` key) or list item (``int`` index)."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENTIFIER_KEY.fullmatch(key):
        return f"{parent}.{key}"
    return f"{parent}[{key!r}]"


@dataclass
class SourceDoc:
    """One file's document: plain data and JSON path -> where each node was written."""

    source: str
    data: object
    locations: dict[str, SourceLocation] = field(default_factory=dict)


class _Abort(Exception):
    """Stop building a document that cannot be built at all (bomb, recursion, depth)."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


#: libyaml's parser when PyYAML was built with it (the wheels are): it composes the same nodes
#: with the same marks about ten times faster than the pure-Python one.
_BaseLoader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


class PolicyYAMLLoader(_BaseLoader):
    """Composes a YAML stream into nodes and builds plain values from them, recording marks.

    Only :meth:`build` produces values; ``construct_document`` (PyYAML's object building) is
    never called, and the scalar helpers used (``construct_yaml_int`` ...) only read text.
    """

    def __init__(self, text: str, source: str):
        super().__init__(text)
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.locations: dict[str, SourceLocation] = {}
        self._expanded = 0
        self._active: set[int] = set()
        self._text = text
        self._text_budget = ALIAS_TEXT_FLOOR + ALIAS_TEXT_RATIO * len(text)
        self._text_left = self._text_budget
        #: Where each node was first built; a node built again is an alias being expanded.
        self._first_path: dict[int, str] = {}
        #: The outermost alias being expanded now: (JSON path of the use, the anchored node).
        self._alias: tuple[str, yaml.Node] | None = None

    # -- locations and diagnostics ------------------------------------------------------
    def _loc(self, node: yaml.Node) -> SourceLocation:
        return SourceLocation(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def _report(self, node: yaml.Node, code: str, path: str, message: str) -> None:
        self.diagnostics.append(self._loc(node).diagnostic(code, message, path))

    def _abort(self, node: yaml.Node, path: str, message: str) -> _Abort:
        return _Abort(self._loc(node).diagnostic("FP007", message, path))

    # -- building -------------------------------------------------------------------------
    def _anchor(self, node: yaml.Node) -> str:
        """``&name`` of an anchored node, read where the node starts (the anchor is there)."""
        found = _ANCHOR.match(self._text, node.start_mark.index)
        return found.group(0) if found else "an anchor"

    def _charge_text(self, node: yaml.Node, path: str, size: int) -> None:
        self._text_left -= size
        if self._text_left >= 0:
            return
        message = (f"aliases expand the policy to more than {self._text_budget} characters of text "
                   f"({ALIAS_TEXT_RATIO} times the file's size plus {ALIAS_TEXT_FLOOR})")
        if self._alias is None:
            raise self._abort(node, path, message)
        use, anchored = self._alias
        loc = self.locations.get(use) or self._loc(node)
        raise _Abort(loc.diagnostic(
            "FP007",
            f"{message}; the alias here repeats {self._anchor(anchored)} (line "
            f"{anchored.start_mark.line + 1}): write that value in fewer places", use))

    def _count_node(self, node: yaml.Node, path: str) -> None:
        self._expanded += 1
        if self._expanded > MAX_NODES:
            raise self._abort(node, path, f"aliases expand to more than {MAX_NODES} nodes")

    def build(self, node: yaml.Node, path: str = "$", depth: int = 0) -> object:
        """Plain value of ``node``; problems are appended to :attr:`diagnostics`."""
        self._count_node(node, path)
        if depth > MAX_DEPTH:
            raise self._abort(node, path, f"nesting deeper than {MAX_DEPTH} levels")
        if id(node) in self._active:
            raise self._abort(node, path, "recursive alias: a node contains itself")
        outer_alias = self._alias
        if self._first_path.setdefault(id(node), path) != path and outer_alias is None:
            self._alias = (path, node)
        try:
            return self._build(node, path, depth)
        finally:
            self._alias = outer_alias

    def _build(self, node: yaml.Node, path: str, depth: int) -> object:
        if isinstance(node, yaml.ScalarNode):
            self._charge_text(node, path, len(node.value))
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != f"{_TAG}seq":
                    return self._bad_tag(node, path)
                items = []
                for index, item in enumerate(node.value):
                    item_path = child_path(path, index)
                    self.locations.setdefault(item_path, self._loc(item))
                    items.append(self.build(item, item_path, depth + 1))
                return items
            if node.tag != f"{_TAG}map":
                return self._bad_tag(node, path)
            return self._mapping(node, path, depth)
        finally:
            self._active.discard(id(node))

    def _bad_tag(self, node: yaml.Node, path: str) -> None:
        self._report(node, "FP006", path,
                     f"tag {_short_tag(node.tag)!r} is not allowed in a policy; only plain "
                     "strings, numbers, booleans, null, lists and mappings are")
        return None

    def _scalar(self, node: yaml.ScalarNode, path: str) -> object:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            return self._bad_tag(node, path)
        try:
            if tag == f"{_TAG}int":
                return self.construct_yaml_int(node)
            if tag == f"{_TAG}float":
                value = self.construct_yaml_float(node)
                if not math.isfinite(value):
                    self._report(node, "FP009", path,
                                 f"{node.value!r} is not a finite number")
                    return None
                return value
            if tag == f"{_TAG}bool":
                return self.construct_yaml_bool(node)
            if tag == f"{_TAG}null":
                return None
        except (ValueError, KeyError, IndexError, yaml.YAMLError):
            # An explicit tag on text that is not of that type (``!!int abc``).
            self._report(node, "FP006", path,
                         f"{node.value!r} is not a valid {_short_tag(tag)}")
            return None
        # str, timestamps (kept as written: the policy has no date fields), "!" and "=".
        return node.value

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict:
        result: dict = {}
        first_seen: dict[str, yaml.Node] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, "FP008", path,
                             "mapping keys must be plain names, not lists or mappings")
                continue
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path, {id(node)}))
                continue
            if key_node.tag not in _SCALAR_TAGS:
                self._bad_tag(key_node, path)
                continue
            # Keys are names: use the text as written (so ``on:`` or ``1:`` is not a bool/int).
            key = key_node.value
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                self._report(key_node, "FP005", child_path(path, key),
                             f"duplicate key {key!r} (first defined on line {line})")
                continue
            first_seen[key] = key_node
            self._entry(result, key_node, value_node, path, depth)
        # ``<<: *base`` entries fill keys the mapping does not set itself.
        for key_node, value_node in merged:
            if key_node.value not in result:
                self._entry(result, key_node, value_node, path, depth)
        return result

    def _entry(self, result: dict, key_node: yaml.ScalarNode, value_node: yaml.Node, path: str,
               depth: int) -> None:
        key = key_node.value
        key_path = child_path(path, key)
        self.locations[key_path] = self._loc(key_node)
        self._charge_text(key_node, key_path, len(key))
        result[key] = self.build(value_node, key_path, depth + 1)

    def _merge_sources(
        self, value: yaml.Node, path: str, seen: set[int]
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            self._count_node(value, path)
            if id(source) in seen:
                raise self._abort(value, path, "recursive alias: a mapping merges itself")
            if not isinstance(source, yaml.MappingNode) or source.tag != f"{_TAG}map":
                self._report(source, "FP006", path, "<< (merge key) needs a mapping")
                continue
            for key_node, value_node in source.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                    pairs.extend(self._merge_sources(value_node, path, seen | {id(source)}))
                elif isinstance(key_node, yaml.ScalarNode) and key_node.tag in _SCALAR_TAGS:
                    pairs.append((key_node, value_node))
        return pairs


def _snippet(text: str, line: int, col: int, around: int = 2) -> str:
    """Numbered source lines around 1-based ``line``, with a caret under ``col``."""
    lines = text.splitlines() or [""]
    line = min(max(line, 1), len(lines))
    first, last = max(1, line - around), min(len(lines), line + 1)
    width = len(str(last))
    out = []
    for number in range(first, last + 1):
        marker = ">" if number == line else " "
        out.append(f"  {marker} {number:>{width}} | {lines[number - 1]}")
        if number == line:
            out.append(f"    {' ' * width} | {' ' * (col - 1)}^")
    return "\n".join(out)


def line_col(text: str | bytes, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, in characters of a str or bytes of bytes."""
    newline = "\n" if isinstance(text, str) else b"\n"
    return text.count(newline, 0, index) + 1, index - text.rfind(newline, 0, index)


def _syntax_diagnostic(exc: yaml.YAMLError, text: str, source: str) -> Diagnostic:
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = line_col(text, exc.position)
        problem = f"character {chr(exc.character)!r} (U+{exc.character:04X}) is not allowed"
    elif isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        line, col = exc.problem_mark.line + 1, exc.problem_mark.column + 1
        problem = exc.problem or "invalid YAML"
        if exc.context:
            context_line = exc.context_mark.line + 1 if exc.context_mark else line
            problem += f" ({exc.context} on line {context_line})"
    else:
        line, col, problem = 1, 1, str(exc)
    lines = text.splitlines() or [""]
    if line > len(lines):  # "unexpected end of stream": point at the end of the last line
        line, col = len(lines), len(lines[-1]) + 1
    message = f"YAML syntax error: {problem}\n{_snippet(text, line, col)}"
    return SourceLocation(source, line, col).diagnostic("FP001", message, "")


def decode(raw: bytes, source: str) -> str:
    """UTF-8 text of a policy file (a UTF-8 BOM is dropped); raises nothing, reports FP002."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = line_col(raw.decode("utf-8", "replace"), exc.start)
        raise _Abort(SourceLocation(source, line, col).diagnostic(
            "FP002", f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                     f"{exc.start}); save it as UTF-8", "")) from None
    return text.removeprefix("\ufeff")


def parse_text(text: str, source: str) -> tuple[SourceDoc | None, list[Diagnostic]]:
    """Parse one policy document; on any problem the document may be ``None``."""
    try:
        loader = PolicyYAMLLoader(text, source)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        return None, [_syntax_diagnostic(exc, text, source)]
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            return None, [_start(source, "FP007", "nesting too deep to read")]
        except yaml.YAMLError as exc:
            return None, [_syntax_diagnostic(exc, text, source)]
        if node is None:
            return None, [_start(source, "FP003", "the policy file is empty; it needs at "
                                 "least 'version: 1' and 'project: <name>'")]
        standard_tags = {f"{_TAG}map", f"{_TAG}seq", f"{_TAG}str", f"{_TAG}int",
                         f"{_TAG}float", f"{_TAG}bool", f"{_TAG}null"}
        if node.tag not in standard_tags:
            loader._bad_tag(node, "$")
            return None, loader.diagnostics
        if not isinstance(node, yaml.MappingNode):
            loc = loader._loc(node)
            kind = {yaml.ScalarNode: "a scalar", yaml.SequenceNode: "a list"}.get(
                type(node), f"a {_short_tag(node.tag)!r} node")
            return None, [loc.diagnostic(
                "FP004", f"the top level of a policy must be a mapping, not {kind}")]
        loader.locations["$"] = loader._loc(node)
        try:
            data = loader.build(node)
        except _Abort as abort:
            return None, [*loader.diagnostics, abort.diagnostic]
        except RecursionError:
            return None, [_start(source, "FP007", "nesting too deep to read")]
        return SourceDoc(source, data, loader.locations), loader.diagnostics
    finally:
        loader.dispose()


def _start(source: str, code: str, message: str) -> Diagnostic:
    """A diagnostic about the whole file, placed at its start."""
    return SourceLocation(source, 1, 1).diagnostic(code, message, "")


def read_file(path: Path, display: str) -> tuple[SourceDoc | None, list[Diagnostic]]:
    """Read and parse a policy file; every failure is a diagnostic, never an exception."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [_start(display, "FP010", f"cannot read the file: {exc.strerror or exc}")]
    try:
        text = decode(raw, display)
    except _Abort as abort:
        return None, [abort.diagnostic]
    return parse_text(text, display)
