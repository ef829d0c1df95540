"""Kubernetes target: server-side apply of the emitted manifests with the ``kubernetes`` Python client.

What it does, as ``kubectl apply --server-side --field-manager=mlplan --force-conflicts`` would:

- reads ``DIR/k8s/*.yaml`` and ``DIR/serving/kuberay/rayservice.yaml`` (if present);
- finds each kind's REST path by API discovery (``/api``, ``/apis``, ``/apis/<group>/<version>``; CRDs
  included) through :class:`kubernetes.dynamic.DynamicClient`;
- creates missing namespaces (recorded, so ``destroy`` removes only namespaces that mlplan created);
- sends ``PATCH`` with ``Content-Type: application/apply-patch+yaml``, ``fieldManager=mlplan`` and
  ``force=true`` (the Kubernetes docs recommend that a tool which owns its manifests force conflicts:
  https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts); ``--dry-run`` adds
  ``dryRun=All``;
- waits for rollout (Deployments / StatefulSets / DaemonSets ready replicas, Job completions, RayService
  Ready) with a progress display and reports readiness.

Apply is idempotent: a second apply of the same manifests leaves every ``resourceVersion`` unchanged, and the
report says ``unchanged``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from planner.errors import (
    ArtifactError,
    ClusterUnreachable,
    CredentialsError,
    DeployError,
    MissingDependency,
)
from stacks.deploy.state import DeployState
from stacks.folder import PlanFolder

FIELD_MANAGER = "mlplan"
TARGET = "kubernetes"

# Apply order, as Helm installs kinds (dependencies first); destroy runs it backwards.
_ORDER = [
    "Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "ServiceAccount", "Secret", "ConfigMap", "PersistentVolume", "PersistentVolumeClaim",
    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "NetworkPolicy", "Service", "DaemonSet",
    "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob", "RayCluster", "RayService",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "RayService", "RayCluster")


@dataclass(frozen=True)
class Manifest:
    body: dict[str, Any]
    source: str

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        ns = self.body["metadata"].get("namespace")
        return str(ns) if ns else None

    @property
    def identity(self) -> tuple[str, str | None, str]:
        return self.kind, self.namespace, self.name


def select_manifests(folder: PlanFolder) -> list[Manifest]:
    """What ``--target kubernetes`` applies to the kubeconfig's cluster, in apply order.

    ``k8s/<part>.yaml`` of every part except those on a cluster the Pulumi stack creates (EKS); plus the
    RayServices of ``serving/kuberay/rayservice.yaml`` that no ``k8s/`` file already holds (the writer's
    manifests include the RayService of each Kubernetes part; the serving copy is for use without them).
    """
    cloud = folder.cloud_cluster_keys()
    files = folder.k8s_files()
    applied = read_manifests([f for f in files if f.stem not in cloud])
    known = {m.identity for m in applied} | {m.identity for m in read_manifests([f for f in files
                                                                                 if f.stem in cloud])}
    extra: list[Manifest] = []
    if folder.rayservice.is_file():
        extra = [m for m in read_manifests([folder.rayservice]) if m.identity not in known]
    return _ordered(applied + extra)


def read_manifests(paths: Iterable[Path]) -> list[Manifest]:
    """Every YAML document of the files, checked for apiVersion / kind / metadata.name, in apply order."""
    out: list[Manifest] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as e:
            raise ArtifactError(f"manifest {path} is not readable YAML: {str(e).splitlines()[0]}",
                                fix="run `mlplan plan SPEC --out DIR` again") from None
        for n, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{path.name} document {n + 1}"
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                raise ArtifactError(f"{where} is not a Kubernetes object (no apiVersion/kind)",
                                    fix="run `mlplan plan SPEC --out DIR` again")
            if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
                for item in doc["items"]:
                    out.append(_manifest(item, where))
                continue
            out.append(_manifest(doc, where))
    return _ordered(out)


def _ordered(manifests: list[Manifest]) -> list[Manifest]:
    rank = {k: i for i, k in enumerate(_ORDER)}
    return sorted(manifests, key=lambda m: rank.get(m.kind, len(_ORDER)))  # stable: file order within a kind


def _manifest(doc: Any, where: str) -> Manifest:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ArtifactError(f"{where} has no metadata.name", fix="run `mlplan plan SPEC --out DIR` again")
    return Manifest(body=doc, source=where)


# ------------------------------------------------------------------------------------------ readiness


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


# --------------------------------------------------------------------------------------------- client


def connect(kubeconfig: str | None, context: str | None, cache_dir: Path, *,
            request_timeout: float = 10.0) -> Any:
    """A DynamicClient for the current kubeconfig (or in-cluster config). Raises ClusterUnreachable."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
        from kubernetes.dynamic import DynamicClient
    except ImportError:
        raise MissingDependency("the kubernetes Python client is not installed",
                                fix="pip install 'mlplan[k8s]'") from None
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        if kubeconfig or Path(path.split(os.pathsep)[0]).is_file():
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config()
            api = k8s_client.ApiClient()
        else:
            raise ClusterUnreachable(f"no kubeconfig found at {path}",
                                     fix="pass --kubeconfig FILE (and --context), or set KUBECONFIG")
    except k8s_config.ConfigException as e:
        raise ClusterUnreachable(f"cannot use kubeconfig {path}: {e}",
                                 fix="check the file and --context (kubectl config get-contexts)") from None
    api.configuration.retries = 0
    host = api.configuration.host
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _call(host, lambda: DynamicClient(api, cache_file=str(cache_dir / "kube-discovery.json")),
                     request_timeout)
    except Exception:
        api.close()
        raise


def _call(host: str, fn: Callable[[], Any], timeout: float | None = None) -> Any:
    """Run one client call, mapping transport and auth failures to one-line mlplan errors."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return fn()
    except urllib3.exceptions.HTTPError as e:
        reason = getattr(e, "reason", None) or e
        raise ClusterUnreachable(f"cannot reach the Kubernetes API server at {host}: {_short(reason)}",
                                 fix="check that the cluster is up and kubectl cluster-info works with the "
                                     "same kubeconfig/context") from None
    except ApiException as e:
        if e.status in (401, 403):
            raise CredentialsError(
                f"the Kubernetes API server at {host} refused mlplan ({e.status} {e.reason})",
                fix="use a kubeconfig/context whose user may create these objects") from None
        raise


def _short(reason: Any) -> str:
    text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200]


def _api_error(e: Any, what: str) -> DeployError:
    body = getattr(e, "body", None) or ""
    message = str(getattr(e, "reason", "")) or str(e)
    try:
        import json

        message = json.loads(body).get("message", message)
    except (ValueError, TypeError, AttributeError):
        pass
    status = getattr(e, "status", "?")
    if status == 409:
        return DeployError(f"{what}: conflict ({message})",
                           fix="another field manager owns these fields; rerun with --force-conflicts")
    return DeployError(f"{what}: the API server answered {status}: {message}",
                       fix="fix the manifest or the cluster, then rerun mlplan deploy (it is idempotent)")


# ---------------------------------------------------------------------------------------------- target


class KubernetesTarget:
    def __init__(self, folder: PlanFolder, state: DeployState, *, kubeconfig: str | None = None,
                 context: str | None = None, namespace: str = "default", say: Callable[[str], None] = print,
                 console: Any = None) -> None:
        self.folder = folder
        self.state = state
        recorded = state.target(TARGET) or {}
        # status / destroy default to the kubeconfig and context the deploy used
        self.kubeconfig = kubeconfig or recorded.get("kubeconfig")
        self.context = context or recorded.get("context")
        self.default_namespace = namespace
        self.say = say
        self.console = console
        self._dyn: Any = None

    # ----------------------------------------------------------------------------------- plumbing
    @property
    def dyn(self) -> Any:
        if self._dyn is None:
            self._dyn = connect(self.kubeconfig, self.context, self.folder.state_dir)
        return self._dyn

    @property
    def host(self) -> str:
        return str(self.dyn.client.configuration.host)

    def close(self) -> None:
        if self._dyn is not None:
            self._dyn.client.close()
            self._dyn = None

    def _same_cluster(self) -> None:
        """Refuse to read or delete on another cluster than the one this folder was deployed to."""
        server = (self.state.target(TARGET) or {}).get("server")
        if server and (self.state.target(TARGET) or {}).get("resources") and server != self.host:
            raise DeployError(f"{self.folder.root} was deployed to {server}, but the kubeconfig now points at "
                              f"{self.host}", fix="pass the --kubeconfig / --context used for the deploy")

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return _call(self.host, lambda: self.dyn.resources.get(api_version=api_version, kind=kind))
        except ResourceNotFoundError:
            crd = " (install its CRD / operator first, e.g. the KubeRay operator)" if "." in api_version \
                else ""
            raise DeployError(f"the cluster at {self.host} does not serve {kind} ({api_version}){crd}",
                              fix="install the missing API, or choose a plan without it") from None

    def _get(self, res: Any, name: str, namespace: str | None) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            obj = _call(self.host, lambda: res.get(name=name, namespace=namespace))
        except NotFoundError:
            return None
        got: dict[str, Any] = obj.to_dict()
        return got

    # -------------------------------------------------------------------------------------- deploy
    def deploy(self, *, dry_run: bool = False, wait: bool = True, timeout_s: float = 600.0,
               force_conflicts: bool = True, poll_s: float = 2.0) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import DynamicApiError

        manifests = select_manifests(self.folder)
        if not manifests:
            raise ArtifactError(f"{self.folder.root} has no Kubernetes manifests for a cluster of yours "
                                "(k8s/*.yaml)", fix="this plan has no on-prem/edge Kubernetes part; deploy it "
                                                    "with its default target")
        state = self.state
        prior = list((state.target(TARGET) or {}).get("resources", []))
        if prior:
            self._same_cluster()
        if not dry_run:
            state.begin(TARGET, dry_run=False)
        with state.step(TARGET, "connect") if not dry_run else contextlib.nullcontext({}) as step:
            version = _call(self.host, lambda: self.dyn.version.get("kubernetes", {}))
            step["server"] = self.host
            step["version"] = version.get("gitVersion", "?")
        if not dry_run:
            state.update(TARGET, server=self.host, context=self.context,
                         kubeconfig=str(Path(self.kubeconfig).resolve()) if self.kubeconfig else None)
        self.say(f"cluster {self.host} (Kubernetes {version.get('gitVersion', '?')})"
                 + (": server-side dry run (dryRun=All), nothing is changed" if dry_run else ""))

        resolved = [(m, self._resource(m.api_version, m.kind)) for m in manifests]
        namespaces = sorted({m.namespace or self.default_namespace for m, r in resolved if r.namespaced}
                            - {m.name for m, _ in resolved if m.kind == "Namespace"})
        ns_res = self._resource("v1", "Namespace")
        missing_ns: list[str] = []
        for ns in namespaces:
            if self._get(ns_res, ns, None) is None:
                missing_ns.append(ns)
                body = {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "mlplan"}}}
                self._apply(ns_res, Manifest(body, "namespace"), None, dry_run, force_conflicts,
                            created_ns=True)

        results: list[dict[str, Any]] = []
        with state.step(TARGET, "apply", objects=len(resolved)) if not dry_run else contextlib.nullcontext({}):
            for m, res in resolved:
                ns = (m.namespace or self.default_namespace) if res.namespaced else None
                if dry_run and ns in missing_ns:
                    results.append({"kind": m.kind, "name": m.name, "namespace": ns,
                                    "action": "would be created (its namespace does not exist yet)"})
                    self.say(f"  {m.kind}/{m.name} in {ns}: would be created after its namespace")
                    continue
                try:
                    results.append(self._apply(res, m, ns, dry_run, force_conflicts))
                except DynamicApiError as e:
                    raise _api_error(e, f"apply {m.kind}/{m.name} ({m.source})") from None
        wanted = {_ref_id(m.api_version, m.kind, (m.namespace or self.default_namespace) if r.namespaced else None,
                          m.name) for m, r in resolved}
        wanted |= {_ref_id("v1", "Namespace", None, ns) for ns in namespaces}
        stale = [r for r in prior if r["id"] not in wanted and (r["kind"] != "Namespace" or r.get("created_by_mlplan"))]
        pruned = self._prune(stale, dry_run)
        changed = sum(r["action"] != "unchanged" for r in results) + len(pruned)
        self.say(f"applied {len(results)} objects with field manager {FIELD_MANAGER!r}: "
                 f"{changed} changed, {len(results) + len(pruned) - changed} unchanged"
                 + (f", {len(pruned)} pruned" if pruned else "") + (" (dry run)" if dry_run else ""))
        summary: dict[str, Any] = {"objects": results, "changed": changed, "pruned": pruned, "dry_run": dry_run}
        if dry_run:
            return summary
        if wait:
            with state.step(TARGET, "wait for rollout", timeout_s=timeout_s) as step:
                ready = self._wait(timeout_s, poll_s)
                step["ready"] = ready
        state.update(TARGET, status="deployed")
        summary["ready"] = True
        return summary

    def _apply(self, res: Any, m: Manifest, namespace: str | None, dry_run: bool, force: bool,
               created_ns: bool = False) -> dict[str, Any]:
        body = dict(m.body)
        if namespace is not None:
            body["metadata"] = {**body["metadata"], "namespace": namespace}
        before = self._get(res, m.name, namespace)
        out = _call(self.host, lambda: self.dyn.server_side_apply(
            res, body=body, name=m.name, namespace=namespace, field_manager=FIELD_MANAGER,
            force_conflicts=force, dry_run="All" if dry_run else None))
        after = out.to_dict()
        rv_before = (before or {}).get("metadata", {}).get("resourceVersion")
        rv_after = after.get("metadata", {}).get("resourceVersion")
        if before is None:
            action = "created"
        elif rv_before == rv_after:
            action = "unchanged"
        else:
            action = "configured"
        if dry_run:
            action = f"{action} (dry run)"
        ref = {"id": _ref_id(m.api_version, m.kind, namespace, m.name), "apiVersion": m.api_version,
               "kind": m.kind, "name": m.name, "namespace": namespace, "action": action,
               "resourceVersion": rv_after, "created_by_mlplan": before is None or created_ns}
        if before is not None:
            known = (self.state.target(TARGET) or {}).get("resources", [])
            old = next((r for r in known if r["id"] == ref["id"]), None)
            ref["created_by_mlplan"] = bool(old and old.get("created_by_mlplan"))
        if not dry_run:
            self.state.add_resource(TARGET, ref)
        where = f" in {namespace}" if namespace else ""
        self.say(f"  {m.kind}/{m.name}{where}: {action}")
        return ref

    def _wait(self, timeout_s: float, poll_s: float) -> bool:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        refs = [r for r in (self.state.target(TARGET) or {}).get("resources", []) if r["kind"] in WORKLOADS]
        if not refs:
            return True
        deadline = time.monotonic() + timeout_s
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[msg]}"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            tasks = {r["id"]: progress.add_task(f"{r['kind']}/{r['name']}", total=1, msg="") for r in refs}
            pending = {r["id"]: r for r in refs}
            last: dict[str, str] = {}
            while pending:
                for rid, r in list(pending.items()):
                    obj = self._get(self._resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"])
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
                    stuck = ", ".join(f"{r['kind']}/{r['name']} ({last.get(i, '?')})"
                                      for i, r in pending.items())
                    raise DeployError(f"rollout not ready after {timeout_s:.0f} s: {stuck}",
                                      fix="inspect with kubectl describe / kubectl get events; rerun "
                                          "`mlplan deploy` (idempotent) or raise --timeout")
                time.sleep(poll_s)
        self.say(f"rollout ready: {len(refs)} workload(s)")
        return True

    # -------------------------------------------------------------------------------------- status
    def status(self) -> tuple[bool, list[str]]:
        rec = self.state.target(TARGET) or {}
        if rec.get("resources"):
            self._same_cluster()
        lines: list[str] = []
        healthy = rec.get("status") == "deployed"
        for r in rec.get("resources", []):
            obj = self._get(self._resource(r["apiVersion"], r["kind"]), r["name"], r["namespace"])
            if obj is None:
                healthy = False
                lines.append(f"{r['kind']}/{r['name']}: missing")
                continue
            ok, _, _, msg = readiness(obj)
            healthy = healthy and ok
            lines.append(f"{r['kind']}/{r['name']}: {'ready' if ok else 'not ready'} ({msg})")
        return healthy, lines

    # ------------------------------------------------------------------------------------- destroy
    def _delete(self, r: dict[str, Any], *, dry_run: bool = False) -> bool:
        """Delete one recorded object (foreground propagation); False when it was already gone."""
        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

        res = self._resource(r["apiVersion"], r["kind"])
        try:
            _call(self.host, lambda: self.dyn.delete(res, name=r["name"], namespace=r["namespace"],
                                                     propagation_policy="Foreground",
                                                     dry_run="All" if dry_run else None))
        except NotFoundError:
            return False
        except DynamicApiError as e:
            raise _api_error(e, f"delete {r['kind']}/{r['name']}") from None
        return True

    def _prune(self, stale: list[dict[str, Any]], dry_run: bool) -> list[str]:
        """Delete objects an earlier deploy of this folder applied that the manifests no longer hold."""
        done: list[str] = []
        for r in _teardown_order(stale):
            what = f"{r['kind']}/{r['name']}"
            if dry_run:
                self._delete(r, dry_run=True)  # the API server checks the delete (dryRun=All), deletes nothing
                self.say(f"  {what}: would be pruned (no longer in the manifests)")
                done.append(what)
                continue
            with self.state.step(TARGET, f"prune {what}"):
                gone = self._delete(r)
            self.state.remove_resource(TARGET, r["id"])
            self.say(f"  {what}: pruned (no longer in the manifests)" + ("" if gone else ", already gone"))
            done.append(what)
        return done

    def destroy(self) -> int:
        rec = self.state.target(TARGET) or {}
        if rec.get("resources"):
            self._same_cluster()
        removed = 0
        for r in _teardown_order(list(rec.get("resources", []))):
            if r["kind"] == "Namespace" and not r.get("created_by_mlplan"):
                self.state.remove_resource(TARGET, r["id"])
                continue
            with self.state.step(TARGET, f"delete {r['kind']}/{r['name']}"):
                gone = self._delete(r)
            removed += int(gone)
            self.say(f"  {r['kind']}/{r['name']}: " + ("deleted" if gone else "already gone"))
            self.state.remove_resource(TARGET, r["id"])
        self.state.update(TARGET, status="destroyed")
        return removed


def _ref_id(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    return f"{api_version}/{kind}/{namespace or ''}/{name}"


def _teardown_order(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reverse apply order, namespaces last."""
    rank = {k: i for i, k in enumerate(_ORDER)}
    return sorted(refs, key=lambda r: (r["kind"] == "Namespace", -rank.get(r["kind"], len(_ORDER))))
