"""Find the places where Python source names an asset, with ``ast`` and never importing it.

A *call site* is a call of the registry API: ``self.prj.register_data(...)`` and the other
``ProjectContext`` methods, ``Asset(...).consume_model_asset(...)`` and the other ``Asset``
methods (on ``self.prj.asset``, on an ``Asset(...)`` call, or on a name or ``self.x``
attribute bound to either), and ``promote_assets(..., asset=...)`` imported from
flowpolicy or obproject. A method call on any other receiver is not a call site, so
``mylist.register_data("prod")`` is left alone.

Names are evaluated as far as they are statically known: string literals, string
constants of the module and of its top-level classes, keywords of module-level constructor
calls (``GATE = Gate(asset="x")`` then ``GATE.asset``), ``+`` concatenation and f-strings.
What cannot be known becomes a *dynamic part*, so rules can still judge the constant text
around it.

Bindings are tracked per module, not per function: ``a = Asset(...)`` anywhere in a file
makes ``a.peek_data_asset(...)`` a call site everywhere in it, and a name bound to both a
``ProjectContext`` and an ``Asset`` is taken as either. That keeps the finder to one walk
that does not depend on statement order, at the price of a false positive when one name is
bound to an ``Asset`` in one function and to something unrelated in another.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

#: Receiver kinds: the ``ProjectContext`` (``self.prj``) and an ``Asset`` client.
PRJ = "prj"
ASSET = "asset"

#: Modules whose ``Asset`` and ``promote_assets`` are the registry API.
API_PACKAGES = ("flowpolicy", "obproject")

#: A part of a name that is not statically known.
DYNAMIC = None

_NONE: frozenset[str] = frozenset()
_PRJ = frozenset({PRJ})
_ASSET = frozenset({ASSET})


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Where a registry method takes the asset name, the instance spec and the asset type."""

    receiver: str
    asset_type: str | None
    name_pos: int = 0
    name_kw: str = "name"
    instance_pos: int | None = None
    type_kw: str | None = None
    type_pos: int | None = None


def _pair(template: str, receiver: str, **kwargs) -> dict[str, MethodSpec]:
    return {
        template.format(t): MethodSpec(receiver=receiver, asset_type=t, **kwargs)
        for t in ("data", "model")
    }


METHODS: dict[str, MethodSpec] = {
    **_pair("register_{}", PRJ),
    **_pair("register_external_{}", PRJ),
    **_pair("get_{}", PRJ, instance_pos=1),
    **_pair("list_{}_instances", PRJ),
    **_pair("register_{}_asset", ASSET),
    **_pair("consume_{}_asset", ASSET, instance_pos=1),
    **_pair("peek_{}_asset", ASSET, instance_pos=1),
    **_pair("list_{}_asset_instances", ASSET),
    **_pair("delete_{}_asset", ASSET),
    # flowpolicy's alias and evidence additions take the type as ``asset_type=``.
    "set_alias": MethodSpec(ASSET, "model", instance_pos=2, type_kw="asset_type"),
    "get_alias": MethodSpec(ASSET, "model", type_kw="asset_type"),
    "alias_history": MethodSpec(ASSET, "model", type_kw="asset_type", type_pos=2),
    "record_evidence": MethodSpec(ASSET, None, instance_pos=1, type_kw="asset_type"),
    "evidence": MethodSpec(ASSET, "model", instance_pos=1, type_kw="asset_type"),
}

#: ``promote_assets(project, source, target, kinds=None, asset=None, instance="latest", ...)``
PROMOTE = MethodSpec(receiver="", asset_type=None, name_pos=4, name_kw="asset", instance_pos=5)


@dataclass(frozen=True, slots=True)
class Value:
    """A string argument as far as it is statically known.

    ``parts`` alternates constant text and :data:`DYNAMIC` (``None``) pieces; a fully known
    value has exactly one constant part. Positions are ``ast``'s: 1-based lines, 0-based
    UTF-8 byte columns.
    """

    parts: tuple[str | None, ...]
    line: int
    col: int
    end_line: int
    end_col: int
    node: ast.AST

    @property
    def value(self) -> str | None:
        """The whole string when it is statically known, else None."""
        if len(self.parts) == 1 and self.parts[0] is not DYNAMIC:
            return self.parts[0]
        if not self.parts:
            return ""
        return None

    @property
    def fully_dynamic(self) -> bool:
        """True when no character of the value is known."""
        return all(p is DYNAMIC for p in self.parts) and bool(self.parts)

    def display(self) -> str:
        """The value as a reader sees it: ``'prod_{…}'`` for a partly dynamic one."""
        return repr("".join("{…}" if p is DYNAMIC else p for p in self.parts))

    def regex(self) -> re.Pattern[str]:
        """A pattern matching every string this value can take."""
        return re.compile(
            "".join(".*" if p is DYNAMIC else re.escape(p) for p in self.parts), re.DOTALL
        )

    def source(self) -> str:
        text = ast.unparse(self.node)
        return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class CallSite:
    """One registry API call that names an asset."""

    api: str
    asset_type: str | None
    name: Value | None
    instance: Value | None
    line: int
    col: int


#: Every line that can matter to the finder contains one of these: a registry method, a
#: receiver (``prj``, ``Asset``), ``promote_assets`` or an import of the API packages.
LINE_MARKERS: tuple[bytes, ...] = (
    b"prj", b"Asset", b"promote_assets", b"register_", b"get_data", b"get_model",
    b"_instances", b"consume_", b"peek_", b"delete_", b"_alias", b"alias_history",
    b"evidence", b"flowpolicy", b"obproject",
)


def marked_lines(source: bytes, extra: tuple[bytes, ...] = ()) -> list[int]:
    """The sorted 1-based numbers of the lines containing one of :data:`LINE_MARKERS` (or
    of ``extra``: the names the module binds to the API, such as ``import ... as reg``)."""
    source = _parser_newlines(source)
    return _line_numbers(source, _offsets(source, LINE_MARKERS) + _offsets(source, extra))


def _parser_newlines(source: bytes) -> bytes:
    if b"\r" in source:
        # The parser counts \r\n and a lone \r as one line break each.
        source = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return source


def _offsets(source: bytes, markers: tuple[bytes, ...]) -> list[int]:
    # One bytes.find loop per marker beats a regex alternation by an order of magnitude.
    offsets: list[int] = []
    for marker in markers:
        at = source.find(marker)
        while at >= 0:
            offsets.append(at)
            at = source.find(marker, at + len(marker))
    return offsets


def _line_numbers(source: bytes, offsets: list[int]) -> list[int]:
    offsets.sort()
    lines: list[int] = []
    line, last = 1, 0
    for offset in offsets:
        line += source.count(b"\n", last, offset)
        last = offset
        if not lines or lines[-1] != line:
            lines.append(line)
    return lines


def find_call_sites(tree: ast.Module, source: bytes | None = None) -> list[CallSite]:
    """Every registry call site in a parsed module, in source order.

    With the module's ``source`` bytes only the subtrees spanning a marked line (see
    :func:`marked_lines`) are visited: walking the whole tree in Python costs several times
    the parse itself, and every call site and receiver binding spans a marked line. Without
    it the whole tree is walked; both give the same sites (a test holds them to that).
    """
    return _Finder(tree, source).sites()


def _walk(tree: ast.Module, lines: list[int] | None) -> Iterator[ast.AST]:
    if lines is None:
        yield from ast.walk(tree)
        return
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            start = getattr(child, "lineno", None)
            if start is not None:
                index = bisect_left(lines, start)
                if index == len(lines) or lines[index] > (child.end_lineno or start):
                    continue
            stack.append(child)


class _Finder:
    def __init__(self, tree: ast.Module, source: bytes | None = None):
        self.imports: dict[str, str] = {}
        self.constants: dict[str, ast.expr | None] = {}
        self.class_constants: dict[str, ast.expr | None] = {}
        self._collect_top_level(tree)
        self.kinds: dict[str, frozenset[str]] = {}
        if source is None:
            self._collect(tree, None)
            self.kinds = self._resolve_bindings()
            return
        # Visit the marked lines, then also those naming what the module binds to the API
        # (``import ... as reg``, ``store = Asset()``), until nothing new is bound.
        source = _parser_newlines(source)
        base = _offsets(source, LINE_MARKERS)
        visited: list[int] | None = None
        for _ in range(4):
            lines = _line_numbers(source, base + _offsets(source, self._extra_markers()))
            if lines == visited:
                break
            visited = lines
            self._collect(tree, lines)
            self.kinds = self._resolve_bindings()

    def _extra_markers(self) -> tuple[bytes, ...]:
        """Names bound to the API (imports, receivers) that no :data:`LINE_MARKERS` covers."""
        names = {
            local for local, target in self.imports.items()
            if target.partition(".")[0] in API_PACKAGES
        }
        names.update(key.rpartition(".")[2] for key in self.kinds)
        encoded = (name.encode() for name in names)
        return tuple(sorted(
            name for name in encoded if not any(marker in name for marker in LINE_MARKERS)
        ))

    # -- collecting ------------------------------------------------------------------------
    def _collect_top_level(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            self._note_constant(stmt, self.constants)
            if isinstance(stmt, ast.ClassDef):
                for inner in stmt.body:
                    self._note_constant(inner, self.class_constants)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self._note_import(stmt)

    def _collect(self, tree: ast.Module, lines: list[int] | None) -> None:
        self.calls: list[ast.Call] = []
        self.bindings: list[tuple[str, ast.expr]] = []
        top = {id(stmt) for stmt in tree.body}
        for node in _walk(tree, lines):
            kind = type(node)
            if kind is ast.Call:
                self.calls.append(node)
            elif kind is ast.Assign or kind is ast.AnnAssign:
                value = node.value
                if value is None:
                    continue
                targets = node.targets if kind is ast.Assign else [node.target]
                for target in targets:
                    key = _binding_key(target)
                    if key is not None:
                        self.bindings.append((key, value))
            elif (kind is ast.Import or kind is ast.ImportFrom) and id(node) not in top:
                self._note_import(node)

    def _note_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.imports[alias.asname] = alias.name
                else:
                    head = alias.name.partition(".")[0]
                    self.imports[head] = head
        elif node.module and not node.level:
            for alias in node.names:
                self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    @staticmethod
    def _note_constant(stmt: ast.stmt, table: dict[str, ast.expr | None]) -> None:
        # A name assigned twice to different things is not a constant: mark it ambiguous.
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            return
        for target in targets:
            if isinstance(target, ast.Name):
                name = target.id
                if name in table and (
                    table[name] is None or ast.dump(table[name]) != ast.dump(value)
                ):
                    table[name] = None
                else:
                    table[name] = value

    # -- receivers -------------------------------------------------------------------------
    def _qualified(self, expr: ast.expr) -> str | None:
        """``oa.Asset`` -> ``obproject.assets.Asset`` through the module's imports."""
        attrs: list[str] = []
        while isinstance(expr, ast.Attribute):
            attrs.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = self.imports.get(expr.id)
        if head is None:
            return None
        return ".".join([head, *reversed(attrs)])

    def _is_api(self, func: ast.expr, name: str) -> bool:
        qualified = self._qualified(func)
        if qualified is None:
            return False
        package, _, rest = qualified.partition(".")
        return package in API_PACKAGES and rest.rpartition(".")[2] == name

    def _resolve_bindings(self) -> dict[str, frozenset[str]]:
        """What each bound name can be. A name bound to a ``ProjectContext`` in one place
        and to an ``Asset`` in another can be either: kinds only grow, so the result does
        not depend on the order bindings are seen in."""
        kinds: dict[str, frozenset[str]] = {}
        # Chains such as ``p = self.prj; a = p.asset`` settle within a few rounds.
        for _ in range(6):
            changed = False
            for key, value in self.bindings:
                found = self._receiver_kinds(value, kinds)
                if found and not found <= kinds.get(key, _NONE):
                    kinds[key] = kinds.get(key, _NONE) | found
                    changed = True
            if not changed:
                break
        return kinds

    def _receiver_kinds(
        self, expr: ast.expr, kinds: dict[str, frozenset[str]]
    ) -> frozenset[str]:
        if isinstance(expr, ast.Attribute):
            if expr.attr == "prj":
                return _PRJ
            if expr.attr == "asset" and PRJ in self._receiver_kinds(expr.value, kinds):
                return _ASSET
        elif isinstance(expr, ast.Call):
            return _ASSET if self._is_api(expr.func, "Asset") else _NONE
        elif isinstance(expr, ast.Name) and expr.id == "prj":
            return _PRJ
        key = _binding_key(expr)
        return kinds.get(key, _NONE) if key is not None else _NONE

    # -- call sites ------------------------------------------------------------------------
    def sites(self) -> list[CallSite]:
        found: list[CallSite] = []
        for call in self.calls:
            site = self._site(call)
            if site is not None:
                found.append(site)
        found.sort(key=lambda s: (s.line, s.col))
        return found

    def _site(self, call: ast.Call) -> CallSite | None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in METHODS:
            spec = METHODS[func.attr]
            if spec.receiver not in self._receiver_kinds(func.value, self.kinds):
                return None
            api = func.attr
        elif isinstance(func, (ast.Name, ast.Attribute)) and self._is_api(func, "promote_assets"):
            spec, api = PROMOTE, "promote_assets"
        else:
            return None
        name_node = _argument(call, spec.name_pos, spec.name_kw)
        if name_node is None:
            return None
        instance_node = (
            _argument(call, spec.instance_pos, "instance")
            if spec.instance_pos is not None
            else None
        )
        return CallSite(
            api=api,
            asset_type=self._asset_type(call, spec),
            name=self._value(name_node),
            instance=self._value(instance_node) if instance_node is not None else None,
            line=call.lineno,
            col=call.col_offset,
        )

    def _asset_type(self, call: ast.Call, spec: MethodSpec) -> str | None:
        if spec.type_kw is None:
            return spec.asset_type
        node = _argument(call, spec.type_pos, spec.type_kw)
        if node is None:
            return spec.asset_type
        if isinstance(node, ast.Constant) and node.value in ("data", "model"):
            return node.value
        return None

    def _value(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Starred):
            parts: tuple[str | None, ...] = (DYNAMIC,)
        else:
            parts = _merge(self._parts(node, 0))
        return Value(
            parts=parts,
            line=node.lineno,
            col=node.col_offset,
            end_line=node.end_lineno or node.lineno,
            end_col=node.end_col_offset or node.col_offset,
            node=node,
        )

    def _parts(self, node: ast.expr, depth: int) -> list[str | None]:
        # depth bounds constant chains (A = B; B = A) and pathological nesting.
        if depth > 20:
            return [DYNAMIC]
        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else [DYNAMIC]
        if isinstance(node, ast.JoinedStr):
            parts: list[str | None] = []
            for piece in node.values:
                if isinstance(piece, ast.Constant):
                    parts.append(str(piece.value))
                elif (
                    isinstance(piece, ast.FormattedValue)
                    and piece.conversion == -1
                    and piece.format_spec is None
                ):
                    parts.extend(self._parts(piece.value, depth + 1))
                else:
                    parts.append(DYNAMIC)
            return parts
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._parts(node.left, depth + 1) + self._parts(node.right, depth + 1)
        if isinstance(node, ast.Name):
            value = self.constants.get(node.id)
            return self._parts(value, depth + 1) if value is not None else [DYNAMIC]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # ``RULE.asset`` with a module-level ``RULE = DriftRule(asset="x", ...)``: the
            # keyword given to the constructor (how generated flows name their assets).
            built = self.constants.get(node.value.id)
            if isinstance(built, ast.Call):
                for keyword in built.keywords:
                    if keyword.arg == node.attr:
                        return self._parts(keyword.value, depth + 1)
                return [DYNAMIC]
            # ``self.NAME`` / ``cls.NAME`` / ``Flow.NAME``: a class-level constant.
            value = self.class_constants.get(node.attr)
            return self._parts(value, depth + 1) if value is not None else [DYNAMIC]
        return [DYNAMIC]


def _binding_key(target: ast.expr) -> str | None:
    """``a`` for a name, ``self.a`` for an attribute of a name; other targets are not tracked."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
        return f"{target.value.id}.{target.attr}"
    return None


def _argument(call: ast.Call, pos: int | None, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if pos is None:
        return None
    for index, arg in enumerate(call.args):
        if isinstance(arg, ast.Starred):
            # ``f(*args)`` hides the argument: it is there, but not statically known.
            return arg
        if index == pos:
            return arg
    if any(kw.arg is None for kw in call.keywords):
        # ``f(**kwargs)`` may carry the argument.
        return next(kw.value for kw in call.keywords if kw.arg is None)
    return None


def _merge(parts: list[str | None]) -> tuple[str | None, ...]:
    merged: list[str | None] = []
    for part in parts:
        if part == "":
            continue
        if merged and part is not DYNAMIC and merged[-1] is not DYNAMIC:
            merged[-1] = merged[-1] + part
        elif merged and part is DYNAMIC and merged[-1] is DYNAMIC:
            continue
        else:
            merged.append(part)
    return tuple(merged)
