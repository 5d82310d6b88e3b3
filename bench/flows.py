"""Wall and CPU time of each generated flow against an equivalent hand-written flow, and
what the decision card costs.

    python bench/flows.py [--repeat 5] [--blank]

Builds a scratch copy of the fraud example (compiled policy, two trained models, gates run
so promotion has evidence), then runs every generated flow, its hand-written twin from
bench/handwritten/ (same steps, same registry reads and writes, decisions inlined, no
evidence records, policy tag or card) and the generated flow without its ``@card`` line,
``--repeat`` times each, rotating which goes first (``--blank``: and with Metaflow's blank card
instead of flowpolicy's card template). Prints, per flow, the best and the median
wall time, and the best CPU time (user + system of the run and every process it starts,
Metaflow's card renderer included: less disturbed than wall time by a busy machine); the
ratios generated / hand-written (target <= 1.1) and generated / generated without the card;
and each pair's line counts (target: generated <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import resource
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


def run(project: Path, env: dict[str, str], script: str, *args: str) -> tuple[float, float]:
    """Run a flow; returns its wall time and the CPU time of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--quiet", "run", *args], cwd=project,
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


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


def variant(project: Path, generated: str, suffix: str, card: str) -> str:
    """A copy of a generated flow beside it whose ``@card`` line is ``card`` (nothing when
    empty): the same flow with another card, or none."""
    source = project / generated
    lines = source.read_text().splitlines(keepends=True)
    copy = source.with_name(f"{source.stem}_{suffix}.py")
    copy.write_text("".join(
        (line[: len(line) - len(line.lstrip())] + card + "\n" if card else "")
        if line.lstrip().startswith("@card(") else line for line in lines))
    return str(copy.relative_to(project))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blank", action="store_true",
                        help="also run each generated flow with Metaflow's blank card instead")
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

        # variant -> flow -> script
        scripts = {"generated": {name: generated for name, generated, _, _ in PAIRS},
                   "hand": {name: hand for name, _, hand, _ in PAIRS},
                   "no card": {name: variant(project, generated, "without_card", "")
                               for name, generated, _, _ in PAIRS}}
        if args.blank:
            scripts["blank card"] = {
                name: variant(project, generated, "blank_card",
                              '@card(type="blank", id="decision")')
                for name, generated, _, _ in PAIRS}
        #: variant -> flow -> [(wall, cpu), ...]
        times: dict[str, dict[str, list[tuple[float, float]]]] = {
            kind: {name: [] for name, *_ in PAIRS} for kind in scripts}
        kinds = list(scripts)
        for round_ in range(args.repeat):
            shift = round_ % len(kinds)
            for name, *_, flow_args in PAIRS:
                for kind in kinds[shift:] + kinds[:shift]:
                    times[kind][name].append(run(project, env, scripts[kind][name], *flow_args))
    report(times, args.repeat)


def report(times: dict[str, dict[str, list[tuple[float, float]]]], repeat: int) -> None:
    # Best of N, as timeit reports: on a shared machine noise only ever adds time, so the
    # fastest run of each flow is the closest to its cost. Medians are printed alongside.
    kinds = list(times)
    ratios = [("generated", "hand"), ("generated", "no card")]
    if "blank card" in times:
        ratios.append(("blank card", "no card"))
    print(f"{repeat} runs each, seconds: best wall (median wall) best CPU; ratios wall, CPU")
    print(f"{'flow':<14}" + "".join(f"{kind:>24}" for kind in kinds)
          + "".join(f"{f'{top}/{bottom}':>22}" for top, bottom in ratios))
    totals = {kind: [0.0, 0.0] for kind in kinds}
    for name in times["generated"]:
        best, cells = {}, []
        for kind in kinds:
            samples = times[kind][name]
            wall, cpu = min(w for w, _ in samples), min(c for _, c in samples)
            totals[kind][0] += wall
            totals[kind][1] += cpu
            best[kind] = (wall, cpu)
            cells.append(f"{wall:>9.2f} ({statistics.median(w for w, _ in samples):5.2f})"
                         f"{cpu:>8.2f}")
        print(f"{name:<14}{''.join(cells)}"
              + "".join(_ratios(best[top], best[bottom]) for top, bottom in ratios))
    print(f"{'all':<14}" + "".join(f"{wall:>9.2f}{'':>7}{cpu:>8.2f}"
                                   for wall, cpu in totals.values())
          + "".join(_ratios(totals[top], totals[bottom]) for top, bottom in ratios))
    (gen_wall, gen_cpu), (hand_wall, _) = totals["generated"], totals["hand"]
    bare_wall, bare_cpu = totals["no card"]
    ratio = gen_wall / hand_wall
    print(f"generated / hand-written, wall: {ratio:.2f} (target <= 1.10: "
          f"{'met' if ratio <= 1.1 else 'NOT met'}); without the card {bare_wall / hand_wall:.2f}."
          f" The card adds {gen_wall - bare_wall:.2f}s wall, {gen_cpu - bare_cpu:.2f}s CPU "
          f"over the {len(times['generated'])} flows.")


def _ratios(top: list[float] | tuple[float, float], bottom: list[float] | tuple[float, float]
            ) -> str:
    return f"{top[0] / bottom[0]:>16.2f}{top[1] / bottom[1]:>6.2f}"


if __name__ == "__main__":
    main()
