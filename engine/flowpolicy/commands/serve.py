"""``flowpolicy serve ASSET``: serve the model an alias points at over HTTP and follow the
alias (a promotion or rollback is picked up without a restart; see :mod:`flowpolicy.serve`).

Exit 2 before serving anything when the alias is unset (unless ``--allow-unset``), its
instance fails the policy's gates (unless ``--ignore-gates``) or cannot be loaded; either
flag is reported by ``/model/info`` under ``overrides``. Stops on Ctrl-C / SIGTERM (exit 0).
"""

from __future__ import annotations

import argparse
import sys

from flowpolicy import api
from flowpolicy.commands import PROJECT_HELP, add_registry, add_switches
from flowpolicy.errors import EXIT_OK

HELP = "serve a model asset's alias over HTTP (FastAPI) and follow the alias as it moves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="model asset name, e.g. fraud_model")
    parser.add_argument("--branch", help="asset branch (default: FLOWPOLICY_BRANCH, the git "
                                         "branch, ...; sanitised as obproject does)")
    parser.add_argument("--alias", help="alias to serve (default: the one the policy's "
                                        "promotions set on the branch, e.g. production)")
    parser.add_argument("--project", help=PROJECT_HELP)
    parser.add_argument("--loader", metavar="MODULE:FUNCTION",
                        help="function(instance) returning the predictor (default: the "
                             "instance's Metaflow artifact, which must be callable or have "
                             "predict())")
    parser.add_argument("--datastore", metavar="DIR",
                        help="folder holding the .metaflow the training flows wrote to "
                             "(default: Metaflow's configuration)")
    parser.add_argument("--policy", action="append", default=[], metavar="PATH",
                        help="policy file or folder (default: ./policies/)")
    add_registry(parser)
    parser.add_argument("--probe", metavar="FILE",
                        help="JSON rows every new instance must answer before it is swapped "
                             "in (default: the last rows served)")
    add_switches(parser, {
        "--ignore-gates": "serve an instance even when it fails the policy's gates",
        "--allow-unset": "start even when the alias is unset (not ready until it is set)"})
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                            "(default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port (default: 8000; 0 picks a free one, printed at start)")


def run(args: argparse.Namespace) -> int:
    def started(serving: str, following: str) -> None:
        print(f"flowpolicy serve: {serving}", flush=True)
        print(f"flowpolicy serve: {following}", file=sys.stderr, flush=True)

    api.serve(api.ServeRequest(
        asset=args.asset, branch=args.branch, alias=args.alias, project=args.project,
        registry=args.registry, loader=args.loader, datastore=args.datastore,
        policies=tuple(args.policy), ignore_gates=args.ignore_gates,
        allow_unset=args.allow_unset, probe=args.probe, host=args.host, port=args.port),
        started)
    return EXIT_OK
