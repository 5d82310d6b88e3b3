"""Lint files: walk the tree, skip what cannot contain a call, parse the rest on all cores.

The cost of linting a large tree is reading it and parsing the few files that call the
registry API, so:

* a byte-level prefilter (:func:`flowpolicy.lint.callsites.could_call_registry`) skips a
  file unless it contains the text of a registry call — ``promote_assets``, or a registry
  method name such as ``register_model`` or ``peek_data_asset`` together with a receiver's
  root (``prj``, ``Asset``). Every finding belongs to a call site, and every call site
  contains that text, so skipping a file never changes the findings (a test lints varied
  sources both ways) — except FPL900 for a file that cannot be parsed, which we only learn
  by parsing, and do not for skipped files, like any prefiltering linter. A receiver alone
  is not a marker: flow code names ``self.prj`` everywhere without calling the registry;
* a parsed file is walked once (:func:`flowpolicy.lint.callsites.find_call_sites`); the
  cyclic GC is off while trees are built and walked (they hold no cycles);
* once a few files needed parsing, worker processes take the rest in chunks of paths and
  do read + prefilter + parse + rules, returning only findings: the parent never holds
  file contents, memory stays flat, and a tree with almost no calls never starts a pool;
* results come back in file order and are streamed to the formatter as they arrive.
"""

from __future__ import annotations

import ast
import gc
import io
import os
import tokenize
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

from flowpolicy.diagnostics import Diagnostic
from flowpolicy.errors import FlowpolicyError
from flowpolicy.lint.callsites import (
    DECLARED_NAMES,
    CallSite,
    Value,
    could_call_registry,
    find_call_sites,
    source_encoding,
)
from flowpolicy.lint.noqa import Suppression, parse_line
from flowpolicy.lint.rule import Rule, RuleContext
from flowpolicy.lint.rules import RULES, RULES_BY_CODE, UNPARSABLE_FILE, UNUSED_NOQA
from flowpolicy.policy.source import line_col
from flowpolicy.walk import walk_files

#: With --report-unused-noqa a file may matter only for its suppression comments.
NOQA_NEEDLES: tuple[bytes, ...] = (b"FPL", b"fpl")

#: A worker pool starts once this many files needed parsing...
POOL_MIN_CANDIDATES = 4
#: ...and at least this many files are left; below that a pool costs more than it saves.
POOL_MIN_FILES = 128


@dataclass(frozen=True)
class Scope:
    """The rules context for files under ``root`` (absolute; "" means every file)."""

    root: str
    context: RuleContext


@dataclass(frozen=True)
class LintConfig:
    """Everything a worker needs; plain data so it pickles into worker processes."""

    scopes: tuple[Scope, ...]
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    report_unused_noqa: bool = False

    def enabled(self, code: str) -> bool:
        if self.select and not code.startswith(self.select):
            return False
        return not (self.ignore and code.startswith(self.ignore))

    def rules(self, *, declared_names: bool = False) -> list[Rule]:
        """The enabled rules with a check of call sites (with ``declared_names``: of the
        names a policy declares)."""
        return [rule for rule in RULES if rule.check is not None and self.enabled(rule.code)
                and (rule.checks_declared_names or not declared_names)]

    def context_for(self, path: str) -> RuleContext:
        """The deepest scope containing ``path`` (scopes are ordered deepest first)."""
        if len(self.scopes) == 1:
            return self.scopes[0].context
        # Homes are resolved paths (symlinks followed), so the file must be too.
        absolute = os.path.realpath(path)
        for scope in self.scopes:
            if not scope.root or absolute == scope.root or absolute.startswith(
                scope.root.rstrip(os.sep) + os.sep
            ):
                return scope.context
        return self.scopes[-1].context


@dataclass
class LintStats:
    files: int = 0
    parsed: int = 0
    bytes: int = 0
    #: Findings per code, counted by :func:`counted` as they are streamed.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def findings(self) -> int:
        return sum(self.counts.values())

    def add(self, other: LintStats) -> None:
        self.files += other.files
        self.parsed += other.parsed
        self.bytes += other.bytes


# -- one file ------------------------------------------------------------------------------


def lint_source(data: bytes, path: str, config: LintConfig) -> tuple[list[Diagnostic], bool]:
    """Findings for one file's bytes (after noqa) and whether the file was parsed."""
    if not could_call_registry(data) and not (
        config.report_unused_noqa and any(needle in data for needle in NOQA_NEEDLES)
    ):
        return [], False
    return lint_parsed(data, path, config), True


def lint_parsed(data: bytes, path: str, config: LintConfig) -> list[Diagnostic]:
    """Findings for one file's bytes, parsing it whatever the prefilter would say."""
    context = config.context_for(path)
    try:
        tree = ast.parse(data, filename=path)
        sites = find_call_sites(tree)
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        if not config.enabled(UNPARSABLE_FILE):
            return []
        return [_unparsable(data, path, exc)]
    rules = config.rules()
    raw = [(rule.code, where, message) for site in sites for rule in rules
           for where, message in rule.check(site, context)]
    if not raw and not config.report_unused_noqa:
        return []
    return _apply_noqa(data, path, raw, config)


def _apply_noqa(
    data: bytes, path: str, raw: list[tuple[str, Value, str]], config: LintConfig
) -> list[Diagnostic]:
    lines = SourceLines(data)

    @cache
    def suppression(line: int) -> Suppression | None:
        return parse_line(lines[line - 1] if 0 < line <= len(lines) else "", line)

    used: set[tuple[int, str]] = set()
    findings: list[Diagnostic] = []
    for code, where, message in raw:
        hidden = False
        for line in {where.line, where.end_line}:
            found = suppression(line)
            if found is not None and found.covers(code):
                hidden = True
                used.update((line, c) for c in found.codes or () if code.startswith(c))
        if hidden:
            continue
        findings.append(finding(
            path, where.line, _char_col(lines, where.line, where.col) + 1, code, message,
            end_line=where.end_line,
            end_col=_char_col(lines, where.end_line, where.end_col) + 1))
    if config.report_unused_noqa and config.enabled(UNUSED_NOQA):
        findings.extend(_unused_noqa(path, lines, used, config))
    findings.sort(key=lambda f: (f.line, f.col, f.code))
    return findings


def _unused_noqa(
    path: str, lines: SourceLines, used: set[tuple[int, str]], config: LintConfig
) -> Iterator[Diagnostic]:
    for number, text in lines.numbered_with(b"noqa"):
        found = parse_line(text, number)
        if found is None or found.codes is None or UNUSED_NOQA in found.codes:
            continue
        for code in found.codes:
            if not code.startswith("FPL") or (number, code) in used:
                continue
            matching = [rule for rule in RULES_BY_CODE if rule.startswith(code)]
            if matching and not any(config.enabled(rule) for rule in matching):
                continue  # the rule did not run (--select/--ignore): no evidence either way
            what = "unused" if matching else "unknown"
            yield finding(path, number, found.col, UNUSED_NOQA, f"{what} noqa code {code}")


class SourceLines:
    """The lines of a file, decoded one at a time when asked for: most files with findings
    need two or three of their lines, not all of them."""

    def __init__(self, data: bytes):
        self.encoding = source_encoding(data)
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if b"\r" in data:
            # Python's own line breaks only (str.splitlines() would also split at \f, ...).
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._raw = data.split(b"\n")
        self._decoded: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index: int) -> str:
        text = self._decoded.get(index)
        if text is None:
            text = self._raw[index].decode(self.encoding, errors="replace")
            self._decoded[index] = text
        return text

    def numbered_with(self, word: bytes) -> Iterator[tuple[int, str]]:
        """(1-based number, text) of the lines whose bytes contain ``word`` (any case)."""
        lower = word.lower()
        for index, raw in enumerate(self._raw):
            if lower in raw.lower():
                yield index + 1, self[index]


def _char_col(lines: SourceLines, line: int, byte_col: int) -> int:
    """``ast`` columns count UTF-8 bytes; reports count characters."""
    if not 0 < line <= len(lines):
        return byte_col
    text = lines[line - 1]
    if text.isascii():
        return byte_col
    return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _unparsable(data: bytes, path: str, exc: BaseException) -> Diagnostic:
    line, col = 1, 1
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = line_col(data, nul)
        message = "cannot parse: file contains NUL bytes (binary file?)"
    else:
        encoding = "utf-8"
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            data.decode(encoding)
        except SyntaxError as bad_cookie:
            message = f"cannot parse: {bad_cookie.msg}"
        except (UnicodeDecodeError, LookupError) as undecodable:
            start = getattr(undecodable, "start", 0)
            line, col = line_col(data, start)
            byte = data[start : start + 1].hex()
            message = (
                f"cannot parse: byte 0x{byte} does not decode as {encoding} "
                "(re-encode the file or declare its encoding, PEP 263)"
            )
        else:
            if isinstance(exc, SyntaxError):
                line = exc.lineno or 1
                col = exc.offset if exc.offset and exc.offset > 0 else 1
                message = f"cannot parse: {exc.msg}"
            elif isinstance(exc, RecursionError):
                message = "cannot parse: nested too deeply"
            else:
                message = f"cannot parse: {exc}"
    return finding(path, max(line, 1), max(col, 1), UNPARSABLE_FILE, message)


def finding(path: str, line: int, col: int, code: str, message: str, *,
            end_line: int | None = None, end_col: int | None = None) -> Diagnostic:
    """A lint finding: the rule's code and name, at ``path:line:col``."""
    return Diagnostic(code, "error", message, path=path, line=line, col=col, end_line=end_line,
                      end_col=end_col, rule=RULES_BY_CODE[code].name)


# -- many files ----------------------------------------------------------------------------


def iter_python_files(
    paths: Sequence[str | os.PathLike], exclude: Sequence[str] = ()
) -> Iterator[str]:
    """Python files under ``paths`` in a stable order (:func:`flowpolicy.walk.walk_files`).
    A named file is always yielded, even if excluded or not ending in ``.py``: the caller
    asked for it (pre-commit passes files)."""
    for given in paths:
        path = os.fspath(given)
        if os.path.isfile(path):
            yield path
        elif os.path.isdir(path):
            yield from walk_files(path, (".py",), exclude)
        else:
            raise FlowpolicyError(f"no such file or directory: {path}")


def _lint_paths_chunk(
    paths: list[str], config: LintConfig
) -> tuple[list[Diagnostic], LintStats]:
    stats = LintStats()
    findings: list[Diagnostic] = []
    # ASTs hold no reference cycles, so the cyclic GC only burns time while they are built
    # (about a quarter of parse time); reference counting still frees every tree.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            stats.files += 1
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                if config.enabled(UNPARSABLE_FILE):
                    findings.append(finding(path, 1, 1, UNPARSABLE_FILE,
                                            f"cannot read: {exc.strerror or exc}"))
                continue
            stats.bytes += len(data)
            found, parsed = lint_source(data, path, config)
            stats.parsed += parsed
            findings.extend(found)
    finally:
        if collecting:
            gc.enable()
    return findings, stats


_WORKER_CONFIG: LintConfig | None = None


def _init_worker(config: LintConfig) -> None:
    global _WORKER_CONFIG
    _WORKER_CONFIG = config


def _worker(paths: list[str]) -> tuple[list[Diagnostic], LintStats]:
    assert _WORKER_CONFIG is not None
    return _lint_paths_chunk(paths, _WORKER_CONFIG)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lint_files(
    files: Iterable[str], config: LintConfig, *, jobs: int | None = None,
    stats: LintStats | None = None, start_method: str | None = None,
) -> Iterator[Diagnostic]:
    """Stream the findings of ``files`` in file order; ``stats`` is filled as they go.

    Files are linted in this process until :data:`POOL_MIN_CANDIDATES` of them passed the
    prefilter; only then (and only if enough files remain) is a worker pool started for the
    rest. A tree with almost no registry calls (most of a monorepo, most libraries) never
    pays for the pool; one with many gets all cores.
    """
    stats = stats if stats is not None else LintStats()
    paths = list(files)
    jobs = jobs or os.cpu_count() or 1
    done = 0
    while done < len(paths):
        if jobs > 1 and stats.parsed >= POOL_MIN_CANDIDATES and (
            len(paths) - done >= POOL_MIN_FILES
        ):
            break
        found, file_stats = _lint_paths_chunk(paths[done : done + 1], config)
        done += 1
        stats.add(file_stats)
        yield from counted(found, stats)
    if done == len(paths):
        return
    import multiprocessing

    rest = paths[done:]
    # Small chunks balance the load (a few big files), large ones cut IPC; ~16 per worker.
    size = max(8, min(512, len(rest) // (jobs * 16) or 1))
    context = multiprocessing.get_context(start_method or _start_method())
    with context.Pool(jobs, initializer=_init_worker, initargs=(config,)) as pool:
        for found, chunk_stats in pool.imap(_worker, _chunks(rest, size)):
            stats.add(chunk_stats)
            yield from counted(found, stats)


def _start_method() -> str:
    """``fork`` starts workers in milliseconds, but forking a process that runs other threads
    (a test runner, an embedding application) can deadlock the child; then ``spawn``."""
    import multiprocessing
    import threading

    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def counted(findings: Iterable[Diagnostic], stats: LintStats) -> Iterator[Diagnostic]:
    """``findings`` passed through, each counted in ``stats.counts``."""
    for finding in findings:
        stats.counts[finding.code] = stats.counts.get(finding.code, 0) + 1
        yield finding


def lint_declared_names(
    names: Iterable[tuple[str, str, str, int, int]], context: RuleContext, config: LintConfig,
    lines_of: Callable[[str], Sequence[str]] = lambda source: (),
) -> list[Diagnostic]:
    """Judge names declared in a policy file, ``(name, type, file, line, col)`` each, with
    the rules that apply to declared names; ``lines_of(file)`` gives the YAML text so that
    ``# noqa`` comments work there too."""
    findings: list[Diagnostic] = []
    rules = config.rules(declared_names=True)
    for name, asset_type, source, line, col in names:
        value = Value(parts=(name,), line=line, col=col - 1, end_line=line,
                      end_col=col - 1 + len(name), node=ast.Constant(name))
        site = CallSite(api=DECLARED_NAMES, asset_type=asset_type, name=value, instance=None,
                        line=line, col=col - 1)
        lines = lines_of(source)
        suppression = parse_line(lines[line - 1], line) if 0 < line <= len(lines) else None
        for rule in rules:
            if suppression is not None and suppression.covers(rule.code):
                continue
            for _, message in rule.check(site, context):
                findings.append(finding(source, line, col, rule.code, message,
                                        end_line=line, end_col=col + len(name)))
    return findings


def ensure_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Validate --select/--ignore prefixes against the known codes."""
    out = []
    for code in codes:
        code = code.strip().upper()
        if not code:
            continue
        if not any(known.startswith(code) for known in RULES_BY_CODE):
            raise FlowpolicyError(
                f"unknown lint code {code!r}; known: {', '.join(RULES_BY_CODE)}"
            )
        out.append(code)
    return tuple(out)
