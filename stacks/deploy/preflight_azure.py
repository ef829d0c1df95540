"""``mlplan preflight`` for an AKS part: check an Azure subscription before a deploy, with azure-mgmt-compute.

Checks, each a line (the AWS preflight's :class:`~stacks.deploy.preflight.Check`), a fix when it fails:

1. credentials: ``DefaultAzureCredential`` yields an ARM token and a subscription id is known (argument or
   ``AZURE_SUBSCRIPTION_ID``); else CredentialsError (exit 4) and nothing else is tried;
2. offered: Resource SKUs (``resourceSkus.list`` with a location filter) list the VM size in the location, not
   restricted for this subscription, in every zone the part asks for (``restrictions`` of type ``Location`` /
   ``Zone`` with ``NotAvailableForSubscription``);
3. quota: Compute usages (``usage.list(location)``): the SKU's family quota (e.g. ``standardNCADSA100v4Family``) and
   the regional ``cores`` quota cover ``vCPUs x nodes``; Spot pools count against ``lowPriorityCores`` instead.

Every call goes through :class:`AzureApi` (the SDK seam): tests pass one that answers with recorded response bodies
parsed by the SDK's own models. References: https://learn.microsoft.com/rest/api/compute/resource-skus/list,
https://learn.microsoft.com/rest/api/compute/usage/list, Spot quota
(https://learn.microsoft.com/azure/virtual-machines/spot-vms#quota: "lowPriorityCores").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from planner.errors import CredentialsError, DeployError, EnvironmentProblem, MissingDependency
from stacks.deploy.preflight import Check

ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class AzurePreflightInput:
    """What one AKS part asks of the subscription. ``subscription_id`` None: ``AZURE_SUBSCRIPTION_ID``."""

    location: str
    zones: tuple[str, ...]
    vm_size: str
    nodes: int
    spot: bool = False
    subscription_id: str | None = None


class AzureApi(Protocol):
    """The ARM calls preflight makes. Results are ``azure.mgmt.compute.models`` objects (ResourceSku, Usage)."""

    def credentials(self) -> str:
        """Who the token belongs to (raises ``azure.core.exceptions.ClientAuthenticationError`` when none)."""
        ...

    def resource_skus(self, subscription: str, location: str) -> Iterable[Any]: ...

    def usages(self, subscription: str, location: str) -> Iterable[Any]: ...


class SdkAzureApi:
    """:class:`AzureApi` over azure-identity's DefaultAzureCredential and azure-mgmt-compute."""

    def __init__(self) -> None:
        try:
            from azure.identity import DefaultAzureCredential
            from azure.mgmt.compute import ComputeManagementClient  # noqa: F401
        except ImportError:
            raise MissingDependency("azure-mgmt-compute is not installed", fix="pip install 'mlplan[azure]'") from None
        self.credential = DefaultAzureCredential()

    def credentials(self) -> str:
        import base64
        import json

        token = self.credential.get_token(ARM_SCOPE).token
        try:  # the token's claims name the principal; not verified here, ARM verifies it on every call
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
            return str(claims.get("upn") or claims.get("appid") or claims.get("oid") or "token")
        except (IndexError, ValueError):
            return "token"

    def _client(self, subscription: str) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(self.credential, subscription)

    def resource_skus(self, subscription: str, location: str) -> Iterable[Any]:
        skus: Iterable[Any] = self._client(subscription).resource_skus.list(filter=f"location eq '{location}'")
        return skus

    def usages(self, subscription: str, location: str) -> Iterable[Any]:
        usages: Iterable[Any] = self._client(subscription).usage.list(location)
        return usages


def _classify(e: Exception, what: str) -> Exception:
    """An azure-core / azure-identity failure as a one-line mlplan error; others pass through."""
    try:
        from azure.core import exceptions as az
    except ImportError:  # pragma: no cover - the SDK is there whenever it raised
        return e
    if isinstance(e, az.ClientAuthenticationError):
        return CredentialsError(f"{what}: no usable Azure credentials ({first_line(e)})",
                                fix="az login (or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET)")
    if isinstance(e, az.HttpResponseError) and e.status_code == 403:
        return CredentialsError(f"{what}: authorization failed ({first_line(e)})",
                                fix="grant the deploy identity Reader on the subscription")
    if isinstance(e, az.ServiceRequestError):
        return EnvironmentProblem(f"{what}: cannot reach Azure Resource Manager ({first_line(e)})",
                                  fix="check the network and proxy, then retry")
    status = getattr(e, "status_code", None)
    if isinstance(e, az.HttpResponseError) and isinstance(status, int) and (status == 429 or status >= 500):
        return EnvironmentProblem(f"{what}: Azure Resource Manager answered HTTP {status} ({first_line(e)})",
                                  fix="retry later; if it persists, check https://status.azure.com")
    return e


def sdk_errors() -> tuple[type[Exception], ...]:
    """What an azure-core / azure-identity call raises (catch exactly these at the call, then classify)."""
    from azure.core.exceptions import AzureError

    return (AzureError,)


def first_line(e: Exception) -> str:
    text = str(getattr(e, "message", None) or e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _capability(sku: Any, name: str) -> str | None:
    return next((c.value for c in (sku.capabilities or []) if c.name == name), None)


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower().replace(" ", "") == (b or "").lower().replace(" ", "")


class AzurePreflight:
    def __init__(self, inp: AzurePreflightInput, api: AzureApi, say: Callable[[str], None]) -> None:
        self.inp, self.api, self.say = inp, api, say
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.say(check.line())
        return check

    def run(self) -> list[Check]:
        subscription = self.check_credentials()
        if subscription is None:
            return self.checks
        sku = self.check_offered(subscription)
        if sku is not None:
            self.check_quota(subscription, sku)
        return self.checks

    def check_credentials(self) -> str | None:
        subscription = self.inp.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID")
        try:
            who = self.api.credentials()
        except sdk_errors() as e:
            err = _classify(e, "DefaultAzureCredential")
            if not isinstance(err, (CredentialsError, EnvironmentProblem)):
                raise
            self.add(Check("credentials", False, err.message, err.fix, type(err)))
            return None
        if not subscription:
            self.add(Check("credentials", False, f"signed in as {who}, but no subscription is named",
                           "set AZURE_SUBSCRIPTION_ID (az account show --query id -o tsv)", CredentialsError))
            return None
        self.add(Check("credentials", True, f"subscription {subscription} as {who}"))
        return subscription

    def _list(self, what: str, fn: Callable[[], Iterable[Any]]) -> list[Any]:
        try:
            return list(fn())
        except sdk_errors() as e:
            err = _classify(e, what)
            raise (err if err is not e else DeployError(f"{what} failed: {first_line(e)}", fix="retry; check "
                                                        "https://status.azure.com if it persists")) from None

    def check_offered(self, subscription: str) -> Any:
        inp = self.inp
        name = f"{inp.vm_size} in {inp.location}"
        skus = self._list("resourceSkus.list", lambda: self.api.resource_skus(subscription, inp.location))
        sku = next((s for s in skus if _same(s.resource_type, "virtualMachines") and _same(s.name, inp.vm_size)
                    and any(_same(loc, inp.location) for loc in (s.locations or []))), None)
        if sku is None:
            self.add(Check(name, False, f"{inp.vm_size} is not offered in {inp.location}",
                           "plan again with another location (allowed_regions) or VM size"))
            return None
        blocked_zones: set[str] = set()
        for r in sku.restrictions or []:
            kind = str(getattr(r.type, "value", r.type))
            reason = str(getattr(r.reason_code, "value", r.reason_code))
            if kind == "Location":
                self.add(Check(name, False, f"{inp.vm_size} is restricted in {inp.location} for this subscription "
                               f"({reason})", "request access (a quota/support request for the size) or plan "
                               "another location"))
                return None
            if kind == "Zone" and r.restriction_info is not None:
                blocked_zones |= set(r.restriction_info.zones or [])
        offered = {z for info in (sku.location_info or []) if _same(info.location, inp.location)
                   for z in (info.zones or [])}
        usable = sorted(offered - blocked_zones)
        missing = [z for z in inp.zones if z not in usable]
        if missing:
            self.add(Check(name, False, f"{inp.vm_size} is not available in zone(s) {', '.join(missing)} of "
                           f"{inp.location}; usable zones: {', '.join(usable) or 'none'}",
                           "plan again with zones that have it (or no zones)"))
            return None
        gpus = _capability(sku, "GPUs")
        self.add(Check(name, True, f"offered, family {sku.family}, {_capability(sku, 'vCPUs')} vCPUs"
                       + (f", {gpus} GPUs" if gpus else "") + (f"; zones {', '.join(usable)}" if usable else "")))
        return sku

    def check_quota(self, subscription: str, sku: Any) -> None:
        inp = self.inp
        vcpus = int(_capability(sku, "vCPUs") or 0)
        need = vcpus * inp.nodes
        usages = self._list("usage.list", lambda: self.api.usages(subscription, inp.location))
        names = ["lowPriorityCores"] if inp.spot else [str(sku.family), "cores"]
        for quota in names:
            usage = next((u for u in usages if _same(u.name.value, quota)), None)
            title = f"quota {quota}"
            if usage is None:
                self.add(Check(title, None, f"no {quota} usage reported in {inp.location}",
                               "check the quota in the portal (Subscriptions > Usage + quotas)"))
                continue
            free = int(usage.limit) - int(usage.current_value)
            label = usage.name.localized_value or quota
            msg = f"{label} in {inp.location} = {usage.limit}, {usage.current_value} in use, {free} free; " \
                  f"the part needs {inp.nodes} x {vcpus} = {need}"
            if free >= need:
                self.add(Check(title, True, msg))
            else:
                self.add(Check(title, False, msg, f"request {quota} >= {int(usage.current_value) + need} vCPUs in "
                               f"{inp.location} (az quota / portal: Usage + quotas)", EnvironmentProblem))


def run_preflight(inp: AzurePreflightInput, say: Callable[[str], None] = print,
                  api: AzureApi | None = None) -> list[Check]:
    """Every check for one AKS part, each printed with ``say`` as it completes. Stops after a failed credentials
    check. Turn the result into an exit code with :func:`stacks.deploy.preflight.raise_for`."""
    return AzurePreflight(inp, api if api is not None else SdkAzureApi(), say).run()
