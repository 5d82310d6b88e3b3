"""``flowpolicy serve ASSET``: serve the model an alias points at over HTTP and follow the
alias (a promotion or rollback is picked up without a restart; see :mod:`flowpolicy.serve`).

Exit 2 before serving anything when the alias is unset (unless ``--allow-unset``), its
instance fails the policy's gates (unless ``--ignore-gates``) or cannot be loaded; either
flag is reported by ``/model/info`` under ``overrides``. Stops on Ctrl-C / SIGTERM (exit 0).
"""

from __future__ import annotations

import argparse
import signal
import sys

from flowpolicy.errors import EXIT_OK

HELP = "serve a model asset's alias over HTTP (FastAPI) and follow the alias as it moves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("asset", metavar="ASSET", help="model asset name, e.g. fraud_model")
    parser.add_argument("--branch", help="asset branch (default: FLOWPOLICY_BRANCH, the git "
                                         "branch, ...; sanitised as obproject does)")
    parser.add_argument("--alias", help="alias to serve (default: the one the policy's "
                                        "promotions set on the branch, e.g. production)")
    parser.add_argument("--project", help="project (default: FLOWPOLICY_PROJECT, "
                                          "obproject.toml)")
    parser.add_argument("--loader", metavar="MODULE:FUNCTION",
                        help="function(instance) returning the predictor (default: the "
                             "instance's Metaflow artifact, which must be callable or have "
                             "predict())")
    parser.add_argument("--datastore", metavar="DIR",
                        help="folder holding the .metaflow the training flows wrote to "
                             "(default: Metaflow's configuration)")
    parser.add_argument("--policy", action="append", default=[], metavar="PATH",
                        help="policy file or folder (default: ./policies/)")
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root)")
    parser.add_argument("--probe", metavar="FILE",
                        help="JSON rows every new instance must answer before it is swapped "
                             "in (default: the last rows served)")
    parser.add_argument("--ignore-gates", action="store_true",
                        help="serve an instance even when it fails the policy's gates")
    parser.add_argument("--allow-unset", action="store_true",
                        help="start even when the alias is unset (not ready until it is set)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                            "(default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port (default: 8000; 0 picks a free one, printed at start)")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.serve import ServeRequest, create_app, listen, open_server, uvicorn_server
    from flowpolicy.serve.app import require_fastapi

    require_fastapi()
    server = open_server(ServeRequest(
        asset=args.asset, branch=args.branch, alias=args.alias, project=args.project,
        registry=args.registry, loader=args.loader, datastore=args.datastore,
        policies=tuple(args.policy), ignore_gates=args.ignore_gates,
        allow_unset=args.allow_unset, probe=args.probe))
    sock = listen(args.host, args.port)
    try:
        server.start()
        served = server.served
        what = (f"{server.scope.name} {served.instance.id}" if served
                else f"{server.scope.name} (nothing yet: @{server.options.alias} is unset)")
        host, port = sock.getsockname()[:2]
        overrides = [flag for flag, on in (("--ignore-gates", args.ignore_gates),
                                           ("--allow-unset", args.allow_unset)) if on]
        print(f"flowpolicy serve: {what}, @{server.options.alias} on "
              f"{server.scope.project}/{server.scope.branch}, at http://{host}:{port}"
              + (f" ({', '.join(overrides)})" if overrides else ""), flush=True)
        print(f"flowpolicy serve: following {server.follows}; Ctrl-C stops", file=sys.stderr,
              flush=True)
        web = uvicorn_server(create_app(server))
        # uvicorn shuts down on SIGINT / SIGTERM, then raises the signal again for the
        # handlers it found; a stop that was asked for is a clean exit, not an interrupt
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT,
                                                                   signal.SIGTERM)}
        try:
            web.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        server.stop()
        sock.close()
    return EXIT_OK


def _stopped(signum: int, frame: object) -> None:
    """The stop signal, raised again by uvicorn after its graceful shutdown: nothing left to
    do."""
