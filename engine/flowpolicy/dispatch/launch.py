"""The launcher: the process that turns one claimed dispatch into one run.

A dispatcher forks a launcher for each dispatch it claimed (:func:`fork_launcher`): a child
that already holds every module it needs, so the flow starts a few milliseconds after the
dispatcher decided to start it, in a session of its own (it outlives the dispatcher, and an
interrupt of the dispatcher does not reach the run). It

1. moves the dispatch from ``claimed`` to ``started`` by compare-and-set on the claim's
   token, in one registry transaction of its own connection — the decision that this run
   happens. When the token is no longer the claim's (the lease ran out and another
   dispatcher took it over), it starts nothing and exits :data:`EXIT_TAKEN_OVER`;
2. runs the recorded command (``python flow.py --quiet run --instance=v3 …``) on the
   recorded branch, output appended to the dispatch's log, and notes the Metaflow run as
   soon as the flow has written its run id;
3. records how the run ended: ``succeeded`` (exit 0), ``refused`` (an expected refusal: a
   failed gate, a refused promotion, nothing to compare) or ``failed``, the exit code and
   the reason (the refusal's one line, else the last error line of the log).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

#: Exit code of a launcher whose claim was taken over: it started nothing.
EXIT_TAKEN_OVER = 3
#: How much of the end of a log is read for the failure line.
_TAIL_BYTES = 64 * 1024
_REASON_CHARS = 500
_POLL_S = 0.05


def launcher_alive(record) -> bool | None:
    """Whether the launcher of a ``started`` dispatch still runs: None when it cannot be
    told from here (another host). A launcher whose dispatcher died and whose new parent
    never reaps it lingers as a zombie, which counts as gone."""
    host = record.claimed_by.rsplit(":", 1)[0]
    if record.pid is None or host != socket.gethostname():
        return None
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{record.pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def last_error_line(text: str) -> str:
    """The message a failing flow ended with: the text after the last ``...Error:``, else
    its last line; at most a few hundred characters."""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error:" in line:
            return line.split("Error:", 1)[1].strip()[:_REASON_CHARS]
    return lines[-1].strip()[:_REASON_CHARS] if lines else ""


def run_command(argv: tuple[str, ...], run_id_file: Path) -> list[str]:
    """``argv`` with Metaflow's ``--run-id-file`` after its ``run`` command, so the
    launcher learns the run id as soon as the run has one."""
    command = list(argv)
    if "run" in command:
        at = command.index("run") + 1
        command[at:at] = ["--run-id-file", str(run_id_file)]
    return command


def fork_launcher(registry_url: str, dispatch_id: int, token: str, log_path: Path,
                  environment: dict[str, str]) -> int:
    """Fork the launcher of one claimed dispatch; its pid (reap it with ``os.waitpid``).
    The child never returns: it leaves with ``os._exit`` (no parent clean-up runs in it),
    and writes nothing but to the dispatch's log (the parent's streams may be locked by
    another of its threads at the fork)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.fork()
    if pid:
        os.close(log)
        return pid
    code = 1
    try:
        os.setsid()
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        sys.stdout = open(1, "w", closefd=False)  # both live until os._exit
        sys.stderr = open(2, "w", closefd=False)
        code = launch(registry_url, dispatch_id, token, log_path, environment)
    except BaseException:  # noqa: BLE001 - a launcher reports into its log, then leaves
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")  # for type checkers: the child never gets here


def launch(registry_url: str, dispatch_id: int, token: str, log_path: Path,
           environment: dict[str, str]) -> int:
    """Steps 1–3 of the module docstring, in the current process."""
    from flowpolicy.registry import open_registry

    registry = open_registry(registry_url)
    record = registry.start_dispatch(dispatch_id, token, pid=os.getpid(),
                                     log_path=str(log_path))
    if record is None:
        return EXIT_TAKEN_OVER
    run_id_file = log_path.with_suffix(".run-id")
    env = {**environment, "FLOWPOLICY_BRANCH": record.branch,
           "FLOWPOLICY_REGISTRY": registry.url, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen(run_command(record.argv, run_id_file), cwd=record.cwd,
                                env=env, stdin=subprocess.DEVNULL, stdout=sys.stdout,
                                stderr=subprocess.STDOUT)
    except OSError as exc:
        registry.finish_dispatch(dispatch_id, status="failed", returncode=None,
                                 reason=f"could not start {' '.join(record.argv[:2])}: {exc}")
        return 1
    noted = False
    while True:
        try:
            returncode = proc.wait(timeout=_POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        if not noted:
            noted = _note_run(registry, record, run_id_file)
    if not noted:
        _note_run(registry, record, run_id_file)
    status, reason = ("succeeded", None) if returncode == 0 else _why(_tail(log_path))
    registry.finish_dispatch(dispatch_id, status=status, returncode=returncode, reason=reason)
    return 0


def _why(output: str) -> tuple[str, str]:
    """``refused`` and the reason for an expected refusal (a failed gate, a refused
    promotion: :func:`flowpolicy.runtime.steps.refusal_reason`), else ``failed`` and the
    last error line. Imported only now: it brings Metaflow, which a launcher otherwise
    never needs."""
    from flowpolicy.runtime.steps import refusal_reason

    reason = refusal_reason(output)
    if reason is not None:
        return "refused", reason[:_REASON_CHARS]
    return "failed", last_error_line(output)


def _note_run(registry, record, run_id_file: Path) -> bool:
    try:
        run_id = run_id_file.read_text(encoding="utf-8").strip()
    except OSError:
        return False
    if not run_id:
        return False
    registry.note_dispatch_run(record.id, f"{record.flow_name}/{run_id}"
                               if record.flow_name else run_id)
    return True


def _tail(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - _TAIL_BYTES))
        return handle.read().decode("utf-8", "replace")
