"""The namespace of a part and its guard rails: Pod Security labels, the ServiceAccount (with its workload
identity), a ResourceQuota computed from the workloads at their scaling ceiling, deny-by-default NetworkPolicies,
and the PodDisruptionBudget of Ray workers."""

from __future__ import annotations

import math

from planner.plan import Plan
from stacks.layout import PartInfo
from stacks.manifests.base import GIB, GRPC_PORT, SERVE_PORT, Context, Obj, meta, pod_limits


def namespace(info: PartInfo, strict: bool) -> Obj:
    lab = {"app.kubernetes.io/managed-by": "mlplan", "pod-security.kubernetes.io/enforce": "restricted",
           "pod-security.kubernetes.io/enforce-version": "latest"}
    if strict:
        lab["mlplan.dev/data-class"] = "confidential"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": info.namespace, "labels": lab}}


def service_account(info: PartInfo, ctx: Context) -> Obj:
    """The serving pods' identity; its annotations bind it to the cloud identity that reads the model bucket."""
    md = meta(info.app, info)
    if ctx.service_account_annotations:
        md["annotations"] = dict(ctx.service_account_annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md, "automountServiceAccountToken": False}


def pod_sets(info: PartInfo, objs: list[Obj]) -> list[tuple[Obj, int]]:
    """(pod template, most pods at once) for every workload object, at its scaling ceiling.

    A RayService counts twice: KubeRay's zero-downtime upgrade brings up the new cluster before retiring the old.
    """
    out: list[tuple[Obj, int]] = []
    hpa_max = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
               for o in objs if o["kind"] == "HorizontalPodAutoscaler"}
    for o in objs:
        kind, spec = o["kind"], o.get("spec", {})
        if kind == "Deployment":
            out.append((spec["template"], max(spec.get("replicas", 1), hpa_max.get(o["metadata"]["name"], 0))))
        elif kind == "DaemonSet":
            out.append((spec["template"], info.part.nodes))
        elif kind in ("RayService", "RayJob"):
            cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or {}
            factor = 2 if kind == "RayService" else 1
            out.append((cluster["headGroupSpec"]["template"], factor))
            for g in cluster.get("workerGroupSpecs", []):
                n = max(g.get("replicas", 1), g.get("maxReplicas", 1)) * g.get("numOfHosts", 1)
                out.append((g["template"], n * factor))
    return out


def resource_quota(plan: Plan, info: PartInfo, objs: list[Obj]) -> Obj:
    """Caps the namespace at what its workloads need at their scaling ceiling (computed from the objects)."""
    total: dict[str, float] = {}
    pods = 0
    for template, n in pod_sets(info, objs):
        pods += n
        for k, v in pod_limits(template["spec"]).items():
            total[k] = total.get(k, 0.0) + v * n
    cpu = math.ceil(total.get("cpu", 0.0))
    mem = math.ceil(total.get("memory", 0.0) / GIB)
    hard: Obj = {"requests.cpu": str(cpu), "limits.cpu": str(cpu), "requests.memory": f"{mem}Gi",
                 "limits.memory": f"{mem}Gi", "pods": str(pods + 2)}
    for resource in sorted(k for k in total if "/" in k):  # nvidia.com/gpu, amd.com/gpu, ...
        hard[f"requests.{resource}"] = str(int(total[resource]))
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("mlplan-quota", info),
            "spec": {"hard": hard}}


def worker_pdb(info: PartInfo, rayservice: Obj) -> Obj | None:
    """Voluntary disruptions (node drains) take at most one Ray worker pod at a time."""
    groups = rayservice["spec"]["rayClusterConfig"].get("workerGroupSpecs", [])
    if not groups or sum(g.get("replicas", 1) for g in groups) < 2:
        return None
    lab = groups[0]["template"]["metadata"]["labels"]
    sel = {k: lab[k] for k in ("app.kubernetes.io/name", "ray.io/node-type") if k in lab}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(f"{rayservice['metadata']['name']}-workers", info),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}}


def network_policies(info: PartInfo, *, gateway_namespaces: bool = True) -> list[Obj]:
    """Deny all ingress and egress by default, then allow only what serving needs.

    Allowed: traffic inside the namespace (TP/PP ranks, router, front door), DNS, HTTPS egress except the instance
    metadata endpoint (model download, STS / token exchange for workload identity), and ingress on the serving
    ports from namespaces labelled ``mlplan.dev/gateway: "true"`` (your ingress controller / API gateway).
    """
    def np(name: str, spec: Obj) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, info),
                "spec": spec}

    out = [
        np("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        np("allow-same-namespace", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                    "ingress": [{"from": [{"podSelector": {}}]}],
                                    "egress": [{"to": [{"podSelector": {}}]}]}),
        np("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"namespaceSelector": {
                             "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
        np("allow-https-egress", {"podSelector": {}, "policyTypes": ["Egress"],
                                  "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                                  "except": ["169.254.169.254/32"]}}],
                                              "ports": [{"protocol": "TCP", "port": 443}]}]}),
    ]
    if info.part.target == "gcp-gke":
        # Workload Identity answers on the GKE metadata server: 169.254.169.254:80, and 169.254.169.252:988 with
        # Dataplane V2 (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity#network-policy)
        out.append(np("allow-gke-metadata-server", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}]},
            {"to": [{"ipBlock": {"cidr": "169.254.169.252/32"}}], "ports": [{"protocol": "TCP", "port": 988}]}]}))
    if gateway_namespaces:
        ports = [{"protocol": "TCP", "port": SERVE_PORT}]
        if info.part.runtime == "triton":
            ports.append({"protocol": "TCP", "port": GRPC_PORT})
        out.append(np("allow-gateway-ingress", {
            "podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "mlplan",
                                            "mlplan.dev/role": info.part.role}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"mlplan.dev/gateway": "true"}}}],
                         "ports": ports}]}))
    return out
