"""The asset registry: immutable asset instances, aliases, lineage, events and evidence.

``open_registry()`` returns the backend for a URL (default: the embedded SQLite file
``.flowpolicy/registry.db`` at the project root, or ``FLOWPOLICY_REGISTRY``: also
``postgresql://…`` for a server shared by many machines, ``outerbounds://``). One backend
object (one connection) is kept per process, URL and mode, so flows and CLIs reuse it.
Opening creates nothing: a registry comes into being with its first registration or event,
and a read where there is none raises RegistryError naming the path and how it was chosen.
``open_registry(url, read_only=True)`` (``flowpolicy check`` / ``plan``) never creates,
migrates or writes the registry; its writes raise RegistryError.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path

from flowpolicy.errors import RegistryError
from flowpolicy.project_root import PROJECT_FILE, REPOSITORY_MARKER, project_root
from flowpolicy.registry.base import (
    ANY,
    AliasConflict,
    AliasMove,
    AssetDeletion,
    AssetNotFound,
    CompareAndSetUnsupported,
    EntityRef,
    InstanceRecord,
    Registry,
    RegistryDamaged,
    Scope,
    parse_spec,
    redact_url,
)

__all__ = [
    "ANY",
    "AliasConflict",
    "AliasMove",
    "AssetDeletion",
    "AssetNotFound",
    "CompareAndSetUnsupported",
    "EntityRef",
    "InstanceRecord",
    "Registry",
    "ReadOnlyRegistry",
    "RegistryDamaged",
    "RegistryError",
    "Scope",
    "default_registry_url",
    "open_registry",
    "parse_spec",
    "project_root",
    "registry_file",
]

ENV_URL = "FLOWPOLICY_REGISTRY"
DEFAULT_RELATIVE_PATH = Path(".flowpolicy") / "registry.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

#: Backends kept open per process. Bounded so a long-lived process that opens many files
#: (a test session) releases old ones; a dropped backend closes when its last user lets go.
_CACHE_SIZE = 16
_cache: OrderedDict[tuple[int, str, bool], Registry] = OrderedDict()
_cache_lock = threading.Lock()
_inherited: list[Registry] = []


def _forked() -> None:
    """In a forked child: another thread of the parent may have held the cache lock at the
    fork (it stays held in the child forever), and the parent's connections are not the
    child's to use. A new lock, and the parent's backends parked, untouched."""
    global _cache_lock
    _cache_lock = threading.Lock()
    _inherited.extend(_cache.values())
    _cache.clear()


os.register_at_fork(after_in_child=_forked)


def default_registry_url() -> str:
    return _chosen_url(None)[0]


def _chosen_url(url: str | None) -> tuple[str, str]:
    """The registry URL to open and how it was chosen, for the message a read gives when no
    registry is there (most often: a mistyped variable, or a run from another folder)."""
    if url:
        return url, "the registry URL given"
    env = os.environ.get(ENV_URL)
    if env:
        return env, f"named by {ENV_URL}={redact_url(env)}"
    root = project_root()
    marker = next((m for m in (PROJECT_FILE, REPOSITORY_MARKER) if (root / m).exists()), None)
    why = (f"the nearest folder holding {marker}" if marker else
           "the current folder, as no obproject.toml or .git is in it or above it")
    return (f"sqlite:///{root / DEFAULT_RELATIVE_PATH}",
            f"the default {DEFAULT_RELATIVE_PATH} under the project root {root}: {why}")


def open_registry(url: str | None = None, *, read_only: bool = False) -> Registry:
    """The registry backend for ``url`` (None: ``FLOWPOLICY_REGISTRY`` or the default file).

    ``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` (SQLAlchemy style), a bare file
    path, ``postgresql://user@host:port/db`` (a PostgreSQL server, extra ``postgres``) and
    ``outerbounds://`` (the Outerbounds asset service) are understood.

    Nothing is created by opening: a SQLite file comes into being with the first
    registration or event; until then reads raise RegistryError.

    ``read_only``: a SQLite file must already be a registry (RegistryError otherwise) and is
    opened with SQLite's ``mode=ro`` (no creation, no migration; older schema versions are
    read as they are); with any backend, every write (:data:`WRITE_METHODS`) raises
    RegistryError.
    """
    return _open(*_chosen_url(url), read_only)


def _open(url: str, origin: str, read_only: bool) -> Registry:
    key = (os.getpid(), _normalise(url), read_only)
    with _cache_lock:
        registry = _cache.get(key)
        if registry is None:
            registry = _create(url, read_only, origin)
            # a forked child must not use its parent's SQLite connection, nor close it
            # (SQLite's advice); park those where nothing will touch them again
            for stale in [k for k in _cache if k[0] != key[0]]:
                _inherited.append(_cache.pop(stale))
            _cache[key] = registry
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
    return registry


def registry_file(url: str | None = None) -> Path | None:
    """The SQLite file behind ``url`` (None: the default), or None for a non-file backend."""
    url = url or default_registry_url()
    if url.startswith("sqlite:"):
        return _sqlite_path(url)
    if "://" not in url:
        return Path(url).expanduser().resolve()
    return None


def open_existing_registry(url: str | None = None, *, read_only: bool = False,
                           missing: str) -> Registry:
    """:func:`open_registry` for commands that only report: a registry file that does not
    exist is a :class:`RegistryError` (``no registry at PATH (how PATH was chosen):
    <missing>``), never created."""
    url, origin = _chosen_url(url)
    path = registry_file(url)
    if path is not None and not path.is_file():
        raise RegistryError(f"no registry at {path} ({origin}): {missing}")
    return _open(url, origin, read_only)


def _normalise(url: str) -> str:
    path = registry_file(url)
    return url if path is None else f"sqlite:///{path}"


def _sqlite_path(url: str) -> Path:
    rest = url[len("sqlite:"):]
    if rest.startswith("///"):
        rest = rest[3:]  # sqlite:////abs → /abs ; sqlite:///rel → rel
    elif rest.startswith("//"):
        raise RegistryError(f"registry URL {url!r}: use sqlite:///relative or sqlite:////absolute")
    if not rest or rest == ":memory:":
        raise RegistryError(f"registry URL {url!r} names no file")
    return Path(rest).expanduser().resolve()


def _create(url: str, read_only: bool, origin: str) -> Registry:
    path = registry_file(url)
    if path is not None:
        from flowpolicy.registry.sqlite import SQLiteRegistry

        return SQLiteRegistry(path, read_only=read_only, origin=origin)
    if url.startswith(POSTGRES_SCHEMES):
        if importlib.util.find_spec("psycopg") is None:
            raise RegistryError(f"registry URL {redact_url(url)!r} needs psycopg 3: "
                                "pip install 'flowpolicy[postgres]'")
        from flowpolicy.registry.postgres import PostgresRegistry

        return PostgresRegistry(url, read_only=read_only, origin=origin)
    if url.startswith(("outerbounds:", "outerbounds+")):
        from flowpolicy.registry.outerbounds import OuterboundsRegistry

        service = OuterboundsRegistry.from_url(url)
        return ReadOnlyRegistry(service) if read_only else service
    scheme = url.split("://", 1)[0]
    raise RegistryError(
        f"unsupported registry URL {url!r} (scheme {scheme!r}); "
        "use sqlite:///path/to/registry.db, postgresql://user@host:5432/db or outerbounds://"
    )


#: The Registry methods that write.
WRITE_METHODS = frozenset(
    {"register", "register_once", "set_alias", "unset_alias", "record_consumption",
     "add_evidence", "publish_event", "delete_asset", "claim_dispatch", "start_dispatch",
     "note_dispatch_run", "finish_dispatch", "advance_cursor"})


class ReadOnlyRegistry:
    """A backend with its writes refused, for backends without a read-only mode of their own
    (the SQLite backend has one: ``SQLiteRegistry(path, read_only=True)``)."""

    def __init__(self, inner: Registry):
        self._inner = inner
        self.read_only = True

    def __getattr__(self, name: str):
        if name in WRITE_METHODS:
            def refused(*args, **kwargs):
                raise RegistryError(
                    f"registry {self._inner.url} was opened read-only: {name} is refused",
                    status_code=403)
            return refused
        return getattr(self._inner, name)
