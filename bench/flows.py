"""Wall time of each generated flow against an equivalent hand-written flow.

    python bench/flows.py [--repeat 5]

Builds a scratch copy of the fraud example (compiled policy, two trained models, gates run
so promotion has evidence), then runs every generated flow and its hand-written twin from
bench/handwritten/ (same steps, same registry reads and writes, decisions inlined, no
evidence records or policy tag) ``--repeat`` times each, rotating which goes first, and
the generated flow once more without its ``@card`` line: what the decision card costs.
Prints the best and the median wall time per flow, the ratio generated / hand-written of the
best times (target <= 1.1), the card's cost (generated / generated without the card), and
each pair's line counts (target: generated <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS = (
    ("quality gate", "flows/quality_gate.py", "handwritten/quality_gate.py",
     ("--instance", "v2")),
    ("champion", "flows/fraud_model_champion.py", "handwritten/champion.py",
     ("--candidate", "v2")),
    ("promotion", "flows/fraud_model_promotion.py", "handwritten/promotion.py",
     ("--source", "dev", "--target", "staging", "--instance", "v2")),
    ("drift", "flows/fraud_features_drift.py", "handwritten/drift.py",
     ("--current", "v2", "--reference", "v1")),
)


def run(project: Path, env: dict[str, str], script: str, *args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--quiet", "run", *args], cwd=project,
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def line_counts(project: Path) -> None:
    """Lines of each generated flow against its hand-written twin."""
    print(f"{'flow':<14}{'generated':>10}{'hand':>6}{'ratio':>7}  lines (target <= 1.50)")
    worst = 0.0
    for name, generated, hand, _ in PAIRS:
        g = len((project / generated).read_text().splitlines())
        h = len((HERE / hand).read_text().splitlines())
        worst = max(worst, g / h)
        print(f"{name:<14}{g:>10}{h:>6}{g / h:>7.2f}")
    print(f"{'worst':<14}{'':>16}{worst:>7.2f}  {'met' if worst <= 1.5 else 'NOT met'}\n")


def without_card(project: Path, generated: str) -> str:
    """A copy of a generated flow without its ``@card`` decorator, beside it."""
    source = project / generated
    lines = source.read_text().splitlines(keepends=True)
    copy = source.with_name(f"{source.stem}_without_card.py")
    copy.write_text("".join(line for line in lines if not line.lstrip().startswith("@card(")))
    return str(copy.relative_to(project))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from flowpolicy.demo import PROJECT, copy_example, flow_environment

    with tempfile.TemporaryDirectory(prefix="flowpolicy-bench-") as tmp:
        scratch = Path(tmp)
        project = scratch / PROJECT
        copy_example(project)
        line_counts(project)
        shutil.copytree(HERE / "handwritten", project / "handwritten")
        env = flow_environment(scratch, f"sqlite:///{scratch / 'registry.db'}",
                               user=os.environ.get("METAFLOW_USER", "bench"), branch="dev")
        for seed in ("7", "8"):
            run(project, env, "train_flow.py", "--seed", seed)
        for instance in ("v1", "v2"):
            run(project, env, "flows/quality_gate.py", "--instance", instance)

        no_card = {name: without_card(project, generated) for name, generated, _, _ in PAIRS}
        times: dict[str, tuple[list[float], ...]] = {p[0]: ([], [], []) for p in PAIRS}
        for round_ in range(args.repeat):
            for name, generated, hand, flow_args in PAIRS:
                order = [(0, generated), (1, hand), (2, no_card[name])]
                shift = round_ % len(order)
                for slot, script in order[shift:] + order[:shift]:
                    times[name][slot].append(run(project, env, script, *flow_args))

    # Best of N, as timeit reports: on a shared machine noise only ever adds time, so the
    # fastest run of each flow is the closest to its cost. Medians are printed alongside.
    print(f"{args.repeat} runs each, wall seconds: best (median)")
    print(f"{'flow':<14}{'generated':>16}{'hand':>16}{'ratio':>8}{'(median)':>10}"
          f"{'no card':>16}{'card cost':>11}")
    best_generated = best_hand = best_bare = 0.0
    for name, (generated, hand, bare) in times.items():
        g, h, b = min(generated), min(hand), min(bare)
        gm, hm, bm = (statistics.median(t) for t in (generated, hand, bare))
        best_generated += g
        best_hand += h
        best_bare += b
        print(f"{name:<14}{g:>8.2f} ({gm:5.2f}){h:>8.2f} ({hm:5.2f}){g / h:>8.2f}"
              f"{gm / hm:>10.2f}{b:>8.2f} ({bm:5.2f}){g / b:>11.2f}")
    ratio = best_generated / best_hand
    print(f"{'all':<14}{best_generated:>16.2f}{best_hand:>16.2f}{ratio:>8.2f}{'':>10}"
          f"{best_bare:>16.2f}{best_generated / best_bare:>11.2f}")
    print(f"generated / hand-written target <= 1.10: {'met' if ratio <= 1.1 else 'NOT met'}; "
          f"without cards {best_bare / best_hand:.2f}")

if __name__ == "__main__":
    main()
