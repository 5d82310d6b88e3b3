"""``flowpolicy dispatch [POLICY] --once | --follow``: start the flows the policy's triggers
name, for the events in the registry, as Argo Events starts them when deployed.

``--once`` drains what is pending (new events, the runs they start, the events those
publish …) and exits; ``--follow`` keeps going until interrupted or ``--for`` seconds.
``--webhook [PORT]`` also accepts Argo Events webhook posts on 127.0.0.1 (point
``METAFLOW_ARGO_EVENTS_WEBHOOK_URL`` at it, and ``ArgoEvent(...).publish()`` works locally).
``--list`` prints the trigger table and starts nothing.
"""

from __future__ import annotations

import argparse
import sys

from flowpolicy.errors import EXIT_FINDINGS, EXIT_OK, FlowpolicyError

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
    parser.add_argument("--registry", metavar="URL",
                        help="registry URL (default: FLOWPOLICY_REGISTRY or "
                             ".flowpolicy/registry.db at the project root); the runs use it too")


def run(args: argparse.Namespace) -> int:
    from flowpolicy.check.inputs import find_policies
    from flowpolicy.compile import output_dir_for
    from flowpolicy.policy.loader import load_policy
    from flowpolicy.project_root import project_root
    from flowpolicy.triggers import dispatch_table

    for flag, value in (("--timeout", args.timeout), ("--lease", args.lease),
                        ("--for", args.follow_for)):
        if value is not None and not value > 0:
            raise FlowpolicyError(f"{flag} takes a positive number of seconds, not {value:g}")
    if args.max_runs < 1:
        raise FlowpolicyError(f"--max-runs takes a positive number, not {args.max_runs}")
    if args.follow_for is not None and not args.follow:
        raise FlowpolicyError("--for goes with --follow")
    paths = find_policies([args.policy] if args.policy else [])
    if len(paths) > 1:
        raise FlowpolicyError(
            f"found {len(paths)} policies ({', '.join(map(str, paths))}); name the one to "
            "dispatch for: flowpolicy dispatch POLICY")
    policy = load_policy(paths[0])
    root = project_root(paths[0].resolve().parent)
    table = dispatch_table(policy, root, output_dir_for(policy))
    if args.list:
        print(_listing(table, root))
        return EXIT_OK if table.triggers else EXIT_FINDINGS
    if not table.triggers:
        raise FlowpolicyError(f"{paths[0]}: no event starts any flow (no triggers)",
                              exit_code=EXIT_FINDINGS)
    missing = sorted({str(t.path) for t in table.targets.values() if not t.path.is_file()})
    if missing:
        raise FlowpolicyError(f"the flows {', '.join(missing)} do not exist: run flowpolicy "
                              f"compile {paths[0]} first (or fix the triggers' flow: paths)")
    return _dispatch(args, table, root)


def _dispatch(args: argparse.Namespace, table, root) -> int:
    from contextlib import nullcontext

    from flowpolicy.dispatch.dispatcher import Dispatcher
    from flowpolicy.dispatch.webhook import WebhookServer
    from flowpolicy.registry import open_existing_registry

    registry = open_existing_registry(
        args.registry, missing="no events to dispatch yet (run a flow first, or point "
                               "--registry / FLOWPOLICY_REGISTRY at the file the flows write)")
    print(f"registry {registry.url}")
    dispatcher = Dispatcher(registry, table, cwd=root,
                            lease_seconds=args.lease, echo=_echo)
    webhook = WebhookServer(registry, args.webhook) if args.webhook is not None else None
    with webhook or nullcontext():
        if webhook is not None:
            print(f"webhook: export METAFLOW_ARGO_EVENTS_WEBHOOK_URL={webhook.url}", flush=True)
        before = registry.cursor(dispatcher.cursor_name)
        try:
            summary = dispatcher.run(follow=args.follow,
                                     timeout=args.follow_for if args.follow else args.timeout,
                                     max_runs=args.max_runs)
        except KeyboardInterrupt:
            print("dispatch: interrupted; runs already started go on", file=sys.stderr)
            return 130
    for note in summary.notes:
        print(f"note: {note}")
    after = registry.cursor(dispatcher.cursor_name)
    if not summary.started and not summary.events_read:
        print(f"nothing to dispatch: no events after event {before}")
        return EXIT_OK
    outcomes = list(summary.finished.values())
    print(f"dispatch: read {summary.events_read} events, started {len(summary.started)} runs "
          f"({outcomes.count('succeeded')} succeeded, {outcomes.count('refused')} refused, "
          f"{outcomes.count('failed')} failed"
          + (f", {len(summary.taken_over)} taken over" if summary.taken_over else "")
          + f"); cursor at event {after}")
    return EXIT_OK


def _echo(line: str) -> None:
    print(line, flush=True)


def _listing(table, root) -> str:
    from flowpolicy.triggers import flow_label

    lines = [f"triggers of project {table.project}:"]
    for trigger in table.triggers:
        target = table.targets[trigger.flow]
        try:
            where = target.path.relative_to(root).as_posix()
        except ValueError:
            where = str(target.path)
        branches = ", ".join(trigger.branches) or "any branch"
        mapping = ", ".join(f"--{p} from {f}" for p, f in trigger.parameters.items())
        lines.append(f"  {trigger.event} on {branches} -> {where}"
                     + (f" ({target.class_name})" if target.class_name else "")
                     + (f"; {mapping}" if mapping else ""))
        lines.append(f"      {trigger.why}")
    for missing in table.untriggered:
        branch = "any branch" if missing.branch == "*" else missing.branch
        lines.append(f"  nothing starts {flow_label(missing.kind, missing.rule)} on {branch}: "
                     f"{missing.reason}")
    if not table.triggers:
        lines.append("  none: no event starts any flow")
    return "\n".join(lines)
