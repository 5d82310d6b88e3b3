"""The Argo Events webhook, on 127.0.0.1, publishing into the registry.

Metaflow's ``ArgoEvent(name).publish(payload)`` POSTs
``{"name": NAME, "payload": {"name": NAME, "id": …, "timestamp": …, …}}`` as JSON to
``METAFLOW_ARGO_EVENTS_WEBHOOK_URL``. Pointed at this server, such an event becomes a row of
the events table, and the dispatcher starts what it triggers, as Argo Events would.

Only project events (``prj.<project>.<branch>.<name>``) are accepted: a policy's triggers
are project triggers, and anything else is answered 400 with the reason. Bodies are at most
:data:`MAX_BODY_BYTES`; the server binds to the loopback interface only, since whoever can
post to it can start flows.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flowpolicy.errors import FlowpolicyError
from flowpolicy.registry.base import EntityRef, Registry, parse_wire_name

MAX_BODY_BYTES = 1024 * 1024
_SOCKET_TIMEOUT_S = 10.0


class WebhookServer:
    """``with WebhookServer(registry, port) as server:`` serves in a thread; ``server.url``
    is what ``METAFLOW_ARGO_EVENTS_WEBHOOK_URL`` should be."""

    def __init__(self, registry: Registry, port: int = 0, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise FlowpolicyError(f"the webhook listens on the loopback interface only, "
                                  f"not {host!r}: whoever can post to it can start flows")
        handler = type("Handler", (_Handler,), {"registry": registry})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise FlowpolicyError(f"cannot listen on {host}:{port} for the webhook: "
                                  f"{exc.strerror or exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="flowpolicy-webhook")
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}/"

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    registry: Registry
    timeout = _SOCKET_TIMEOUT_S
    server_version = "flowpolicy-webhook"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base's name
        """Quiet: the dispatcher reports the events it starts flows for."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._answer(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
        if length <= 0:
            return self._answer(HTTPStatus.BAD_REQUEST, "empty body: expected Argo Events "
                                "JSON, {\"name\": ..., \"payload\": {...}}")
        if length > MAX_BODY_BYTES:
            return self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                f"body of {length} bytes; at most {MAX_BODY_BYTES}")
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            return self._answer(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return self._answer(HTTPStatus.BAD_REQUEST,
                                "expected {\"name\": EVENT, \"payload\": {...}}")
        payload = body.get("payload", {})
        if not isinstance(payload, dict):
            return self._answer(HTTPStatus.BAD_REQUEST, "payload must be a JSON object")
        try:
            project, branch, name = parse_wire_name(body["name"])
            record = self.registry.publish_event(
                project, branch, name, payload,
                EntityRef("webhook", f"{self.client_address[0]}"))
        except FlowpolicyError as exc:
            return self._answer(HTTPStatus.BAD_REQUEST, str(exc))
        return self._answer(HTTPStatus.OK, "published", event_id=record.id,
                            event=record.wire_name)

    def _answer(self, status: HTTPStatus, message: str, **fields) -> None:
        text = json.dumps({"message": message, **fields}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
