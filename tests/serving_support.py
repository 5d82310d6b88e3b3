"""Helpers for the serving tests: a toy external-kind model (a JSON file of one factor, which
a loader turns into ``x * factor``), a small policy, a real uvicorn server in a thread, and a
bounded wait."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flowpolicy.registry.base import EntityRef, Scope

USER = EntityRef("user", "tester")

POLICY = """\
version: 1
project: serve_demo
assets:
  toy_model: {type: model, required_annotations: [f1_score]}
branches: [dev, prod]
gates:
  quality:
    asset: toy_model
    checks: [{metric: f1_score, min: 0.8}]
promotion:
  - {from: dev, to: prod, assets: [toy_model], require: [quality], alias: production}
"""


def toy_loader(instance) -> Callable[[list], list]:
    """Loader of the toy model: its blob is a JSON file ``{"factor": k}``; it predicts
    ``row["x"] * k``."""
    spec = json.loads(Path(instance.blobs[0].removeprefix("file://")).read_text())
    factor = spec["factor"]
    return lambda rows: [row["x"] * factor for row in rows]


def register_toy(registry, tmp_path: Path, branch: str, factor: Any, *, f1: str = "0.9",
                 missing_file: bool = False) -> str:
    """Register a toy model instance on ``branch``; returns its id."""
    scope = Scope("serve_demo", branch, "model", "toy_model")
    blob = tmp_path / f"toy_{branch}_{time.monotonic_ns()}.json"
    if not missing_file:
        blob.write_text(json.dumps({"factor": factor}))
    record = registry.register(scope, kind="json", created_by=USER, blobs=[f"file://{blob}"],
                               annotations={"f1_score": f1})
    return record.id


def free_port() -> int:
    """A port free on 127.0.0.1 now (for servers that cannot be handed a socket)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "it") -> Any:
    """Poll ``predicate`` every 20 ms until it returns something truthy, at most
    ``timeout`` seconds (then fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"waited {timeout}s for {what}")


def call(base: str, path: str, body: Any = None, *, raw: bytes | None = None
         ) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one request to the server at ``base``."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@contextlib.contextmanager
def running(server, *, start: bool = True) -> Iterator[str]:
    """``server`` started (unless ``start`` is False) and served by a real uvicorn on a free
    127.0.0.1 port in a thread; yields its base URL and stops both afterwards."""
    from flowpolicy.serve import create_app, listen, uvicorn_server

    if start:
        server.start()
    sock = listen("127.0.0.1", 0)
    web = uvicorn_server(create_app(server))
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: web.started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        web.should_exit = True
        thread.join(15)
        server.stop()
        sock.close()


def run(argv: list[str], cwd: Path, env: dict[str, str], ok: bool = True
        ) -> subprocess.CompletedProcess:
    """Run a command to completion (at most 300 s); with ``ok`` it must succeed."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


def train_example(root: Path) -> tuple[Path, Path, dict[str, str]]:
    """The fraud example copied into ``root`` and compiled, with fraud_model v1 (seed 7) and
    v2 (seed 8, 120 epochs) trained on dev by real Metaflow runs (local datastore under
    ``root``, SQLite registry ``root/registry.db``) and both through the quality gate.
    Returns (project folder, datastore root, environment for more runs there)."""
    from flowpolicy.demo import copy_example, flow_environment

    project = root / "fraud_detection"
    copy_example(project)
    env = flow_environment(root, f"sqlite:///{root / 'registry.db'}", user="tester",
                           branch="dev")
    env.update(PYTHONUNBUFFERED="1", FLOWPOLICY_PROJECT="fraud_detection")
    for args in (("--seed", "7"), ("--seed", "8", "--epochs", "120")):
        run([sys.executable, "train_flow.py", "--quiet", "run", *args], project, env)
    for instance in ("v1", "v2"):
        run([sys.executable, "flows/quality_gate.py", "--quiet", "run", "--instance", instance],
            project, env)
    return project, root, env
