"""The model server in-process: a real uvicorn on 127.0.0.1 in a thread, a real SQLite
registry, toy external-kind models (a JSON file of one factor) loaded by a loader, so every
rule of following an alias is exercised without training anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_support import POLICY, USER, call, register_toy, running, toy_loader, wait_for

from flowpolicy.policy.loader import load_policy_text
from flowpolicy.registry import open_registry
from flowpolicy.registry.base import Scope
from flowpolicy.serve import INSTANCE_HEADER, ModelServer, ServeOptions, ServeRefused
from flowpolicy.serve.app import MAX_ROWS

pytest.importorskip("fastapi")

SCOPE = Scope("serve_demo", "prod", "model", "toy_model")
ROWS = [{"x": 1.0}, {"x": 2.5}]


@pytest.fixture
def registry(tmp_path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}")


@pytest.fixture
def policy():
    return load_policy_text(POLICY)


def make_server(registry, policy, **options) -> ModelServer:
    return ModelServer(ServeOptions(asset="toy_model", project="serve_demo", branch="prod",
                                    alias="production", policy=policy, loader=toy_loader,
                                    **options), registry)


def move(registry, instance: str, reason: str = "test") -> None:
    registry.set_alias(SCOPE, "production", instance, by=USER, reason=reason)


def header(headers: dict[str, str]) -> str:
    return {k.lower(): v for k, v in headers.items()}[INSTANCE_HEADER.lower()]


def served_instance(base: str) -> str:
    return call(base, "/model/info")[2]["instance"]


def test_serves_the_alias_and_names_the_instance_on_every_response(registry, policy,
                                                                   tmp_path):
    v1 = register_toy(registry, tmp_path, "prod", 2.0)
    move(registry, v1, "first release")
    registry.add_evidence(SCOPE, v1, kind="gate", rule="quality", passed=True,
                          policy_hash=policy.hash, details={"value": 0.9}, created_by=USER)
    with running(make_server(registry, policy)) as base:
        status, headers, body = call(base, "/predict", {"rows": ROWS})
        assert (status, body) == (200, {"instance": "v1", "predictions": [2.0, 5.0]})
        assert call(base, "/predict", ROWS)[2]["predictions"] == [2.0, 5.0]  # a bare list
        for path in ("/health", "/ready", "/model/info", "/predict"):
            status, headers, _ = call(base, path, {"rows": ROWS} if path == "/predict" else None)
            assert status == 200
            assert header(headers) == "serve_demo/prod/toy_model/v1"
        info = call(base, "/model/info")[2]
        assert info["instance"] == "v1" and info["alias"] == "production"
        assert info["branch"] == "prod" and info["annotations"] == {"f1_score": "0.9"}
        assert info["policy"]["hash"] == policy.hash
        assert info["gates"]["passed"] and info["gates"]["verdicts"][0]["gate"] == "quality"
        assert [e["rule"] for e in info["evidence"]] == ["quality"]
        assert info["loaded_at"] and info["last_reload_error"] is None
        assert info["overrides"] == {"ignore_gates": False, "allow_unset": False}
        assert "change probe" in info["follows"]


def test_an_alias_move_is_followed_and_a_rollback_too(registry, policy, tmp_path):
    v1 = register_toy(registry, tmp_path, "prod", 2.0)
    v2 = register_toy(registry, tmp_path, "prod", 3.0)
    move(registry, v1)
    with running(make_server(registry, policy)) as base:
        move(registry, v2, "promote")
        wait_for(lambda: served_instance(base) == "v2", what="v2 to be served")
        assert call(base, "/predict", {"rows": ROWS})[2] == {"instance": "v2",
                                                             "predictions": [3.0, 7.5]}
        move(registry, v1, "roll back")
        wait_for(lambda: served_instance(base) == "v1", what="v1 to be served again")
        attempts = call(base, "/model/info")[2]["reloads"]
        assert [(a["from"], a["to"], a["outcome"]) for a in attempts] == [
            ("v1", "v2", "swapped"), ("v2", "v1", "swapped")]
        assert all(a["trigger"] == "registry change" for a in attempts)


def test_a_commit_elsewhere_in_the_registry_loads_nothing(registry, policy, tmp_path):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    server = make_server(registry, policy)
    with running(server) as base:
        register_toy(registry, tmp_path, "dev", 9.0)
        registry.publish_event("serve_demo", "prod", "unrelated", None, USER)
        marker = register_toy(registry, tmp_path, "prod", 4.0)
        registry.set_alias(SCOPE, "candidate", marker, by=USER)  # another alias
        probe = registry.change_probe()
        try:
            token = probe()
            registry.publish_event("serve_demo", "prod", "later", None, USER)
            wait_for(lambda: probe() != token, what="the probe to see a commit")
        finally:
            probe.close()
        assert call(base, "/model/info")[2]["reloads"] == []
        assert served_instance(base) == "v1"


def test_a_broken_instance_is_never_swapped_in(registry, policy, tmp_path):
    good = register_toy(registry, tmp_path, "prod", 2.0)
    missing = register_toy(registry, tmp_path, "prod", 5.0, missing_file=True)
    move(registry, good)
    server = make_server(registry, policy)
    with running(server) as base:
        move(registry, missing, "broken on purpose")
        error = wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"],
                         what="the failed reload to be reported")
        assert error["to"] == "v2" and error["outcome"] == "refused"
        assert "FileNotFoundError" in error["error"] and "still serving v1" in error["error"]
        status, headers, body = call(base, "/predict", {"rows": ROWS})
        assert (status, header(headers), body["instance"]) == (
            200, "serve_demo/prod/toy_model/v1", "v1")
        # a commit that leaves the alias where it is does not retry the broken instance
        registry.publish_event("serve_demo", "prod", "unrelated", None, USER)
        registry.set_alias(SCOPE, "production", missing, by=USER, reason="again")
        assert len(call(base, "/model/info")[2]["reloads"]) == 1
        status, _, attempt = call(base, "/model/reload", raw=b"")
        assert attempt["outcome"] == "refused" and attempt["instance"] == "v1"
        fixed = register_toy(registry, tmp_path, "prod", 6.0)
        move(registry, fixed, "fixed")
        wait_for(lambda: served_instance(base) == fixed, what="the fixed instance")


def test_an_instance_that_cannot_answer_the_last_rows_is_not_swapped_in(registry, policy,
                                                                        tmp_path):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    garbled = register_toy(registry, tmp_path, "prod", "boom")  # loads, then 1.0 * "boom"
    with running(make_server(registry, policy)) as base:
        assert call(base, "/predict", {"rows": ROWS})[0] == 200  # the rows it will be probed with
        move(registry, garbled)
        error = wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"],
                         what="the failed probe")
        assert "TypeError" in error["error"]
        assert served_instance(base) == "v1"


def test_an_instance_failing_the_gates_is_not_swapped_in_unless_told(registry, policy,
                                                                     tmp_path):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    weak = register_toy(registry, tmp_path, "prod", 3.0, f1="0.5")
    with running(make_server(registry, policy)) as base:
        move(registry, weak)
        error = wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"],
                         what="the gate refusal")
        assert "f1_score = 0.5 is below the minimum 0.8" in error["error"]
        assert served_instance(base) == "v1"
    with running(make_server(registry, policy, ignore_gates=True)) as base:
        info = call(base, "/model/info")[2]
        assert info["instance"] == weak and info["overrides"]["ignore_gates"] is True
        assert info["gates"]["passed"] is False


def test_refuses_to_start_on_an_unset_alias_or_a_failing_instance(registry, policy, tmp_path):
    register_toy(registry, tmp_path, "prod", 2.0)
    with pytest.raises(ServeRefused, match=r"alias @production is not set .*--allow-unset"):
        make_server(registry, policy).start(follow=False)
    weak = register_toy(registry, tmp_path, "prod", 2.0, f1="0.1")
    move(registry, weak)
    with pytest.raises(ServeRefused, match=r"will not serve toy_model v2 .*f1_score = 0.1"):
        make_server(registry, policy).start(follow=False)
    missing = register_toy(registry, tmp_path, "prod", 2.0, missing_file=True)
    move(registry, missing)
    with pytest.raises(ServeRefused, match="FileNotFoundError"):
        make_server(registry, policy).start(follow=False)


def test_started_unready_it_serves_once_the_alias_is_set(registry, policy, tmp_path):
    v1 = register_toy(registry, tmp_path, "prod", 2.0)
    with running(make_server(registry, policy, allow_unset=True)) as base:
        status, headers, body = call(base, "/ready")
        assert status == 503 and header(headers) == "none" and "production" in body["reason"]
        assert call(base, "/predict", {"rows": ROWS})[0] == 503
        assert call(base, "/health")[0] == 200
        assert call(base, "/model/info")[2]["overrides"]["allow_unset"] is True
        move(registry, v1)
        wait_for(lambda: call(base, "/ready")[0] == 200, what="readiness")


def test_an_unset_alias_keeps_the_model_and_says_so(registry, policy, tmp_path):
    v1 = register_toy(registry, tmp_path, "prod", 2.0)
    move(registry, v1)
    with running(make_server(registry, policy)) as base:
        registry.unset_alias(SCOPE, "production", by=USER, reason="incident")
        error = wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"],
                         what="the unset to be reported")
        assert error["outcome"] == "kept" and "unset; still serving v1" in error["error"]
        assert call(base, "/predict", {"rows": ROWS})[2]["instance"] == "v1"


class _WithoutProbe:
    """A registry backend that offers no change probe (as a remote service may not)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name == "change_probe":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_without_a_change_probe_the_alias_itself_is_looked_up(registry, policy, tmp_path,
                                                              monkeypatch):
    monkeypatch.setattr("flowpolicy.serve.server.ALIAS_POLL_INTERVAL_S", 0.1)
    v1 = register_toy(registry, tmp_path, "prod", 2.0)
    move(registry, v1)
    with running(make_server(_WithoutProbe(registry), policy)) as base:
        assert "@production looked up every 0.1s" in call(base, "/model/info")[2]["follows"]
        move(registry, register_toy(registry, tmp_path, "prod", 3.0))
        wait_for(lambda: served_instance(base) == "v2", what="v2")


def test_notify_wakes_the_follower_at_once(registry, policy, tmp_path, monkeypatch):
    monkeypatch.setattr("flowpolicy.serve.server.ALIAS_POLL_INTERVAL_S", 3600.0)
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    server = make_server(_WithoutProbe(registry), policy)
    with running(server) as base:
        move(registry, register_toy(registry, tmp_path, "prod", 3.0))
        server.notify({"name": "alias_moved", "to": "v2"})  # what an event bus would call
        wait_for(lambda: served_instance(base) == "v2", what="v2")
        assert call(base, "/model/info")[2]["reloads"][-1]["trigger"] == "event"


@pytest.mark.parametrize("raw, status, message", [
    (b"{not json", 422, "not JSON"),
    (b'{"rows": []}', 422, "non-empty list"),
    (b'{"rows": [1, 2]}', 422, "JSON object"),
    (json.dumps({"rows": [{"x": 1}] * (MAX_ROWS + 1)}).encode(), 422, f"at most {MAX_ROWS}"),
    (b'{"rows": [{"y": 1}]}', 422, "could not predict these rows: KeyError"),
])
def test_bad_predict_requests_are_answered_with_the_reason(registry, policy, tmp_path, raw,
                                                           status, message):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    with running(make_server(registry, policy)) as base:
        got, headers, body = call(base, "/predict", raw=raw)
        assert got == status and message in body["error"]
        assert header(headers) == "serve_demo/prod/toy_model/v1"


def test_an_oversized_body_is_refused_unread(registry, policy, tmp_path, monkeypatch):
    import flowpolicy.serve.app as app_module

    monkeypatch.setattr(app_module, "MAX_BODY_BYTES", 1000)
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    with running(make_server(registry, policy)) as base:
        status, _, body = call(base, "/predict", {"rows": [{"x": 1.0}] * 200})
        assert status == 413 and "over 1000 bytes" in body["error"]


def test_the_probe_file_is_used_at_the_first_swap(registry, policy, tmp_path):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    garbled = register_toy(registry, tmp_path, "prod", "boom")
    server = make_server(registry, policy, probe_rows=({"x": 1.5},))
    with running(server) as base:
        assert call(base, "/model/info")[2]["probed_rows"] == 1
        move(registry, garbled)  # no request served yet: the probe file's rows catch it
        wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"], what="refusal")
        assert served_instance(base) == "v1"


def test_evidence_is_gathered_along_the_promotion_chain(registry, policy, tmp_path):
    from flowpolicy.runtime.promote import promote_assets

    dev = Scope("serve_demo", "dev", "model", "toy_model")
    v1 = register_toy(registry, tmp_path, "dev", 2.0)
    registry.add_evidence(dev, v1, kind="gate", rule="quality", passed=True,
                          policy_hash=policy.hash, details={}, created_by=USER)
    promote_assets("serve_demo", "dev", "prod", kinds=["models"], asset="toy_model",
                   instance=v1, alias="production", registry=registry)
    with running(make_server(registry, policy)) as base:
        evidence = call(base, "/model/info")[2]["evidence"]
        assert [(e["branch"], e["instance"], e["kind"]) for e in evidence] == [
            ("dev", "v1", "gate")]


def test_refusal_messages_name_what_exists(tmp_path):
    registry = open_registry(f"sqlite:///{Path(tmp_path) / 'r.db'}")
    register_toy(registry, tmp_path, "prod", 2.0)
    registry.set_alias(SCOPE, "candidate", "v1", by=USER)
    with pytest.raises(ServeRefused, match=r"aliases there: @candidate→v1"):
        make_server(registry, load_policy_text(POLICY)).start(follow=False)


class _FlakyProbe:
    """A change probe that fails the follower's first looks (a registry busy past its
    timeout); the look at start succeeds."""

    def __init__(self, inner, failures: int):
        self._inner, self._failures, self._calls = inner, failures, 0

    def __call__(self):
        self._calls += 1
        if self._calls > 1 and self._failures > 0:
            self._failures -= 1
            raise RuntimeError("database is locked")
        return self._inner()

    def close(self):
        self._inner.close()


class _WithFlakyProbe(_WithoutProbe):
    def __getattr__(self, name):
        if name == "change_probe":
            return lambda: _FlakyProbe(self._inner.change_probe(), failures=3)
        return getattr(self._inner, name)


def test_the_follower_outlives_a_failing_look(registry, policy, tmp_path):
    move(registry, register_toy(registry, tmp_path, "prod", 2.0))
    with running(make_server(_WithFlakyProbe(registry), policy)) as base:
        error = wait_for(lambda: call(base, "/model/info")[2]["last_reload_error"],
                         what="the failed look to be recorded")
        assert error["outcome"] == "failed" and "database is locked" in error["error"]
        move(registry, register_toy(registry, tmp_path, "prod", 3.0))
        wait_for(lambda: served_instance(base) == "v2", what="v2 after the failures")
