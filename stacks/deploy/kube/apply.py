"""Applying: what ``kubectl apply --server-side --field-manager=mlplan`` does, limited to this deployment's objects.

1. connect and resolve every manifest's kind by discovery (nothing is applied if one is not served);
2. survey: ``GET`` each object; one that exists and is not this deployment's (another team's, or made by hand)
   stops the deploy with one line before anything is written (exit 5). A namespace that exists without mlplan's
   labels is used as it is (not applied, never deleted);
3. create the namespaces the objects need that do not exist yet (labelled and recorded, so ``destroy`` removes
   only namespaces mlplan created);
4. ``PATCH`` each object with ``Content-Type: application/apply-patch+yaml``, ``fieldManager=mlplan``, the
   deployment's labels added (:mod:`stacks.deploy.kube.ownership`), ``force=true`` unless
   ``--no-force-conflicts`` (a tool that owns its manifests forces conflicts:
   https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts); a dry run adds ``dryRun=All``;
5. prune what an earlier deploy of this folder applied that the manifests no longer hold;
6. wait for the rollout.

Idempotent: a second apply of the same manifests leaves every ``resourceVersion`` unchanged (``unchanged``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError, DeployError
from stacks.deploy.kube.client import FIELD_MANAGER, Obj
from stacks.deploy.kube.context import TARGET, KubeContext
from stacks.deploy.kube.manifests import Manifest, ref_id, select_manifests
from stacks.deploy.kube.ownership import has_mlplan_labels, is_ours, labelled, whose
from stacks.deploy.kube.rollout import wait_rollout
from stacks.deploy.kube.teardown import prune
from stacks.deploy.target import Applied


@dataclass
class _Planned:
    manifest: Manifest
    res: Any
    namespace: str | None
    live: Obj | None
    use_as_is: bool = False


def _where(namespace: str | None) -> str:
    return f" in {namespace}" if namespace else ""


def _survey(ctx: KubeContext, resolved: list[tuple[Manifest, Any]]) -> list[_Planned]:
    """The live state of every object; DeployError (nothing written) when one exists and is someone else's."""
    recorded = {r["id"]: r for r in ctx.recorded()}
    planned: list[_Planned] = []
    foreign: list[str] = []
    for m, res in resolved:
        ns = (m.namespace or ctx.default_namespace) if res.namespaced else None
        item = _Planned(m, res, ns, ctx.client.get(res, m.name, ns))
        if item.live is not None:
            rec = recorded.get(ref_id(m.api_version, m.kind, ns, m.name)) or {}
            if not is_ours(item.live, ctx.ident, recorded_as_created=bool(rec.get("created_by_mlplan"))):
                if m.kind == "Namespace" and not has_mlplan_labels(item.live):
                    item.use_as_is = True
                else:
                    foreign.append(f"{m.kind}/{m.name}{_where(ns)} already exists on {ctx.client.host} and is not "
                                   f"this deployment's ({whose(item.live)})")
        planned.append(item)
    if foreign:
        more = f"; so do {len(foreign) - 1} more of its objects" if len(foreign) > 1 else ""
        raise DeployError(f"{foreign[0]}{more}: mlplan changes only objects its own deploy created",
                          fix="give the spec another name (namespaces and object names derive from it) and plan "
                              "again, or remove those objects if they are yours to remove, then rerun")
    return planned


def _apply_one(ctx: KubeContext, item: _Planned, *, force: bool, dry_run: bool) -> dict[str, Any]:
    m, ns = item.manifest, item.namespace
    body = labelled(m.body, ctx.ident)
    if ns is not None:
        body["metadata"]["namespace"] = ns
    after = ctx.client.apply(item.res, body, m.name, ns, force=force, dry_run=dry_run)
    rv_before = (item.live or {}).get("metadata", {}).get("resourceVersion")
    rv_after = after.get("metadata", {}).get("resourceVersion")
    action = "created" if item.live is None else "unchanged" if rv_before == rv_after else "configured"
    if dry_run:
        action = f"{action} (dry run)"
    ref = {"id": ref_id(m.api_version, m.kind, ns, m.name), "apiVersion": m.api_version, "kind": m.kind,
           "name": m.name, "namespace": ns, "action": action, "resourceVersion": rv_after,
           "created_by_mlplan": True}
    if not dry_run:
        ctx.state.add_resource(TARGET, ref)
    ctx.say(f"  {m.kind}/{m.name}{_where(ns)}: {action}")
    return ref


def apply_folder(ctx: KubeContext, *, dry_run: bool, force: bool, wait: bool, timeout_s: float,
                 poll_s: float) -> Applied:
    manifests = select_manifests(ctx.folder)
    if not manifests:
        raise ArtifactError(f"{ctx.folder.root} has no Kubernetes manifests for a cluster of yours (k8s/*.yaml)",
                            fix="this plan has no on-prem/edge Kubernetes part; deploy it with its default target")
    state = ctx.state
    prior = ctx.recorded()
    if prior:
        ctx.same_cluster()

    def step(name: str, **detail: Any) -> contextlib.AbstractContextManager[dict[str, Any]]:
        return state.step(TARGET, name, **detail) if not dry_run else contextlib.nullcontext({})

    if not dry_run:
        state.begin(TARGET, dry_run=False)
    with step("connect") as s:
        version = ctx.client.version()
        s["server"], s["version"] = ctx.client.host, version
    if not dry_run:
        kubeconfig = ctx.client.kubeconfig
        state.update(TARGET, server=ctx.client.host, context=ctx.client.context,
                     kubeconfig=str(Path(kubeconfig).resolve()) if kubeconfig else None)
    ctx.say(f"cluster {ctx.client.host} (Kubernetes {version})"
            + (": server-side dry run (dryRun=All), nothing is changed" if dry_run else ""))

    with step("check ownership", objects=len(manifests)):
        resolved = [(m, ctx.client.resource(m.api_version, m.kind)) for m in manifests]
        planned = _survey(ctx, resolved)
    declared = {p.manifest.name for p in planned if p.manifest.kind == "Namespace"}
    needed = sorted({p.namespace for p in planned if p.namespace is not None} - declared)
    ns_res = ctx.client.resource("v1", "Namespace")
    missing_ns = [ns for ns in needed if ctx.client.get(ns_res, ns, None) is None]
    results: list[dict[str, Any]] = []
    for ns in missing_ns:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        results.append(_apply_one(ctx, _Planned(Manifest(body, "namespace"), ns_res, None, None), force=force,
                                  dry_run=dry_run))

    with step("apply", objects=len(planned)):
        for item in planned:
            m, item_ns = item.manifest, item.namespace
            if dry_run and item_ns in missing_ns:
                results.append({"kind": m.kind, "name": m.name, "namespace": item_ns,
                                "action": "would be created (its namespace does not exist yet)"})
                ctx.say(f"  {m.kind}/{m.name} in {item_ns}: would be created after its namespace")
            elif item.use_as_is:
                ctx.say(f"  Namespace/{m.name}: exists and mlplan did not create it: used as it is (its labels "
                        "from the manifests are not applied)")
            else:
                results.append(_apply_one(ctx, item, force=force, dry_run=dry_run))
    wanted = {ref_id(p.manifest.api_version, p.manifest.kind, p.namespace, p.manifest.name) for p in planned}
    wanted |= {ref_id("v1", "Namespace", None, n) for n in needed}
    stale = [r for r in prior if r["id"] not in wanted and (r["kind"] != "Namespace" or r.get("created_by_mlplan"))]
    pruned = prune(ctx, stale, dry_run)
    changed = sum(not str(r["action"]).startswith("unchanged") for r in results) + len(pruned)
    ctx.say(f"applied {len(results)} objects with field manager {FIELD_MANAGER!r}: {changed} changed, "
            f"{len(results) + len(pruned) - changed} unchanged" + (f", {len(pruned)} pruned" if pruned else "")
            + (" (dry run)" if dry_run else ""))
    details = {"objects": results, "pruned": pruned}
    if dry_run:
        return Applied(target="kubernetes", changed=changed, dry_run=True, details=details)
    ready = False
    if wait:
        with state.step(TARGET, "wait for rollout", timeout_s=timeout_s) as s:
            ready = wait_rollout(ctx, timeout_s, poll_s)
            s["ready"] = ready
    state.update(TARGET, status="deployed")
    endpoint = service_endpoint(ctx, {p.manifest.name for p in planned if p.manifest.kind == "Service"})
    if endpoint:
        ctx.say(f"endpoint: {endpoint}")
    return Applied(target="kubernetes", changed=changed, ready=ready, endpoint=endpoint, details=details)


def service_endpoint(ctx: KubeContext, applied_services: set[str]) -> str | None:
    """The way in the plan names (``serving/endpoints.yaml``: the Service, its scheme and port), with the load
    balancer's address once the cluster has given it one, else the Service's in-cluster name."""
    path = ctx.folder.root / "serving" / "endpoints.yaml"
    if not path.is_file():
        return None
    from planner.specs import read_yaml

    data = read_yaml(path, what="endpoints", error=ArtifactError)
    entries = data.get("endpoints") if isinstance(data, dict) else None
    svc_res = ctx.client.resource("v1", "Service")
    for e in entries or []:
        if not isinstance(e, dict) or e.get("service") not in applied_services:
            continue
        name, ns = str(e["service"]), str(e.get("namespace") or "")
        live = ctx.client.get(svc_res, name, ns or None) or {}
        ingress = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        host = next((i.get("hostname") or i.get("ip") for i in ingress if i.get("hostname") or i.get("ip")), None)
        return f"{e.get('scheme', 'http')}://{host or f'{name}.{ns}.svc'}:{e.get('port', 80)}"
    return None
