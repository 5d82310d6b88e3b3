"""The model being served, and how it follows its alias.

A :class:`ModelServer` serves the instance one alias points at (``@production`` of
``fraud_model`` on ``prod``). Everything a request needs — the prediction function, the
instance id it names in its response header — sits in one immutable :class:`Served`
record, and a swap replaces that one reference: a request reads it once, so its header and
its prediction always come from the same model, and a request in flight finishes on the
model it started with.

Following the alias: a thread watches the registry through the backend's change probe
(SQLite's ``PRAGMA data_version`` on a private connection: no table is read until something
was committed), and otherwise looks up the alias alone every second. When the alias points
somewhere new, the thread prepares the new instance while the old one keeps serving: it
judges it against the policy's gates (:func:`flowpolicy.runtime.lifecycle.judge_standing`),
loads it, and runs the probe rows through it (``--probe`` rows, else the last rows served).
Only then is it swapped in; if any step fails, the old model stays and ``/model/info``
says why (``last_reload_error``). A target that failed is not retried until the alias moves
again or ``POST /model/reload`` asks.

:meth:`ModelServer.notify` is the hook for lifecycle events (an alias-move event from an
event bus): it wakes the follower at once instead of at its next look.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.policy.model import Policy
from flowpolicy.registry.base import ChangeProbe, Registry, Scope, instance_id, utc_now
from flowpolicy.runtime.lifecycle import GateStanding, judge_standing
from flowpolicy.runtime.loading import ModelInstance
from flowpolicy.runtime.promote import PROMOTED_FROM_BRANCH, PROMOTED_FROM_INSTANCE
from flowpolicy.serve.loaders import Loader, PredictFunction, default_loader, predict_function

#: The response header naming the instance that answered: ``project/branch/asset/vN``.
INSTANCE_HEADER = "X-Flowpolicy-Instance"
#: Its value while nothing is loaded.
NO_INSTANCE = "none"
#: Rows of served requests kept to probe a new instance with before it is swapped in.
PROBE_ROWS = 32
#: Reload attempts ``/model/info`` lists, newest last.
ATTEMPTS_KEPT = 20
#: Hops followed back along ``promoted_from_*`` annotations to gather evidence.
EVIDENCE_HOPS = 16
#: How often the change probe is asked; and the alias itself where there is no probe.
PROBE_INTERVAL_S = 0.05
ALIAS_POLL_INTERVAL_S = 1.0


class ServeRefused(FlowpolicyError):
    """The server will not start: the alias is unset, or its instance cannot be served."""


class NotServable(FlowpolicyError):
    """An instance was judged or loaded and may not be served (fails a gate, a probe)."""


@dataclass(frozen=True)
class ServeOptions:
    """What to serve and how strictly. ``policy`` is None only with ``ignore_gates``."""

    asset: str
    project: str
    branch: str
    alias: str
    policy: Policy | None
    loader: Loader = default_loader
    datastore: str | None = None
    ignore_gates: bool = False
    allow_unset: bool = False
    probe_rows: tuple[Mapping[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if self.policy is None and not self.ignore_gates:
            raise FlowpolicyError("serving needs the policy whose gates the model must pass "
                                  "(or ignore_gates)")


@dataclass(frozen=True)
class Served:
    """The model in service; swapped whole."""

    instance: ModelInstance
    predict: PredictFunction
    header: str
    loaded_at: str
    load_seconds: float
    standing: GateStanding | None
    probed_rows: int
    evidence: tuple[dict[str, Any], ...] = field(default=())

    @property
    def version(self) -> int:
        return self.instance.record.version


class ModelServer:
    """Serves ``options.alias`` of one model asset and follows it (see the module notes)."""

    def __init__(self, options: ServeOptions, registry: Registry):
        self.options = options
        self.registry = registry
        self.scope = Scope(options.project, options.branch, "model", options.asset)
        self.served: Served | None = None
        self.started_at = utc_now()
        self.last_reload_error: dict[str, Any] | None = None
        self._attempts: deque[dict[str, Any]] = deque(maxlen=ATTEMPTS_KEPT)
        self._probe_rows: list | None = None
        self._settled: int | None = None  # the alias target last acted on
        self._lock = threading.Lock()  # one refresh at a time
        self._wakes: queue.SimpleQueue[Mapping[str, Any] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.follows = ""

    # -- starting and stopping ------------------------------------------------------------

    def start(self, follow: bool = True) -> None:
        """Load what the alias points at now, then follow it. Raises :class:`ServeRefused`
        when the alias is unset (unless ``allow_unset``) or its instance fails the policy's
        gates (unless ``ignore_gates``) or cannot be loaded."""
        probe, interval = self._change_probe() if follow else (None, 0.0)
        try:
            # the token is read before the alias: a move committed from then on changes it
            token = probe() if probe is not None else None
            self._load_at_start()
        except BaseException:
            _close(probe)
            raise
        if probe is not None:
            self._follower = threading.Thread(target=self._follow,
                                              args=(probe, interval, token),
                                              name="flowpolicy-follow", daemon=True)
            self._follower.start()

    def _load_at_start(self) -> None:
        alias = self.options.alias
        version = self.registry.get_alias(self.scope, alias)
        if version is None and not self.options.allow_unset:
            known = ", ".join(f"@{a}→v{v}" for a, v in self.registry.aliases(self.scope).items())
            raise ServeRefused(
                f"alias @{alias} is not set on {self.scope} (aliases there: {known or 'none'}); "
                "set it (flowpolicy promote / alias set), or pass --allow-unset to start "
                "unready and serve once it is set")
        if version is not None:
            try:
                self.served = self._prepare(version)
            except Exception as exc:
                raise ServeRefused(f"will not serve {self.options.asset} v{version} "
                                   f"(@{alias} on {self.scope.branch}): {_message(exc)}") from exc
        self._settled = version

    def stop(self) -> None:
        self._stop.set()
        self._wakes.put(None)
        if self._follower is not None:
            self._follower.join(timeout=10)

    def notify(self, event: Mapping[str, Any] | None = None) -> None:
        """A lifecycle event (an alias move) arrived: look at the alias now."""
        self._wakes.put(event)

    # -- serving --------------------------------------------------------------------------

    def remember(self, rows: list) -> None:
        """Keep the first rows of a served request to probe the next instance with."""
        self._probe_rows = rows[:PROBE_ROWS]

    def unready_reason(self) -> str:
        if self.served is not None:
            return ""
        return (f"alias @{self.options.alias} on {self.scope.project}/{self.scope.branch} "
                f"points at nothing servable yet"
                + (f"; last attempt: {self.last_reload_error['error']}"
                   if self.last_reload_error else ""))

    def reload(self) -> dict[str, Any]:
        """``POST /model/reload``: look the alias up and load its instance now, even one
        that failed before or the one being served; returns the attempt."""
        return self._refresh("requested", forced=True) or {}

    # -- following ------------------------------------------------------------------------

    def _change_probe(self) -> tuple[Callable[[], Any], float]:
        make = getattr(self.registry, "change_probe", None)
        if make is not None:
            probe = make()
            if isinstance(probe, ChangeProbe):
                self.follows = f"change probe of {self.registry.url}, every {PROBE_INTERVAL_S}s"
                return probe, PROBE_INTERVAL_S
        self.follows = f"@{self.options.alias} looked up every {ALIAS_POLL_INTERVAL_S}s"
        return (lambda: self.registry.get_alias(self.scope, self.options.alias),
                ALIAS_POLL_INTERVAL_S)

    def _follow(self, probe: Callable[[], Any], interval: float, token: Any) -> None:
        try:
            while not self._stop.is_set():
                woken = self._woken(interval)
                if self._stop.is_set():
                    break
                # the follower outlives any one failure (a registry busy for longer than its
                # timeout, a damaged page): it is recorded, and the next look tries again
                try:
                    seen = probe()
                    if woken or seen != token:
                        token = seen
                        self._refresh("event" if woken else "registry change", forced=False)
                except Exception as exc:  # noqa: BLE001
                    self._record({"at": utc_now(), "trigger": "registry change",
                                  "outcome": "failed", "error": _message(exc)}, failed=True)
        finally:
            _close(probe)

    def _woken(self, interval: float) -> bool:
        """Wait up to ``interval`` for a notification; True (and all pending ones taken) if
        one came."""
        try:
            self._wakes.get(timeout=interval)
        except queue.Empty:
            return False
        while not self._wakes.empty():
            self._wakes.get_nowait()
        return True

    def _refresh(self, trigger: str, *, forced: bool) -> dict[str, Any] | None:
        with self._lock:
            noticed = utc_now()
            try:
                version = self.registry.get_alias(self.scope, self.options.alias)
            except FlowpolicyError as exc:
                return self._record({"at": noticed, "trigger": trigger, "outcome": "failed",
                                     "error": f"cannot read @{self.options.alias}: {exc}"},
                                    failed=True)
            if not forced and version == self._settled:
                return None  # a commit elsewhere in the registry
            self._settled = version
            current = self.served
            attempt = {"at": noticed, "trigger": trigger,
                       "from": instance_id(current.version if current else None),
                       "to": instance_id(version)}
            still = f"; still serving {current.instance.id}" if current else ""
            if version is None:
                return self._record({**attempt, "outcome": "kept", "error":
                                     f"alias @{self.options.alias} was unset{still}"},
                                    failed=True)
            if not forced and current is not None and version == current.version:
                return None  # moved back to what is served
            try:
                prepared = self._prepare(version)
            except Exception as exc:  # noqa: BLE001 - a user's loader may raise anything
                return self._record({**attempt, "outcome": "refused", "error":
                                     f"v{version} not swapped in: {_message(exc)}{still}"},
                                    failed=True)
            self.served = prepared  # the swap: one reference, read once per request
            return self._record({**attempt, "outcome": "swapped",
                                 "load_seconds": round(prepared.load_seconds, 4),
                                 "swapped_at": prepared.loaded_at}, failed=False)

    def _record(self, attempt: dict[str, Any], *, failed: bool) -> dict[str, Any]:
        self._attempts.append(attempt)
        if failed:
            self.last_reload_error = attempt
        return attempt

    # -- preparing an instance ------------------------------------------------------------

    def _prepare(self, version: int) -> Served:
        """Judge, load and probe instance ``version``; raises when it may not be served."""
        began = time.perf_counter()
        record = self.registry.resolve(self.scope, f"v{version}")
        standing = None
        if self.options.policy is not None:
            standing = judge_standing(self.options.policy, record, self.options.alias)
            if not standing.passed and not self.options.ignore_gates:
                raise NotServable(standing.reason)
        instance = ModelInstance(record, self.options.datastore)
        predict = predict_function(self.options.loader(instance), instance)
        rows = list(self.options.probe_rows or self._probe_rows or ())
        if rows:
            _probe(predict, rows, instance)
        scope = self.scope
        return Served(
            instance=instance, predict=predict,
            header=f"{scope.project}/{scope.branch}/{scope.name}/{record.id}",
            loaded_at=utc_now(), load_seconds=time.perf_counter() - began,
            standing=standing, probed_rows=len(rows),
            evidence=evidence_chain(self.registry, record))

    # -- reporting ------------------------------------------------------------------------

    def info(self, served: Served | None) -> dict[str, Any]:
        """``/model/info`` for ``served`` (the reference the request read)."""
        policy = self.options.policy
        report: dict[str, Any] = {
            "asset": self.scope.name, "project": self.scope.project,
            "branch": self.scope.branch, "alias": self.options.alias,
            "ready": served is not None, "registry": self.registry.url,
            "follows": self.follows, "started_at": self.started_at,
            "policy": None if policy is None else {"source": str(policy.source),
                                                   "hash": policy.hash},
            "overrides": {"ignore_gates": self.options.ignore_gates,
                          "allow_unset": self.options.allow_unset},
            "last_reload_error": self.last_reload_error,
            "reloads": list(self._attempts),
            "instance": None,
        }
        if served is not None:
            record = served.instance.record
            report.update({
                "instance": record.id, "kind": record.kind, "created_at": record.created_at,
                "created_by": record.created_by.to_dict(),
                "annotations": dict(record.annotations), "blobs": list(record.blobs),
                "loaded_at": served.loaded_at, "load_seconds": round(served.load_seconds, 4),
                "probed_rows": served.probed_rows,
                "gates": None if served.standing is None else served.standing.to_dict(),
                "evidence": list(served.evidence),
            })
        return report


def _close(probe: Any) -> None:
    close = getattr(probe, "close", None)
    if close is not None:
        close()


def _message(exc: Exception) -> str:
    """A user's error as it was worded; anything else (a loader's bug) with its type."""
    return str(exc) if isinstance(exc, FlowpolicyError) else f"{type(exc).__name__}: {exc}"


def _probe(predict: PredictFunction, rows: Sequence, instance: ModelInstance) -> None:
    """The new instance must answer the probe rows, one prediction per row."""
    answer = predict(list(rows))
    count = len(answer) if hasattr(answer, "__len__") else None
    if count != len(rows):
        raise NotServable(f"{instance.describe()} answered {len(rows)} probe rows with "
                          f"{count if count is not None else 'no sequence of'} predictions")


def evidence_chain(registry: Registry, record: Any) -> tuple[dict[str, Any], ...]:
    """The evidence records on ``record`` and on the instances it was promoted from
    (following ``promoted_from_branch`` / ``promoted_from_instance`` back), each with its
    branch; empty where the backend keeps no evidence."""
    found: list[dict[str, Any]] = []
    scope, instance, annotations = record.scope, record.id, record.annotations
    seen: set[tuple[str, str]] = set()
    for _ in range(EVIDENCE_HOPS):
        if (scope.branch, instance) in seen:
            break
        seen.add((scope.branch, instance))
        try:
            found += [{**e.to_dict(), "branch": scope.branch}
                      for e in registry.evidence(scope, instance)]
            branch = annotations.get(PROMOTED_FROM_BRANCH)
            instance = annotations.get(PROMOTED_FROM_INSTANCE) or ""
            if not branch or not instance:
                break
            scope = replace(scope, branch=branch)
            annotations = registry.resolve(scope, instance).annotations
        except FlowpolicyError:
            break
    return tuple(found)
