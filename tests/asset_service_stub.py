"""A stand-in for the Outerbounds asset service, for running obproject's own client code.

The service cannot run here. This stub answers the endpoints obproject 0.2.42's ``Asset``
calls (register, get/consume an instance, summary, list, aliases, delete, flowproject
metadata) on 127.0.0.1 and keeps what it is sent, so the contract tests can run obproject's
client-side logic (payload building, tag filtering, promotion, deletion bookkeeping) and
compare it with flowpolicy's. What the stub answers is ours, not the service's: tests
compare only what obproject's client code decides.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BRANCH = re.compile(r"^/v1/perimeters/(?P<perimeter>[^/]+)/projects/(?P<project>[^/]+)"
                     r"/branches/(?P<branch>[^/]+)(?P<rest>/.*)?$")


class AssetServiceStub:
    """In-memory instances and aliases per (project, branch, kind, name)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.instances: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        self.aliases: dict[tuple[str, str, str, str], dict[str, str]] = {}
        self.counter = 0
        self.url = ""

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        match = _BRANCH.match(path.split("?")[0])
        if match is None:
            return 404, {"error": "no such endpoint"}
        project, branch = match["project"], match["branch"]
        parts = [p for p in (match["rest"] or "").split("/") if p]
        if parts == ["latestflowproject"]:
            return 404, {"error": "no flowproject deployed"}
        kind = parts[0]
        if len(parts) == 1:
            return 200, {"items": [
                {"asset": {"id": name, "name": name, "kind": kind},
                 "latest_instance": insts[-1]}
                for (p, b, k, name), insts in sorted(self.instances.items())
                if (p, b, k) == (project, branch, kind) and insts]}
        key = (project, branch, kind, parts[1])
        if len(parts) == 2 and method == "PATCH":
            return 200, self._register(key, body)
        if key not in self.instances:
            return 404, {"error": f"asset {parts[1]} not found"}
        if len(parts) == 2 and method == "DELETE":
            del self.instances[key]
            self.aliases.pop(key, None)
            return 200, {}
        insts = self.instances[key]
        if len(parts) == 2:
            return 200, {"recent_instances": list(reversed(insts))[:50]}
        if parts[2] == "aliases" and len(parts) == 3:
            return 200, {"aliases": [{"name": a, "instance_id": i}
                                     for a, i in self.aliases.get(key, {}).items()]}
        if parts[2] == "aliases":
            self.aliases.setdefault(key, {})[parts[3]] = body["instance_id"]
            return 200, {}
        spec = parts[3]
        if spec == "latest":
            return 200, insts[-1]
        wanted = self.aliases.get(key, {}).get(spec[1:]) if spec.startswith("@") else spec
        found = next((i for i in insts if i["id"] == wanted), None)
        return (200, found) if found else (404, {"error": f"instance {spec} not found"})

    def _register(self, key: tuple[str, str, str, str], body: dict[str, Any]) -> dict:
        insts = self.instances.setdefault(key, [])
        prefix = "model" if key[2] == "models" else "data"
        self.counter += 1
        insts.append({
            "id": f"v{len(insts) + 1}",
            "created_at": f"2026-01-01T00:00:{self.counter:02d}.123456789Z",
            "created_by": body["entity_ref"],
            "asset": {"name": key[3], "kind": key[2], "description": body.get("description", "")},
            f"{prefix}_properties": {
                f"{prefix}_kind": body.get(f"{prefix}_asset_kind"),
                "annotations": body.get("annotations", {}), "blobs": body.get("blobs", [])},
            "tags": body.get("tags", []),
        })
        return {}


def serve(service: AssetServiceStub):
    """Start the stub on 127.0.0.1 in a thread; returns the server (``shutdown()`` it)."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = service.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _serve

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server
