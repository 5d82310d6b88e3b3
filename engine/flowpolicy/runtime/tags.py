"""Mirror the champion (kept as a registry alias) onto Metaflow run tags, for visibility.

Champions are kept per registry branch (alias ``champion`` on dev, staging, prod, …), so the
mirrored tag names the branch too: ``<alias>:<branch>`` (``champion:staging``), built by
:func:`champion_tag` for both the generated champion flow and ``flowpolicy check``. A champion
evaluation on one branch therefore never untags another branch's champion, and one training
run may carry several (``champion:staging`` and ``champion:prod``).

The registry alias is the source of truth: Metaflow's local tag writes are unlocked
read-modify-writes (concurrent writers, even of different tags on the same run, can lose a
tag) and a tag change rewrites the run's timestamp, so tags are only a mirror. Runs are
addressed by id, never via ``latest_run``.
"""

from __future__ import annotations

from typing import Any

from flowpolicy.runtime.branch import sanitize_branch


def champion_tag(alias: str, branch: str) -> str:
    """The Metaflow tag mirroring alias ``alias`` on registry branch ``branch``:
    ``<alias>:<branch>`` with the branch sanitised as registry scopes are (``champion:staging``).
    """
    return f"{alias}:{sanitize_branch(branch)}"


def run_sort_key(run_id: str) -> tuple[int, int | str]:
    return (0, int(run_id)) if run_id.isdigit() else (1, run_id)


def mirror_champion_tag(flow_name: str, run_id: str | int, tag: str) -> dict[str, Any]:
    """Add ``tag`` to run ``flow_name/run_id`` and remove it from every other run of the flow.

    ``tag`` is a branch-scoped champion tag (:func:`champion_tag`); other tags of the runs are
    left alone. The new tag is added before old ones are removed, so a reader never sees zero
    tagged runs. Returns ``{"tagged": "Flow/run", "untagged": ["Flow/run", ...]}`` (ordered
    by id).
    """
    from metaflow import Flow, Run, get_namespace, namespace

    run_id = str(run_id)
    previous = get_namespace()
    try:
        namespace(None)
        champion = Run(f"{flow_name}/{run_id}")
        if tag not in champion.user_tags:
            champion.add_tag(tag)
        stale = sorted((r.id for r in Flow(flow_name).runs(tag) if r.id != run_id),
                       key=run_sort_key)
        for other in stale:
            Run(f"{flow_name}/{other}").remove_tag(tag)
    finally:
        namespace(previous)
    return {"tagged": f"{flow_name}/{run_id}", "untagged": [f"{flow_name}/{o}" for o in stale]}
