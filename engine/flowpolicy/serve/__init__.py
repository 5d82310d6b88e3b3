"""``flowpolicy serve``: serve the model an alias points at, and follow the alias.

Public API (``serve`` is what :func:`flowpolicy.api.serve` and the CLI run)::

    server = open_server(ServeRequest(asset="fraud_model", branch="prod", loader="serving:load"))
    server.start()                        # ServeRefused (exit 2) when it must not serve
    app = create_app(server)              # FastAPI
    uvicorn_server(app).run(sockets=[listen("127.0.0.1", 8000)])

See :mod:`flowpolicy.serve.server` for how the alias is followed and a new instance checked
before it is swapped in, :mod:`flowpolicy.serve.app` for the endpoints, and
:mod:`flowpolicy.serve.loaders` for what a loader is. FastAPI and uvicorn come with the
``serve`` extra (``pip install 'flowpolicy[serve]'``); the rest of flowpolicy never imports
them.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.inventory import open_to_read
from flowpolicy.request import ServeRequest
from flowpolicy.runtime.branch import resolve_branch, resolve_project
from flowpolicy.runtime.lifecycle import branch_alias, select_policy
from flowpolicy.runtime.loading import datastore_folder
from flowpolicy.serve.app import (
    MAX_BODY_BYTES,
    create_app,
    listen,
    require_fastapi,
    uvicorn_server,
)
from flowpolicy.serve.loaders import default_loader, import_loader
from flowpolicy.serve.server import (
    INSTANCE_HEADER,
    ModelServer,
    NotServable,
    ServeOptions,
    ServeRefused,
)

__all__ = [
    "INSTANCE_HEADER",
    "ModelServer",
    "NotServable",
    "ServeOptions",
    "ServeRefused",
    "ServeRequest",
    "create_app",
    "listen",
    "open_server",
    "serve",
    "uvicorn_server",
]


def open_server(request: ServeRequest) -> ModelServer:
    """A :class:`ModelServer` for ``request``, not started yet.

    Defaults: project and branch as :class:`~flowpolicy.Asset` resolves them; the registry
    ``FLOWPOLICY_REGISTRY`` / the project's file, opened read-only (a missing file is exit 2);
    the policy the one under ``./policies/`` for the project (required unless
    ``ignore_gates``); the alias the one the policy's promotion edges set on the branch; no
    loader: the instance's Metaflow artifact serves as it is.
    """
    project = resolve_project(request.project)
    branch = resolve_branch(explicit=request.branch)
    policy = None
    if request.policies or not request.ignore_gates:
        policy = select_policy(request.policies, project)
    alias = request.alias or branch_alias(policy, request.asset, branch)
    registry = open_to_read(request.registry, "nothing to serve")
    options = ServeOptions(
        asset=request.asset, project=project, branch=branch, alias=alias, policy=policy,
        loader=import_loader(request.loader) if request.loader else default_loader,
        datastore=datastore_folder(request.datastore) if request.datastore else None,
        ignore_gates=request.ignore_gates, allow_unset=request.allow_unset,
        probe_rows=_probe_rows(request.probe) if request.probe else None)
    return ModelServer(options, registry)


def serve(request: ServeRequest, started: Callable[[str, str], None]) -> None:
    """Serve until SIGINT / SIGTERM. Once listening, ``started(serving, following)`` is told
    what is served where, and what the server follows. Refusing to serve (an unset alias,
    failing gates, a model that does not load) is an error before anything listens."""
    require_fastapi()
    server = open_server(request)
    sock = listen(request.host, request.port)
    try:
        server.start()
        served = server.served
        what = (f"{server.scope.name} {served.instance.id}" if served
                else f"{server.scope.name} (nothing yet: @{server.options.alias} is unset)")
        host, port = sock.getsockname()[:2]
        overrides = [flag for flag, on in (("--ignore-gates", request.ignore_gates),
                                           ("--allow-unset", request.allow_unset)) if on]
        started(f"{what}, @{server.options.alias} on {server.scope.project}/"
                f"{server.scope.branch}, at http://{host}:{port}"
                + (f" ({', '.join(overrides)})" if overrides else ""),
                f"following {server.follows}; Ctrl-C stops")
        web = uvicorn_server(create_app(server))
        # uvicorn shuts down on SIGINT / SIGTERM, then raises the signal again for the
        # handlers it found; a stop that was asked for is a clean exit, not an interrupt
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT,
                                                                   signal.SIGTERM)}
        try:
            web.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        server.stop()
        sock.close()


def _stopped(signum: int, frame: object) -> None:
    """The stop signal, raised again by uvicorn after its graceful shutdown: nothing left to
    do."""


def _probe_rows(path: str) -> tuple[dict[str, Any], ...]:
    """The rows of a ``--probe`` file: a JSON list of objects (or ``{"rows": [...]}``)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_BODY_BYTES:
            raise FlowpolicyError(f"--probe {path}: larger than {MAX_BODY_BYTES} bytes")
        payload = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlowpolicyError(f"--probe {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise FlowpolicyError(f"--probe {path}: not JSON: {exc}") from exc
    rows = payload.get("rows") if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise FlowpolicyError(f"--probe {path}: expected a non-empty JSON list of objects "
                              "(the rows a /predict request sends)")
    return tuple(rows)
