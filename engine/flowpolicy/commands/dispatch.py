"""``flowpolicy dispatch [POLICY] --once | --follow | --list``: start the flows the policy's
triggers name, for the events in the registry, as Argo Events starts them when deployed
(see :mod:`flowpolicy.dispatch`).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from flowpolicy import api
from flowpolicy.commands import REGISTRY_HELP, emit

HELP = "start the flows the policy's triggers name for new registry events (Argo Events, locally)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", nargs="?", metavar="POLICY",
                        help="policy file (default: the one policy under ./policies/)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true",
                      help="drain what is pending, wait for the runs it started, exit")
    mode.add_argument("--follow", action="store_true",
                      help="keep dispatching new events until interrupted (or --for)")
    mode.add_argument("--list", action="store_true",
                      help="print which event starts which flow on which branch; start nothing")
    parser.add_argument("--for", dest="follow_for", type=float, metavar="SECONDS",
                        help="with --follow: stop after this long")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                        help="with --once: give up (exit 1) when work is still pending after "
                             "this long (default 1800)")
    parser.add_argument("--max-runs", type=int, default=1000, metavar="N",
                        help="start at most N runs, then stop (exit 1; default 1000)")
    parser.add_argument("--lease", type=float, default=30.0, metavar="SECONDS",
                        help="how long a claimed start stays with its dispatcher before "
                             "another may take it over (default 30)")
    parser.add_argument("--webhook", nargs="?", type=int, const=0, metavar="PORT",
                        help="also accept Argo Events webhook posts on 127.0.0.1:PORT "
                             "(default: a free port, printed)")
    parser.add_argument("--registry", metavar="URL", help=f"{REGISTRY_HELP}; the runs use it too")


def run(args: argparse.Namespace) -> int:
    request = api.DispatchRequest(
        policy=args.policy, mode="list" if args.list else "follow" if args.follow else "once",
        follow_for=args.follow_for, timeout=args.timeout, max_runs=args.max_runs,
        lease=args.lease, webhook=args.webhook, registry=args.registry,
        echo=partial(print, flush=True))
    try:
        report = api.dispatch(request)
    except KeyboardInterrupt:
        print("dispatch: interrupted; runs already started go on", file=sys.stderr)
        return 130
    return emit(report, "text")
