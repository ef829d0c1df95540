"""Security audit of what mlplan emits, shared by ``tests/security`` and ``benchmarks/security_report.py``.

- :func:`emit_examples` / :func:`emit_factories`: the plan folders of every example spec (real optimizer) and of
  every hand-built factory plan (``tests.stacks.conftest.PLANS``), written by the real plan writer;
- :func:`manifest_files`: the Kubernetes manifests of a folder (``k8s/*.yaml``, ``serving/kuberay/rayservice.yaml``);
- :func:`run_checkov` + :class:`Baseline`: checkov (its own environment, ``.venv-checkov``) and the checked-in
  baseline of accepted failures (``tests/security/checkov-baseline.yaml``);
- :func:`pss_violations`: the Kubernetes Pod Security Standards "restricted" profile, checked per pod template;
- :func:`iam_wildcards`, :func:`public_exposure`, :func:`residency_violations`: the Pulumi program's recorded
  resources (``stacks.preview.run_under_mocks``) checked for ``*`` grants, public buckets / ingress, and
  resources outside the plan's residency set.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
BASELINE = Path(__file__).resolve().parent / "checkov-baseline.yaml"
DOCKERFILE = ROOT / "Dockerfile"
EXAMPLES = ROOT / "examples"

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------- plan folders


def example_specs() -> list[Path]:
    """Every example spec (catalog overlays are inputs of the specs, not specs)."""
    return sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".catalog.yaml"))


def emit_example(spec_path: Path, out: Path) -> Any:
    """``mlplan plan SPEC --out OUT --no-preview`` in this process; returns the chosen plan."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec
    from stacks.writer import write_plan_folder

    spec = load_spec(spec_path)
    cat = Catalog.load(spec.catalog_overlay)
    rec = recommend(spec, cat, top=10)
    write_plan_folder(spec, rec, out, catalog=cat, preview=False)
    return rec.plans[0]


def emit_factory(name: str, out: Path) -> Any:
    """The plan folder of one factory plan, written as the writer's golden tests write it."""
    from stacks.writer import write_plan_folder
    from tests.stacks.conftest import PLANS
    from tests.stacks.test_writer import fixed_catalog, recommendation, spec_for

    plan = PLANS[name]()
    write_plan_folder(spec_for(name), recommendation(plan), out, catalog=fixed_catalog(), preview=False)
    return plan


def factory_names() -> list[str]:
    from tests.stacks.conftest import PLANS

    return sorted(PLANS)


def manifest_files(folder: Path) -> list[Path]:
    files = sorted((folder / "k8s").glob("*.yaml"))
    rs = folder / "serving" / "kuberay" / "rayservice.yaml"
    return files + ([rs] if rs.is_file() else [])


def documents(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]


# ------------------------------------------------------------------------------------------- checkov


@dataclass(frozen=True)
class Failure:
    check_id: str
    check_name: str
    kind: str  # Kubernetes kind, or "Dockerfile"
    resource: str  # checkov's resource id (kind.namespace.name, or the Dockerfile instruction)
    file: str  # path relative to the scanned root
    severity: str | None

    def __str__(self) -> str:
        return f"{self.check_id} ({self.check_name}) on {self.resource} in {self.file}"


def checkov_available() -> bool:
    return CHECKOV.is_file() and os.access(CHECKOV, os.X_OK)


def run_checkov(root: Path, timeout: float = 300,
                passed_by_file: dict[str, int] | None = None) -> tuple[int, list[Failure], int]:
    """checkov over every Kubernetes manifest and Dockerfile under ``root`` in one run (its own environment,
    offline: no Bridgecrew platform, no download). Returns (passed checks, failures, parsing errors), and fills
    ``passed_by_file`` (path relative to ``root`` -> passed checks) when given."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
           "LOG_LEVEL": "WARNING"}
    done = subprocess.run([str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "dockerfile",
                           "--skip-download", "--compact", "-o", "json"],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=root)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed (exit {done.returncode}): {done.stderr[-2000:]}")
    data = json.loads(done.stdout) if done.stdout.strip() else []
    reports = data if isinstance(data, list) else [data]
    passed, errors, failures = 0, 0, []
    for rep in reports:
        if not isinstance(rep, dict) or "results" not in rep:
            continue
        summary = rep.get("summary", {})
        passed += int(summary.get("passed", 0))
        if passed_by_file is not None:
            for c in rep["results"].get("passed_checks", []):
                rel = str(c["file_path"]).lstrip("/")
                passed_by_file[rel] = passed_by_file.get(rel, 0) + 1
        errors += int(summary.get("parsing_errors", 0))
        for c in rep["results"].get("failed_checks", []):
            kind = "Dockerfile" if rep.get("check_type") == "dockerfile" else str(c["resource"]).split(".")[0]
            failures.append(Failure(check_id=c["check_id"], check_name=c.get("check_name", ""), kind=kind,
                                    resource=str(c["resource"]), file=str(c["file_path"]).lstrip("/"),
                                    severity=c.get("severity")))
    return passed, failures, errors


@dataclass(frozen=True)
class BaselineEntry:
    check_id: str
    kind: str
    justification: str


class Baseline:
    """Accepted checkov failures: (check id, resource kind) with a one-line justification each."""

    def __init__(self, path: Path = BASELINE) -> None:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self.entries = [BaselineEntry(str(e["check_id"]), str(e["kind"]), str(e["justification"]))
                        for e in data.get("accepted", [])]

    def covers(self, f: Failure) -> BaselineEntry | None:
        return next((e for e in self.entries if e.check_id == f.check_id and e.kind == f.kind), None)

    def split(self, failures: list[Failure]) -> tuple[list[Failure], list[Failure], list[BaselineEntry]]:
        """(new failures, baselined failures, stale entries that no failure needs any more)."""
        new = [f for f in failures if self.covers(f) is None]
        old = [f for f in failures if self.covers(f) is not None]
        used = {(f.check_id, f.kind) for f in old}
        stale = [e for e in self.entries if (e.check_id, e.kind) not in used]
        return new, old, stale


# ------------------------------------------------------------------------------ Pod Security Standards

#: Pod-carrying kinds and where their pod templates live.
POD_PATHS: dict[str, list[tuple[str, ...]]] = {
    "Pod": [()],
    "Deployment": [("spec", "template")],
    "StatefulSet": [("spec", "template")],
    "DaemonSet": [("spec", "template")],
    "ReplicaSet": [("spec", "template")],
    "Job": [("spec", "template")],
    "CronJob": [("spec", "jobTemplate", "spec", "template")],
}

#: Restricted profile, "Volume Types": only these volume sources.
PSS_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
               "secret"}
#: Baseline profile, "Sysctls": the safe set.
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def pod_templates(doc: Obj) -> Iterator[tuple[str, Obj]]:
    """(label, pod spec) of every pod template in an object, KubeRay's RayService / RayCluster / RayJob
    (head group and every worker group) included."""
    kind = doc.get("kind", "")
    name = f"{kind}/{(doc.get('metadata') or {}).get('name', '?')}"

    def at(obj: Any, path: tuple[str, ...]) -> Any:
        for key in path:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    for path in POD_PATHS.get(kind, []):
        tmpl = at(doc, path)
        if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
            yield name, tmpl["spec"]
    cluster = None
    if kind == "RayCluster":
        cluster = doc.get("spec")
    elif kind == "RayService":
        cluster = at(doc, ("spec", "rayClusterConfig"))
    elif kind == "RayJob":
        cluster = at(doc, ("spec", "rayClusterSpec"))
    if isinstance(cluster, dict):
        head = at(cluster, ("headGroupSpec", "template", "spec"))
        if isinstance(head, dict):
            yield f"{name} head", head
        for g in cluster.get("workerGroupSpecs") or []:
            spec = at(g, ("template", "spec"))
            if isinstance(spec, dict):
                yield f"{name} workers {g.get('groupName', '?')}", spec


def pss_violations(pod: Obj) -> list[str]:
    """Violations of the Pod Security Standards "restricted" profile (which includes "baseline") in one pod
    spec, as the admission controller (``pod-security.kubernetes.io/enforce: restricted``) would judge them.
    Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.32)."""
    out: list[str] = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key}: true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("hostProcess")
    for v in pod.get("volumes") or []:
        source = [k for k in v if k != "name"]
        if "hostPath" in source:
            out.append(f"volume {v.get('name')}: hostPath")
        elif not set(source) <= PSS_VOLUMES:
            out.append(f"volume {v.get('name')}: type {source} not allowed")
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {s.get('name')} is not in the safe set")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        out.append("pod seccompProfile Unconfined")
    if (psc.get("seLinuxOptions") or {}).get("user") or (psc.get("seLinuxOptions") or {}).get("role"):
        out.append("pod seLinuxOptions user/role set")
    containers = [("container", c) for c in pod.get("containers") or []] + \
        [("initContainer", c) for c in pod.get("initContainers") or []] + \
        [("ephemeralContainer", c) for c in pod.get("ephemeralContainers") or []]
    if not pod.get("containers"):
        out.append("no containers")
    for what, c in containers:
        who = f"{what} {c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{who}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{who}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{who}: capabilities do not drop ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            out.append(f"{who}: adds capabilities {sorted(extra)}")
        if sc.get("runAsNonRoot") is not True and psc.get("runAsNonRoot") is not True:
            out.append(f"{who}: runAsNonRoot not true (pod or container)")
        if sc.get("runAsNonRoot") is False:
            out.append(f"{who}: runAsNonRoot false")
        if sc.get("runAsUser") == 0:
            out.append(f"{who}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{who}: seccompProfile {seccomp or 'unset'} (RuntimeDefault or Localhost required)")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{who}: procMount {sc.get('procMount')}")
        if (sc.get("seLinuxOptions") or {}).get("user") or (sc.get("seLinuxOptions") or {}).get("role"):
            out.append(f"{who}: seLinuxOptions user/role set")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{who}: appArmorProfile {apparmor}")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{who}: hostPort {p['hostPort']}")
    return out


# ----------------------------------------------------------------------------------- Pulumi resources

Res = dict[str, Any]


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def policy_documents(r: Res) -> list[Obj]:
    """IAM policy documents in a recorded resource's inputs (role policies, policies, bucket policies)."""
    docs = []
    for key in ("policy", "assumeRolePolicy"):
        raw = (r.get("inputs") or {}).get(key)
        if isinstance(raw, str):
            try:
                docs.append(json.loads(raw))
            except ValueError:
                continue
        elif isinstance(raw, dict):
            docs.append(raw)
    return docs


#: GCP roles a generated stack may grant, and where. Project level: only the GKE node service account's role;
#: on a bucket: read only (roles/storage.objectViewer); on a KMS key: encrypt/decrypt for the service agents;
#: on a service account: Workload Identity's impersonation. Source: https://cloud.google.com/iam/docs/roles-overview
GCP_ALLOWED_ROLES = {
    "gcp:projects/iAMMember:IAMMember": {"roles/container.defaultNodeServiceAccount"},
    "gcp:storage/bucketIAMMember:BucketIAMMember": {"roles/storage.objectViewer"},
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": {"roles/cloudkms.cryptoKeyEncrypterDecrypter"},
    "gcp:serviceaccount/iAMMember:IAMMember": {"roles/iam.workloadIdentityUser"},
}
#: Azure built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles)
#: a stack may assign, and on what. Contributor only on the dedicated hosts' own resource group (AKS must place
#: VMs there), cluster admin only on the cluster, blob data read-only.
AZURE_ROLES = {
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": ("Storage Blob Data Reader", "storage:BlobContainer"),
    "4d97b98b-1d4f-4787-a291-c67834d212e7": ("Network Contributor", "network:Subnet"),
    "e147488a-f6f5-4113-8e2d-b22465e65bf6": ("Key Vault Crypto Service Encryption User", "keyvault:Vault"),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", "resources:ResourceGroup -hosts-rg"),
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b": ("Azure Kubernetes Service RBAC Cluster Admin",
                                             "containerservice:ManagedCluster"),
}
#: The ARM id segment of each scope kind (a real deployment's scopes are ARM ids).
_ARM_SEGMENT = {"storage:BlobContainer": "/blobServices/default/containers/", "network:Subnet": "/subnets/",
                "keyvault:Vault": "/providers/Microsoft.KeyVault/vaults/",
                "resources:ResourceGroup -hosts-rg": "-hosts-rg",
                "containerservice:ManagedCluster": "/providers/Microsoft.ContainerService/managedClusters/"}


def _scope_is(scope: str, kind: str, resources: list[Res]) -> bool:
    """Whether ``scope`` is a resource of ``kind``: by the recorded resource whose (mock) id it is, else by its ARM
    id's path."""
    typ, _, name_suffix = kind.partition(" ")
    for r in resources:
        if r["type"].startswith("azure-native:") and f"{r['name']}-id" == scope:
            return bool(r["type"] == f"azure-native:{typ}" and str(r["name"]).endswith(name_suffix))
    return _ARM_SEGMENT[kind] in scope


def _gcp_azure_grants(resources: list[Res]) -> list[str]:
    """GCP IAM members and Azure role assignments outside :data:`GCP_ALLOWED_ROLES` / :data:`AZURE_ROLES`."""
    out = []
    for r in resources:
        typ, inputs = r["type"], r.get("inputs") or {}
        if typ.startswith("gcp:") and ("IAMMember" in typ or "IAMBinding" in typ or "IAMPolicy" in typ):
            allowed = GCP_ALLOWED_ROLES.get(typ)
            if allowed is None or inputs.get("role") not in allowed:
                out.append(f"{typ} {r['name']}: grants {inputs.get('role')}")
        if typ == "azure-native:authorization:RoleAssignment":
            role_id = str(inputs.get("roleDefinitionId", "")).rsplit("/", 1)[-1]
            known = AZURE_ROLES.get(role_id)
            scope = str(inputs.get("scope", ""))
            if known is None:
                out.append(f"{typ} {r['name']}: assigns role {role_id}")
            elif not _scope_is(scope, known[1], resources):
                out.append(f"{typ} {r['name']}: {known[0]} on {scope}, broader than its {known[1]}")
    return out


def iam_wildcards(resources: list[Res]) -> list[str]:
    """Allow statements that grant every action (``*`` or ``service:*``) on every resource (``*``), attachments
    of AWS's all-powerful managed policies, and GCP / Azure grants broader than the stacks need (read on the
    weights, the node account's role, Workload Identity, the cluster's own admin)."""
    out = _gcp_azure_grants(resources)
    for r in resources:
        if not r["type"].startswith("aws:"):
            continue
        for doc in policy_documents(r):
            for st in _as_list(doc.get("Statement") or []):
                if not isinstance(st, dict) or st.get("Effect") != "Allow":
                    continue
                actions = [str(a) for a in _as_list(st.get("Action") or [])]
                targets = [str(t) for t in _as_list(st.get("Resource") or [])]
                if any(a == "*" or a.endswith(":*") for a in actions) and "*" in targets:
                    out.append(f"{r['type']} {r['name']}: Allow {actions} on *")
                if st.get("NotAction") is not None and "*" in targets:
                    out.append(f"{r['type']} {r['name']}: Allow NotAction on *")
        arn = str((r.get("inputs") or {}).get("policyArn", ""))
        if arn.endswith(("/AdministratorAccess", "/PowerUserAccess", "/IAMFullAccess", "/AmazonS3FullAccess")):
            out.append(f"{r['type']} {r['name']}: attaches {arn}")
    return out


INTERNAL_LB = (("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal"),
               ("service.beta.kubernetes.io/aws-load-balancer-internal", "true"),
               ("networking.gke.io/load-balancer-type", "Internal"),
               ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"))
PRIVATE_CLASSES = ("confidential", "restricted", "air-gapped")


def _public_gcp_azure(resources: list[Res]) -> list[str]:
    out = []
    for r in resources:
        typ, inputs, name = r["type"], r.get("inputs") or {}, r["name"]
        if typ == "gcp:storage/bucket:Bucket":
            if inputs.get("publicAccessPrevention") != "enforced":
                out.append(f"bucket {name}: public access prevention not enforced")
            if inputs.get("uniformBucketLevelAccess") is not True:
                out.append(f"bucket {name}: object ACLs allowed (no uniform bucket-level access)")
        if typ == "gcp:storage/bucketIAMMember:BucketIAMMember" and \
                str(inputs.get("member")) in ("allUsers", "allAuthenticatedUsers"):
            out.append(f"bucket IAM {name}: {inputs.get('member')}")
        if typ == "gcp:compute/firewall:Firewall" and "0.0.0.0/0" in (inputs.get("sourceRanges") or []) \
                and inputs.get("direction", "INGRESS") == "INGRESS":
            out.append(f"firewall {name}: ingress from the internet")
        if typ == "azure-native:storage:StorageAccount":
            if inputs.get("allowBlobPublicAccess") is not False:
                out.append(f"storage account {name}: anonymous blob access not disabled")
            if inputs.get("enableHttpsTrafficOnly") is False:
                out.append(f"storage account {name}: plain HTTP allowed")
        if typ == "azure-native:storage:BlobContainer" and inputs.get("publicAccess", "None") != "None":
            out.append(f"blob container {name}: public access {inputs.get('publicAccess')}")
        if typ == "azure-native:network:NetworkSecurityGroup":
            for rule in (inputs.get("securityRules") or []):
                if rule.get("direction") == "Inbound" and rule.get("access") == "Allow" and \
                        rule.get("sourceAddressPrefix") in ("*", "0.0.0.0/0", "Internet"):
                    out.append(f"NSG {name}: inbound from the internet")
        if typ == "azure-native:containerservice:AgentPool" and inputs.get("enableNodePublicIP"):
            out.append(f"node pool {name}: public node IPs")
    return out


def public_exposure(resources: list[Res], manifests: list[Obj] | None = None, plan: Any = None) -> list[str]:
    """Buckets without a full public access block or with a public ACL / Allow-to-everyone policy (S3, GCS, Azure
    Blob), security groups / firewalls open to the internet, instances and nodes with public IPs, and
    internet-facing Kubernetes load balancers: any of them without ``plan``; with it, those of parts whose data
    class is confidential, restricted or air-gapped (public and internal data may be served on the internet)."""
    out = _public_gcp_azure(resources)
    buckets = {r["name"]: r for r in resources if r["type"] == "aws:s3/bucket:Bucket"}
    blocks = [r for r in resources if r["type"] == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    full = {b["name"].removesuffix("-public-access") for b in blocks if all(b["inputs"].get(k) is True for k in keys)}
    for name, b in buckets.items():
        if name not in full:
            out.append(f"bucket {name}: public access not fully blocked")
        if str(b["inputs"].get("acl", "private")).startswith("public"):
            out.append(f"bucket {name}: ACL {b['inputs']['acl']}")
    for r in resources:
        if r["type"] == "aws:s3/bucketAcl:BucketAcl" and str(r["inputs"].get("acl", "")).startswith("public"):
            out.append(f"bucket ACL {r['name']}: {r['inputs']['acl']}")
        if r["type"] == "aws:s3/bucketPolicy:BucketPolicy":
            for doc in policy_documents(r):
                for st in _as_list(doc.get("Statement") or []):
                    principal = st.get("Principal")
                    anyone = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")
                    if st.get("Effect") == "Allow" and anyone and not st.get("Condition"):
                        out.append(f"bucket policy {r['name']}: Allow to everyone")
        if r["type"] == "aws:ec2/securityGroup:SecurityGroup":
            for rule in r["inputs"].get("ingress") or []:
                if "0.0.0.0/0" in (rule.get("cidrBlocks") or []) or "::/0" in (rule.get("ipv6CidrBlocks") or []):
                    out.append(f"security group {r['name']}: ingress from the internet")
        if r["type"] == "aws:ec2/securityGroupRule:SecurityGroupRule" and r["inputs"].get("type") == "ingress" \
                and "0.0.0.0/0" in (r["inputs"].get("cidrBlocks") or []):
            out.append(f"security group rule {r['name']}: ingress from the internet")
        if r["type"] == "aws:ec2/instance:Instance" and r["inputs"].get("associatePublicIpAddress"):
            out.append(f"instance {r['name']}: public IP")
        if r["type"] == "aws:ec2/subnet:Subnet" and r["inputs"].get("mapPublicIpOnLaunch"):
            out.append(f"subnet {r['name']}: public IPs on launch")
    for o in manifests or []:
        specs = []
        if o.get("kind") == "Service":
            specs.append((o.get("metadata") or {}, o.get("spec") or {}))
        if o.get("kind") == "RayService" and (o.get("spec") or {}).get("serveService"):
            ss = o["spec"]["serveService"]
            specs.append((ss.get("metadata") or {}, ss.get("spec") or {}))
        for md, spec in specs:
            part_key = (md.get("labels") or {}).get("mlplan.dev/part") or \
                ((o.get("metadata") or {}).get("labels") or {}).get("mlplan.dev/part")
            part = next((p for p in plan.parts if p.names.key == part_key), None) if plan is not None else None
            may_be_public = part is not None and part.data_class not in PRIVATE_CLASSES and \
                part.routing != "marked-public"
            if spec.get("type") in ("LoadBalancer", "NodePort"):
                ann = md.get("annotations") or {}
                # an on-prem cluster's load balancer (MetalLB, kube-vip) hands out addresses of your own network
                internal = any(ann.get(k) == v for k, v in INTERNAL_LB) or \
                    (part is not None and part.target in ("kubeconfig", "edge-fleet"))
                if spec["type"] == "NodePort" or (not internal and not may_be_public):
                    out.append(f"Service {md.get('name')}: {spec['type']} reachable from outside the cluster")
    return out


_CLOUD_PREFIXES = {"aws": ("aws:", "pulumi:providers:aws"), "gcp": ("gcp:", "pulumi:providers:gcp"),
                   "azure": ("azure-native:", "pulumi:providers:azure-native")}


def _locations(r: Res) -> list[str]:
    """Every region a recorded resource names: its provider's, and the region / location / zones of its inputs
    (zones as their region: ``europe-west4-a`` -> ``europe-west4``)."""
    inputs = r.get("inputs") or {}
    out = [str(r["region"])] if r.get("region") else []
    for key in ("region", "location"):
        if isinstance(inputs.get(key), str) and inputs[key]:
            out.append(inputs[key].lower())
    for zone in inputs.get("nodeLocations") or []:
        out.append(str(zone).rsplit("-", 1)[0])
    return out


def residency_violations(resources: list[Res], plan: Any) -> list[str]:
    """AWS, GCP and Azure resources (and their providers) in a region outside the plan's residency set, by the
    catalog's geography of each region (not the plan's claim)."""
    from planner.catalog import Catalog
    from planner.privacy import region_allowed

    allowed = plan.security.allowed_regions
    cat = Catalog.load()
    out = []
    for r in resources:
        cloud = next((c for c, prefixes in _CLOUD_PREFIXES.items() if r["type"].startswith(prefixes)), None)
        if cloud is None:
            continue
        for region in dict.fromkeys(_locations(r)):
            if cloud == "gcp" and region in ("eu", "us", "asia"):
                out.append(f"{r['type']} {r['name']} in the multi-region {region}")  # spans several countries
                continue
            geography = cat.region(cloud, region).geography
            if not region_allowed(cloud, region, geography, allowed):
                out.append(f"{r['type']} {r['name']} in {region}, outside {list(allowed or ())}")
    return out


def mock_run(plan: Any) -> list[Res]:
    """The resources the plan's Pulumi program creates, recorded under Pulumi's mocks (no cloud, no CLI)."""
    from stacks.preview import run_under_mocks
    from stacks.program import build

    return list(run_under_mocks(lambda: build(plan)))
