"""Benchmark ``flowpolicy report``: generation time and page size at 1k and 10k instances.

A synthetic registry per size, filled through the registry Protocol the way the flows fill
it: on dev, models with a gate verdict each (a quarter of them failing) and a promotion
decision for every fifth, features with a drift check each; on staging, promoted models with
a gate verdict, a champion decision and alias moves; on prod, the production alias; events
for every verdict. The baseline, measured in the same run, makes the same Protocol calls the
report makes (every asset, instance, alias, alias move, evidence record and event) and
builds nothing: the ratio is what rendering the page adds to reading the registry.

    python bench/report.py                 # 1k and 10k instances, best of 3 (about a minute)
    python bench/report.py --sizes 1000    # a quick run
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from flowpolicy.fileio import atomic_write
from flowpolicy.registry import EntityRef, Scope, open_registry
from flowpolicy.report import build_report

PROJECT = "bench"
FLOW = EntityRef("task", "QualityGateFlow/1/evaluate/2")
COLUMNS = [f"column_{i}" for i in range(12)]


def populate(url: str, instances: int, seed: int = 7) -> None:
    """Fill a new registry at ``url`` with about ``instances`` instances (see above)."""
    rng = random.Random(seed)
    registry = open_registry(url)
    models, features = int(instances * 0.6), int(instances * 0.3)
    promoted = instances - models - features
    dev_model = Scope(PROJECT, "dev", "model", "fraud_model")
    dev_data = Scope(PROJECT, "dev", "data", "fraud_features")
    staging = Scope(PROJECT, "staging", "model", "fraud_model")
    prod = Scope(PROJECT, "prod", "model", "fraud_model")
    for _ in range(models):
        f1 = rng.uniform(0.7, 0.95)
        record = registry.register(dev_model, kind="artifact", created_by=FLOW,
                                   annotations={"f1_score": f1, "latency_ms": rng.uniform(5, 60),
                                                "training_run_id": rng.randrange(10**9)})
        _gate(registry, dev_model, record.id, f1)
        if record.version % 5 == 0:
            registry.add_evidence(
                dev_model, record.id, kind="promotion", rule="dev->staging", passed=f1 >= 0.8,
                policy_hash="0" * 64, created_by=FLOW,
                details={"source": "dev", "target": "staging", "allowed": f1 >= 0.8,
                         "reasons": [] if f1 >= 0.8 else ["gate quality failed"],
                         "satisfied": ["gate quality passed"] if f1 >= 0.8 else []})
    for _ in range(features):
        record = registry.register(dev_data, kind="artifact", created_by=FLOW,
                                   annotations={"n_rows": 20000, "source": "synthetic"})
        if record.version > 1:
            statistics = {c: rng.uniform(0, 0.2) for c in COLUMNS}
            worst = max(statistics, key=statistics.get)
            top = statistics[worst]
            level = "high" if top >= 0.1 else "elevated" if top >= 0.05 else "normal"
            registry.add_evidence(
                dev_data, record.id, kind="drift", rule="ks", passed=level == "normal",
                policy_hash="0" * 64, created_by=FLOW,
                details={"current": record.id, "reference": f"v{record.version - 1}",
                         "statistics": statistics, "max_statistic": top,
                         "worst_column": worst, "level": level})
            registry.publish_event(PROJECT, "dev", "drift_checked", {"level": level}, FLOW)
    champion_value = None
    for _ in range(promoted):
        f1 = rng.uniform(0.8, 0.97)
        record = registry.register(staging, kind="artifact", created_by=FLOW,
                                   annotations={"f1_score": f1})
        registry.set_alias(staging, "candidate", record.id, by=FLOW, reason="promoted")
        _gate(registry, staging, record.id, f1)
        wins = champion_value is None or f1 - champion_value >= 0.02
        registry.add_evidence(
            staging, record.id, kind="champion", rule="champion", passed=wins,
            policy_hash="0" * 64, created_by=FLOW,
            details={"metric": "f1_score", "candidate_value": f1,
                     "champion_value": champion_value, "promote": wins,
                     "champion_after": record.id if wins else "v?"})
        if wins:
            champion_value = f1
            registry.set_alias(staging, "champion", record.id, by=FLOW, reason="wins")
            production = registry.register(prod, kind="artifact", created_by=FLOW,
                                           annotations={"f1_score": f1})
            registry.set_alias(prod, "production", production.id, by=FLOW, reason="promoted")


def _gate(registry, scope: Scope, instance: str, f1: float) -> None:
    passed = f1 >= 0.8
    registry.add_evidence(
        scope, instance, kind="gate", rule="quality", passed=passed, policy_hash="0" * 64,
        created_by=FLOW,
        details={"checks": [{"metric": "f1_score", "value": f1, "min": 0.8, "max": None,
                             "passed": passed}],
                 "reason": "ok" if passed else f"f1_score = {f1:.4f} is below the minimum 0.8"})
    registry.publish_event(PROJECT, scope.branch, "promote_model" if passed else
                           "quality_gate_failed", {"instance": instance}, FLOW)


def read_everything(registry) -> int:
    """The baseline: the report's registry calls, building nothing. Returns records read."""
    count = 0
    for summary in registry.assets(PROJECT):
        scope = summary.scope
        for instance in registry.instances(scope, None):
            count += 1 + len(registry.evidence(scope, instance.id))
        count += len(registry.aliases(scope)) + len(registry.alias_history(scope))
    return count + len(registry.events(PROJECT))


def write_page(registry, output: Path) -> int:
    """What ``flowpolicy report`` does after opening the registry; returns the page size."""
    _, page = build_report(registry, PROJECT)
    atomic_write(output, page)
    return len(page.encode("utf-8"))


def best(seconds: list[float]) -> float:
    return min(seconds)  # other processes only ever add time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            url = f"sqlite:///{Path(folder) / f'registry-{size}.db'}"
            began = time.perf_counter()
            populate(url, size)
            filled = time.perf_counter() - began
            registry = open_registry(url, read_only=True)
            output = Path(folder) / f"report-{size}.html"
            reading, reporting = [], []
            records = page_size = 0
            for _ in range(args.repeat):  # interleaved, so a burst of load hits both
                start = time.perf_counter()
                records = read_everything(registry)
                reading.append(time.perf_counter() - start)
                start = time.perf_counter()
                page_size = write_page(registry, output)
                reporting.append(time.perf_counter() - start)
            instances = sum(s.latest_version for s in registry.assets(PROJECT))
            print(f"{instances:>6,} instances ({records:,} records; filled in {filled:.1f}s): "
                  f"report {best(reporting):.3f}s, {page_size / 1024:,.0f} KiB; "
                  f"reading the same records {best(reading):.3f}s; "
                  f"ratio {best(reporting) / best(reading):.2f}x (best of {args.repeat})")


if __name__ == "__main__":
    main()
