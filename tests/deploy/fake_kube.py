"""A small Kubernetes API server on 127.0.0.1 (stdlib ``http.server`` in a thread) for the deploy tests.

It speaks the parts of the API that ``mlplan deploy --target kubernetes`` uses, the way the real API server
answers them, and records every request so the tests can check paths, ``fieldManager``, ``Content-Type``,
``dryRun`` and idempotency:

- ``GET /version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>`` (discovery documents);
- server-side apply: ``PATCH`` with ``Content-Type: application/apply-patch+yaml`` (415 otherwise), a required
  ``fieldManager`` (400 otherwise, as the real server answers), ``dryRun=All`` computes but does not store, and an
  apply whose configuration is unchanged keeps the ``resourceVersion`` (no write);
- ``GET`` of one object, with a pretend controller that marks workloads ready after ``ready_after`` reads (writing
  ``status`` through the status subresource, and the Deployment controller's revision annotation, each with its
  own ``managedFields`` entry, as ``kube-controller-manager`` does);
- ``GET`` of a collection (``<Kind>List``);
- ``metadata.managedFields`` as the real server keeps them (``FieldsV1``, one entry per manager, operation and
  subresource; lists are atomic here, where the real server keys associative lists): an apply records the
  applier's fields, conflicts with another manager's differing value answer 409 unless ``force=true`` (which
  moves the fields to the applier), fields the applier no longer sends are removed unless another manager owns
  them; a merge patch (``application/merge-patch+json``, as ``kubectl edit`` / ``kubectl patch`` send) is an
  ``Update`` that takes the fields it sets; the ``status`` and ``scale`` subresources record their own entries;
- ``DELETE`` of one object (``dryRun=All`` deletes nothing; deleting a namespace deletes what is in it);
  namespaced objects in a missing namespace get 404 as on a real cluster.
"""

from __future__ import annotations

import copy
import json
import threading
import time
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
    applied: dict[tuple[tuple[str, str | None, str], str], Any] = field(default_factory=dict)
    reads: dict[tuple[str, str | None, str], int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    writes: int = 0
    rv: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for ns in ("default", "kube-system"):
            self.objects[("namespaces", None, ns)] = {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": str(uuid.uuid4()), "resourceVersion": "1",
                             "labels": {"kubernetes.io/metadata.name": ns}},
                "status": {"phase": "Active"}}

    # ------------------------------------------------------------------------------------------ helpers
    def kind_of(self, group: str, version: str, plural: str) -> tuple[str, bool] | None:
        for kind, p, namespaced in self.served.get((group, version), []):
            if p == plural:
                return kind, namespaced
        return None

    def applies(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"
                and (r.content_type or "").startswith("application/apply-patch")]

    def deletes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "DELETE"]

    def get(self, plural: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, ns, name))

    def managers(self, plural: str, ns: str | None, name: str) -> list[dict[str, Any]]:
        obj = self.objects[(plural, ns, name)]
        return list(obj["metadata"].get("managedFields") or [])


# ----------------------------------------------------------------------------------------- field sets
_IDENTITY = ("apiVersion", "kind", "status")


def fieldset(obj: Any, *, top: bool = True) -> dict[str, Any]:
    """The ``FieldsV1`` set of a configuration: ``{"f:spec": {"f:replicas": {}}}``; lists are atomic leaves."""
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if top and key in _IDENTITY:
            continue
        if top and key == "metadata":
            meta = {k: v for k, v in (value or {}).items() if k in ("labels", "annotations")}
            sub = fieldset(meta, top=False)
            if sub:
                out["f:metadata"] = sub
            continue
        out[f"f:{key}"] = fieldset(value, top=False) if isinstance(value, dict) and value else {}
    return out


def leaves(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for key, sub in fields.items():
        if key == ".":
            continue
        path = (*prefix, key[2:])
        if isinstance(sub, dict) and any(k != "." for k in sub):
            out |= leaves(sub, path)
        else:
            out.add(path)
    return out


def _from_leaves(paths: set[tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(paths):
        node = out
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return out


_MISSING = object()


def _value(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = copy.deepcopy(value)


def _delete_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parents = []
    node: Any = obj
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        parents.append((node, part))
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, part in reversed(parents):  # drop maps left empty
        if parent[part] == {}:
            del parent[part]


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The same object and the same field ownership (what a write would change), times aside."""
    def strip(obj: dict[str, Any]) -> tuple[Any, Any]:
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        owners = sorted((e["manager"], e["operation"], e.get("subresource") or "",
                         json.dumps(e.get("fieldsV1"), sort_keys=True)) for e in meta.pop("managedFields", []) or [])
        for k in ("resourceVersion", "generation"):
            meta.pop(k, None)
        return body, owners
    return strip(old) == strip(new)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _entry(manager: str, operation: str, api_version: str, paths: set[tuple[str, ...]],
           subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": _now(),
             "fieldsType": "FieldsV1", "fieldsV1": _from_leaves(paths)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _owned(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], set[tuple[str, ...]]]]:
    return [(e, leaves(e.get("fieldsV1") or {})) for e in entries]


def _take(entries: list[dict[str, Any]], paths: set[tuple[str, ...]], keep: dict[str, Any] | None) -> list[
        dict[str, Any]]:
    """Entries with ``paths`` removed from every entry but ``keep``; entries left empty are dropped."""
    out = []
    for e, owned in _owned(entries):
        if e is keep:
            out.append(e)
            continue
        rest = owned - paths
        if rest:
            out.append({**e, "fieldsV1": _from_leaves(rest)})
    return out


def record_update(obj: dict[str, Any], manager: str, paths: set[tuple[str, ...]],
                  subresource: str | None = None) -> None:
    """An ``Update`` by ``manager`` that set ``paths``: it now owns them, nobody else does."""
    entries = list(obj["metadata"].get("managedFields") or [])
    mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Update"
                 and e.get("subresource") == subresource), None)
    owned = leaves(mine["fieldsV1"]) if mine else set()
    new = _entry(manager, "Update", obj["apiVersion"], owned | paths, subresource)
    entries = [e for e in entries if e is not mine]
    entries = [*_take(entries, paths, None), new]
    obj["metadata"]["managedFields"] = entries


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
    for kind, p, ns in fake.served[(group, version)]:
        if kind in ("Deployment", "StatefulSet", "RayService", "RayCluster", "Job", "DaemonSet"):
            res.append({"name": f"{p}/status", "singularName": "", "namespaced": ns, "kind": kind,
                        "verbs": ["get", "patch", "update"]})
        if kind in ("Deployment", "StatefulSet"):
            res.append({"name": f"{p}/scale", "singularName": "", "namespaced": ns, "kind": "Scale",
                        "group": "autoscaling", "version": "v1", "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


Route = tuple[str, str, str, "str | None", "str | None", "str | None"]


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

    def _route(self, path: str) -> tuple[str, str, str, str | None, str | None, str | None] | None:
        """(group, version, plural, namespace, name, subresource) of an object or collection path."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces":
            return (group, version, rest[2], rest[1], rest[3] if len(rest) > 3 else None,
                    rest[4] if len(rest) > 4 else None)
        if rest:
            return group, version, rest[0], None, (rest[1] if len(rest) > 1 else None), \
                (rest[2] if len(rest) > 2 else None)
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
        if route is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        group, version, plural, ns, name, _sub = route
        if name is None:  # a collection
            served = fake.kind_of(group, version, plural)
            if served is None:
                return self._send(404, _status(404, "NotFound", f"the server could not find {path}"))
            with fake.lock:
                items = [copy.deepcopy(o) for (p, n, _), o in sorted(fake.objects.items(), key=lambda kv: kv[0][2])
                         if p == plural and (ns is None or n == ns)]
            return self._send(200, {"kind": f"{served[0]}List", "apiVersion": f"{group}/{version}".lstrip("/"),
                                    "metadata": {"resourceVersion": str(fake.rv)}, "items": items})
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
        route = self._route(path)
        if route is None or route[4] is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        group, version, plural, ns, name, sub = route
        served = fake.kind_of(group, version, plural)
        if served is None:
            return self._send(404, _status(404, "NotFound", f"the server could not find {path}"))
        kind, namespaced = served
        if namespaced != (ns is not None):
            return self._send(404, _status(404, "NotFound", "wrong scope"))
        manager = (query.get("fieldManager") or [""])[0]
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            return self._update(plural, ns, name, sub, body, manager or "unknown")
        if ctype != "application/apply-patch+yaml":
            return self._send(415, _status(415, "UnsupportedMediaType", f"unsupported patch type {ctype}"))
        if not manager:
            return self._send(400, _status(400, "BadRequest",
                                           "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: "
                                           "is required for apply patch"))
        if not isinstance(body, dict) or body.get("kind") != kind or body.get("metadata", {}).get("name") != name:
            return self._send(400, _status(400, "BadRequest", "the body does not match the path"))
        dry_run = query.get("dryRun") == ["All"]
        force = query.get("force") == ["true"]
        with fake.lock:
            if ns is not None and ("namespaces", None, ns) not in fake.objects:
                return self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            key = (plural, ns, name)
            old = fake.objects.get(key)
            fields = leaves(fieldset(body))
            entries = list((old or {}).get("metadata", {}).get("managedFields") or [])
            mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"), None)
            conflicts: dict[str, list[tuple[str, ...]]] = {}
            for e, owned in _owned(entries):
                if e is mine:
                    continue
                for p in sorted(owned & fields):
                    if _value(old, p) != _value(body, p):
                        conflicts.setdefault(e["manager"], []).append(p)
            if conflicts and not force:
                n = sum(len(v) for v in conflicts.values())
                text = "; ".join(f'conflict with "{m}" using {body["apiVersion"]}: '
                                 + ", ".join("." + ".".join(p) for p in ps) for m, ps in conflicts.items())
                return self._send(409, _status(409, "Conflict",
                                               f"Apply failed with {n} conflict{'s' if n > 1 else ''}: {text}"))
            new = copy.deepcopy(old) if old is not None else {"apiVersion": body["apiVersion"], "kind": kind,
                                                               "metadata": {"name": name}}
            others = set().union(*(owned for e, owned in _owned(entries) if e is not mine)) if entries else set()
            if mine is not None:  # fields this manager applied before and no longer sends, nobody else owns: removed
                for p in leaves(mine["fieldsV1"]) - fields - others:
                    _delete_path(new, p)
            for p in sorted(fields):
                _set(new, p, _value(body, p))
            if ns is not None:
                new["metadata"]["namespace"] = ns
            entries = _take([e for e in entries if e is not mine], fields, None) if force else \
                [e for e in entries if e is not mine]
            entries.append(_entry(manager, "Apply", body["apiVersion"], fields))
            meta = new["metadata"]
            fake.rv += 1
            meta["resourceVersion"] = str(fake.rv)
            meta["uid"] = (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
            gen = int((old or {}).get("metadata", {}).get("generation", 0))
            meta["generation"] = gen + 1 if old is None or old.get("spec") != new.get("spec") else gen
            meta["managedFields"] = entries
            if kind == "Namespace":
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new["status"] = (old or {}).get("status", {})
            if old is not None and _same(old, new):
                return self._send(200, old)  # nothing changed, owners included: no write, same resourceVersion
            if dry_run:
                return self._send(200 if old else 201, new)
            fake.objects[key] = new
            fake.applied[(key, manager)] = body
            fake.reads[key] = 0
            fake.writes += 1
            return self._send(200 if old else 201, new)

    def _update(self, plural: str, ns: str | None, name: str, sub: str | None, patch: Any, manager: str) -> None:
        """A merge patch (``kubectl edit`` / ``kubectl patch`` / a controller) on the object or a subresource."""
        fake = self.fake
        with fake.lock:
            key = (plural, ns, name)
            obj = fake.objects.get(key)
            if obj is None:
                return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            if sub == "scale":
                patch = {"spec": {"replicas": ((patch or {}).get("spec") or {}).get("replicas")}}
            elif sub == "status":
                patch = {"status": (patch or {}).get("status") or {}}
            merged = _merge_patch(obj, patch)
            merged["metadata"] = {**merged.get("metadata", {}),
                                  "managedFields": obj["metadata"].get("managedFields") or []}
            set_paths = {p for p in leaves(fieldset(patch)) if _value(merged, p) is not _MISSING}
            record_update(merged, manager, set_paths, sub)
            if merged.get("spec") != obj.get("spec"):
                merged["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
            fake.rv += 1
            merged["metadata"]["resourceVersion"] = str(fake.rv)
            fake.objects[key] = merged
            fake.writes += 1
            return self._send(200, merged)

    def do_DELETE(self) -> None:
        path, query, _ = self._record()
        route = self._route(path)
        if route is None or route[4] is None:
            return self._send(404, _status(404, "NotFound", f"no route {path}"))
        _, _, plural, ns, name, _ = route
        with self.fake.lock:
            if query.get("dryRun") == ["All"]:
                obj = self.fake.objects.get((plural, ns, name))
            else:
                obj = self.fake.objects.pop((plural, ns, name), None)
                for key in [k for k in self.fake.applied if k[0] == (plural, ns, name)]:
                    del self.fake.applied[key]
                if obj is not None and plural == "namespaces":  # what a namespace holds goes with it
                    for key in [k for k in self.fake.objects if k[1] == name]:
                        del self.fake.objects[key]
        if obj is None:
            return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {
            "name": name, "kind": plural}})


def _pretend_controller(obj: dict[str, Any]) -> None:
    """Write the status a controller would, once the object has been read ``ready_after`` times: through the
    status subresource, and (Deployments) the revision annotation, each recorded under kube-controller-manager
    (KubeRay's operator for RayServices) as the real controllers' writes are."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    gen = obj["metadata"].get("generation", 1)
    status: dict[str, Any] | None = None
    manager = "kube-controller-manager"
    if kind in ("Deployment", "StatefulSet"):
        n = spec.get("replicas", 1)
        status = {"observedGeneration": gen, "replicas": n, "readyReplicas": n, "updatedReplicas": n,
                  "availableReplicas": n}
        if kind == "Deployment" and "deployment.kubernetes.io/revision" not in \
                (obj["metadata"].get("annotations") or {}):
            obj["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
            record_update(obj, manager, {("metadata", "annotations", "deployment.kubernetes.io/revision")})
    elif kind == "DaemonSet":
        status = {"observedGeneration": gen, "desiredNumberScheduled": 2, "numberReady": 2,
                  "updatedNumberScheduled": 2}
    elif kind == "RayService":
        manager = "ray-operator"
        status = {"observedGeneration": gen, "conditions": [
            {"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints", "message": ""}]}
    if status is not None and obj.get("status") != status:
        obj["status"] = status
        record_update(obj, manager, leaves(fieldset({"status": status}, top=False)), "status")


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


def request(server: FakeKubeServer, method: str, path: str, body: Any = None, *, manager: str | None = None,
            content_type: str = "application/merge-patch+json", query: str = "") -> tuple[int, dict[str, Any]]:
    """One raw request to the fake, as kubectl (or another tool) would send it: (status, JSON answer)."""
    import urllib.error
    import urllib.request

    qs = "&".join(q for q in (f"fieldManager={manager}" if manager else "", query) if q)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{server.url}{path}" + (f"?{qs}" if qs else ""), data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return int(e.code), json.loads(e.read() or b"{}")
        finally:
            e.close()
