"""Hybrid routing: an Envoy front door next to the privacy-safe (on-prem / edge) side, as an allow-list.

Only a request positively marked ``x-mlplan-data-class: public`` goes to the cloud side's private endpoint; every
other request, an untagged one included, stays on the safe side (Envoy routes are matched in order: the header
match first, then a catch-all to the local cluster). The safe side is sized for the share of requests not marked
public. The router is the plan's way in: a LoadBalancer Service (internal, TLS when the data class asks for it).
Envoy route matching: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto
"""

from __future__ import annotations

from planner.plan import Plan
from stacks.layout import PartInfo
from stacks.manifests import access
from stacks.manifests.base import SERVE_PORT, TLS_PORT, Context, Obj, labels, meta

#: The header a client sets to mark a request public; the router's only rule that leaves the private side.
PUBLIC_HEADER = "x-mlplan-data-class"
PUBLIC_VALUE = "public"


def router_name(local: PartInfo) -> str:
    return f"{local.app}-router"


def router(plan: Plan, local: PartInfo, remote: PartInfo, ctx: Context, local_service: str) -> list[Obj]:
    """ConfigMap + Deployment of the Envoy router and its LoadBalancer Service."""
    import yaml

    endpoint = ctx.cloud_endpoint or f"{remote.app}.{remote.key}.mlplan.internal:{SERVE_PORT}"
    host, _, port = endpoint.rpartition(":")
    local_host = f"{local_service}.{local.namespace}.svc.cluster.local"
    tls = access.needs_tls(local.part)
    listen = TLS_PORT if tls else SERVE_PORT
    route_cfg = {"name": "mlplan", "virtual_hosts": [{"name": "model", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": PUBLIC_HEADER, "string_match": {"exact": PUBLIC_VALUE}}]},
         "route": {"cluster": "cloud", "timeout": "300s"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "local", "timeout": "300s"}},
    ]}]}
    envoy = {
        "static_resources": {
            "listeners": [access.envoy_listener("http", listen, route_cfg,
                                                tls_secret_dir="/etc/envoy-tls" if tls else None)],
            "clusters": [access.envoy_cluster("local", local_host, SERVE_PORT),
                         access.envoy_cluster("cloud", host, int(port))],
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    }
    name = router_name(local)
    rl = {**labels(local), "app.kubernetes.io/component": "router", "app.kubernetes.io/name": name}
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": name, "namespace": local.namespace, "labels": rl},
          "data": {"envoy.yaml": yaml.safe_dump(envoy, sort_keys=True)}}
    dep = access.envoy_deployment(local, name, "router", port=listen, tls=tls)
    ports = [{"name": "https" if tls else "http", "port": 443 if tls else SERVE_PORT, "targetPort": "http",
              "protocol": "TCP"}]
    svc = access.load_balancer(local, name, {"app.kubernetes.io/name": name}, ctx, ports, private=True)
    return [cm, dep, svc]


def router_policy(info: PartInfo) -> Obj:
    """Let the router reach the cloud side's private endpoint on the serving port."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta("allow-router-to-cloud", info),
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": router_name(info)}},
                     "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                 "ports": [{"protocol": "TCP", "port": SERVE_PORT}]}]}}
