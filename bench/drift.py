"""Benchmark flowpolicy's drift statistics: the exact KS kernel across sizes, and sketch mode on
data larger than memory.

    python bench/drift.py sweep [--max-n 1e7] [--scipy-max 1e7] [--shapes shifted,cauchy,ties]
    python bench/drift.py sketch [--rows 1e8] [--columns 20] [--chunk-rows 100000]

``sweep``: for n = 10^5, 10^6, ... up to ``--max-n`` values per sample (``--per-decade 2``
adds the half decades) and each shape (a shifted normal, Cauchy with a small shift, Poisson
counts full of ties), it times in the same run, on the same arrays (best of ``--repeat``,
more below 10^6):

* the **sort floor** -- ``np.sort`` of both samples;
* ``flowpolicy.runtime.drift.ks_statistic(current, reference)``;
* ``scipy.stats.ks_2samp`` (skipped above ``--scipy-max`` values per sample: at 10^8 it
  takes minutes and several GB; D is then checked against the plain reference in
  ``flowpolicy.runtime.ks`` instead),

and prints time / floor and time / scipy per size. Target: <= 1.5x the floor everywhere, with
D identical to scipy's (within 1e-12). 10^8 float64 values are 800 MB per sample; the sweep
holds two samples, the floor's two sorted copies and scipy's working memory, so raise
``--max-n`` to 1e8 only on a machine with a few GB free.

``sketch``: drift of ``--rows`` rows x ``--columns`` columns, generated a chunk at a time (the
data is never held whole), in sketch mode: the reference's profile first (as registration
makes it), then the current data against it. Prints rows/s (with the time spent generating
the data left out), the peak resident memory of the process, each column's D and stated
bound, and, for one column regenerated whole in a child process, D_sketch - D_exact against
that bound.
Target: peak memory under 1 GB at 10^8 rows x 20 columns.

Exit status 1 if a D differs from its reference by more than 1e-12, or a sketch D by more
than its bound.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator

import numpy as np

from flowpolicy.policy.model import DriftLevel, DriftRule
from flowpolicy.runtime import ks
from flowpolicy.runtime.drift import evaluate_drift, ks_statistic, profile_data

SHAPES = ("shifted", "cauchy", "ties")
LEVELS = (DriftLevel("normal", 0.0), DriftLevel("elevated", 0.05), DriftLevel("high", 0.1))


def make_pair(rng: np.random.Generator, shape: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(current, reference) of ``n`` values each."""
    if shape == "shifted":
        return rng.normal(0.05, 1, n), rng.normal(0, 1, n)
    if shape == "cauchy":  # heavy tails: most values in a few percent of the range
        return rng.standard_cauchy(n) + 0.02, rng.standard_cauchy(n)
    if shape == "ties":  # few distinct values
        return rng.poisson(3.1, n).astype(np.float64), rng.poisson(3.0, n).astype(np.float64)
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def best_of(repeat: int, fn: Callable[[], float]) -> tuple[float, float]:
    """(seconds, result) of the fastest of ``repeat`` calls."""
    best, result = float("inf"), 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def scipy_statistic(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ks_2samp(a, b).statistic)


def sort_both(a: np.ndarray, b: np.ndarray) -> float:
    sorted_a, sorted_b = np.sort(a), np.sort(b)
    return float(sorted_a[0] + sorted_b[0])


def sizes(max_n: int, per_decade: int) -> list[int]:
    found, exponent = [], 5.0
    while round(10**exponent) <= max_n:
        found.append(round(10**exponent))
        exponent += 1 / per_decade
    return found


def sweep(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    warm = rng.normal(size=1000)
    ks_statistic(warm, warm[::-1])
    print(f"KS statistic per sample size (numpy {np.__version__}, best of {args.repeat}; "
          f"scipy up to {args.scipy_max:,} values per sample)")
    header = (f"{'n per sample':>13} {'shape':<8}{'D':>11}{'|dD|':>9}{'floor ms':>10}"
              f"{'ks ms':>10}{'scipy ms':>10}{'ks/floor':>9}{'scipy/ks':>9}")
    print(header)
    print("-" * len(header))
    worst_ratio, worst_diff = 0.0, 0.0
    for n in sizes(int(args.max_n), args.per_decade):
        for shape in args.shapes.split(","):
            current, reference = make_pair(rng, shape, n)
            # Small sizes take a millisecond: more tries, so a noisy neighbour matters less.
            repeat = max(args.repeat, min(30, 3_000_000 // n))
            t_floor, _ = best_of(repeat, lambda c=current, r=reference: sort_both(c, r))
            t_ks, d = best_of(repeat, lambda c=current, r=reference: ks_statistic(c, r))
            if n <= args.scipy_max:
                t_scipy, d_ref = best_of(
                    args.repeat, lambda c=current, r=reference: scipy_statistic(c, r))
                scipy_cells = f"{t_scipy * 1e3:>10.1f}"
                ratio_cell = f"{t_scipy / t_ks:>9.1f}"
            else:
                d_ref = ks.reference_max_gap(current, reference) / (n * n)
                scipy_cells, ratio_cell = f"{'skipped':>10}", f"{'-':>9}"
            diff = abs(d - d_ref)
            worst_ratio, worst_diff = max(worst_ratio, t_ks / t_floor), max(worst_diff, diff)
            print(f"{n:>13,} {shape:<8}{d:>11.7f}{diff:>9.1e}{t_floor * 1e3:>10.1f}"
                  f"{t_ks * 1e3:>10.1f}{scipy_cells}{t_ks / t_floor:>9.2f}{ratio_cell}",
                  flush=True)
            del current, reference
    print("-" * len(header))
    print(f"worst ks/floor {worst_ratio:.2f} (target <= 1.5); max |D - reference| "
          f"{worst_diff:.1e} ({'identical within 1e-12' if worst_diff <= 1e-12 else 'MISMATCH'};"
          " reference: scipy where it ran, else flowpolicy.runtime.ks.reference_max_gap)")
    return 0 if worst_diff <= 1e-12 else 1


# -- sketch mode ---------------------------------------------------------------------------


def column_values(column: int, chunk: int, side: str, rows: int, seed: int) -> np.ndarray:
    """Column ``column`` of chunk ``chunk`` of the ``side`` data: the same values every time it
    is asked for, so a column can be regenerated for checking."""
    rng = np.random.default_rng([seed, column, chunk, side == "current"])
    shift = 0.04 * (column % 5) if side == "current" else 0.0
    kind = column % 4
    if kind == 0:
        return rng.normal(shift, 1, rows)
    if kind == 1:
        return rng.standard_cauchy(rows) + shift
    if kind == 2:
        return rng.poisson(3 + shift, rows).astype(np.float64)
    return rng.lognormal(shift, 1, rows)


class Generated:
    """Chunks of generated columns; ``seconds`` is the time spent generating them."""

    def __init__(self, side: str, args: argparse.Namespace):
        self.side, self.args, self.seconds = side, args, 0.0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        rows, chunk_rows = int(self.args.rows), int(self.args.chunk_rows)
        for chunk, start in enumerate(range(0, rows, chunk_rows)):
            size = min(chunk_rows, rows - start)
            began = time.perf_counter()
            part = {f"c{c:02d}": column_values(c, chunk, self.side, size, self.args.seed)
                    for c in range(self.args.columns)}
            self.seconds += time.perf_counter() - began
            yield part


def whole_column(column: int, side: str, args: argparse.Namespace) -> np.ndarray:
    rows, chunk_rows = int(args.rows), int(args.chunk_rows)
    return np.concatenate([column_values(column, chunk, side, min(chunk_rows, rows - start),
                                         args.seed)
                           for chunk, start in enumerate(range(0, rows, chunk_rows))])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sketch(args: argparse.Namespace) -> int:
    rows = int(args.rows)
    print(f"sketch-mode drift: {rows:,} rows x {args.columns} columns per side, generated "
          f"{int(args.chunk_rows):,} rows at a time (numpy {np.__version__})")
    reference = Generated("reference", args)
    began = time.perf_counter()
    profile = profile_data(reference, chunk_rows=int(args.chunk_rows))
    t_reference = time.perf_counter() - began - reference.seconds
    current = Generated("current", args)
    rule = DriftRule(asset="bench", levels=LEVELS, mode="sketch")
    began = time.perf_counter()
    result = evaluate_drift(rule, current, profile, current_id="current",
                            reference_id="reference")
    t_current = time.perf_counter() - began - current.seconds
    peak = peak_rss_mb()
    print(f"reference profile: {t_reference:.1f} s ({rows / t_reference:,.0f} rows/s; "
          f"generating it took {reference.seconds:.1f} s more)")
    print(f"current vs profile: {t_current:.1f} s ({rows / t_current:,.0f} rows/s; "
          f"generating it took {current.seconds:.1f} s more)")
    print(f"peak resident memory: {peak:,.0f} MB (target < 1,024 MB; the data would be "
          f"{2 * rows * args.columns * 8 / 1e9:,.1f} GB)")
    print(f"level {result.level} (range {result.level_range[0]}..{result.level_range[1]}), "
          f"worst column {result.worst_column}")
    for name, column in result.columns.items():
        print(f"  {name}: D {column.value:.6f} +- {column.bound:.6f} -> {column.level}")
    status = 0
    if args.verify_column is not None:
        # In a child process, so the whole column it holds is not this process's peak.
        name = f"c{args.verify_column:02d}"
        child = subprocess.run(
            [sys.executable, __file__, "exact-column", "--rows", str(args.rows), "--chunk-rows",
             str(args.chunk_rows), "--column", str(args.verify_column), "--seed",
             str(args.seed)], capture_output=True, text=True, check=True)
        exact = float(child.stdout.split()[-1])
        column = result.columns[name]
        within = abs(column.value - exact) <= column.bound
        print(f"check {name} (regenerated whole in a child process): exact D {exact:.6f}, "
              f"|D_sketch - D_exact| = {abs(column.value - exact):.2e} <= bound "
              f"{column.bound:.2e}: {'yes' if within else 'NO'}")
        status = 0 if within else 1
    return status


def exact_column(args: argparse.Namespace) -> int:
    a = whole_column(args.column, "current", args)
    b = whole_column(args.column, "reference", args)
    print(repr(ks_statistic(a, b)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_sweep = commands.add_parser("sweep", help="exact KS against the sort floor and scipy")
    run_sweep.add_argument("--max-n", type=float, default=1e7,
                           help="largest size, values per sample (default 1e7; 1e8 needs GBs)")
    run_sweep.add_argument("--per-decade", type=int, default=1, help="sizes per decade")
    run_sweep.add_argument("--scipy-max", type=float, default=1e7,
                           help="skip scipy above this many values per sample")
    run_sweep.add_argument("--shapes", default=",".join(SHAPES))
    run_sweep.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    run_sweep.add_argument("--seed", type=int, default=0)
    run_sketch = commands.add_parser("sketch", help="sketch mode on generated chunks")
    run_sketch.add_argument("--rows", type=float, default=1e8)
    run_sketch.add_argument("--columns", type=int, default=20)
    run_sketch.add_argument("--chunk-rows", type=float, default=1e5)
    run_sketch.add_argument("--verify-column", type=int, default=1,
                            help="column to check against exact D afterwards (-1: none)")
    run_sketch.add_argument("--seed", type=int, default=0)
    run_exact = commands.add_parser("exact-column", help="exact D of one generated column")
    run_exact.add_argument("--rows", type=float, required=True)
    run_exact.add_argument("--chunk-rows", type=float, required=True)
    run_exact.add_argument("--column", type=int, required=True)
    run_exact.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return sweep(args)
    if args.command == "exact-column":
        return exact_column(args)
    if args.verify_column is not None and args.verify_column < 0:
        args.verify_column = None
    return sketch(args)


if __name__ == "__main__":
    sys.exit(main())
