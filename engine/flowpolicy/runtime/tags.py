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

from collections.abc import Mapping
from typing import Any

from flowpolicy.runtime.branch import sanitize_branch

#: Times :func:`mirror_champion` rewrites the tag while other runs keep moving the alias.
MAX_MIRROR_ATTEMPTS = 32


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
    from metaflow import Flow, Run

    from flowpolicy.runtime.loading import metaflow_reading

    run_id = str(run_id)
    with metaflow_reading():
        champion = Run(f"{flow_name}/{run_id}")
        if tag not in champion.user_tags:
            champion.add_tag(tag)
        stale = sorted((r.id for r in Flow(flow_name).runs(tag) if r.id != run_id),
                       key=run_sort_key)
        for other in stale:
            Run(f"{flow_name}/{other}").remove_tag(tag)
    return {"tagged": f"{flow_name}/{run_id}", "untagged": [f"{flow_name}/{o}" for o in stale]}


def training_run(annotations: Mapping[str, Any], creator: str | None) -> str:
    """``Flow/run_id`` of the run that produced a registry instance: its ``run_pathspec``
    annotation (set by ``register_*`` in a flow), else the pathspec of the task that
    created it (``creator``); empty when neither is known."""
    pathspec = annotations.get("run_pathspec") or creator or ""
    return "/".join(pathspec.split("/")[:2])


def mirror_champion(asset: Any, name: str, alias: str, *, asset_type: str) -> str | None:
    """Tag the training run of the instance that alias ``alias`` of ``name`` points at with
    ``<alias>:<branch>`` (untagging the flow's other runs that carry it) and return that run,
    or None when the alias is unset or the instance has no Metaflow run to tag.

    ``asset`` is the :class:`~flowpolicy.runtime.assets.Asset` of the branch the alias
    lives on. The alias is the truth and the tag a mirror; Metaflow's local tag writes are
    not atomic, so the mirror is written again until the alias it was built from is still
    the current one.
    """
    from metaflow.exception import MetaflowNotFound

    tag = champion_tag(alias, asset.branch)
    peek = getattr(asset, f"peek_{asset_type}_asset")
    run_pathspec = None
    for _ in range(MAX_MIRROR_ATTEMPTS):
        champion = asset.get_alias(name, alias, asset_type=asset_type)
        if champion is None:
            return None
        ref = peek(name, instance=champion)
        run_pathspec = training_run(ref[f"{asset_type}_properties"]["annotations"],
                                    ref["created_by"]["entity_id"])
        if run_pathspec.count("/") != 1:
            print(f"{name} {champion} has no Metaflow run to tag")
            return None
        flow_name, run_id = run_pathspec.split("/")
        try:
            mirror_champion_tag(flow_name, run_id, tag)
        except MetaflowNotFound:
            print(f"{name} {champion} has no Metaflow run to tag ({run_pathspec})")
            return None
        if asset.get_alias(name, alias, asset_type=asset_type) == champion:
            break
    return run_pathspec
