"""What ``flowpolicy dispatch`` adds: latency from event to flow, and to a run's wall time.

    python bench/dispatch.py [--events 50] [--runs 7]

One scratch project with a generated quality gate (a real Metaflow flow) and a probe
(``probe.py``: a Python process whose first statement notes the time), and one
``flowpolicy dispatch --follow`` running on its registry, as a user would run it.

- **Latency**: ``--events`` times, an event is published and the probe it triggers notes
  when its process started executing; latency = that moment - the event's ``created_at``
  (taken inside the publishing transaction, so this is an upper bound). Baseline, in the
  same run: the probe started by hand, ``Popen()`` -> its first statement (the start cost
  every process pays). Prints median and p99 of both, and the dispatcher's own share.
  Target: under 100 ms added.
- **Wall time**: ``--runs`` times each, alternating, the gate judging a new instance: by hand
  (``python flows/quality_gate.py run --instance vN``: ``Popen()`` -> exit) and dispatched
  (the instance registered -> its dispatch recorded finished). Prints the medians and their
  ratio. Target: under 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

POLICY = """\
version: 1
project: bench
assets:
  bench_model: {type: model}
branches: [dev]
gates:
  quality: {asset: bench_model, checks: [{metric: f1_score, min: 0.8}], on_pass: judged}
triggers:
  - flow: probe.py
    event: ping
    parameters: {seq: seq}
compile: {output_dir: ../flows}
"""

#: The first thing it does is note the time: the moment its process began executing.
PROBE = """\
import os, sys, time
now = time.time()
seq = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--seq="))
with open(os.environ["PROBE_LOG"], "a") as log:
    log.write(f"{seq} {now!r}\\n")
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def epoch(created_at: str) -> float:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from flowpolicy.compile import write_outputs
    from flowpolicy.demo import flow_environment
    from flowpolicy.policy.loader import load_policy
    from flowpolicy.registry import EntityRef
    from flowpolicy.registry.sqlite import SQLiteRegistry

    with tempfile.TemporaryDirectory(prefix="flowpolicy-bench-dispatch-") as tmp:
        scratch = Path(tmp)
        project = scratch / "bench"
        (project / "policies").mkdir(parents=True)
        (project / "obproject.toml").write_text('project = "bench"\n')
        (project / "policies" / "bench.yaml").write_text(POLICY)
        (project / "probe.py").write_text(PROBE)
        write_outputs(load_policy(project / "policies" / "bench.yaml"))
        probe_log = scratch / "probe.log"
        env = {**flow_environment(scratch, f"sqlite:///{scratch / 'registry.db'}",
                                  user=os.environ.get("METAFLOW_USER", "bench"), branch="dev"),
               "PROBE_LOG": str(probe_log)}
        registry = SQLiteRegistry(scratch / "registry.db")
        me = EntityRef("user", "bench")
        registry.publish_event("bench", "dev", "warm_up", None, me)  # the file exists now
        follower = subprocess.Popen(
            [sys.executable, "-m", "flowpolicy", "dispatch", "--follow", "--for", "3600"],
            cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # measure from a dispatcher that is up: the first start waits for it to be
            registry.publish_event("bench", "dev", "ping", {"seq": "warm"}, me)
            wait_for(lambda: _probe_times(probe_log).get("warm"), 120, "the dispatcher")
            latency(registry, me, project, env, probe_log, args.events)
            wall_time(registry, me, project, env, args.runs)
        finally:
            follower.terminate()
            follower.wait(timeout=60)


def _probe_times(probe_log: Path) -> dict[str, float]:
    if not probe_log.exists():
        return {}
    return {seq: float(t) for seq, t in (line.split() for line in
                                         probe_log.read_text().splitlines())}


def latency(registry, me, project: Path, env, probe_log: Path, count: int) -> None:
    by_hand, dispatched = [], []
    for index in range(count):
        began = time.time()
        subprocess.run([sys.executable, "probe.py", f"--seq=hand{index}"], cwd=project,
                       env=env, check=True)
        by_hand.append(_probe_times(probe_log)[f"hand{index}"] - began)
        event = registry.publish_event("bench", "dev", "ping", {"seq": f"ev{index}"}, me)
        started = wait_for(lambda i=index: _probe_times(probe_log).get(f"ev{i}"), 60,
                           f"the probe of event {event.id}")
        dispatched.append(started - epoch(event.created_at))
    hand_ms = [1000 * v for v in by_hand]
    event_ms = [1000 * v for v in dispatched]
    added = statistics.median(event_ms) - statistics.median(hand_ms)
    print(f"latency over {count} events: event committed -> flow process started")
    print(f"  dispatched  median {statistics.median(event_ms):7.1f} ms   "
          f"p99 {percentile(event_ms, 0.99):7.1f} ms")
    print(f"  by hand     median {statistics.median(hand_ms):7.1f} ms   "
          f"p99 {percentile(hand_ms, 0.99):7.1f} ms   (Popen -> first statement)")
    print(f"  added by the dispatcher: median {added:.1f} ms, p99 "
          f"{percentile(event_ms, 0.99) - percentile(hand_ms, 0.99):.1f} ms "
          f"({'met' if added < 100 else 'NOT met'}: target < 100 ms)\n")


def wall_time(registry, me, project: Path, env, runs: int) -> None:
    from flowpolicy.registry import Scope

    scope = Scope("bench", "dev", "model", "bench_model")
    by_hand, dispatched, steps = [], [], []
    for index in range(runs):
        for mode in (("hand", "dispatch") if index % 2 == 0 else ("dispatch", "hand")):
            if mode == "hand":
                # the new instance starts the dispatched gate too: let it finish first, so the
                # hand run has the machine to itself
                record = registry.register(scope, kind="artifact", created_by=me,
                                           annotations={"f1_score": 0.9})
                wait_for(lambda r=record: _finished(registry, r.id), 600,
                         f"the dispatched gate of {record.id}")
                began = time.perf_counter()
                subprocess.run([sys.executable, "flows/quality_gate.py", "--quiet", "run",
                                f"--instance={record.id}"], cwd=project, env=env, check=True,
                               capture_output=True)
                by_hand.append(time.perf_counter() - began)
            else:
                record = registry.register(scope, kind="artifact", created_by=me,
                                           annotations={"f1_score": 0.9})
                event = next(e for e in registry.events(name="model.bench_model.new_instance")
                             if e.payload["instance"] == record.id)
                done = wait_for(lambda r=record: _finished(registry, r.id), 600,
                                f"the dispatched gate of {record.id}")
                dispatched.append(epoch(done.finished_at) - epoch(event.created_at))
                steps.append((epoch(done.claimed_at) - epoch(event.created_at),
                              epoch(done.started_at) - epoch(done.claimed_at),
                              epoch(done.finished_at) - epoch(done.started_at)))
    hand, sent = statistics.median(by_hand), statistics.median(dispatched)
    print(f"wall time of the gate flow over {runs} runs each (alternating)")
    print(f"  by hand     median {hand:6.2f} s  (Popen -> exit)")
    print(f"  dispatched  median {sent:6.2f} s  (event committed -> run recorded finished)")
    claim, start, run = (statistics.median(column) for column in zip(*steps, strict=True))
    print(f"    of which  event -> claimed {1000 * claim:.1f} ms, claimed -> started "
          f"{1000 * start:.1f} ms, started -> finished {run:.2f} s")
    print(f"  ratio {sent / hand:.3f} ({'met' if sent / hand < 1.10 else 'NOT met'}: "
          "target < 1.10)")


def _finished(registry, instance: str):
    for record in registry.dispatches(state="finished"):
        if record.flow == "flows/quality_gate.py" and f"--instance={instance}" in record.argv:
            return record
    return None


if __name__ == "__main__":
    main()
