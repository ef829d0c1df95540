"""Readiness of live objects: the rollout wait after apply, and ``status``.

Ready means what the controllers report in ``status``: Deployments / StatefulSets ready and updated replicas
(``observedGeneration`` current), DaemonSets every scheduled node ready, Jobs their completions, RayServices and
RayClusters their ``Ready`` condition (KubeRay). Other kinds are ready once they exist.
"""

from __future__ import annotations

import time
from typing import Any

from planner.errors import DeployError
from stacks.deploy.kube.context import KubeContext
from stacks.deploy.kube.manifests import WORKLOADS
from stacks.deploy.kube.ownership import is_ours, whose
from stacks.deploy.target import Health


def readiness(obj: dict[str, Any]) -> tuple[bool, int, int, str]:
    """(ready, have, want, message) of a live object, from its ``status`` as the controllers write it."""
    kind = obj.get("kind", "")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    observed = status.get("observedGeneration")
    stale = observed is not None and meta.get("generation") is not None and observed < meta["generation"]
    if kind in ("Deployment", "StatefulSet"):
        want = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        ok = not stale and ready >= want and updated >= want
        return ok, min(ready, want), want, f"{ready}/{want} ready, {updated} updated"
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        if want == 0:
            return False, 0, 1, "no node matches its nodeSelector yet"
        ok = not stale and ready >= want and updated >= want
        return ok, min(ready, want), want, f"{ready}/{want} nodes ready"
    if kind == "Job":
        want = int(spec.get("completions", 1))
        done = int(status.get("succeeded") or 0)
        conds_j = status.get("conditions") or []
        failed = any(c.get("type") == "Failed" and c.get("status") == "True" for c in conds_j)
        return done >= want, min(done, want), want, "failed" if failed else f"{done}/{want} completed"
    if kind in ("RayService", "RayCluster"):
        conds = {c.get("type"): c for c in status.get("conditions") or []}
        ready_cond = conds.get("Ready") or conds.get("RayClusterProvisioned")
        ok = (ready_cond is not None and ready_cond.get("status") == "True") or \
            status.get("serviceStatus") == "Running" or status.get("state") == "ready"
        msg = (ready_cond or {}).get("message") or status.get("serviceStatus") or status.get("state")
        msg = msg or "pending"
        return ok, int(ok), 1, "Ready" if ok else str(msg)
    return True, 1, 1, "exists"


def wait_rollout(ctx: KubeContext, timeout_s: float, poll_s: float) -> bool:
    """Poll the recorded workloads until each is ready (a progress display on ``ctx.console``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    refs = [r for r in ctx.recorded() if r["kind"] in WORKLOADS]
    if not refs:
        return True
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[msg]}"), TimeElapsedColumn())
    with Progress(*columns, console=ctx.console, transient=False) as progress:
        tasks = {r["id"]: progress.add_task(f"{r['kind']}/{r['name']}", total=1, msg="") for r in refs}
        pending = {r["id"]: r for r in refs}
        last: dict[str, str] = {}
        while pending:
            for rid, r in list(pending.items()):
                obj = ctx.client.get(ctx.client.resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"])
                if obj is None:
                    ok, have, want, msg = False, 0, 1, "missing"
                else:
                    ok, have, want, msg = readiness(obj)
                last[rid] = msg
                progress.update(tasks[rid], total=want, completed=have, msg=msg)
                if ok:
                    del pending[rid]
            if not pending:
                break
            if time.monotonic() > deadline:
                stuck = ", ".join(f"{r['kind']}/{r['name']} ({last.get(i, '?')})" for i, r in pending.items())
                raise DeployError(f"rollout not ready after {timeout_s:.0f} s: {stuck}",
                                  fix="inspect with kubectl describe / kubectl get events; rerun "
                                      "`mlplan deploy` (idempotent) or raise --timeout")
            time.sleep(poll_s)
    ctx.say(f"rollout ready: {len(refs)} workload(s)")
    return True


def status(ctx: KubeContext) -> Health:
    """Each recorded object: missing, not this deployment's any more, or its readiness."""
    rec = ctx.record()
    if rec.get("resources"):
        ctx.same_cluster()
    lines: list[str] = []
    healthy = rec.get("status") == "deployed"
    for r in ctx.recorded():
        obj = ctx.client.get(ctx.client.resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"])
        if obj is None:
            healthy = False
            lines.append(f"{r['kind']}/{r['name']}: missing")
            continue
        if not is_ours(obj, ctx.ident, recorded_as_created=bool(r.get("created_by_mlplan"))):
            healthy = False
            lines.append(f"{r['kind']}/{r['name']}: not this deployment's any more ({whose(obj)})")
            continue
        ok, _, _, msg = readiness(obj)
        healthy = healthy and ok
        lines.append(f"{r['kind']}/{r['name']}: {'ready' if ok else 'not ready'} ({msg})")
    return Health(healthy, tuple(lines))
