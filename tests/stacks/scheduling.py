"""A fault-finder for plan folders, read as a cluster would read them: does every pod land somewhere, does every
reference resolve, is every volume filled, do Services and probes meet the containers?

It judges the manifests a folder holds (``k8s/*.yaml``) against the cluster the plan's stack creates, read from
what the Pulumi program records under Pulumi's own mocks (node groups / pools with their instance types, labels
and taints) and from the catalog (each instance type's vCPU, memory and accelerators), never from the emitter's
own sizing:

- **scheduling**: for every pod template, some node group satisfies its nodeSelector, required node affinity and
  taints (tolerations), and its effective requests (the larger of the containers' sum and any init container)
  fit one node's allocatable after the kubelet's reserves and the platform's own DaemonSets; and the pods that
  must run on a group at the planned replica count fit the group's nodes together;
- **references**: every ServiceAccount, Secret, ConfigMap and PVC a pod names is created by the folder or is one
  the plan documents as yours to create (:func:`stacks.manifests.user_provided`); every Envoy upstream names a
  Service of the folder (or KubeRay's serve Service of a RayService in it);
- **volumes**: every ``emptyDir`` a serving container mounts read-only is written by an init container of the same
  pod (the model fetch), and a model volume holds at least 1.1 x the part's weight bytes; a PVC is written by
  an init container; a fetch that refuses to start counts only if the plan documents the weights as yours;
- **ports and probes**: every Service's target ports are ports its pods declare; HTTP probes name a declared port
  and a path the image's server answers; exec probes call the health endpoints of Ray.

On-prem and edge parts have no stack: their cluster is the one the plan documents (accelerator nodes with the
labels it asks you to set and the GPU taint, plus untainted system nodes of :data:`ONPREM_SYSTEM_NODE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
Res = dict[str, Any]
MIB = 2**20

#: Shapes of the system node types the stacks create (vCPU, GiB). Sources: https://aws.amazon.com/ec2/ (m6i, m7i)
#: instance-types/m6i/ ; https://cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types ;
#: https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/dsv5-series
SYSTEM_SHAPES = {"m6i.xlarge": (4, 16.0), "m7i.xlarge": (4, 16.0), "e2-standard-4": (4, 16.0),
                 "Standard_D4s_v5": (4, 16.0)}
#: The untainted nodes an on-prem cluster must have for the Ray head, routers and front doors (documented in
#: PLAN.md as yours).
ONPREM_SYSTEM_NODE = (4, 16.0)
#: What the platform's own DaemonSets request per node (millicores, MiB), beside the kubelet's reserves.
#: EKS: aws-node 25m, kube-proxy 100m (EKS add-on manifests). GKE: kube-proxy 100m, fluentbit-gke 100m / 200 MiB,
#: gke-metrics-agent, pdcsi-node and netd about 50m / 150 MiB (GKE system DaemonSets). AKS: cloud-node-manager
#: 50m / 50 MiB, csi-azuredisk-node and csi-azurefile-node 30m / 60 MiB each, azure-cns and cilium about
#: 250m / 300 MiB (AKS system DaemonSets). On-prem / edge: kube-proxy and a CNI, 200m / 256 MiB.
PLATFORM_DAEMONSETS = {"aws": (125, 64), "gcp": (300, 400), "azure": (400, 600), "onprem": (200, 256)}
#: Paths each server answers 200 on. Sources: vLLM's OpenAI server routes (/health, /ping, /v1/models, /metrics);
#: trtllm-serve (/health, /v1/models, /metrics); Triton's KServe v2 HTTP API (/v2/health/ready, /v2/health/live).
SERVED_PATHS = {"vllm/vllm-openai": {"/health", "/ping", "/v1/models", "/metrics"},
                "rocm/vllm": {"/health", "/ping", "/v1/models", "/metrics"},
                "nvcr.io/nvidia/tensorrt-llm": {"/health", "/v1/models", "/metrics"},
                "nvcr.io/nvidia/tritonserver": {"/v2/health/ready", "/v2/health/live"}}
#: Ray's health endpoints (KubeRay's default probes): raylet 52365, GCS via the dashboard 8265, Serve proxy 8000.
RAY_HEALTH = ("localhost:52365/api/local_raylet_healthz", "localhost:8265/api/gcs_healthz", "localhost:8000/-/healthz")
_UNITS = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}


def quantity(q: Any) -> float:
    text = str(q)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    return float(text)


@dataclass(frozen=True)
class NodeGroup:
    """A group of identical nodes as the scheduler sees them."""

    name: str
    part: str
    labels: dict[str, str]
    taints: tuple[tuple[str, str], ...]  # (key, effect)
    cpu_m: int  # allocatable, less the platform's DaemonSets
    memory_mib: int
    extended: dict[str, int]
    nodes: int


@dataclass
class Report:
    unschedulable: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    pods: int = 0
    user_inputs: int = 0

    def problems(self) -> list[str]:
        return self.unschedulable + self.dangling + self.unfilled + self.ports + self.probes


# -------------------------------------------------------------------------------------------- the cluster


@cache
def _catalog() -> Any:
    from planner.catalog import Catalog

    return Catalog.load()


def _shape(provider: str, instance: str) -> tuple[int, float, int]:
    """(vCPU, GiB, accelerators) of an instance type: the system types, else the catalog's row."""
    if instance in SYSTEM_SHAPES:
        v, g = SYSTEM_SHAPES[instance]
        return v, g, 0
    for row in _catalog().instances:
        if row.provider == provider and row.instance == instance:
            return row.vcpu, row.ram_gib, row.accelerator_count
    raise KeyError(f"{provider} instance type {instance} is not in the catalog")


def _allocatable(provider: str, vcpu: int, gib: float, accelerators: int) -> tuple[int, int]:
    from planner.optimizer.nodes import node_shape

    shape = node_shape(provider, vcpu, gib, accelerators)
    ds_cpu, ds_mem = PLATFORM_DAEMONSETS.get(provider, PLATFORM_DAEMONSETS["onprem"])
    return shape.allocatable_cpu_millicores - ds_cpu, shape.allocatable_memory_mib - ds_mem


def _group(name: str, part: Any, provider: str, instance: str, labels: dict[str, str],
           taints: list[tuple[str, str]], nodes: int, resource: str | None) -> NodeGroup:
    vcpu, gib, acc = _shape(provider, instance)
    cpu, mem = _allocatable(provider, vcpu, gib, acc)
    extended = {resource: acc} if resource and acc else {}
    well_known = {"node.kubernetes.io/instance-type": instance, "kubernetes.io/os": "linux"}
    return NodeGroup(name, part.names.key, {**well_known, **labels}, tuple(taints), cpu, mem, extended, nodes)


def _effect(e: str) -> str:
    return {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}.get(e, e)


def cluster_model(plan: Any, resources: list[Res]) -> list[NodeGroup]:
    """Every node group of every part: from the recorded resources for the clusters the stacks create, from the
    plan's documented requirements for clusters you bring."""
    out: list[NodeGroup] = []
    from planner.names import gcp_prefix

    for part in plan.parts:
        prefix = gcp_prefix(part.names.resource_prefix) if part.target == "gcp-gke" else part.names.resource_prefix
        mine = [r for r in resources if r["name"].startswith(prefix)]
        resource = part.device.resource if part.gpus_per_node > 0 else None
        if part.target == "aws-eks":
            for r in mine:
                if r["type"] == "aws:eks/nodeGroup:NodeGroup":
                    i = r["inputs"]
                    taints = [(t["key"], _effect(t["effect"])) for t in i.get("taints") or []]
                    out.append(_group(r["name"], part, "aws", i["instanceTypes"][0], dict(i.get("labels") or {}),
                                      taints, int(i["scalingConfig"]["desiredSize"]), resource))
        elif part.target == "gcp-gke":
            for r in mine:
                if r["type"] == "gcp:container/nodePool:NodePool":
                    i, cfg = r["inputs"], r["inputs"]["nodeConfig"]
                    taints = [(t["key"], _effect(t["effect"])) for t in cfg.get("taints") or []]
                    labels = {**(cfg.get("labels") or {}), "cloud.google.com/gke-nodepool": i["name"]}
                    gpus = sum(int(a["count"]) for a in cfg.get("guestAccelerators") or [])
                    if gpus:  # GKE taints GPU nodes itself (nvidia.com/gpu=present:NoSchedule)
                        taints.append(("nvidia.com/gpu", "NoSchedule"))
                    n = int(i.get("initialNodeCount") or i.get("nodeCount") or 0) or int(i.get("nodeCount", 1))
                    zones = len(i.get("nodeLocations") or [1])
                    out.append(_group(r["name"], part, "gcp", cfg["machineType"], labels, taints,
                                      n * zones, resource if gpus else None))
        elif part.target == "azure-aks":
            for r in mine:
                i = r["inputs"]
                if r["type"] == "azure-native:containerservice:ManagedCluster":
                    for p in i.get("agentPoolProfiles") or []:
                        labels = {**(p.get("nodeLabels") or {}), "kubernetes.azure.com/agentpool": p["name"]}
                        out.append(_group(f"{r['name']}-{p['name']}", part, "azure", p["vmSize"], labels, [],
                                          int(p["count"]), None))
                if r["type"] == "azure-native:containerservice:AgentPool":
                    taints = []
                    for t in i.get("nodeTaints") or []:
                        key_value, _, effect = t.partition(":")
                        taints.append((key_value.split("=")[0], effect))
                    labels = {**(i.get("nodeLabels") or {}), "kubernetes.azure.com/agentpool": i["agentPoolName"]}
                    out.append(_group(r["name"], part, "azure", i["vmSize"], labels, taints, int(i["count"]),
                                      resource))
        elif part.target in ("kubeconfig", "edge-fleet"):
            out += _documented(part)
    return out


def _documented(part: Any) -> list[NodeGroup]:
    """The nodes an on-prem cluster or edge fleet must have, per the plan: the part's nodes with the labels PLAN.md
    asks for (and the GPU taint, the strictest case), plus untainted system nodes on an on-prem cluster."""
    from serving import hardware

    n = part.node
    provider = "onprem"
    ds_cpu, ds_mem = PLATFORM_DAEMONSETS[provider]
    labels = dict(hardware.node_selector(part))
    if part.device.gpu_product:
        labels[hardware.GPU_PRODUCT_LABEL] = part.device.gpu_product
    labels.setdefault(hardware.ACCELERATOR_LABEL, part.accelerator)
    resource = part.device.resource if part.gpus_per_node > 0 else None
    taints = ((resource, "NoSchedule"),) if resource and part.placement != "edge" else ()
    groups = [NodeGroup(f"{part.names.key}-accelerators", part.names.key, labels, taints,
                        n.allocatable_cpu_millicores - ds_cpu, n.allocatable_memory_mib - ds_mem,
                        {resource: part.gpus_per_node} if resource else {}, part.nodes)]
    if part.target == "kubeconfig":
        cpu, mem = _allocatable("onprem", ONPREM_SYSTEM_NODE[0], ONPREM_SYSTEM_NODE[1], 0)
        groups.append(NodeGroup(f"{part.names.key}-system", part.names.key, {"kubernetes.io/os": "linux"}, (),
                                cpu, mem, {}, 2))
    return groups


# ------------------------------------------------------------------------------------------------ pods


def pod_templates(doc: Obj) -> Iterator[tuple[str, Obj, int]]:
    """(label, pod template, pods at the planned replica count) of every pod-carrying object."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    name = f"{kind}/{doc['metadata']['name']}"
    if kind in ("Deployment", "StatefulSet"):
        yield name, spec["template"], int(spec.get("replicas", 1))
    elif kind == "DaemonSet":
        yield name, spec["template"], -1  # one per matching node
    elif kind == "Job":
        yield name, spec["template"], int(spec.get("parallelism", 1))
    elif kind in ("RayService", "RayJob"):
        cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or {}
        yield f"{name} head", cluster["headGroupSpec"]["template"], 1
        for g in cluster.get("workerGroupSpecs") or []:
            yield f"{name} {g['groupName']}", g["template"], int(g.get("replicas", 1)) * int(g.get("numOfHosts", 1))


def requests(pod: Obj) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in pod.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits")
                     or {}).items():
            total[k] = total.get(k, 0.0) + quantity(v)
    for c in pod.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = max(total.get(k, 0.0), quantity(v))
    return total


def _tolerated(taint: tuple[str, str], tolerations: list[Obj]) -> bool:
    key, effect = taint
    if effect == "PreferNoSchedule":
        return True
    for t in tolerations:
        if t.get("operator") == "Exists" and not t.get("key") and t.get("effect") in (None, "", effect):
            return True
        if t.get("key") == key and t.get("effect") in (None, "", effect) and t.get("operator", "Equal") in (
                "Exists", "Equal"):
            return True
    return False


def _affinity_ok(pod: Obj, labels: dict[str, str]) -> bool:
    req = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if not req:
        return True
    for term in req.get("nodeSelectorTerms") or []:
        ok = True
        for e in term.get("matchExpressions") or []:
            v, op = labels.get(e["key"]), e["operator"]
            if (op == "In" and v not in e.get("values", [])) or (op == "NotIn" and v in e.get("values", [])) or \
                    (op == "Exists" and v is None) or (op == "DoesNotExist" and v is not None):
                ok = False
        if ok:
            return True
    return False


def why_not(pod: Obj, group: NodeGroup) -> str | None:
    """Why a pod cannot run on a node of ``group`` (None: it can)."""
    for k, v in (pod.get("nodeSelector") or {}).items():
        if group.labels.get(k) != v:
            return f"nodeSelector {k}={v}"
    if not _affinity_ok(pod, group.labels):
        return "node affinity"
    for taint in group.taints:
        if not _tolerated(taint, pod.get("tolerations") or []):
            return f"taint {taint[0]}:{taint[1]} not tolerated"
    need = requests(pod)
    if need.get("cpu", 0.0) * 1000 > group.cpu_m + 1e-6:
        return f"cpu {need['cpu']:.2f} > {group.cpu_m / 1000:.2f} allocatable"
    if need.get("memory", 0.0) / MIB > group.memory_mib + 1e-6:
        return f"memory {need['memory'] / MIB:.0f} MiB > {group.memory_mib} MiB allocatable"
    for k, v in need.items():
        if "/" in k and v > group.extended.get(k, 0):
            return f"{k} {v:.0f} > {group.extended.get(k, 0)} per node"
    return None


# ---------------------------------------------------------------------------------------------- checks


def read_folder(folder: Path) -> dict[str, list[Obj]]:
    """The folder's manifests per part key (``k8s/<key>.yaml``)."""
    out: dict[str, list[Obj]] = {}
    for f in sorted((folder / "k8s").glob("*.yaml")):
        out[f.stem] = [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if isinstance(d, dict)]
    return out


def check(plan: Any, rendered: dict[str, list[Obj]], groups: list[NodeGroup],
          user_inputs: list[Any] | None = None) -> Report:
    """Every check of the module docstring over one plan's manifests and cluster."""
    rep = Report()
    documented = {(u.kind, u.namespace, u.name) for u in user_inputs or []}
    weights_documented = {u.namespace for u in user_inputs or [] if u.kind == "ModelWeights"}
    rep.user_inputs = len(user_inputs or [])
    parts = {p.names.key: p for p in plan.parts}
    for key, objs in rendered.items():
        part = parts[key]
        mine = [g for g in groups if g.part == key]
        created = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}
        load: dict[str, dict[str, float]] = {}
        for o in objs:
            for label, tmpl, count in pod_templates(o):
                pod = tmpl.get("spec") or {}
                rep.pods += 1
                ns = o["metadata"].get("namespace", "")
                fits = {g.name: why_not(pod, g) for g in mine}
                ok = [g for g in mine if fits[g.name] is None]
                if not ok:
                    reasons = "; ".join(f"{g}: {w}" for g, w in fits.items()) or "no node group"
                    rep.unschedulable.append(f"{key} {label}: {reasons}")
                else:
                    g = ok[0]
                    n = g.nodes if count < 0 else count
                    for k, v in requests(pod).items():
                        load.setdefault(g.name, {})[k] = load.get(g.name, {}).get(k, 0.0) + v * n
                _references(rep, key, label, ns, pod, created, documented)
                _volumes(rep, key, label, pod, part, ns in weights_documented)
                _probes(rep, key, label, pod)
        for g in mine:  # the pods a group must hold, together
            used = load.get(g.name, {})
            if used.get("cpu", 0.0) * 1000 > g.cpu_m * g.nodes + 1e-6 or \
                    used.get("memory", 0.0) / MIB > g.memory_mib * g.nodes + 1e-6 or \
                    any(v > g.extended.get(k, 0) * g.nodes for k, v in used.items() if "/" in k):
                rep.unschedulable.append(f"{key}: the pods of node group {g.name} ({used}) exceed its {g.nodes} "
                                         f"node(s)")
        _services(rep, key, objs)
        _upstreams(rep, key, objs)
    return rep


def _references(rep: Report, key: str, label: str, ns: str, pod: Obj, created: set[tuple[str, str, str]],
                documented: set[tuple[str, str, str]]) -> None:
    def need(kind: str, name: str) -> None:
        if (kind, ns, name) not in created and (kind, ns, name) not in documented:
            rep.dangling.append(f"{key} {label}: {kind} {ns}/{name} is neither created nor documented")

    sa = pod.get("serviceAccountName")
    if sa:
        need("ServiceAccount", sa)
    for v in pod.get("volumes") or []:
        if "secret" in v:
            need("Secret", v["secret"]["secretName"])
        if "configMap" in v:
            need("ConfigMap", v["configMap"]["name"])
        if "persistentVolumeClaim" in v:
            need("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
    for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for e in c.get("env") or []:
            ref = e.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                need("Secret", ref["secretKeyRef"]["name"])
            if "configMapKeyRef" in ref:
                need("ConfigMap", ref["configMapKeyRef"]["name"])
        for e in c.get("envFrom") or []:
            if "secretRef" in e:
                need("Secret", e["secretRef"]["name"])
            if "configMapRef" in e:
                need("ConfigMap", e["configMapRef"]["name"])


def _writes(c: Obj, volume: str) -> bool:
    return any(m["name"] == volume and not m.get("readOnly") for m in c.get("volumeMounts") or [])


def _refuses(c: Obj) -> bool:
    """An init container that only explains why it cannot start (exit 1) writes nothing."""
    return "exit 1" in " ".join(map(str, c.get("command") or [])) and not any(
        tool in " ".join(map(str, c.get("command") or [])) for tool in ("snapshot_download", "aws s3", "gcloud", "az "))


def _volumes(rep: Report, key: str, label: str, pod: Obj, part: Any, weights_documented: bool) -> None:
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    inits = pod.get("initContainers") or []
    for c in pod.get("containers") or []:
        for m in c.get("volumeMounts") or []:
            v = vols.get(m["name"])
            if v is None:
                rep.unfilled.append(f"{key} {label}: container {c['name']} mounts {m['name']}, which no volume is")
                continue
            if not m.get("readOnly") or not ("emptyDir" in v or "persistentVolumeClaim" in v):
                continue  # scratch space, or a ConfigMap / Secret (their existence is a reference check)
            fillers = [i for i in inits if _writes(i, m["name"])]
            if not fillers or (all(_refuses(i) for i in fillers) and not weights_documented):
                rep.unfilled.append(f"{key} {label}: volume {m['name']} is read by {c['name']} and filled by "
                                    "nothing")
            if m["mountPath"] == "/models" and "emptyDir" in v and part.engine is not None:
                size = quantity(v["emptyDir"].get("sizeLimit", "0"))
                if size < 1.1 * part.weights_bytes:
                    rep.unfilled.append(f"{key} {label}: model volume {size / 2**30:.0f} GiB < 1.1 x the "
                                        f"{part.weights_bytes / 2**30:.1f} GiB of weights")


def _ports(pod: Obj) -> tuple[set[str], set[int]]:
    names, numbers = set(), set()
    for c in pod.get("containers") or []:
        for p in c.get("ports") or []:
            numbers.add(int(p["containerPort"]))
            if p.get("name"):
                names.add(p["name"])
    return names, numbers


def _probes(rep: Report, key: str, label: str, pod: Obj) -> None:
    for c in pod.get("containers") or []:
        names, numbers = _ports({"containers": [c]})
        image = str(c.get("image", ""))
        served = next((paths for prefix, paths in SERVED_PATHS.items() if image.startswith(prefix)), None)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if not probe:
                continue
            target = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
            if target is not None and target not in names and target not in numbers:
                rep.probes.append(f"{key} {label}: {c['name']} {kind} port {target} is not a container port")
            if "httpGet" in probe and served is not None and probe["httpGet"]["path"] not in served:
                rep.probes.append(f"{key} {label}: {c['name']} {kind} path {probe['httpGet']['path']} is not one "
                                  f"{image.split(':')[0]} serves")
            if "httpGet" in probe and served is None:
                rep.probes.append(f"{key} {label}: {c['name']} {kind}: no known paths for image {image}")
            if "exec" in probe:
                cmd = " ".join(probe["exec"]["command"])
                if not any(h in cmd for h in RAY_HEALTH):
                    rep.probes.append(f"{key} {label}: {c['name']} {kind} runs {cmd!r}, no health endpoint")


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _services(rep: Report, key: str, objs: list[Obj]) -> None:
    pods = [(t.get("metadata", {}).get("labels") or {}, t.get("spec") or {})
            for o in objs for _, t, _ in pod_templates(o)]
    for o in objs:
        if o["kind"] == "Service":
            sel = o["spec"].get("selector") or {}
            backends = [spec for labels, spec in pods if _matches(sel, labels)]
            if not backends:
                rep.ports.append(f"{key} Service {o['metadata']['name']}: selects no pod of the plan")
                continue
            for p in o["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                if not all(target in _ports(b)[0] or target in _ports(b)[1] for b in backends):
                    rep.ports.append(f"{key} Service {o['metadata']['name']}: targetPort {target} is not a port of "
                                     "its pods")
        if o["kind"] == "RayService" and o["spec"].get("serveService"):
            serve = yaml.safe_load(o["spec"]["serveConfigV2"])
            port = int((serve.get("http_options") or {}).get("port", 8000))
            for p in o["spec"]["serveService"]["spec"]["ports"]:
                if int(p.get("targetPort", p["port"])) != port:
                    rep.ports.append(f"{key} RayService {o['metadata']['name']}: serve Service targets "
                                     f"{p.get('targetPort')}, Ray Serve listens on {port}")


_UPSTREAM = re.compile(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$")


def _upstreams(rep: Report, key: str, objs: list[Obj]) -> None:
    services = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs if o["kind"] == "Service"}
    services |= {(o["metadata"].get("namespace"), f"{o['metadata']['name']}-serve-svc") for o in objs
                 if o["kind"] == "RayService"}
    services |= {(o["metadata"].get("namespace"), o["spec"]["serveService"]["metadata"]["name"]) for o in objs
                 if o["kind"] == "RayService" and o["spec"].get("serveService")}
    for o in objs:
        if o["kind"] != "ConfigMap" or "envoy.yaml" not in (o.get("data") or {}):
            continue
        envoy = yaml.safe_load(o["data"]["envoy.yaml"])
        for cluster in envoy["static_resources"]["clusters"]:
            for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
                address = ep["endpoint"]["address"]["socket_address"]["address"]
                m = _UPSTREAM.match(address)
                if m and (m.group(2), m.group(1)) not in services:
                    rep.dangling.append(f"{key} ConfigMap {o['metadata']['name']}: upstream {address} is no "
                                        "Service of the plan")


def check_plan(plan: Any, resources: list[Res] | None = None) -> Report:
    """Render the plan's manifests as the writer does and check them against its cluster (``resources``: the
    recorded mock run; run here when not given)."""
    from stacks import manifests

    if resources is None:
        from tests.security.audit import mock_run

        resources = mock_run(plan)
    rendered = manifests.render(plan, manifests.default_contexts(plan))
    return check(plan, rendered, cluster_model(plan, resources), manifests.user_provided(plan, rendered))

