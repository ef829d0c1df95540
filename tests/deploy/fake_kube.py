"""A small Kubernetes API server on 127.0.0.1 (stdlib ``http.server`` in a thread) for the deploy tests.

It speaks the parts of the API that ``mlplan deploy --target kubernetes`` uses, the way the real API server
answers them, and records every request so the tests can check paths, ``fieldManager``, ``Content-Type``,
``dryRun`` and idempotency:

- ``GET /version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>`` (discovery documents);
- server-side apply: ``PATCH`` with ``Content-Type: application/apply-patch+yaml`` (415 otherwise), a required
  ``fieldManager`` (400 otherwise, as the real server answers), ``dryRun=All`` computes but does not store, and an
  apply whose configuration is unchanged keeps the ``resourceVersion`` (no write);
- ``GET`` of one object, with a pretend controller that marks workloads ready after ``ready_after`` reads;
- ``DELETE`` of one object (``dryRun=All`` deletes nothing);
  namespaced objects in a missing namespace get 404 as on a real cluster.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [("Namespace", "namespaces", False), ("Service", "services", True),
                 ("ConfigMap", "configmaps", True), ("Secret", "secrets", True),
                 ("ServiceAccount", "serviceaccounts", True), ("Pod", "pods", True),
                 ("PersistentVolumeClaim", "persistentvolumeclaims", True),
                 ("ResourceQuota", "resourcequotas", True), ("LimitRange", "limitranges", True)],
    ("apps", "v1"): [("Deployment", "deployments", True), ("StatefulSet", "statefulsets", True),
                     ("DaemonSet", "daemonsets", True)],
    ("batch", "v1"): [("Job", "jobs", True)],
    ("autoscaling", "v2"): [("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)],
    ("policy", "v1"): [("PodDisruptionBudget", "poddisruptionbudgets", True)],
    ("networking.k8s.io", "v1"): [("NetworkPolicy", "networkpolicies", True), ("Ingress", "ingresses", True)],
    ("rbac.authorization.k8s.io", "v1"): [("Role", "roles", True), ("RoleBinding", "rolebindings", True),
                                          ("ClusterRole", "clusterroles", False),
                                          ("ClusterRoleBinding", "clusterrolebindings", False)],
    ("ray.io", "v1"): [("RayService", "rayservices", True), ("RayCluster", "rayclusters", True)],
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    authorization: str | None
    body: Any


@dataclass
class FakeKube:
    ready_after: int = 1
    served: dict[tuple[str, str], list[tuple[str, str, bool]]] = field(default_factory=lambda: dict(RESOURCES))
    objects: dict[tuple[str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    applied: dict[tuple[str, str | None, str], Any] = field(default_factory=dict)
    reads: dict[tuple[str, str | None, str], int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    writes: int = 0
    rv: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for ns in ("default", "kube-system"):
            self.objects[("namespaces", None, ns)] = {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": str(uuid.uuid4()), "resourceVersion": "1"},
                "status": {"phase": "Active"}}

    # ------------------------------------------------------------------------------------------ helpers
    def kind_of(self, group: str, version: str, plural: str) -> tuple[str, bool] | None:
        for kind, p, namespaced in self.served.get((group, version), []):
            if p == plural:
                return kind, namespaced
        return None

    def applies(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    def get(self, plural: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, ns, name))


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _discovery(fake: FakeKube, group: str, version: str) -> dict[str, Any] | None:
    if (group, version) not in fake.served:
        return None
    gv = f"{group}/{version}" if group else version
    res = [{"name": p, "singularName": kind.lower(), "namespaced": ns, "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
           for kind, p, ns in fake.served[(group, version)]]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, list[str]], Any]:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = yaml.safe_load(raw) if raw else None
        self.fake.requests.append(Recorded(self.command, url.path, query, self.headers.get("Content-Type"),
                                           self.headers.get("Authorization"), body))
        return url.path, query, body

    def _route(self, path: str) -> tuple[str, str, str, str | None, str | None] | None:
        """(group, version, plural, namespace, name) of an object path."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces":
            return group, version, rest[2], rest[1], (rest[3] if len(rest) > 3 else None)
        if rest:
            return group, version, rest[0], None, (rest[1] if len(rest) > 1 else None)
        return None

    # ------------------------------------------------------------------------------------------ verbs
    def do_GET(self) -> None:
        path, _, _ = self._record()
        fake = self.fake
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                      for (g, v) in fake.served if g]
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            doc = _discovery(fake, "", parts[1])
            return self._send(200, doc) if doc else self._send(404, _status(404, "NotFound", "not found"))
        if parts[:1] == ["apis"] and len(parts) == 3:
            doc = _discovery(fake, parts[1], parts[2])
            return self._send(200, doc) if doc else self._send(404, _status(404, "NotFound", "not found"))
        route = self._route(path)
        if route is None or route[4] is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        _group, _version, plural, ns, name = route
        with fake.lock:
            key = (plural, ns, name)
            obj = fake.objects.get(key)
            if obj is None:
                return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            fake.reads[key] = fake.reads.get(key, 0) + 1
            if fake.reads[key] >= fake.ready_after:
                _pretend_controller(obj)
            return self._send(200, obj)

    def do_PATCH(self) -> None:
        path, query, body = self._record()
        fake = self.fake
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/apply-patch+yaml":
            return self._send(415, _status(415, "UnsupportedMediaType", f"unsupported patch type {ctype}"))
        manager = (query.get("fieldManager") or [""])[0]
        if not manager:
            return self._send(400, _status(400, "BadRequest",
                                           "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: "
                                           "is required for apply patch"))
        route = self._route(path)
        if route is None or route[4] is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        group, version, plural, ns, name = route
        served = fake.kind_of(group, version, plural)
        if served is None:
            return self._send(404, _status(404, "NotFound", f"the server could not find {path}"))
        kind, namespaced = served
        if not isinstance(body, dict) or body.get("kind") != kind or body.get("metadata", {}).get("name") != name:
            return self._send(400, _status(400, "BadRequest", "the body does not match the path"))
        if namespaced != (ns is not None):
            return self._send(404, _status(404, "NotFound", "wrong scope"))
        dry_run = query.get("dryRun") == ["All"]
        with fake.lock:
            if ns is not None and ("namespaces", None, ns) not in fake.objects:
                return self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            key = (plural, ns, name)
            old = fake.objects.get(key)
            if old is not None and fake.applied.get(key) == body:
                return self._send(200, old)  # same configuration: no write, same resourceVersion
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            fake.rv += 1
            meta["resourceVersion"] = str(fake.rv)
            meta["uid"] = (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
            gen = int((old or {}).get("metadata", {}).get("generation", 0))
            meta["generation"] = gen + 1 if old is None or old.get("spec") != new.get("spec") else gen
            meta["managedFields"] = [{"manager": manager, "operation": "Apply", "apiVersion": body["apiVersion"]}]
            new["status"] = (old or {}).get("status", {})
            if dry_run:
                return self._send(200 if old else 201, new)
            fake.objects[key] = new
            fake.applied[key] = body
            fake.reads[key] = 0
            fake.writes += 1
            return self._send(200 if old else 201, new)

    def do_DELETE(self) -> None:
        path, query, _ = self._record()
        route = self._route(path)
        if route is None or route[4] is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        _, _, plural, ns, name = route
        with self.fake.lock:
            if query.get("dryRun") == ["All"]:
                obj = self.fake.objects.get((plural, ns, name))
            else:
                obj = self.fake.objects.pop((plural, ns, name), None)
                self.fake.applied.pop((plural, ns, name), None)
        if obj is None:
            return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {
            "name": name, "kind": plural}})


def _pretend_controller(obj: dict[str, Any]) -> None:
    """Write the status a controller would, once the object has been read ``ready_after`` times."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    gen = obj["metadata"].get("generation", 1)
    if kind in ("Deployment", "StatefulSet"):
        n = spec.get("replicas", 1)
        obj["status"] = {"observedGeneration": gen, "replicas": n, "readyReplicas": n, "updatedReplicas": n,
                         "availableReplicas": n}
    elif kind == "DaemonSet":
        obj["status"] = {"observedGeneration": gen, "desiredNumberScheduled": 2, "numberReady": 2,
                         "updatedNumberScheduled": 2}
    elif kind == "RayService":
        obj["status"] = {"observedGeneration": gen, "conditions": [
            {"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints", "message": ""}]}


class FakeKubeServer:
    def __init__(self, fake: FakeKube | None = None) -> None:
        self.fake = fake or FakeKube()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeKubeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def kubeconfig(self, path: Any, token: str = "test-token") -> str:
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
               "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
               "users": [{"name": "tester", "user": {"token": token}}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}]}
        path.write_text(yaml.safe_dump(cfg))
        return str(path)
