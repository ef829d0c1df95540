"""The way in: the Service of type LoadBalancer that fronts a part, internal or internet-facing by its data class,
TLS where the data class asks for it, and the endpoint record ``deploy`` prints.

- **Internal** for confidential, restricted and air-gapped data, and for the cloud side of a hybrid plan (its
  router reaches it over the private link); internet-facing otherwise. Annotations per cluster:
  EKS, the AWS Load Balancer Controller's (``aws-load-balancer-type: external``, ``nlb-target-type: ip``,
  ``scheme: internal | internet-facing``; https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/
  guide/service/annotations/); GKE ``networking.gke.io/load-balancer-type: Internal``
  (https://cloud.google.com/kubernetes-engine/docs/how-to/internal-load-balancing); AKS
  ``service.beta.kubernetes.io/azure-load-balancer-internal: "true"`` (https://learn.microsoft.com/azure/aks/
  internal-lb); an on-prem cluster: your load-balancer implementation (MetalLB, kube-vip), no annotation.
- **TLS** for confidential, restricted and air-gapped data: an Envoy front door (``<app>-tls``, two replicas on
  the system pool) terminates TLS 1.2+ on port 443 with the certificate in the Secret ``<app>-tls`` (type
  ``kubernetes.io/tls``: yours to create, e.g. with cert-manager) and forwards to the serving Service inside the
  namespace. Envoy's TLS transport socket: https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/
  transport_sockets/tls/v3/tls.proto
- Edge fleets get no load balancer: each site's clients call their own devices.
"""

from __future__ import annotations

from typing import Any

from planner.plan import Part
from serving import hardware
from stacks.layout import PartInfo
from stacks.manifests.base import (
    IMAGES,
    SERVE_PORT,
    TLS_PORT,
    Context,
    Obj,
    container_security,
    labels,
    pod_security,
    pull_policy,
)

PRIVATE_CLASSES = ("confidential", "restricted", "air-gapped")
ENDPOINT_LABEL = "mlplan.dev/endpoint"
#: RFC 1918 private ranges: where clients of an internal load balancer come from (the VPC, peered networks, the
#: on-prem side over VPN / Direct Connect / Interconnect / ExpressRoute).
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
AWS_LBC_ANNOTATIONS = {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
                       "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}
AWS_SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"
GKE_INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
AKS_INTERNAL = {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}
TLS_SECRET_SUFFIX = "-tls"


def has_way_in(part: Part) -> bool:
    """Parts reached through a load balancer: every Kubernetes part but an edge fleet's."""
    return part.target in ("aws-eks", "gcp-gke", "azure-aks", "kubeconfig")


def internal(part: Part) -> bool:
    """The load balancer stays inside the private network."""
    return part.data_class in PRIVATE_CLASSES or part.routing == "marked-public"


def needs_tls(part: Part) -> bool:
    """The data class asks for encryption in transit up to the model server's namespace."""
    return part.data_class in PRIVATE_CLASSES


def lb_annotations(part: Part, ctx: Context, *, private: bool | None = None) -> dict[str, str]:
    """The annotations that make a ``LoadBalancer`` Service the right kind of load balancer on the part's cluster
    (``ctx.lb_annotations``: the GKE / AKS stack's own, when it hands them over)."""
    inside = internal(part) if private is None else private
    if part.target == "aws-eks":
        return {**AWS_LBC_ANNOTATIONS, AWS_SCHEME: "internal" if inside else "internet-facing"}
    if part.target in ("gcp-gke", "azure-aks"):
        if not inside:
            return {}
        if ctx.lb_annotations:
            return dict(ctx.lb_annotations)
        return dict(GKE_INTERNAL if part.target == "gcp-gke" else AKS_INTERNAL)
    return {}


def system_selector(part: Part) -> dict[str, str]:
    """Pods that belong on the system pool (front doors, routers, the Ray head): its label on the clusters the
    stacks create; on your own cluster, any untainted node."""
    if part.target in hardware.CLOUD_CLUSTER_TARGETS:
        return {hardware.POOL_LABEL: hardware.SYSTEM_POOL}
    return {}


def tls_secret(info: PartInfo) -> str:
    return f"{info.app}{TLS_SECRET_SUFFIX}"


def envoy_listener(name: str, port: int, route_config: Obj, *, tls_secret_dir: str | None) -> Obj:
    """An Envoy HTTP listener (TLS 1.2+ from ``tls_secret_dir``/tls.crt and tls.key when given)."""
    chain: Obj = {"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                     "HttpConnectionManager",
            "stat_prefix": "mlplan", "route_config": route_config,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}
    if tls_secret_dir:
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [{"certificate_chain": {"filename": f"{tls_secret_dir}/tls.crt"},
                                      "private_key": {"filename": f"{tls_secret_dir}/tls.key"}}]}}}
    return {"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [chain]}


def envoy_cluster(name: str, address: str, port: int) -> Obj:
    return {"name": name, "type": "STRICT_DNS", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": address, "port_value": port}}}}]}]}}


def envoy_deployment(info: PartInfo, name: str, component: str, *, port: int, tls: bool,
                     annotations: dict[str, str] | None = None) -> Obj:
    """Two Envoy replicas on the system pool reading ``/etc/envoy/envoy.yaml`` from the ConfigMap ``name``
    (and the TLS Secret when ``tls``)."""
    lab = {**labels(info), "app.kubernetes.io/component": component, "app.kubernetes.io/name": name}
    sel = {"app.kubernetes.io/name": name}
    mounts = [{"name": "config", "mountPath": "/etc/envoy", "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]
    vols: list[Obj] = [{"name": "config", "configMap": {"name": name}},
                       {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if tls:
        mounts.append({"name": "tls", "mountPath": "/etc/envoy-tls", "readOnly": True})
        vols.append({"name": "tls", "secret": {"secretName": tls_secret(info)}})
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    spec: Obj = {
        "automountServiceAccountToken": False, "securityContext": pod_security(),
        "containers": [{"name": "envoy", "image": IMAGES["envoy"], "imagePullPolicy": pull_policy(info.part),
                        "args": ["-c", "/etc/envoy/envoy.yaml"],
                        "ports": [{"name": "http", "containerPort": port}],
                        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "securityContext": container_security(),
                        "readinessProbe": probe, "livenessProbe": probe, "volumeMounts": mounts}],
        "volumes": vols}
    node_sel = system_selector(info.part)
    if node_sel:
        spec["nodeSelector"] = node_sel
    md: dict[str, Any] = {"name": name, "namespace": info.namespace, "labels": lab}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md, "spec": {
        "replicas": 2, "selector": {"matchLabels": sel},
        "template": {"metadata": {"labels": lab}, "spec": spec}}}


def tls_front_door(info: PartInfo, upstream_service: str, ctx: Context) -> list[Obj]:
    """Envoy terminating TLS on 443 in front of ``upstream_service``, behind a LoadBalancer Service."""
    import yaml

    name = f"{info.app}-tls"
    route = {"name": "mlplan", "virtual_hosts": [{"name": "model", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "model", "timeout": "300s"}}]}]}
    envoy = {"static_resources": {
        "listeners": [envoy_listener("https", TLS_PORT, route, tls_secret_dir="/etc/envoy-tls")],
        "clusters": [envoy_cluster("model", f"{upstream_service}.{info.namespace}.svc.cluster.local",
                                   SERVE_PORT)]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}}
    lab = {**labels(info), "app.kubernetes.io/component": "tls-front-door", "app.kubernetes.io/name": name}
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": name, "namespace": info.namespace, "labels": lab},
          "data": {"envoy.yaml": yaml.safe_dump(envoy, sort_keys=True)}}
    dep = envoy_deployment(info, name, "tls-front-door", port=TLS_PORT, tls=True)
    svc = load_balancer(info, f"{info.app}-endpoint", {"app.kubernetes.io/name": name}, ctx,
                        [{"name": "https", "port": 443, "targetPort": "http", "protocol": "TCP"}])
    return [cm, dep, svc]


def load_balancer(info: PartInfo, name: str, pod_selector: dict[str, str], ctx: Context, ports: list[Obj],
                  *, private: bool | None = None) -> Obj:
    """A ``LoadBalancer`` Service labelled as the part's endpoint."""
    lab = {**labels(info), ENDPOINT_LABEL: "true"}
    md: Obj = {"name": name, "namespace": info.namespace, "labels": lab}
    ann = lb_annotations(info.part, ctx, private=private)
    if ann:
        md["annotations"] = ann
    return {"apiVersion": "v1", "kind": "Service", "metadata": md,
            "spec": {"type": "LoadBalancer", "selector": pod_selector, "ports": ports}}


def allow_load_balancer(info: PartInfo, ports: list[int]) -> Obj:
    """Under deny-by-default: let clients of the internal load balancer (private ranges only) reach the
    namespace's pods on the serving ports."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow-load-balancer", "namespace": info.namespace, "labels": labels(info)},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": c}} for c in PRIVATE_CIDRS],
                                  "ports": [{"protocol": "TCP", "port": p} for p in sorted(set(ports))]}]}}


def endpoint(info: PartInfo, objs: list[Obj]) -> dict[str, Any] | None:
    """The part's way in, as ``deploy`` reports it: the LoadBalancer Service's namespace, name, port and scheme
    (None for a part without one)."""
    for o in objs:
        if o["kind"] == "Service" and (o["metadata"].get("labels") or {}).get(ENDPOINT_LABEL) == "true":
            port = o["spec"]["ports"][0]["port"]
            return {"part": info.key, "namespace": info.namespace, "service": o["metadata"]["name"],
                    "port": port, "scheme": "https" if port == 443 else "http",
                    "internal": internal(info.part) or info.part.target == "kubeconfig"}
        if o["kind"] == "RayService":
            ss = o["spec"].get("serveService") or {}
            if (ss.get("metadata", {}).get("labels") or {}).get(ENDPOINT_LABEL) == "true":
                return {"part": info.key, "namespace": info.namespace, "service": ss["metadata"]["name"],
                        "port": ss["spec"]["ports"][0]["port"], "scheme": "http",
                        "internal": internal(info.part) or info.part.target == "kubeconfig"}
    return None
