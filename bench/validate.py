"""`flowpolicy validate` as a user runs it (a fresh process), with and without the schema's
fast verdict (flowpolicy/policy/schema_fast.py), on the example policy and generated ones.

    python bench/validate.py [--assets 50 1000] [--repeat 7]

The fast verdict lets a valid policy skip jsonschema, and so skip importing it. The
baseline is the same command with the verdict switched off, measured in the same run with
the two variants interleaved; prints the best time of each and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compile import policy_text

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fraud_detection" / "policies" / "fraud.yaml"

WITH_VERDICT = "from flowpolicy.cli import main; main()"
WITHOUT_VERDICT = (
    "import flowpolicy.policy.schema as schema; schema.fast_verdict = lambda: None; "
    "from flowpolicy.cli import main; main()"
)


def timed_run(code: str, path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "validate", str(path)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"validate failed on {path}:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="*", default=[50, 1000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        policies = [("example", EXAMPLE)]
        for n in args.assets:
            path = Path(tmp) / f"policy_{n}.yaml"
            path.write_text(policy_text(n), encoding="utf-8")
            policies.append((f"{n} assets", path))
        print(f"{'policy':<12} {'with verdict':>13} {'without':>10} {'ratio':>7}")
        for label, path in policies:
            with_verdict = without = float("inf")
            for _ in range(args.repeat):  # interleaved, so a change of load hits both alike
                with_verdict = min(with_verdict, timed_run(WITH_VERDICT, path))
                without = min(without, timed_run(WITHOUT_VERDICT, path))
            print(f"{label:<12} {with_verdict * 1000:10.0f} ms {without * 1000:7.0f} ms "
                  f"{with_verdict / without:6.2f}x")


if __name__ == "__main__":
    main()
