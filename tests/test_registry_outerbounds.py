"""Contract test of the Outerbounds backend.

The Outerbounds asset service cannot run here, so this test stands up a local HTTP stub on
127.0.0.1 that records every request and answers with the shapes obproject documents. It
checks that the adapter sends what obproject sends (paths, methods, payloads with
stringified annotations and key/value tags) and turns the answers into the same records
and obproject-shaped responses as the embedded registry. It is a stub, not the service.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowpolicy import Asset
from flowpolicy.cli import main
from flowpolicy.errors import RegistryError
from flowpolicy.registry import (
    AliasConflict,
    CompareAndSetUnsupported,
    EntityRef,
    Scope,
    open_registry,
)
from flowpolicy.registry.outerbounds import OuterboundsRegistry
from flowpolicy.runtime.promote import promote_assets

PREFIX = "/v1/perimeters/default/projects/fraud/branches/dev"


class AssetServiceStub:
    """In-memory asset service: instances, aliases and consumption, per (kind, name)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.instances: dict[tuple[str, str], list[dict]] = {}
        self.aliases: dict[tuple[str, str], dict[str, str]] = {}
        self.consumed: dict[tuple[str, str], list[dict]] = {}
        #: called after each registration, e.g. to land another writer's registration
        self.after_patch = None

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        if not path.startswith(PREFIX + "/"):
            return 404, {"error": "unknown project or branch"}
        parts = path[len(PREFIX) + 1:].split("?")[0].split("/")
        kind = parts[0]
        if len(parts) == 1:
            return 200, {"items": [{"asset": {"name": name, "kind": kind},
                                    "latest_instance": insts[-1]}
                                   for (k, name), insts in self.instances.items() if k == kind]}
        key = (kind, parts[1])
        if len(parts) == 2 and method == "PATCH":
            insts = self.instances.setdefault(key, [])
            props = {f"{'model' if kind == 'models' else 'data'}_kind":
                     body.get("model_asset_kind") or body.get("data_asset_kind"),
                     "annotations": body.get("annotations", {}), "blobs": body.get("blobs", [])}
            insts.append({
                "id": f"v{len(insts) + 1}", "created_at": "2026-01-01T00:00:00.123456789Z",
                "created_by": body["entity_ref"],
                "asset": {"name": parts[1], "kind": kind,
                          "description": body.get("description", "")},
                f"{'model' if kind == 'models' else 'data'}_properties": props,
                "tags": body.get("tags", []),
            })
            if self.after_patch:
                hook, self.after_patch = self.after_patch, None
                hook(key)
            return 200, {}
        if key not in self.instances:
            return 404, {"error": f"asset {parts[1]} not found"}
        insts = self.instances[key]
        if len(parts) == 2:
            return 200, {"recent_instances": list(reversed(insts))[:50],
                         "recently_consumed_by": self.consumed.get(key, [])}
        if parts[2] == "aliases" and len(parts) == 3:
            return 200, {"aliases": [{"name": a, "instance_id": i}
                                     for a, i in self.aliases.get(key, {}).items()]}
        if parts[2] == "aliases":
            self.aliases.setdefault(key, {})[parts[3]] = body["instance_id"]
            return 200, {}
        spec = parts[3]
        if spec == "latest":
            found = insts[-1]
        elif spec.startswith("@"):
            target = self.aliases.get(key, {}).get(spec[1:])
            found = next((i for i in insts if i["id"] == target), None)
        else:
            found = next((i for i in insts if i["id"] == spec), None)
        if found is None:
            return 404, {"error": f"instance {spec} not found"}
        if method == "PUT":
            self.consumed.setdefault(key, []).append(
                {"entity_ref": body["entity_ref"], "instance_id": found["id"],
                 "consumed_at": "2026-01-02T00:00:00Z"})
        return 200, found


@pytest.fixture
def stub():
    service = AssetServiceStub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = service.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_PATCH = _serve

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    service.url = f"outerbounds+http://127.0.0.1:{server.server_address[1]}/default"
    yield service
    server.shutdown()
    server.server_close()


def test_register_sends_what_obproject_sends(stub):
    reg = OuterboundsRegistry.from_url(stub.url)
    scope = Scope("fraud", "dev", "model", "fraud_model")
    record = reg.register(scope, kind="artifact", created_by=EntityRef("task", "T/1/s/2"),
                          description="m", annotations={"f1_score": 0.91, "n": 3},
                          tags={"framework": "sklearn"})
    method, path, body = stub.requests[0]
    assert (method, path) == ("PATCH", f"{PREFIX}/models/fraud_model")
    assert body == {"entity_ref": {"entity_kind": "task", "entity_id": "T/1/s/2"},
                    "description": "m", "model_asset_kind": "artifact",
                    "tags": [{"key": "framework", "value": "sklearn"}],
                    "annotations": {"f1_score": "0.91", "n": "3"}}
    assert stub.requests[1][:2] == ("GET", f"{PREFIX}/models/fraud_model/instances/latest")
    assert (record.id, record.kind, dict(record.annotations)) == (
        "v1", "artifact", {"f1_score": "0.91", "n": "3"})


def test_asset_client_on_the_outerbounds_backend(stub):
    asset = Asset(project="fraud", branch="dev", registry=stub.url,
                  entity_ref={"entity_kind": "user", "entity_id": "tester"})
    assert open_registry(stub.url) is asset.registry
    for score in (0.8, 0.9):
        asset.register_model_asset("fraud_model", kind="artifact",
                                   annotations={"f1_score": score})
    asset.register_data_asset("fraud_features", kind="s3_object", blobs=["s3://b/k"])

    ref = asset.consume_model_asset("fraud_model", "v1")
    assert ref["model_properties"] == {"model_kind": "artifact",
                                       "annotations": {"f1_score": "0.8"}, "blobs": []}
    assert ref["created_by"] == {"entity_kind": "user", "entity_id": "tester"}
    assert ("PUT", f"{PREFIX}/models/fraud_model/instances/v1",
            {"entity_ref": {"entity_kind": "user", "entity_id": "tester"}}) in stub.requests
    assert [c["instance"] for c in asset.list_consumers("fraud_model")] == ["v1"]
    assert asset.peek_data_asset("fraud_features")["data_properties"]["blobs"] == ["s3://b/k"]
    assert [i.id for i in asset.list_model_asset_instances("fraud_model")] == ["v2", "v1"]
    assert [i["asset"]["name"] for i in asset.list_model_assets()["items"]] == ["fraud_model"]

    move = asset.set_alias("fraud_model", "champion", "latest")
    assert (move["from"], move["to"]) == (None, "v2")
    assert stub.requests[-1] == ("PUT", f"{PREFIX}/models/fraud_model/aliases/champion",
                                 {"instance_id": "v2",
                                  "entity_ref": {"entity_kind": "user", "entity_id": "tester"}})
    assert asset.get_alias("fraud_model", "champion") == "v2"
    assert asset.peek_model_asset("fraud_model", "@champion")["id"] == "v2"


def test_compare_and_set_is_refused_unless_the_weaker_mode_is_asked_for(stub):
    me = {"entity_kind": "user", "entity_id": "tester"}
    asset = Asset(project="fraud", branch="dev", registry=stub.url, entity_ref=me)
    for _ in range(2):
        asset.register_model_asset("fraud_model", kind="artifact")
    sent = len(stub.requests)
    with pytest.raises(CompareAndSetUnsupported, match=(
            "cannot move @champion .* only if it is still unset: the Outerbounds asset service "
            r"has no compare-and-set.*outerbounds://\?alias_moves=read-then-write")) as raised:
        asset.set_alias("fraud_model", "champion", "v1", expected=None)
    assert raised.value.exit_code == 2
    assert len(stub.requests) == sent  # refused before anything was sent
    assert stub.aliases == {}

    weaker = Asset(project="fraud", branch="dev", entity_ref=me,
                   registry=stub.url + "?alias_moves=read-then-write")
    assert weaker.registry.url.endswith("?alias_moves=read-then-write")
    assert weaker.set_alias("fraud_model", "champion", "v1", expected=None)["to"] == "v1"
    with pytest.raises(AliasConflict, match="is v1, expected v2"):
        weaker.set_alias("fraud_model", "champion", "v2", expected="v2")
    assert weaker.set_alias("fraud_model", "champion", "v2", expected="v1")["to"] == "v2"
    with pytest.raises(RegistryError, match="the only option is"):
        OuterboundsRegistry.from_url(stub.url + "?alias_moves=sometimes")


def test_register_returns_its_own_instance_when_another_lands_in_between(stub):
    reg = OuterboundsRegistry.from_url(stub.url)
    scope = Scope("fraud", "dev", "model", "fraud_model")

    def someone_else_registers(key):
        stub.instances[key].append({**stub.instances[key][-1], "id": "v2",
                                    "created_by": {"entity_kind": "task", "entity_id": "X/9/s/1"}})

    stub.after_patch = someone_else_registers
    mine = reg.register(scope, kind="artifact", created_by=EntityRef("task", "T/1/s/2"),
                        annotations={"f1_score": 0.9})
    assert (mine.id, mine.created_by.entity_id) == ("v1", "T/1/s/2")


def test_evidence_is_kept_on_the_service_in_a_companion_asset(stub):
    me = {"entity_kind": "user", "entity_id": "tester"}
    asset = Asset(project="fraud", branch="dev", registry=stub.url, entity_ref=me)
    for _ in range(2):
        asset.register_model_asset("fraud_model", kind="artifact")
    for i in range(60):  # more than the 50 recent instances the service lists
        asset.record_evidence("fraud_model", "v1" if i % 2 else "v2", asset_type="model",
                              kind="gate", rule="quality", passed=bool(i % 3),
                              policy_hash="abc", details={"i": i, "f1": [0.9]})
    asset.record_evidence("fraud_model", "v2", asset_type="model", kind="champion",
                          rule="champion", passed=True, policy_hash=None, details={})
    patched = [r[:2] for r in stub.requests if r[0] == "PATCH"]
    assert ("PATCH", f"{PREFIX}/data/flowpolicy_evidence__model__fraud_model") in patched
    on_v2 = asset.evidence("fraud_model", "v2")
    assert [r["details"].get("i") for r in on_v2] == [*range(0, 60, 2), None]
    assert on_v2[0] == {"kind": "gate", "rule": "quality", "passed": False, "policy_hash": "abc",
                        "details": {"i": 0, "f1": [0.9]}, "created_at": on_v2[0]["created_at"],
                        "created_by": me, "instance": "v2"}
    assert [r["rule"] for r in asset.evidence("fraud_model", "v2", kind="champion")] == [
        "champion"]
    assert len(asset.evidence("fraud_model", "v1")) == 30
    assert asset.evidence("fraud_model", "v1", asset_type="model", kind="drift") == []
    # the companion is storage, not an asset of the project
    assert [i["asset"]["name"] for i in asset.list_data_assets()["items"]] == []
    with pytest.raises(RegistryError, match="evidence kind must be one of"):
        asset.record_evidence("fraud_model", "v1", asset_type="model", kind="vibes", rule="x",
                              passed=True, policy_hash=None, details=None)


def test_promotion_works_without_compare_and_set(stub):
    dev = Asset(project="fraud", branch="dev", registry=stub.url,
                entity_ref={"entity_kind": "user", "entity_id": "tester"})
    dev.register_model_asset("fraud_model", kind="artifact", annotations={"f1_score": 0.9})
    # the stub serves one branch: promote onto it, which points the alias (compare-and-set
    # where the backend has it, a plain move here) and copies nothing
    result = promote_assets("fraud", "dev", "dev", kinds=["models"], asset="fraud_model",
                            registry=stub.url)
    assert result["errors"] == [] and result["promoted"][0]["instance"] == "v1"
    assert stub.aliases[("models", "fraud_model")] == {"candidate": "v1"}


def test_registry_info_states_the_guarantees(stub, capsys):
    assert main(["registry", "info", "--registry", stub.url]) == 0
    out = capsys.readouterr().out
    assert "backend   outerbounds" in out
    assert "refused: compare-and-set alias moves" in out and "weaker: register_once" in out


def test_register_once_looks_before_it_registers(stub):
    reg = OuterboundsRegistry.from_url(stub.url)
    scope = Scope("fraud", "dev", "model", "fraud_model")
    me = EntityRef("user", "tester")
    key = {"promoted_from_branch": "staging", "promoted_from_instance": "v4"}
    first, created = reg.register_once(scope, key, kind="artifact", created_by=me,
                                       annotations={**key, "f1_score": 0.9})
    assert (first.id, created) == ("v1", True)
    reg.register(scope, kind="artifact", created_by=me)
    again, created = reg.register_once(scope, key, kind="artifact", created_by=me,
                                       annotations=key)
    assert (again.id, created) == ("v1", False)
    assert len(stub.instances[("models", "fraud_model")]) == 2


@pytest.mark.parametrize("call, message", [
    (lambda a: a.peek_model_asset("nope"), "latest of model asset 'nope' in fraud/dev not found"),
    (lambda a: a.peek_model_asset("fraud_model", "v7"), "v7 of model asset"),
    (lambda a: a.peek_model_asset("fraud_model", "latest-x"), "malformed instance spec"),
    (lambda a: a.alias_history("fraud_model", "champion"), "keeps no alias history"),
    (lambda a: a.list_events(), "cannot be listed"),
    (lambda a: a.registry.wait_for_events(0, 1), "cannot be followed from here"),
])
def test_what_the_service_lacks_is_a_clear_error(stub, call, message):
    asset = Asset(project="fraud", branch="dev", registry=stub.url,
                  entity_ref={"entity_kind": "user", "entity_id": "tester"})
    asset.register_model_asset("fraud_model", kind="artifact")
    with pytest.raises(RegistryError, match=message):
        call(asset)


def test_configuration(monkeypatch):
    for var in ("OBP_INTEGRATIONS_URL", "OBP_PERIMETER"):
        monkeypatch.delenv(var, raising=False)
    assert OuterboundsRegistry.config_present() is False
    with pytest.raises(RegistryError, match="needs an Outerbounds configuration"):
        OuterboundsRegistry.from_url("outerbounds://")
    monkeypatch.setenv("OBP_INTEGRATIONS_URL", "https://api.example.com/integrations")
    monkeypatch.setenv("OBP_PERIMETER", "team")
    reg = OuterboundsRegistry.from_url("outerbounds://")
    assert (reg.base_url, reg.perimeter) == ("https://api.example.com", "team")
    with pytest.raises(RegistryError, match="expected outerbounds\\+https://HOST/PERIMETER"):
        OuterboundsRegistry.from_url("outerbounds+ftp://x/")
