"""Find the places where Python source names an asset, with ``ast`` and never importing it.

**What is a registry call** (the *call-site rule*; the prefilter and every rule key on it):

* a method call ``R.m(...)`` where ``m`` is a registry method — one of :data:`METHODS`, or
  any name following the registry's naming, ``(register|get|peek|consume|list|delete)_``
  ``[external_](data|model)[_asset][_instances]`` (so ``prj.peek_model("x")`` counts too) —
  on a *registry receiver* ``R``: ``prj`` or ``<anything>.prj`` (a ``ProjectContext``),
  ``<ProjectContext>.asset``, a call of ``Asset(...)``, or a name or ``self.x`` attribute
  bound to one of those anywhere in the module (``=``, ``:=``, ``with ... as``);
* a call of ``promote_assets(..., asset=...)``.

``Asset`` and ``promote_assets`` count when imported under those names from *any* module —
flowpolicy, obproject, or the project's own wrapper (``from .assets import Asset``,
``from team.registry import promote_assets as promote``), and after a star import. The
linter imports nothing, so it cannot tell a wrapper from an unrelated class of the same
name; a name that is not imported at all (``Asset()`` defined in the same file) is not the
registry's. A method call on any other receiver is not a call site, so
``mylist.register_data("prod")`` and ``self.prj = prj`` are left alone.

**The prefilter** (:func:`could_call_registry`) follows from that rule: a call site's source
contains ``promote_assets``, or the text of its method name (``register_data``,
``peek_model``, ``set_alias``, ...) *and* of its receiver's root (``prj``, or ``Asset``, which
must be imported under that name). A file without them cannot hold one and is skipped
unparsed. It keys on what can be a registry call: a receiver alone is not enough, since flow
code names ``self.prj`` everywhere without calling the registry, and a method name alone is
not either (``self._get_data()`` in a library).

Names are evaluated as far as they are statically known: string literals, string
constants of the module and of its top-level classes, keywords of module-level constructor
calls (``GATE = Gate(asset="x")`` then ``GATE.asset``), ``+`` concatenation and f-strings.
What cannot be known becomes a *dynamic part*, so rules can still judge the constant text
around it. Each constant is folded once (memoised), and folding is bounded: a value longer
than :data:`MAX_FOLDED_CHARS`, nested deeper than :data:`MAX_FOLD_DEPTH`, or a module whose
folding takes more than :data:`MAX_FOLD_STEPS` steps stops with :attr:`Value.limit` set, which
FPL006 reports at the argument.

Bindings are tracked per module, not per function: ``a = Asset(...)`` anywhere in a file
makes ``a.peek_data_asset(...)`` a call site everywhere in it, and a name bound to both a
``ProjectContext`` and an ``Asset`` is taken as either. That keeps the finder to one walk
that does not depend on statement order, at the price of a false positive when one name is
bound to an ``Asset`` in one function and to something unrelated in another.

The walk also notes, for each call, the step it is in (a function decorated ``@step``, and
whether it is also ``@checkpoint``), the loops around it inside that function (``for``,
``while``, comprehensions; whether the loop saves checkpoints), the annotation keys it
passes, and reads of Metaflow's ``current.checkpoint`` / ``current.model`` — what the
checkpoint rules (FPL007–FPL010) judge.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

import re2

#: Receiver kinds: the ``ProjectContext`` (``self.prj``) and an ``Asset`` client; ``ANY``
#: for methods known only by the registry's naming, accepted on either.
PRJ = "prj"
ASSET = "asset"
ANY = "any"

#: A part of a name that is not statically known.
DYNAMIC = None

#: Folding bounds (see the module docstring); a tripped bound is an FPL006 finding.
MAX_FOLDED_CHARS = 4096
MAX_FOLD_DEPTH = 100
MAX_FOLD_STEPS = 200_000

_NONE: frozenset[str] = frozenset()
_PRJ = frozenset({PRJ})
_ASSET = frozenset({ASSET})


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """Where a registry method takes the asset name, the instance spec, the asset type and
    the annotations."""

    receiver: str
    asset_type: str | None
    name_pos: int = 0
    name_kw: str = "name"
    instance_pos: int | None = None
    type_kw: str | None = None
    type_pos: int | None = None
    annotations_pos: int | None = None
    #: Annotations the runtime adds itself (``register_model`` adds ``artifact``).
    implied_annotations: tuple[str, ...] = ()


def _pair(template: str, receiver: str, **kwargs) -> dict[str, MethodSpec]:
    return {
        template.format(t): MethodSpec(receiver=receiver, asset_type=t, **kwargs)
        for t in ("data", "model")
    }


METHODS: dict[str, MethodSpec] = {
    **_pair("register_{}", PRJ, annotations_pos=2,
            implied_annotations=("artifact", "run_pathspec")),
    **_pair("register_external_{}", PRJ, annotations_pos=3),
    **_pair("get_{}", PRJ, instance_pos=1),
    **_pair("list_{}_instances", PRJ),
    **_pair("register_{}_asset", ASSET, annotations_pos=4),
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

#: The registry's method naming, for methods :data:`METHODS` does not list.
_VERBS = ("register", "get", "peek", "consume", "list", "delete")
METHOD_NAMING = re.compile(
    rf"(?P<verb>{'|'.join(_VERBS)})_(?:external_)?(?P<type>data|model)(?:_asset)?(?:_instances)?"
)

#: ``promote_assets(project, source, target, kinds=None, asset=None, instance="latest", ...)``
PROMOTE = MethodSpec(receiver="", asset_type=None, name_pos=4, name_kw="asset", instance_pos=5)


def method_spec(name: str) -> MethodSpec | None:
    """How the registry method ``name`` takes its arguments; None if it is not one."""
    spec = METHODS.get(name)
    if spec is not None:
        return spec
    match = METHOD_NAMING.fullmatch(name)
    if match is None:
        return None
    verb = match["verb"]
    return MethodSpec(
        receiver=ANY,
        asset_type=match["type"],
        instance_pos=1 if verb in ("get", "peek", "consume") else None,
    )


#: The roots every registry receiver is spelled with (``self.prj``, an imported ``Asset``).
RECEIVER_MARKERS: tuple[bytes, ...] = (b"prj", b"Asset")
#: The text of every registry method name of :data:`METHODS` and :data:`METHOD_NAMING`:
#: a verb (optionally ``_external``) right before ``_data`` / ``_model``, or one of the
#: alias and evidence methods.
METHOD_VERBS: tuple[bytes, ...] = tuple(
    verb.encode() + external for verb in _VERBS for external in (b"", b"_external")
)
METHOD_TYPES: tuple[bytes, ...] = (b"_data", b"_model")
METHOD_WORDS: tuple[bytes, ...] = (b"set_alias", b"get_alias", b"alias_history", b"evidence")
_LONGEST_VERB = max(len(verb) for verb in METHOD_VERBS)


def could_call_registry(data: bytes) -> bool:
    """False only when ``data`` certainly holds no registry call site (the prefilter)."""
    if _has_call_text(data):
        return True
    if data.isascii():
        return False
    # The parser folds identifiers to NFKC (``ｒegister_data`` is ``register_data``).
    try:
        text = data.decode(source_encoding(data), errors="replace")
    except LookupError:  # a cookie naming a codec that is not a text encoding (rot13)
        text = data.decode("utf-8", errors="replace")
    return _has_call_text(unicodedata.normalize("NFKC", text).encode("utf-8"))


def _has_call_text(data: bytes) -> bool:
    if b"promote_assets" in data:
        return True
    if not any(marker in data for marker in RECEIVER_MARKERS):
        return False
    if any(word in data for word in METHOD_WORDS):
        return True
    # Only the occurrences of _data / _model are looked at (``self.train_data`` is common in
    # flow code); bytes.find is far faster than a regex over the whole file.
    for marker in METHOD_TYPES:
        at = data.find(marker)
        while at >= 0:
            if data[max(0, at - _LONGEST_VERB) : at].endswith(METHOD_VERBS):
                return True
            at = data.find(marker, at + 1)
    return False


def source_encoding(data: bytes) -> str:
    """The encoding Python reads ``data`` in (its BOM or PEP 263 cookie); UTF-8 when the
    cookie names no known encoding."""
    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "utf-8"


@dataclass(frozen=True, slots=True)
class Value:
    """An argument as far as it is statically known.

    ``parts`` alternates constant text and :data:`DYNAMIC` (``None``) pieces; a fully known
    value has exactly one constant part. ``limit`` says which folding bound stopped the
    evaluation (the value then counts as dynamic). Positions are ``ast``'s: 1-based lines,
    0-based UTF-8 byte columns.
    """

    parts: tuple[str | None, ...]
    line: int
    col: int
    end_line: int
    end_col: int
    node: ast.AST
    limit: str | None = None

    @classmethod
    def at(cls, node: ast.AST, parts: tuple[str | None, ...] = (DYNAMIC,),
           limit: str | None = None) -> Value:
        line, col = node.lineno, node.col_offset  # type: ignore[attr-defined]
        return cls(parts=parts, line=line, col=col,
                   end_line=getattr(node, "end_lineno", None) or line,
                   end_col=getattr(node, "end_col_offset", None) or col,
                   node=node, limit=limit)

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
        """The value as a reader sees it: ``'prod_{…}'`` for a partly dynamic one (long
        values shortened, so a message stays one readable line)."""
        text = repr("".join("{…}" if p is DYNAMIC else p for p in self.parts))
        return text if len(text) <= 120 else text[:117] + "..."

    def regex(self):
        """A pattern matching every string this value can take, on RE2: matching it against a
        declared name costs time linear in the name however many dynamic parts it has (a
        backtracking engine tries every split of the name)."""
        return re2.compile(
            "(?s)" + "".join(".*" if p is DYNAMIC else re2.escape(p) for p in self.parts))

    def source(self) -> str:
        """The argument's code, shortened."""
        return _shown_code(self.node)


@dataclass(frozen=True, slots=True)
class Step:
    """The function a call is in, when it is a Metaflow step."""

    name: str
    checkpoint: bool


@dataclass(frozen=True, slots=True)
class Loop:
    """The loops around a call, inside the call's function."""

    #: The innermost loop over whose iterations the asset name stays the same (its name
    #: uses none of the loop's variables), else the innermost loop.
    kind: str
    line: int
    #: Whether the name changes with every loop around the call (``for name in NAMES``).
    name_varies: bool
    #: The line of the innermost loop around the call that calls current.checkpoint.save.
    training_loop_line: int | None


#: The ``api`` of the sites made for the names a policy declares (not calls in code).
DECLARED_NAMES = "policy assets"


@dataclass(frozen=True, slots=True)
class CallSite:
    """One registry API call that names an asset, or (``checkpoint_read``) a read of a
    Metaflow checkpoint in a module that calls the registry."""

    api: str
    asset_type: str | None
    name: Value | None
    instance: Value | None
    line: int
    col: int
    step: Step | None = None
    loop: Loop | None = None
    #: The annotations argument (or the name, when none is passed) and its keys, each a
    #: Value; keys is None when they are not all statically known.
    annotations: Value | None = None
    annotation_keys: tuple[Value, ...] | None = None
    #: An argument of a registration that holds a checkpoint (``current.checkpoint...``).
    checkpoint_payload: Value | None = None
    #: ``current.checkpoint...`` / ``current.model.load`` / ``Checkpoint()`` read here.
    checkpoint_read: Value | None = None

    @property
    def registers(self) -> bool:
        return self.api.startswith("register_")

    @property
    def name_label(self) -> str:
        """What messages call :attr:`name`: a name under a policy's ``assets:``, or an
        argument in code."""
        return "declared asset name" if self.api == DECLARED_NAMES else "asset name"

    def values(self) -> Iterator[tuple[str, Value]]:
        """The arguments the finder evaluated, with what each is."""
        if self.name is not None:
            yield "asset name", self.name
        if self.instance is not None:
            yield "instance spec", self.instance
        for key in self.annotation_keys or ():
            yield "annotation key", key


def find_call_sites(tree: ast.Module) -> list[CallSite]:
    """Every registry call site in a parsed module, in source order; when there is one, also
    the module's checkpoint reads (as sites with ``checkpoint_read`` set)."""
    return _Finder(tree).sites()


class _FoldLimit(Exception):
    """A folding bound tripped; the message says which."""


class _Scope(NamedTuple):
    """Where a node is: its function (with step facts) and the loops around it there."""

    step: Step | None
    loops: tuple[_LoopNode, ...]


@dataclass(slots=True, eq=False)
class _LoopNode:
    kind: str
    line: int
    targets: frozenset[str]
    saves_checkpoints: bool = False


#: Outside any step and loop: the module, and the bodies of classes and lambdas.
_TOP = _Scope(None, ())
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
#: Nodes the walk notes (beside calls and attributes), and those that change the scope.
_NOTED = frozenset({ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.withitem, ast.Import,
                    ast.ImportFrom})
_STRUCTURAL = frozenset({*_FUNCTIONS, ast.Lambda, *_LOOPS, *_COMPREHENSIONS, ast.ClassDef})
#: Nodes with no child the finder needs.
_LEAVES = frozenset({ast.Name, ast.Constant, ast.Load, ast.Store, ast.Del, ast.Pass})
#: Fields that never hold a node (skipped unread: the walk is most of the finder's time).
_SCALAR_FIELDS = frozenset({
    "ctx", "id", "attr", "arg", "name", "names", "level", "module", "conversion",
    "is_async", "kind", "type_comment", "simple", "kwd_attrs", "rest", "tag", "lineno",
    "op", "ops",
})
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(kind: type) -> tuple[str, ...]:
    """The fields of a node type that can hold child nodes (as ``ast.iter_child_nodes``
    reads them, without its generator per node)."""
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = tuple(f for f in kind._fields if f not in _SCALAR_FIELDS)
        _CHILD_FIELDS[kind] = fields
    return fields


class _Finder:
    def __init__(self, tree: ast.Module):
        self.imports: dict[str, str] = {}
        self.star_import = False
        self.constants: dict[str, ast.expr | None] = {}
        self.class_constants: dict[str, ast.expr | None] = {}
        self.calls: list[tuple[ast.Call, _Scope]] = []
        self.bindings: list[tuple[str, ast.expr]] = []
        #: ``current.checkpoint.*`` and ``current.model.load``/``.loaded`` nodes, with
        #: :func:`_checkpoint_use` of each.
        self.checkpoint_uses: list[tuple[ast.Attribute, _Scope, str]] = []
        self._held_checkpoints: set[str] | None = None
        self._folded: dict[tuple[str, ...], tuple[str | None, ...]] = {}
        self._folding: set[tuple[str, ...]] = set()
        self._steps_left = MAX_FOLD_STEPS
        for stmt in tree.body:
            self._note_constant(stmt, self.constants)
            if isinstance(stmt, ast.ClassDef):
                for inner in stmt.body:
                    self._note_constant(inner, self.class_constants)
        self._walk(tree)
        self.kinds = self._resolve_bindings()
        #: Local names that can be ``promote_assets`` (a quick test before resolving).
        self.promote_names = {"promote_assets"} | {
            local for local, target in self.imports.items()
            if target.rpartition(".")[2] == "promote_assets"
        }

    # -- the walk --------------------------------------------------------------------------
    def _walk(self, tree: ast.Module) -> None:
        """One pass over every node, iterative (no recursion limit on deep expressions)."""
        stack: list[tuple[ast.AST, _Scope]] = [(tree, _TOP)]
        push = stack.append
        child_fields = _CHILD_FIELDS
        while stack:
            node, scope = stack.pop()
            kind = type(node)
            if kind is ast.Call:
                self.calls.append((node, scope))
                func = node.func
                if type(func) is ast.Attribute and _checkpoint_use(func) == "save":
                    for loop in scope.loops:
                        loop.saves_checkpoints = True
            elif kind is ast.Attribute:
                use = _checkpoint_use(node)
                if use is not None:
                    self.checkpoint_uses.append((node, scope, use))
            elif kind not in _NOTED:
                pass
            elif kind is ast.Assign or kind is ast.AnnAssign:
                value = node.value
                if value is not None:
                    targets = node.targets if kind is ast.Assign else [node.target]
                    for target in targets:
                        self._bind(target, value)
            elif kind is ast.NamedExpr:
                self._bind(node.target, node.value)
            elif kind is ast.withitem:
                if node.optional_vars is not None:
                    self._bind(node.optional_vars, node.context_expr)
            elif kind is ast.Import or kind is ast.ImportFrom:
                self._note_import(node)
                continue
            if kind not in _STRUCTURAL:
                for field in child_fields.get(kind) or _child_fields(kind):
                    child = getattr(node, field, None)
                    if type(child) is list:
                        for item in child:
                            if isinstance(item, ast.AST) and type(item) not in _LEAVES:
                                push((item, scope))
                    elif isinstance(child, ast.AST) and type(child) not in _LEAVES:
                        push((child, scope))
            elif kind in _FUNCTIONS or kind is ast.Lambda:
                self._push_function(node, scope, push)
            elif kind in _LOOPS:
                self._push_loop(node, scope, push)
            elif kind in _COMPREHENSIONS:
                self._push_comprehension(node, scope, push)
            else:  # ast.ClassDef
                for child in (*node.decorator_list, *node.bases, *node.keywords):
                    push((child, scope))
                for child in node.body:
                    push((child, _TOP))

    @staticmethod
    def _push_function(node, scope: _Scope, push) -> None:
        # Decorators and defaults run where the function is defined; the body runs later,
        # outside any loop around the definition.
        if type(node) is ast.Lambda:
            push((node.args, scope))
            push((node.body, _TOP))
            return
        for child in (*node.decorator_list, node.args, *([node.returns] if node.returns else ())):
            push((child, scope))
        # ``step`` for ``@step``, ``@metaflow.step`` and ``@step(...)``
        names = {_last_name(d.func if isinstance(d, ast.Call) else d)
                 for d in node.decorator_list}
        step = Step(node.name, "checkpoint" in names) if "step" in names else None
        inner = _Scope(step, ())
        for child in node.body:
            push((child, inner))

    @staticmethod
    def _push_loop(node, scope: _Scope, push) -> None:
        # ``iter`` runs once and ``else`` after the loop; the body (and a while test) per
        # iteration.
        targets = _names(node.target) if type(node) is not ast.While else frozenset()
        loop = _LoopNode(type(node).__name__.lower().replace("async", ""), node.lineno, targets)
        inside = _Scope(scope.step, (*scope.loops, loop))
        if type(node) is ast.While:
            push((node.test, inside))
        else:
            push((node.target, scope))
            push((node.iter, scope))
        for child in node.body:
            push((child, inside))
        for child in node.orelse:
            push((child, scope))

    @staticmethod
    def _push_comprehension(node, scope: _Scope, push) -> None:
        # The first iterable is evaluated once, outside; everything else per element.
        generators = node.generators
        targets: frozenset[str] = frozenset().union(*(_names(g.target) for g in generators))
        loop = _LoopNode("comprehension", node.lineno, targets)
        inside = _Scope(scope.step, (*scope.loops, loop))
        push((generators[0].iter, scope))
        for index, generator in enumerate(generators):
            if index:
                push((generator.iter, inside))
            for condition in generator.ifs:
                push((condition, inside))
        elements = (node.key, node.value) if type(node) is ast.DictComp else (node.elt,)
        for element in elements:
            push((element, inside))

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        key = _binding_key(target)
        if key is not None:
            self.bindings.append((key, value))

    # -- module facts ----------------------------------------------------------------------
    def _note_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.imports[alias.asname] = alias.name
                else:
                    head = alias.name.partition(".")[0]
                    self.imports[head] = head
            return
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.star_import = True
            else:
                self.imports[alias.asname or alias.name] = f"{module}.{alias.name}"

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
                if name in table and not _same_constant(table[name], value):
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
            return expr.id if self.star_import and not attrs else None
        return ".".join([head, *reversed(attrs)])

    def _is_api(self, func: ast.expr, name: str, package: str = "") -> bool:
        """Whether ``func`` is ``name`` (``Asset``, ``promote_assets``) from an import (of a
        module of ``package``, when given)."""
        qualified = self._qualified(func)
        return qualified is not None and qualified.startswith(package) and (
            qualified.rpartition(".")[2] == name
        )

    def _resolve_bindings(self) -> dict[str, frozenset[str]]:
        """What each bound name can be. A name bound to a ``ProjectContext`` in one place
        and to an ``Asset`` in another can be either. Kinds only grow, so a worklist reaches
        the fixed point whatever the order of the bindings: a binding is looked at again
        only when a name its value depends on gained a kind (at most twice per name)."""
        kinds: dict[str, frozenset[str]] = {}
        dependents: dict[str, list[int]] = {}
        for index, (_, value) in enumerate(self.bindings):
            for key in _dependencies(value):
                dependents.setdefault(key, []).append(index)
        pending = list(range(len(self.bindings)))
        while pending:
            key, value = self.bindings[pending.pop()]
            found = self._receiver_kinds(value, kinds)
            known = kinds.get(key, _NONE)
            if found and not found <= known:
                kinds[key] = known | found
                pending.extend(dependents.get(key, ()))
        return kinds

    def _receiver_kinds(
        self, expr: ast.expr, kinds: dict[str, frozenset[str]]
    ) -> frozenset[str]:
        if isinstance(expr, ast.Attribute) and expr.attr == "asset" and (
            PRJ in self._direct_kinds(expr.value, kinds)
        ):
            return _ASSET
        return self._direct_kinds(expr, kinds)

    def _direct_kinds(
        self, expr: ast.expr, kinds: dict[str, frozenset[str]]
    ) -> frozenset[str]:
        """What ``expr`` is by itself or through a binding (``.asset`` aside)."""
        if isinstance(expr, ast.Attribute) and expr.attr == "prj":
            return _PRJ
        if isinstance(expr, ast.Call):
            return _ASSET if self._is_api(expr.func, "Asset") else _NONE
        found = _PRJ if isinstance(expr, ast.Name) and expr.id == "prj" else _NONE
        key = _binding_key(expr)
        return found | kinds.get(key, _NONE) if key is not None else found

    # -- call sites ------------------------------------------------------------------------
    def sites(self) -> list[CallSite]:
        # In source order, so that a folding bound trips at the later calls, as a reader
        # of the file would expect.
        self.calls.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
        found = [site for call, scope in self.calls if (site := self._site(call, scope))]
        if found:
            # Where a registry is in use, a checkpoint read outside a @checkpoint step is
            # FPL009's concern; without a call site the prefilter would skip the file.
            reads = [(node, scope) for node, scope, use in self.checkpoint_uses if use != "save"]
            reads += [(call, scope) for call, scope in self.calls
                      if self._is_api(call.func, "Checkpoint", "metaflow")]
            found += [self._checkpoint_site(node, scope) for node, scope in reads
                      if scope.step is None or not scope.step.checkpoint]
        found.sort(key=lambda s: (s.line, s.col))
        return found

    def _checkpoint_site(self, node: ast.expr, scope: _Scope) -> CallSite:
        api = _shown_code(node.func if isinstance(node, ast.Call) else node)
        return CallSite(api=api, asset_type=None, name=None, instance=None,
                        line=node.lineno, col=node.col_offset, step=scope.step,
                        checkpoint_read=Value.at(node))

    def _site(self, call: ast.Call, scope: _Scope) -> CallSite | None:
        func = call.func
        spec = method_spec(func.attr) if isinstance(func, ast.Attribute) else None
        if spec is not None:
            receiver = self._receiver_kinds(func.value, self.kinds)
            if not receiver or (spec.receiver != ANY and spec.receiver not in receiver):
                return None
            api = func.attr
        elif _last_name(func) in self.promote_names and self._is_api(func, "promote_assets"):
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
        name = self._value(name_node)
        site = CallSite(
            api=api,
            asset_type=self._asset_type(call, spec),
            name=name,
            instance=self._value(instance_node) if instance_node is not None else None,
            line=call.lineno,
            col=call.col_offset,
            step=scope.step,
            loop=self._loop(scope, name_node),
        )
        if not site.registers:
            return site
        annotations, keys = self._annotations(call, spec, name)
        return replace(site, annotations=annotations, annotation_keys=keys,
                        checkpoint_payload=self._checkpoint_payload(call, name_node))

    @staticmethod
    def _loop(scope: _Scope, name_node: ast.expr) -> Loop | None:
        if not scope.loops:
            return None
        used = {n.id for n in ast.walk(name_node) if isinstance(n, ast.Name)}
        repeating = [loop for loop in scope.loops if not loop.targets & used]
        shown = (repeating or scope.loops)[-1]
        training = [loop.line for loop in scope.loops if loop.saves_checkpoints]
        return Loop(
            kind=shown.kind,
            line=shown.line,
            name_varies=not repeating,
            training_loop_line=training[-1] if training else None,
        )

    def _annotations(
        self, call: ast.Call, spec: MethodSpec, name: Value
    ) -> tuple[Value, tuple[Value, ...] | None]:
        node = _argument(call, spec.annotations_pos, "annotations")
        implied = tuple(replace(name, parts=(key,), limit=None)
                        for key in spec.implied_annotations)
        if node is None or (isinstance(node, ast.Constant) and node.value is None):
            return name, implied
        pairs: list[tuple[ast.expr | None, ast.expr]]
        if isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values, strict=True))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "dict" and not node.args):
            pairs = [(None if kw.arg is None else ast.copy_location(ast.Constant(kw.arg), kw),
                      kw.value) for kw in node.keywords]
        else:
            return Value.at(node), None
        keys = list(implied)
        for key, value in pairs:
            if key is None:  # ``**other``: any key may come from there
                return Value.at(node), None
            if isinstance(value, ast.Constant) and value.value in (None, ""):
                continue  # the runtime counts an empty value as missing
            keys.append(self._value(key))
        return Value.at(node), tuple(keys)

    def _checkpoint_payload(self, call: ast.Call, name_node: ast.expr) -> Value | None:
        """An argument that is, or names a ``self.x`` holding, a Metaflow checkpoint."""
        if not any(use != "model" for _, _, use in self.checkpoint_uses):
            return None
        if self._held_checkpoints is None:
            # ``self.best = current.checkpoint.save()`` holds one; ``self.model =
            # restore(current.checkpoint.directory)`` (resuming) holds what was restored.
            self._held_checkpoints = {
                key.partition(".")[2] for key, value in self.bindings
                if key.startswith("self.") and _is_checkpoint(value)
            }
        held = self._held_checkpoints
        for arg in (*call.args, *(kw.value for kw in call.keywords)):
            if arg is name_node:
                continue
            if self._mentions_checkpoint(arg) or (
                isinstance(arg, ast.Constant) and arg.value in held
            ):
                return Value.at(arg)
        return None

    def _mentions_checkpoint(self, expr: ast.expr) -> bool:
        start = (expr.lineno, expr.col_offset)
        end = (expr.end_lineno or expr.lineno, expr.end_col_offset or expr.col_offset)
        return any(
            use != "model" and start <= (node.lineno, node.col_offset) < end
            for node, _, use in self.checkpoint_uses
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

    # -- folding ---------------------------------------------------------------------------
    def _value(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Starred):
            return Value.at(node)
        try:
            return Value.at(node, _merge(self._parts(node, 0)))
        except _FoldLimit as limit:
            return Value.at(node, limit=str(limit))

    def _spend(self, steps: int) -> None:
        self._steps_left -= steps
        if self._steps_left < 0:
            raise _FoldLimit(
                f"evaluating the module's string constants takes more than {MAX_FOLD_STEPS} "
                "steps"
            )

    def _parts(self, node: ast.expr, depth: int) -> list[str | None]:
        if depth > MAX_FOLD_DEPTH:
            raise _FoldLimit(f"it is nested more than {MAX_FOLD_DEPTH} levels deep")
        self._spend(1)
        if isinstance(node, ast.Constant):
            return self._bounded([node.value] if isinstance(node.value, str) else [DYNAMIC])
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
            return self._bounded(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self._parts(node.left, depth + 1)
            return self._bounded(left + self._parts(node.right, depth + 1))
        if isinstance(node, ast.Name):
            return self._constant(("name", node.id), self.constants.get(node.id), depth)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # ``RULE.asset`` with a module-level ``RULE = DriftRule(asset="x", ...)``: the
            # keyword given to the constructor (how generated flows name their assets).
            built = self.constants.get(node.value.id)
            if isinstance(built, ast.Call):
                for keyword in built.keywords:
                    if keyword.arg == node.attr:
                        key = ("keyword", node.value.id, node.attr)
                        return self._constant(key, keyword.value, depth)
                return [DYNAMIC]
            # ``self.NAME`` / ``cls.NAME`` / ``Flow.NAME``: a class-level constant.
            return self._constant(
                ("class", node.attr), self.class_constants.get(node.attr), depth
            )
        return [DYNAMIC]

    def _constant(
        self, key: tuple[str, ...], value: ast.expr | None, depth: int
    ) -> list[str | None]:
        """A constant's parts, folded once per module (chains of constants that use each
        other several times would otherwise fold exponentially often)."""
        if value is None or key in self._folding:  # unknown, or defined through itself
            return [DYNAMIC]
        folded = self._folded.get(key)
        if folded is None:
            self._folding.add(key)
            try:
                folded = _merge(self._parts(value, depth + 1))
            finally:
                self._folding.discard(key)
            self._folded[key] = folded
        self._spend(len(folded))
        return list(folded)

    def _bounded(self, parts: list[str | None]) -> list[str | None]:
        self._spend(len(parts))
        if sum(len(p) for p in parts if p is not DYNAMIC) > MAX_FOLDED_CHARS:
            raise _FoldLimit(f"its text is longer than {MAX_FOLDED_CHARS} characters")
        return parts


def _last_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _same_constant(old: ast.expr | None, new: ast.expr) -> bool:
    """Whether a second assignment repeats the first (a literal of the same value)."""
    return (isinstance(old, ast.Constant) and isinstance(new, ast.Constant)
            and type(old.value) is type(new.value) and old.value == new.value)


def _is_current(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "current") or (
        isinstance(node, ast.Attribute) and node.attr == "current"
        and isinstance(node.value, ast.Name) and node.value.id == "metaflow"
    )


def _checkpoint_use(node: ast.Attribute) -> str | None:
    """``"save"`` for ``current.checkpoint.save``, ``"checkpoint"`` for any other
    ``current.checkpoint.<x>``, ``"model"`` for ``current.model.load`` / ``.loaded``."""
    inner = node.value
    if not isinstance(inner, ast.Attribute) or not _is_current(inner.value):
        return None
    if inner.attr == "checkpoint":
        return "save" if node.attr == "save" else "checkpoint"
    if inner.attr == "model" and node.attr in ("load", "loaded"):
        return "model"
    return None


def _is_checkpoint(expr: ast.expr) -> bool:
    """``current.checkpoint.<x>``, a call of it, or an item of it."""
    while isinstance(expr, (ast.Call, ast.Subscript)):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    return isinstance(expr, ast.Attribute) and _checkpoint_use(expr) in ("save", "checkpoint")


def _shown_code(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except RecursionError:  # ast.unparse recurses; the parser accepts deeper nesting
        return "..."
    return text if len(text) <= 60 else text[:57] + "..."


def _names(target: ast.expr) -> frozenset[str]:
    """The names a loop target binds (``i``, ``i, (a, b)``, ``self.x`` binds none)."""
    return frozenset(n.id for n in ast.walk(target) if isinstance(n, ast.Name))


def _binding_key(target: ast.expr) -> str | None:
    """``a`` for a name, ``self.a`` for an attribute of a name; other targets are not tracked."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
        return f"{target.value.id}.{target.attr}"
    return None


def _dependencies(expr: ast.expr) -> Iterator[str]:
    """The binding keys :meth:`_Finder._receiver_kinds` reads for ``expr``."""
    for part in (expr, expr.value) if isinstance(expr, ast.Attribute) else (expr,):
        key = _binding_key(part)
        if key is not None:
            yield key


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
        if part == "" or (part is DYNAMIC and merged and merged[-1] is DYNAMIC):
            continue
        if merged and part is not DYNAMIC and merged[-1] is not DYNAMIC:
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)
