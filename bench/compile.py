"""Validate + compile a generated 1,000-asset policy; compare with yaml.safe_load of it.

    python bench/compile.py [--assets 1000] [--repeat 5]

The policy has N/2 model assets (each with a two-check gate, a champion rule and its own
dev -> staging edge; one staging -> prod edge requires the champion for all of them) and
N/2 data assets (each but the report asset with a drift rule), so it compiles to about
2 N flows. Prints the best of ``--repeat`` timings of each phase and the ratio of
validate + compile to plain ``yaml.safe_load`` of the same file, measured in the same run.

Writing the flows into a new folder (``write_outputs``: temporary files, fsync, rename) is
timed against plain ``Path.write_text`` of the same files (no durability, not atomic), and
against atomic writes done one file at a time (each synced on its own).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml


def policy_text(n_assets: int) -> str:
    models = [f"model_{i:04d}" for i in range(n_assets // 2)]
    datasets = [f"features_{i:04d}" for i in range(n_assets - len(models) - 1)]
    doc = {
        "version": 1,
        "project": "bench_project",
        "assets": {
            **{m: {"type": "model", "required_annotations": ["f1_score"]} for m in models},
            **{d: {"type": "data"} for d in datasets},
            "drift_reports": {"type": "data"},
        },
        "branches": ["dev", "staging", "prod"],
        "gates": {
            f"gate_{m}": {
                "asset": m,
                "checks": [{"metric": "f1_score", "min": 0.8}, {"metric": "latency_ms", "max": 50}],
                "on_pass": "gate_passed",
                "on_fail": "gate_failed",
            }
            for m in models
        },
        "champion": {
            m: {"metric": "f1_score", "direction": "maximize", "min_improvement": 0.01}
            for m in models
        },
        "promotion": [
            *({"from": "dev", "to": "staging", "assets": [m], "require": [f"gate_{m}"]}
              for m in models),
            {"from": "staging", "to": "prod", "assets": models, "require": ["champion"],
             "alias": "production"},
        ],
        "drift": {
            d: {
                "statistic": "ks",
                "levels": {"normal": 0.0, "elevated": 0.05, "high": 0.1},
                "report_asset": "drift_reports",
                "events": {"high": "retrain_required"},
            }
            for d in datasets
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def best_of(repeat: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from flowpolicy.compile import compile_policy, write_outputs
    from flowpolicy.fileio import atomic_write
    from flowpolicy.policy.loader import load_policy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(policy_text(args.assets), encoding="utf-8")
        compile_policy(load_policy(path))  # warm up: template compilation, schema loading
        t_yaml, _ = best_of(args.repeat, lambda: yaml.safe_load(path.read_text()))
        t_load, policy = best_of(args.repeat, lambda: load_policy(path))
        t_compile, outputs = best_of(args.repeat, lambda: compile_policy(policy))
        policy_bytes = path.stat().st_size
        folders = iter(Path(tmp) / f"out{i}" for i in range(3 * args.repeat))

        def plain() -> None:
            folder = next(folders)
            folder.mkdir()
            for name, source in outputs.items():
                (folder / name).write_text(source, encoding="utf-8")

        def one_by_one() -> None:
            folder = next(folders)
            folder.mkdir()
            for name, source in outputs.items():
                atomic_write(folder / name, source)

        t_plain, _ = best_of(args.repeat, plain)
        t_write, _ = best_of(args.repeat, lambda: write_outputs(policy, next(folders), outputs))
        t_single, _ = best_of(args.repeat, one_by_one)
    total = t_load + t_compile
    size = sum(len(s) for s in outputs.values())
    print(f"policy: {args.assets} assets, {policy_bytes / 1e3:.0f} kB of YAML")
    print(f"yaml.safe_load             {t_yaml * 1000:9.1f} ms")
    print(f"validate (load_policy)     {t_load * 1000:9.1f} ms")
    print(f"compile ({len(outputs)} flows, {size / 1e6:.1f} MB) {t_compile * 1000:9.1f} ms "
          f"({t_compile / len(outputs) * 1e6:.0f} us per flow)")
    print(f"validate + compile         {total * 1000:9.1f} ms  target < 1000 ms: "
          f"{'met' if total < 1.0 else 'NOT met'}")
    print(f"ratio to yaml.safe_load    {total / t_yaml:9.1f}x")
    print(f"write: plain write_text    {t_plain * 1000:9.1f} ms")
    print(f"write: write_outputs       {t_write * 1000:9.1f} ms  {t_write / t_plain:.1f}x plain "
          f"({(t_write - t_plain) / len(outputs) * 1e6:.0f} us per file for atomic + durable)")
    print(f"write: atomic one by one   {t_single * 1000:9.1f} ms  {t_single / t_write:.1f}x "
          "write_outputs")


if __name__ == "__main__":
    main()
