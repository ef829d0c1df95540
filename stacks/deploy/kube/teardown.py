"""Deleting: ``destroy`` and the prune of objects the manifests no longer hold. Only what this deployment
created goes: objects the deploy state records *and* that still carry this deployment's label.

- An object that is gone, or that now belongs to someone else (recreated by another team), is dropped from the
  record and left alone.
- An object another field manager co-owns (``kubectl edit``, another tool's apply) is not deleted: ``destroy``
  refuses with one line (exit 5) before deleting anything; prune keeps it on record and says so.
- A namespace mlplan created is deleted last, and only when it holds nothing of anyone else's: deleting a
  namespace deletes everything in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner.errors import DeployError
from stacks.deploy.kube.client import Obj
from stacks.deploy.kube.context import TARGET, KubeContext
from stacks.deploy.kube.manifests import describe, teardown_order
from stacks.deploy.kube.ownership import co_owner_text, co_owners, is_ours, whose

#: kinds looked at before a namespace is deleted: what people and tools put in namespaces
NAMESPACE_SCAN = (
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job"),
    ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "PersistentVolumeClaim"),
    ("v1", "ServiceAccount"), ("v1", "ResourceQuota"), ("v1", "LimitRange"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"), ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("ray.io/v1", "RayService"), ("ray.io/v1", "RayCluster"),
)
#: what Kubernetes itself puts in every namespace
_BUILTIN = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
Ref = dict[str, Any]


def _live(ctx: KubeContext, r: Ref) -> Obj | None:
    return ctx.client.get(ctx.client.resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"])


@dataclass
class Survey:
    """Recorded objects, in teardown order, by what is live: this deployment's, someone else's now (with who),
    gone, or this deployment's but co-owned by another field manager (with whom and which fields)."""

    ours: list[Ref] = field(default_factory=list)
    foreign: list[tuple[Ref, str]] = field(default_factory=list)
    gone: list[Ref] = field(default_factory=list)
    shared: list[tuple[Ref, str]] = field(default_factory=list)


def survey(ctx: KubeContext, refs: list[Ref]) -> Survey:
    out = Survey()
    for r in teardown_order(refs):
        live = _live(ctx, r)
        if live is None:
            out.gone.append(r)
        elif not is_ours(live, ctx.ident, recorded_as_created=bool(r.get("created_by_mlplan"))):
            out.foreign.append((r, whose(live)))
        elif owners := co_owners(live, ctx.ident):
            out.shared.append((r, co_owner_text(owners)))
        else:
            out.ours.append(r)
    return out


def foreign_in_namespace(ctx: KubeContext, namespace: str) -> list[str]:
    """Objects in ``namespace`` that are not this deployment's and not made by a controller or by Kubernetes."""
    found: list[str] = []
    for api_version, kind in NAMESPACE_SCAN:
        if not ctx.client.serves(api_version, kind):
            continue
        for obj in ctx.client.list_objects(ctx.client.resource(api_version, kind), namespace):
            meta = obj.get("metadata") or {}
            name = str(meta.get("name"))
            if (kind, name) in _BUILTIN or meta.get("ownerReferences"):
                continue
            if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
                continue
            if not is_ours(obj, ctx.ident):
                found.append(f"{kind}/{name}")
    return found


def _delete(ctx: KubeContext, r: dict[str, Any], *, dry_run: bool = False) -> bool:
    return ctx.client.delete(ctx.client.resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"],
                             dry_run=dry_run)


def _forget(ctx: KubeContext, r: dict[str, Any], why: str) -> None:
    ctx.state.remove_resource(TARGET, r["id"])
    ctx.say(f"  {describe(r)}: not deleted, {why}")


def prune(ctx: KubeContext, stale: list[dict[str, Any]], dry_run: bool) -> list[str]:
    """Delete objects an earlier deploy of this folder applied that the manifests no longer hold."""
    found = survey(ctx, stale)
    done: list[str] = []
    for r in found.gone:
        if not dry_run:
            ctx.state.remove_resource(TARGET, r["id"])
    for r, who in found.foreign:
        if not dry_run:
            _forget(ctx, r, f"it is not this deployment's any more ({who})")
    for r, who in found.shared:
        ctx.say(f"  {describe(r)}: not pruned, also managed by {who}; `mlplan destroy` refuses it until "
                "that is resolved")
    for r in found.ours:
        what = f"{r['kind']}/{r['name']}"
        if r["kind"] == "Namespace" and (objs := foreign_in_namespace(ctx, r["name"])):
            if not dry_run:
                _forget(ctx, r, f"it holds objects mlplan did not create ({', '.join(objs[:3])})")
            continue
        if dry_run:
            _delete(ctx, r, dry_run=True)  # the API server checks the delete (dryRun=All), deletes nothing
            ctx.say(f"  {what}: would be pruned (no longer in the manifests)")
            done.append(what)
            continue
        with ctx.state.step(TARGET, f"prune {what}", quiet=True):
            existed = _delete(ctx, r)
        ctx.state.remove_resource(TARGET, r["id"])
        ctx.say(f"  {what}: pruned (no longer in the manifests)" + ("" if existed else ", already gone"))
        done.append(what)
    return done


def destroy(ctx: KubeContext) -> int:
    """Delete this deployment's recorded objects; refuse, deleting nothing, when another manager co-owns one."""
    rec = ctx.record()
    if rec.get("resources"):
        ctx.same_cluster()
    refs = ctx.recorded()
    created = [r for r in refs if r["kind"] != "Namespace" or r.get("created_by_mlplan")]
    for r in refs:
        if r not in created:  # a namespace that existed before the deploy: never mlplan's to delete
            ctx.state.remove_resource(TARGET, r["id"])
    found = survey(ctx, created)
    if found.shared:
        r, who = found.shared[0]
        more = f" (and {len(found.shared) - 1} more)" if len(found.shared) > 1 else ""
        raise DeployError(f"destroy refused: {describe(r)}{more} is also managed by {who}; mlplan deletes only "
                          "objects no one else manages", fix=f"if it should go, delete it yourself (kubectl delete "
                          f"{r['kind'].lower()} {r['name']}" + (f" -n {r['namespace']}" if r.get("namespace") else "")
                          + "), then rerun mlplan destroy")
    for r in found.gone:
        ctx.state.remove_resource(TARGET, r["id"])
        ctx.say(f"  {describe(r)}: already gone")
    for r, who in found.foreign:
        _forget(ctx, r, f"it is not this deployment's any more ({who})")
    removed = 0
    for r in found.ours:
        if r["kind"] == "Namespace" and (objs := foreign_in_namespace(ctx, r["name"])):
            _forget(ctx, r, f"kept: it holds objects mlplan did not create ({', '.join(objs[:3])}"
                            f"{' ...' if len(objs) > 3 else ''})")
            continue
        with ctx.state.step(TARGET, f"delete {r['kind']}/{r['name']}", quiet=True):
            existed = _delete(ctx, r)
        removed += int(existed)
        ctx.say(f"  {describe(r)}: " + ("deleted" if existed else "already gone"))
        ctx.state.remove_resource(TARGET, r["id"])
    ctx.state.update(TARGET, status="destroyed")
    return removed
