"""Mirror the champion (kept as a registry alias) onto Metaflow run tags, for visibility.

The registry alias is the source of truth: Metaflow's local tag writes are unlocked
read-modify-writes (concurrent writers lose tags) and a tag change rewrites the run's
timestamp, so tags are only a mirror. Runs are addressed by id, never via ``latest_run``.
"""

from __future__ import annotations

from typing import Any


def _run_sort_key(run_id: str) -> tuple[int, int | str]:
    return (0, int(run_id)) if run_id.isdigit() else (1, run_id)


def mirror_champion_tag(flow_name: str, run_id: str | int,
                        tag: str = "champion") -> dict[str, Any]:
    """Add ``tag`` to run ``flow_name/run_id`` and remove it from every other run of the flow.

    The new tag is added before old ones are removed, so a reader never sees zero tagged
    runs. Returns ``{"tagged": "Flow/run", "untagged": ["Flow/run", ...]}`` (ordered by id).
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
                       key=_run_sort_key)
        for other in stale:
            Run(f"{flow_name}/{other}").remove_tag(tag)
    finally:
        namespace(previous)
    return {"tagged": f"{flow_name}/{run_id}", "untagged": [f"{flow_name}/{o}" for o in stale]}
