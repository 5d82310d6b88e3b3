"""``python -m flowpolicy.compat FLOW.py [ARGS...]``: run an obproject flow on flowpolicy.

``--path`` prints the folder to put on ``PYTHONPATH`` instead. Exit 2 (one line on stderr)
when a real obproject is installed, or when no flow file is given.
"""

from __future__ import annotations

import os
import sys

from flowpolicy.compat import SHIM_DIR, real_obproject, shadow_refusal

USAGE = "usage: python -m flowpolicy.compat FLOW.py [METAFLOW ARGS...] | --path"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    found = real_obproject()
    if found is not None:
        print(f"error: {shadow_refusal(found)}", file=sys.stderr)
        return 2
    if argv[0] == "--path":
        print(SHIM_DIR)
        return 0
    flow = argv[0]
    if not os.path.isfile(flow):
        print(f"error: no flow file {flow!r}; {USAGE}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SHIM_DIR), *filter(None, [env.get("PYTHONPATH")])])
    # Metaflow starts every task as `python FLOW.py step ...` with this environment, so
    # the stand-in is importable in all of them
    os.execve(sys.executable, [sys.executable, flow, *argv[1:]], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
