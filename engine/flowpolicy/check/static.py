"""Static checks: the generated flows are current (the compiler's ``output_results``) and
the code's asset names are lint clean (the linter's API). Both delegate every rule."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from flowpolicy.compile import output_dir_for
from flowpolicy.diagnostics import Diagnostic
from flowpolicy.lint import LintRequest, prepare
from flowpolicy.lint.discovery import policy_home
from flowpolicy.policy.model import Policy


def lint_results(policies: Sequence[Policy], src: Sequence[str],
                 outputs: Sequence[Mapping[str, str]]) -> list[Diagnostic]:
    """``lint.clean`` results: one failure per finding, or one pass for the files linted.
    ``src`` defaults to each policy's project root (the folder above ``policies/``).

    The policies' generated flows are left to the compile section: their asset names come
    from the policy as constants (``GATE.asset``), which the linter rightly cannot resolve
    statically, and ``compile.current`` already proves they are what the policy says."""
    paths = tuple(src) or tuple(dict.fromkeys(
        str(policy_home(Path(p.source))) for p in policies if not p.source.startswith("<")))
    request = LintRequest(paths=paths, policies=tuple(p.source for p in policies), jobs=1)
    run = prepare(request, loaded=policies)
    generated = {os.path.abspath(output_dir_for(policy) / name)
                 for policy, compiled in zip(policies, outputs, strict=True) for name in compiled}
    run.files = [f for f in run.files if os.path.abspath(f) not in generated]
    policy = policies[0].source if len(policies) == 1 else None
    # the finding, restated as the check that it fails: located where the finding is
    results = [
        replace(finding, code="lint.clean", message=finding.format(), rule=finding.code,
                policy=policy, evidence=finding.to_dict())
        for finding in run.findings()
    ]
    if not results:
        results.append(Diagnostic(
            "lint.clean", "pass",
            f"no asset-name findings in {len(run.files)} files under {', '.join(paths)} "
            f"(generated flows excluded: {len(generated)})",
            policy=policy, evidence={"paths": list(paths), "files": len(run.files)}))
    return results
