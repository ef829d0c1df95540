"""Kubernetes API access for the deploy target: connect with a kubeconfig, find each kind's REST path by API
discovery, and the I/O boundary where the ``kubernetes`` client's exceptions become one-line mlplan errors.

Discovery (``/api``, ``/apis``, ``/apis/<group>/<version>``; CRDs included) goes through
:class:`kubernetes.dynamic.DynamicClient`, cached in ``DIR/.mlplan/kube-discovery.json``. Every call goes
through :meth:`KubeClient.call`: a transport failure is :class:`~planner.errors.ClusterUnreachable` (exit 4),
401/403 :class:`~planner.errors.CredentialsError` (exit 4), any other API answer a
:class:`~planner.errors.DeployError` (exit 5) naming the object and the server's message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from planner.errors import ClusterUnreachable, CredentialsError, DeployError, MissingDependency

FIELD_MANAGER = "mlplan"
T = TypeVar("T")
#: the body of an object as the API server returns it (JSON)
Obj = dict[str, Any]


def _short(reason: object) -> str:
    text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else "no reason given"


def api_error(e: BaseException, what: str) -> DeployError:
    """A one-line DeployError of an API answer (the server's ``Status.message``, not its JSON)."""
    body = getattr(e, "body", None) or ""
    message = str(getattr(e, "reason", "")) or str(e)
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and parsed.get("message"):
            message = str(parsed["message"])
    except (ValueError, TypeError):
        pass
    status = getattr(e, "status", "?")
    if status == 409:
        return DeployError(f"{what}: conflict ({message})",
                           fix="another field manager owns these fields; rerun with --force-conflicts if mlplan "
                               "should take them over")
    return DeployError(f"{what}: the API server answered {status}: {message}",
                       fix="fix the manifest or the cluster, then rerun mlplan deploy (it is idempotent)")


class KubeClient:
    """The calls the target makes, on one cluster. Connects on first use; :meth:`close` releases the pool."""

    def __init__(self, kubeconfig: str | None, context: str | None, cache_dir: Path, *,
                 request_timeout: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.cache_dir = cache_dir
        self.request_timeout = request_timeout
        self._dyn: Any = None
        self._host = ""
        self._resources: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------------------------ connection
    def _connect(self) -> Any:
        try:
            from kubernetes import client as k8s_client
            from kubernetes import config as k8s_config
            from kubernetes.dynamic import DynamicClient
        except ImportError:
            raise MissingDependency("the kubernetes Python client is not installed",
                                    fix="pip install 'mlplan[k8s]'") from None
        path = self.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        try:
            if self.kubeconfig or Path(path.split(os.pathsep)[0]).is_file():
                api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=self.kubeconfig, context=self.context)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
                api = k8s_client.ApiClient()
            else:
                raise ClusterUnreachable(f"no kubeconfig found at {path}",
                                         fix="pass --kubeconfig FILE (and --context), or set KUBECONFIG")
        except k8s_config.ConfigException as e:
            raise ClusterUnreachable(f"cannot use kubeconfig {path}: {_short(e)}",
                                     fix="check the file and --context (kubectl config get-contexts)") from None
        api.configuration.retries = 0
        self._host = str(api.configuration.host)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cache = str(self.cache_dir / "kube-discovery.json")
        try:
            return self._guard(lambda: DynamicClient(api, cache_file=cache))  # type: ignore[no-untyped-call]
        except BaseException:
            api.close()
            raise

    @property
    def dyn(self) -> Any:
        if self._dyn is None:
            self._dyn = self._connect()
        return self._dyn

    @property
    def host(self) -> str:
        self.dyn  # noqa: B018 - connecting sets the host
        return self._host

    def close(self) -> None:
        if self._dyn is not None:
            self._dyn.client.close()
            self._dyn = None

    # ------------------------------------------------------------------------------- the I/O boundary
    def _guard(self, fn: Callable[[], T]) -> T:
        """Run one client call; transport and auth failures become one-line mlplan errors."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except urllib3.exceptions.HTTPError as e:
            reason = getattr(e, "reason", None) or e
            raise ClusterUnreachable(f"cannot reach the Kubernetes API server at {self._host}: {_short(reason)}",
                                     fix="check that the cluster is up and kubectl cluster-info works with the "
                                         "same kubeconfig/context") from None
        except ApiException as e:
            if e.status in (401, 403):
                raise CredentialsError(
                    f"the Kubernetes API server at {self._host} refused mlplan ({e.status} {e.reason})",
                    fix="use a kubeconfig/context whose user may create these objects") from None
            raise

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """:meth:`_guard`, and any other API answer as a DeployError about ``what``."""
        from kubernetes.dynamic.exceptions import DynamicApiError

        try:
            return self._guard(fn)
        except DynamicApiError as e:
            raise api_error(e, what) from None

    # ------------------------------------------------------------------------------------- discovery
    def version(self) -> str:
        got = self._guard(lambda: self.dyn.version.get("kubernetes", {}))
        return str(got.get("gitVersion", "?")) if isinstance(got, dict) else "?"

    def resource(self, api_version: str, kind: str) -> Any:
        """The discovered resource of a kind (REST path, scope); DeployError when the cluster does not serve it."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self._guard(lambda: self.dyn.resources.get(api_version=api_version,
                                                                                   kind=kind))
            except ResourceNotFoundError:
                crd = " (install its CRD / operator first, e.g. the KubeRay operator)" if "." in api_version \
                    else ""
                raise DeployError(f"the cluster at {self.host} does not serve {kind} ({api_version}){crd}",
                                  fix="install the missing API, or choose a plan without it") from None
        return self._resources[key]

    def serves(self, api_version: str, kind: str) -> bool:
        try:
            self.resource(api_version, kind)
        except DeployError:
            return False
        return True

    # ------------------------------------------------------------------------------------------ verbs
    def get(self, res: Any, name: str, namespace: str | None) -> Obj | None:
        """The live object, or None when it does not exist."""
        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

        try:
            obj = self._guard(lambda: res.get(name=name, namespace=namespace))
        except NotFoundError:
            return None
        except DynamicApiError as e:
            raise api_error(e, f"get {res.kind}/{name}") from None
        return dict(obj.to_dict())

    def list_objects(self, res: Any, namespace: str | None) -> list[Obj]:
        """Every object of a kind in a namespace (one page is enough for a namespace mlplan made)."""
        got = self.call(f"list {res.kind} in {namespace}", lambda: res.get(namespace=namespace))
        items = got.to_dict().get("items") or []
        return [dict(i) for i in items if isinstance(i, dict)]

    def apply(self, res: Any, body: Obj, name: str, namespace: str | None, *, force: bool,
              dry_run: bool) -> Obj:
        """Server-side apply (``application/apply-patch+yaml``, ``fieldManager=mlplan``)."""
        out = self.call(f"apply {body.get('kind')}/{name}", lambda: self.dyn.server_side_apply(
            res, body=body, name=name, namespace=namespace, field_manager=FIELD_MANAGER,
            force_conflicts=force, dry_run="All" if dry_run else None))
        return dict(out.to_dict())

    def delete(self, res: Any, name: str, namespace: str | None, *, dry_run: bool = False) -> bool:
        """Delete with foreground propagation; False when it was already gone."""
        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

        try:
            self._guard(lambda: self.dyn.delete(res, name=name, namespace=namespace, propagation_policy="Foreground",
                                                dry_run="All" if dry_run else None))
        except NotFoundError:
            return False
        except DynamicApiError as e:
            raise api_error(e, f"delete {res.kind}/{name}") from None
        return True
