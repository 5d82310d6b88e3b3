"""The HTTP face of a :class:`~flowpolicy.serve.server.ModelServer` (FastAPI + uvicorn).

=====================  ==========================================================================
``GET /health``        200 while the process runs: ``{"status": "alive", "instance": …}``
``GET /ready``         200 ``{"ready": true, "instance": "v3"}`` once a model is loaded, else 503
                       with the reason
``GET /model/info``    the instance served, its alias, branch, annotations, gate verdicts under
                       the policy, evidence, policy hash, ``loaded_at``, ``last_reload_error``,
                       the recent reload attempts and any override flags
``POST /model/reload`` look the alias up and load its instance now; the attempt
``POST /predict``      ``{"rows": [{…}, …]}`` (or a bare list) in, ``{"instance": "v3",
                       "predictions": […]}`` out; 422 when the model cannot predict the rows
=====================  ==========================================================================

Every response carries ``X-Flowpolicy-Instance: project/branch/asset/vN`` (``none`` while
nothing is loaded), taken from the same reference as the prediction it goes with.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' parameter
# annotations (``request: Request``) as objects, and ``Request`` is imported only when the app
# is built, so that FastAPI stays an optional dependency.
import json
import socket
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.serve.server import INSTANCE_HEADER, NO_INSTANCE, ModelServer, Served

#: Largest request body read, and most rows predicted in one request.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 10_000


def require_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise FlowpolicyError(f"serving needs FastAPI and uvicorn ({exc.name} is missing): "
                              "pip install 'flowpolicy[serve]'") from exc


def create_app(server: ModelServer):
    """The FastAPI application serving ``server``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title=f"flowpolicy serve {server.scope.name}",
                  description=f"@{server.options.alias} of {server.scope}")

    def respond(served: Served | None, body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status,
                            headers={INSTANCE_HEADER: served.header if served else NO_INSTANCE})

    def served_id(served: Served | None) -> str | None:
        return served.instance.id if served else None

    @app.get("/health")
    async def health() -> JSONResponse:
        served = server.served
        return respond(served, {"status": "alive", "instance": served_id(served)})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        served = server.served
        if served is None:
            return respond(None, {"ready": False, "reason": server.unready_reason()}, 503)
        return respond(served, {"ready": True, "instance": served.instance.id})

    @app.get("/model/info")
    async def model_info() -> JSONResponse:
        served = server.served
        return respond(served, server.info(served))

    @app.post("/model/reload")
    def model_reload() -> JSONResponse:  # a thread of its own: loading takes a while
        attempt = server.reload()
        served = server.served
        return respond(served, {**attempt, "instance": served_id(served)})

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        served = server.served  # read once: this response's header and prediction agree
        if served is None:
            return respond(None, {"error": server.unready_reason()}, 503)
        body = await _read_body(request)
        if body is None:
            return respond(served, {"error": f"request body over {MAX_BODY_BYTES} bytes"}, 413)
        rows, problem = _rows(body)
        if problem:
            return respond(served, {"error": problem}, 422)
        try:
            predictions = served.predict(rows)
            listed = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
        except Exception as exc:  # noqa: BLE001 - the model's own error, reported to the caller
            return respond(served, {"error": f"{served.instance.describe()} could not predict "
                                             f"these rows: {type(exc).__name__}: {exc}"}, 422)
        server.remember(rows)
        return respond(served, {"instance": served.instance.id, "predictions": listed})

    return app


async def _read_body(request) -> bytes | None:
    """The body, or None when it is larger than :data:`MAX_BODY_BYTES` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _rows(body: bytes) -> tuple[list, str]:
    """The rows of a predict request, or an empty list and what is wrong with it."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        return [], f"request body is not JSON: {exc}"
    rows = payload.get("rows") if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not rows:
        return [], 'send {"rows": [{...}, ...]}: a non-empty list of JSON objects'
    if len(rows) > MAX_ROWS:
        return [], f"{len(rows)} rows in one request; at most {MAX_ROWS}"
    if not all(isinstance(row, dict) for row in rows):
        return [], "every row must be a JSON object of feature values"
    return rows, ""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it a keep-alive response waits out the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FlowpolicyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app, **options: Any):
    """A uvicorn server for ``app``, quiet (no access log) and without lifespan events; run
    it with ``.run(sockets=[listen(host, port)])``. In the main thread it stops on SIGINT /
    SIGTERM; elsewhere set its ``should_exit``."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5, **options)
    return uvicorn.Server(config)
