"""Static checks: the generated flows are current (the compiler's ``check_outputs``) and
the code's asset names are lint clean (the linter's API). Both delegate every rule."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowpolicy.check.report import Result
from flowpolicy.policy.model import Policy


def compile_results(policy: Policy, outputs: Mapping[str, str]) -> list[Result]:
    """One ``compile.current`` result per generated file: pass when current, fail with the
    unified diff when changed, missing or left over. ``outputs``: what the policy compiles
    to (:func:`flowpolicy.compile.compile_policy`)."""
    from flowpolicy.compile import check_outputs, output_dir_for

    directory = output_dir_for(policy)
    diffs = check_outputs(policy, directory, outputs)
    stale = {_diff_file(diff): diff for diff in diffs}
    results = []
    for name in outputs:
        path = (directory / name).as_posix()
        diff = stale.pop(path, None)
        if diff is None:
            results.append(Result("compile.current", "pass", f"{path} is current",
                                  policy=policy.source, rule=name))
        else:
            results.append(_stale(policy, path, diff))
    for path, diff in stale.items():  # left-over files the policy no longer generates
        results.append(_stale(policy, path, diff))
    return results


def _stale(policy: Policy, path: str, diff: str) -> Result:
    return Result(
        "compile.current", "fail",
        f"{path} is not what the policy compiles to now; run `flowpolicy compile`",
        policy=policy.source, rule=os.path.basename(path), evidence={"diff": diff})


def _diff_file(diff: str) -> str:
    """The file a unified diff is about (its ``+++``, or ``---`` for a deleted file)."""
    old = new = ""
    for line in diff.splitlines()[:4]:
        if line.startswith("--- "):
            old = line[4:].split("\t")[0].strip()
        elif line.startswith("+++ "):
            new = line[4:].split("\t")[0].strip()
    return new if new and new != "/dev/null" else old


def lint_results(policies: Sequence[Policy], src: Sequence[str],
                 outputs: Sequence[Mapping[str, str]]) -> list[Result]:
    """``lint.clean`` results: one failure per finding, or one pass for the files linted.
    ``src`` defaults to each policy's project root (the folder above ``policies/``).

    The policies' generated flows are left to the compile section: their asset names come
    from the policy as constants (``GATE.asset``), which the linter rightly cannot resolve
    statically, and ``compile.current`` already proves they are what the policy says."""
    from flowpolicy.compile import output_dir_for
    from flowpolicy.lint import LintRequest, prepare
    from flowpolicy.lint.discovery import policy_home

    paths = tuple(src) or tuple(dict.fromkeys(
        str(policy_home(Path(p.source))) for p in policies if not p.source.startswith("<")))
    request = LintRequest(paths=paths, policies=tuple(p.source for p in policies), jobs=1)
    run = prepare(request, loaded=policies)
    generated = {os.path.abspath(output_dir_for(policy) / name)
                 for policy, compiled in zip(policies, outputs, strict=True) for name in compiled}
    run.files = [f for f in run.files if os.path.abspath(f) not in generated]
    results = [
        Result("lint.clean", "fail", finding.format(), rule=finding.code,
               policy=policies[0].source if len(policies) == 1 else None,
               evidence=finding.to_dict())
        for finding in run.findings()
    ]
    if not results:
        results.append(Result(
            "lint.clean", "pass",
            f"no asset-name findings in {len(run.files)} files under {', '.join(paths)} "
            f"(generated flows excluded: {len(generated)})",
            evidence={"paths": list(paths), "files": len(run.files)}))
    return results
