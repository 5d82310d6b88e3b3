"""Benchmark ``flowpolicy serve``: ``POST /predict`` requests/s and p50/p99 latency on the
example's trained model, against a bare FastAPI app that calls the same model object (the
floor), measured in the same run; then p99 while the alias moves back and forth, against
the steady p99.

The set-up is real: the fraud example is copied into a scratch folder and trained twice
(Metaflow's local datastore, the SQLite registry), ``@production`` on dev points at v1, and
``flowpolicy serve`` runs as its own process with the example's loader. The floor is a
FastAPI app of a few lines, run by ``uvicorn.run`` (no access log, as serve), that calls the
function ``serving.load`` returned for v1 and answers the same JSON. Both get the same
requests (8 rows each) from ``--clients`` client processes over keep-alive connections;
rounds alternate which goes first, so a change in machine load hits both.

    python bench/serve.py                          # about a minute and a half
    python bench/serve.py --seconds 2 --rounds 1   # a quick run
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from flowpolicy.demo import copy_example, flow_environment
from flowpolicy.registry import EntityRef, Scope, open_registry

ROWS_PER_REQUEST = 8
SCOPE = Scope("fraud_detection", "dev", "model", "fraud_model")
BENCH = EntityRef("user", "bench")

FLOOR_APP = """
import json, socket, sys
sys.path.insert(0, {project!r})
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from flowpolicy import load_model
import serving

predict = load_model("fraud_model", "v1", branch="dev", datastore={root!r}, loader=serving.load)
app = FastAPI()


@app.post("/predict")
async def handler(request: Request):
    rows = json.loads(await request.body())["rows"]
    return JSONResponse({{"instance": "v1", "predictions": predict(rows).tolist()}})


with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
print("floor at http://127.0.0.1:%d" % port, flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def prepare(root: Path) -> tuple[Path, dict[str, str]]:
    """The example trained twice in ``root``; @production on dev at v1."""
    project = root / "fraud_detection"
    copy_example(project)
    env = flow_environment(root, f"sqlite:///{root / 'registry.db'}",
                           user=os.environ.get("METAFLOW_USER") or "bench", branch="dev")
    env.update(FLOWPOLICY_PROJECT="fraud_detection", PYTHONUNBUFFERED="1")
    for args in (("--seed", "7"), ("--seed", "8", "--epochs", "120")):
        subprocess.run([sys.executable, "train_flow.py", "--quiet", "run", *args], cwd=project,
                       env=env, check=True, capture_output=True, timeout=600)
    open_registry(env["FLOWPOLICY_REGISTRY"]).set_alias(SCOPE, "production", "v1", by=BENCH,
                                                         reason="bench")
    return project, env


def start(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A server process and the URL its first line names."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise SystemExit(f"{argv[:4]} did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0].rstrip(",")


def wait_ready(url: str, seconds: float = 60.0) -> None:
    """Until ``url`` answers (a server that printed its address may not listen yet)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib_open(url + "/docs"):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def client(url: str, body: bytes, seconds: float, queue) -> None:
    """Send requests one after another for ``seconds``; put (sent, latency) pairs."""
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    timings, failures = [], 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sent = time.time()
        began = time.perf_counter()
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            failures += 1
        timings.append((sent, time.perf_counter() - began))
    queue.put((timings, failures))


def load(url: str, body: bytes, seconds: float, clients: int) -> tuple[list, int]:
    """Run ``clients`` client processes against ``url`` at once; all (sent, latency) pairs."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=client, args=(url, body, seconds, queue))
               for _ in range(clients)]
    for worker in workers:
        worker.start()
    timings, failures = [], 0
    for _ in workers:
        got, failed = queue.get(timeout=seconds + 120)
        timings += got
        failures += failed
    for worker in workers:
        worker.join(30)
    return timings, failures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(timings: list, seconds: float) -> dict[str, float]:
    latencies = [latency for _, latency in timings]
    return {"rps": len(latencies) / seconds, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "n": len(latencies)}


def mover(stop: threading.Event, every: float, moves: list[float], url: str) -> None:
    """Move @production between v1 and v2 every ``every`` seconds; note when."""
    registry = open_registry(url)
    target = 2
    while not stop.wait(every):
        registry.set_alias(SCOPE, "production", f"v{target}", by=BENCH, reason="bench move")
        moves.append(time.time())
        target = 3 - target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--move-every", type=float, default=0.5,
                        help="seconds between alias moves in the reload run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flowpolicy-bench-serve-") as scratch:
        root = Path(scratch)
        began = time.perf_counter()
        project, env = prepare(root)
        print(f"set-up: example trained twice in {time.perf_counter() - began:.1f}s")
        sys.path.insert(0, str(project))
        from train_flow import FEATURES, make_transactions

        columns = make_transactions(ROWS_PER_REQUEST, 11, 0.0)
        rows = [{name: float(columns[name][i]) for name in FEATURES}
                for i in range(ROWS_PER_REQUEST)]
        body = json.dumps({"rows": rows}).encode()
        served, serve_url = start(
            [sys.executable, "-m", "flowpolicy", "serve", "fraud_model", "--branch", "dev",
             "--alias", "production", "--loader", "serving:load", "--datastore", str(root),
             "--port", "0"], project, env)
        floor, floor_url = start(
            [sys.executable, "-c", textwrap.dedent(FLOOR_APP.format(project=str(project),
                                                                     root=str(root)))],
            project, env)
        try:
            for url in (serve_url, floor_url):  # warm both up
                wait_ready(url)
                load(url, body, 1.0, 1)
            results: dict[str, list[dict[str, float]]] = {"serve": [], "floor": []}
            timings: dict[str, list] = {"serve": [], "floor": []}
            for number in range(args.rounds):
                order = (("serve", serve_url), ("floor", floor_url))
                for name, url in order if number % 2 == 0 else reversed(order):
                    got, failures = load(url, body, args.seconds, args.clients)
                    assert failures == 0, f"{failures} failed requests to {name}"
                    results[name].append(summary(got, args.seconds))
                    timings[name] += got
                print(f"round {number + 1}: " + "; ".join(
                    f"{n} {r[-1]['rps']:.0f} req/s p50 {r[-1]['p50']:.2f} ms p99 "
                    f"{r[-1]['p99']:.2f} ms" for n, r in results.items()))
            pooled = {n: summary(t, args.seconds * args.rounds) for n, t in timings.items()}
            best = {n: max(r["rps"] for r in rs) for n, rs in results.items()}
            print(f"\n/predict, {ROWS_PER_REQUEST} rows per request, {args.clients} clients, "
                  f"{args.rounds} rounds of {args.seconds:g}s")
            for name in ("floor", "serve"):
                print(f"  {name:<6} best {best[name]:7.0f} req/s   pooled p50 "
                      f"{pooled[name]['p50']:.2f} ms   p99 {pooled[name]['p99']:.2f} ms")
            paired = statistics.median(f["rps"] / s["rps"] for f, s in
                                       zip(results["floor"], results["serve"], strict=True))
            print(f"  floor / serve throughput: best {best['floor'] / best['serve']:.2f}x, "
                  f"median of the rounds' ratios {paired:.2f}x; serve / floor latency p50 "
                  f"{pooled['serve']['p50'] / pooled['floor']['p50']:.2f}x, p99 "
                  f"{pooled['serve']['p99'] / pooled['floor']['p99']:.2f}x (target within "
                  "1.3x)")

            stop, moves = threading.Event(), []
            thread = threading.Thread(target=mover, args=(stop, args.move_every, moves,
                                                          env["FLOWPOLICY_REGISTRY"]))
            thread.start()
            try:
                during, failures = load(serve_url, body, args.seconds, args.clients)
            finally:
                stop.set()
                thread.join()
            assert failures == 0, f"{failures} failed requests while the alias moved"
            with urllib_open(serve_url + "/model/info") as response:
                info = json.loads(response.read())
            swaps = [a for a in info["reloads"] if a["outcome"] == "swapped"]
            window = 0.25
            near = [latency for sent, latency in during
                    if any(0 <= sent - moved <= window for moved in moves)]
            steady_p99 = pooled["serve"]["p99"]
            moving = summary(during, args.seconds)
            near_p99 = percentile(near, 0.99) * 1000 if near else float("nan")
            print(f"\nreloads: {len(moves)} alias moves, one every {args.move_every:g}s; "
                  f"{len(swaps)} of the last {len(info['reloads'])} attempts swapped, "
                  f"load+check {statistics.median(a['load_seconds'] for a in swaps) * 1000:.1f}"
                  f" ms (median)")
            print(f"  p99 over the run {moving['p99']:.2f} ms, of the {len(near)} requests sent "
                  f"within {window * 1000:.0f} ms after a move {near_p99:.2f} ms; steady p99 "
                  f"{steady_p99:.2f} ms: {moving['p99'] / steady_p99:.2f}x and "
                  f"{near_p99 / steady_p99:.2f}x (target below 2x)")
        finally:
            for process in (served, floor):
                process.terminate()
                process.wait(30)


def urllib_open(url: str):
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)


if __name__ == "__main__":
    main()
