"""``flowpolicy dispatch``: the local stand-in for Argo Events.

It follows the registry's events table from a cursor stored in the registry, and for every
event a policy trigger names (:mod:`flowpolicy.triggers`) starts the generated flow on the
event's branch, its Parameters set from the payload, exactly as the flow's
``@project_trigger`` makes Argo Events start it when deployed. Event → run is recorded in
the registry (``dispatches``), so ``flowpolicy events --runs`` shows what each event started
and how it ended.

Exactly once, and why
---------------------
A start is a row per (event, flow), unique, moving only forward through three states, each
move one registry transaction:

1. ``claimed`` — a dispatcher inserts the row (or takes over one whose lease ran out, with a
   new token). Of any number of dispatchers racing for it, one gets it.
2. ``started`` — the *launcher* the dispatcher spawned moves it there by compare-and-set on
   the token, then spawns the flow. This commit is the decision that the run happens.
3. ``finished`` — the launcher records the exit status when the flow ends.

The cursor moves past an event only after every start it triggers has a row. Crash windows
(any process killed with SIGKILL at any instant):

- dispatcher killed before its claim commits: no row, cursor not moved; the next dispatcher
  reads the event again and claims it.
- killed after claiming, before spawning the launcher (or the launcher dies before its
  compare-and-set): the row stays ``claimed``; when the lease ends any dispatcher takes it
  over (new token) and launches it. Nothing was started, so nothing starts twice.
- killed after spawning the launcher: the launcher runs in its own session and goes on. If
  it is slower than the lease and another dispatcher took the claim over, exactly one of
  the two compare-and-sets succeeds (the other launcher sees the token changed and starts
  nothing).
- killed after the cursor moved: the rows exist; nothing is read twice.
- launcher killed after its ``started`` commit: the start happened (the flow was spawned, or
  was about to be in the same process, a few microseconds later); it is never started
  again. The row stays ``started``; ``events --runs`` shows it as "launcher gone" when its
  process is no longer there. This is the one outcome not recorded, never a lost or a
  doubled start.

So each (event, flow) is started at most once, and at least once as long as some
dispatcher runs after the lease of a dead one ends (``--lease``, 30 s by default).
"""

from __future__ import annotations
