"""The one source of truth for Kubernetes objects: pure functions from a plan to manifest dicts.

These dicts are (a) written to ``k8s/*.yaml`` by the plan writer and (b) applied by the Pulumi components in
:mod:`stacks.k8s` (``pulumi_kubernetes.yaml.v2.ConfigGroup(objs=...)``), so IaC and manifests never disagree.
One module per job:

- :mod:`stacks.manifests.base`: images, ports, labels, the restricted security context, quantities, ``Context``;
- :mod:`stacks.manifests.server`: the model server (vLLM, TensorRT-LLM, Triton) as a Deployment or edge DaemonSet
  whose init containers fetch the model, sized to the node;
- :mod:`stacks.manifests.access`: the way in (a LoadBalancer, internal by data class, TLS front door);
- :mod:`stacks.manifests.policies`: namespace, ServiceAccount, quota, NetworkPolicies, PodDisruptionBudgets;
- :mod:`stacks.manifests.router`: the hybrid allow-list router;
- :mod:`stacks.manifests.training`: the training RayJob;
- here: one part's objects in apply order, every part's, the Contexts the writer uses, the endpoints ``deploy``
  reports and what the plan leaves to you (:func:`user_provided`).

Security defaults follow the Pod Security Standards "restricted" profile
(https://kubernetes.io/docs/concepts/security/pod-security-standards/): non-root, no privilege escalation, all
capabilities dropped, seccomp RuntimeDefault, read-only root filesystem with ``emptyDir`` for ``/tmp``, resource
requests and limits, liveness/readiness probes, no service-account token mounted. No Pulumi import here: this
package is cheap and used by ``mlplan plan`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.plan import Plan
from serving import fetch
from stacks.layout import PartInfo, parts
from stacks.manifests import access, policies, router, server, training
from stacks.manifests.base import (
    GIB,
    GRPC_PORT,
    IMAGES,
    METRICS_PORT,
    RUN_AS_USER,
    SERVE_PORT,
    TLS_PORT,
    Context,
    Obj,
    labels,
    meta,
    pod_limits,
    pod_requests,
    quantity,
    selector,
    weights_bytes,
)
from stacks.manifests.server import pod_resources, server_container

__all__ = ["GIB", "GRPC_PORT", "IMAGES", "METRICS_PORT", "RUN_AS_USER", "SERVE_PORT", "TLS_PORT", "Context", "Obj",
           "UserInput", "default_contexts", "endpoints", "hybrid_local_remote", "labels", "meta", "needs_kuberay",
           "part_manifests", "pod_limits", "pod_requests", "pod_resources", "quantity", "render",
           "selector", "server_container", "serving_service_name", "user_provided", "uses_rayservice",
           "weights_bytes"]

SPOT_TOLERATION = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists", "effect": "NoSchedule"}
AZURE_WORKLOAD_IDENTITY_LABELS = {"azure.workload.identity/use": "true"}


def uses_rayservice(plan: Plan, info: PartInfo) -> bool:
    """Served by Ray on Kubernetes (a KubeRay RayService): the serving package decides (Ray and vLLM runtimes;
    vLLM runs as Ray Serve LLM), so the RayService and the rest of the manifests agree."""
    from serving.kuberay import uses_kubernetes

    return plan.workload == "inference" and uses_kubernetes(plan, info.part)


def needs_kuberay(plan: Plan, info: PartInfo) -> bool:
    return plan.workload == "training" or uses_rayservice(plan, info)


def serving_service_name(objs: list[Obj], info: PartInfo) -> str:
    """The in-cluster Service that fronts the model: KubeRay's serve Service (ours, or ``<name>-serve-svc``) or
    the Deployment's."""
    for o in objs:
        if o["kind"] == "RayService":
            custom = o["spec"].get("serveService", {}).get("metadata", {}).get("name")
            return str(custom or f"{o['metadata']['name']}-serve-svc")
    return info.app


def _adapt_rayservice(rs: Obj, info: PartInfo, ctx: Context) -> None:
    """The live cluster's extras on every pod of the RayService: workload-identity pod labels, and the accelerator
    pool's extra taints (AKS Spot) on the GPU workers."""
    cluster = rs["spec"]["rayClusterConfig"]
    for g in [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]:
        tmpl = g["template"]
        tmpl.setdefault("metadata", {}).setdefault("labels", {}).update(ctx.pod_labels)
        spec = tmpl["spec"]
        if g is not cluster["headGroupSpec"] and spec.get("tolerations"):
            spec["tolerations"] += [dict(t) for t in ctx.extra_tolerations if dict(t) not in spec["tolerations"]]


def part_manifests(plan: Plan, info: PartInfo, ctx: Context | None = None, *, internal_lb: bool = False,
                   route_to: PartInfo | None = None) -> list[Obj]:
    """Every Kubernetes object of one part, in apply order (``internal_lb``: the cloud side of a hybrid plan,
    reached privately by the router; ``route_to``: hybrid, the router on this part sends public requests there)."""
    ctx = ctx or Context()
    part = info.part
    strict = plan.security.deny_by_default_network
    way_in = access.has_way_in(part) and route_to is None
    tls = way_in and access.needs_tls(part) and not internal_lb
    lb_ann = access.lb_annotations(part, ctx, private=True if internal_lb else None)
    work: list[Obj] = []
    if plan.workload == "training":
        work += training.training_job(plan, info, ctx)
    elif uses_rayservice(plan, info):
        from serving.kuberay import build_rayservice  # the serving package owns the RayService shape

        rs = build_rayservice(plan, info.namespace, part, bucket_uri=ctx.model_uri)
        _adapt_rayservice(rs, info, ctx)
        if (way_in and not tls) or internal_lb:
            md: Obj = {"name": f"{info.app}-endpoint", "labels": {**labels(info), access.ENDPOINT_LABEL: "true"}}
            if lb_ann:
                md["annotations"] = lb_ann
            rs["spec"]["serveService"] = {"metadata": md, "spec": {
                "type": "LoadBalancer", "ports": [{"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT}]}}
        work.append(rs)
        if tls:
            work += access.tls_front_door(info, serving_service_name([rs], info), ctx)
        work += [o for o in (policies.worker_pdb(info, rs),) if o is not None]
    else:
        if part.runtime == "triton":
            work.append(server.triton_repository(plan, info))
        work.append(server.workload(plan, info, ctx))
        lb = (way_in and not tls) or internal_lb
        work.append(server.service(info, lb_annotations=lb_ann if lb else None))
        if tls:
            work += access.tls_front_door(info, info.app, ctx)
        work += [o for o in (server.hpa(plan, info), server.pdb(info)) if o is not None]
    if route_to is not None:
        work += router.router(plan, info, route_to, ctx, serving_service_name(work, info))
        if strict:
            work.append(router.router_policy(info))
    objs: list[Obj] = [policies.namespace(info, strict), policies.service_account(info, ctx),
                       policies.resource_quota(plan, info, work)]
    if strict:
        objs += policies.network_policies(info)
        if access.endpoint(info, work) is not None:
            objs.append(access.allow_load_balancer(info, [SERVE_PORT, TLS_PORT]))
    return objs + work


def hybrid_local_remote(infos: list[PartInfo]) -> tuple[PartInfo, PartInfo] | None:
    """The (privacy-safe, marked-public) pair of a hybrid plan that needs the allow-list router, else None.
    (An edge fleet with a cloud fallback needs none: each site's clients call their own devices.)"""
    local = next((i for i in infos if i.part.routing == "not-marked-public" and i.uses_k8s), None)
    remote = next((i for i in infos if i.part.routing == "marked-public"), None)
    if local is None or remote is None:
        return None
    return local, remote


def render(plan: Plan, contexts: dict[str, Context] | None = None) -> dict[str, list[Obj]]:
    """All manifests of the plan, keyed by part key (the file ``k8s/<key>.yaml``). The caller has checked the
    plan against its spec (:func:`planner.guard.check_plan`: the writer before it writes, the folder loader
    before anything is built from a folder)."""
    contexts = contexts or {}
    infos = parts(plan)
    pair = hybrid_local_remote(infos) if plan.placement == "hybrid" else None
    out: dict[str, list[Obj]] = {}
    for info in infos:
        if not info.uses_k8s:
            continue
        ctx = contexts.get(info.key, Context())
        internal_lb = pair is not None and info is pair[1]
        route_to = pair[1] if pair is not None and info is pair[0] else None
        out[info.key] = part_manifests(plan, info, ctx, internal_lb=internal_lb, route_to=route_to)
    return out


def default_contexts(plan: Plan) -> dict[str, Context]:
    """Contexts the writer uses for ``k8s/*.yaml``: what the stack would hand over, from the plan, with a
    placeholder where only the cloud knows the value (the AWS account id, the GCP project, the Azure client id;
    the stack applies the same objects with the real values)."""
    from stacks.clouds import gke_serving_account_email

    out: dict[str, Context] = {}
    for info in parts(plan):
        p = info.part
        if info.target == "aws-eks" and p.names.role:
            out[info.key] = Context(service_account_annotations={
                "eks.amazonaws.com/role-arn": f"arn:aws:iam::ACCOUNT_ID:role/{p.names.role}"})
        elif info.target == "gcp-gke":
            out[info.key] = Context(service_account_annotations={
                "iam.gke.io/gcp-service-account": gke_serving_account_email(p.names.resource_prefix, "PROJECT_ID")})
        elif info.target == "azure-aks":
            out[info.key] = Context(
                service_account_annotations={"azure.workload.identity/client-id": "CLIENT_ID"},
                pod_labels=dict(AZURE_WORKLOAD_IDENTITY_LABELS),
                extra_tolerations=(SPOT_TOLERATION,) if p.purchase == "spot" else ())
        else:
            out[info.key] = Context()
    return out


def endpoints(plan: Plan, rendered: dict[str, list[Obj]] | None = None) -> list[dict[str, Any]]:
    """Every part's way in (namespace, Service, port, scheme), as ``deploy`` reports it."""
    rendered = rendered if rendered is not None else render(plan, default_contexts(plan))
    out: list[dict[str, Any]] = []
    for info in parts(plan):
        rec = access.endpoint(info, rendered.get(info.key, []))
        if rec is not None:
            out.append(rec)
    return out


@dataclass(frozen=True)
class UserInput:
    """Something the plan references but leaves to you, with how to provide it (listed in PLAN.md)."""

    kind: str  # Secret, NodeLabel, LoadBalancer, ModelWeights, Entrypoint
    namespace: str
    name: str
    how: str
    required: bool = True
    command: str = ""  # a shell command that provides it, when there is one


def user_provided(plan: Plan, rendered: dict[str, list[Obj]] | None = None) -> list[UserInput]:
    """What the plan leaves to you: Secrets it references but does not create, node labels on your own cluster,
    weights only you can upload, a training entrypoint."""
    from stacks.manifests.server import model_source

    rendered = rendered if rendered is not None else render(plan, default_contexts(plan))
    out: list[UserInput] = []
    for info in parts(plan):
        objs = rendered.get(info.key)
        if objs is None:
            continue
        part, ns = info.part, info.namespace
        text = repr(objs)
        if fetch.HF_TOKEN_SECRET in text:
            out.append(UserInput("Secret", ns, fetch.HF_TOKEN_SECRET, "a Hugging Face token, for gated models",
                                 required=False, command=f"kubectl -n {ns} create secret generic "
                                                         f"{fetch.HF_TOKEN_SECRET} "
                                                         f"--from-literal={fetch.HF_TOKEN_KEY}=hf_..."))
        if f"'secretName': '{access.tls_secret(info)}'" in text:
            out.append(UserInput("Secret", ns, access.tls_secret(info),
                                 "the endpoint's TLS certificate and key (or a cert-manager Certificate with that "
                                 "secretName)", command=f"kubectl -n {ns} create secret tls "
                                                        f"{access.tls_secret(info)} --cert=tls.crt --key=tls.key"))
        if info.target == "kubeconfig":
            from serving import hardware

            sel = ", ".join(f"{k}={v}" for k, v in hardware.node_selector(part).items())
            out.append(UserInput("NodeLabel", "", sel, f"label the {part.accelerator} nodes of your cluster {sel} "
                                                       "(GPU Feature Discovery sets nvidia.com/gpu.product)"))
            if part.device.resource and part.gpus_per_node > 0:
                out.append(UserInput("DevicePlugin", "", part.device.resource,
                                     f"a device plugin advertising {part.device.resource} on the accelerator nodes "
                                     "(the NVIDIA GPU Operator or k8s-device-plugin, AMD's GPU Operator)"))
            out.append(UserInput("SystemNodes", "", "", "two or more untainted nodes of at least 4 vCPU and 16 GiB "
                                                        "for the operators, the Ray head, the router and the TLS "
                                                        "front door (the accelerator nodes may be tainted)"))
            if access.endpoint(info, objs) is not None:
                out.append(UserInput("LoadBalancer", ns, "", "a load-balancer implementation for Services of type "
                                                             "LoadBalancer (MetalLB, kube-vip, your cloud's)"))
        if info.target == "edge-fleet":
            out.append(UserInput("NodeLabel", "", f"node-role.kubernetes.io/edge=true, mlplan.dev/device="
                                                  f"{part.instance}", "label each edge device"))
        if plan.workload == "inference" and part.runtime in ("vllm", "tensorrt-llm", "triton"):
            src = model_source(plan, info, Context())
            if src.kind == "user":
                out.append(UserInput("ModelWeights", ns, "", src.why))
            elif src.upload:
                tool = {"s3": "aws s3 sync", "gcs": "gcloud storage rsync --recursive",
                        "azure-blob": "az storage blob upload-batch --auth-mode login"}.get(src.kind, "copy")
                out.append(UserInput("ModelWeights", ns, src.uri, f"upload {src.upload} to {src.uri} before the "
                                                                  f"first rollout ({tool}); the stack creates the "
                                                                  "bucket, private and encrypted"))
        if plan.workload == "training" and plan.training is not None and not plan.training.entrypoint:
            out.append(UserInput("Entrypoint", ns, "", training.NO_ENTRYPOINT))
    return out
