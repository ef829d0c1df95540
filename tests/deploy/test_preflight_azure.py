"""AKS preflight against recorded ARM responses (tests/data/preflight/azure, see its README), parsed by
azure-mgmt-compute's own models and served through the preflight's SDK seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from planner.errors import CredentialsError, DeployError, EnvironmentProblem
from stacks.deploy.preflight import raise_for
from stacks.deploy.preflight_azure import AzurePreflightInput, SdkAzureApi, run_preflight

models = pytest.importorskip("azure.mgmt.compute.models")
azexc = pytest.importorskip("azure.core.exceptions")

DATA = Path(__file__).resolve().parents[1] / "data" / "preflight" / "azure"
SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def values(name: str) -> list[dict[str, Any]]:
    data = json.loads((DATA / name).read_text())
    if "responses" in data:  # an azure-rest-api-specs example file: the documented 200 body
        data = data["responses"]["200"]["body"]
    out: list[dict[str, Any]] = data["value"]
    return out


class Recorded:
    def __init__(self, *, skus: str = "resource-skus-westeurope.json", creds_error: Exception | None = None) -> None:
        self.skus, self.creds_error = skus, creds_error
        self.calls: list[str] = []

    def credentials(self) -> str:
        self.calls.append("credentials")
        if self.creds_error is not None:
            raise self.creds_error
        return "deployer@acme.example"

    def resource_skus(self, subscription: str, location: str) -> list[Any]:
        self.calls.append(f"resourceSkus.list {subscription} {location}")
        return [models.ResourceSku(v) for v in values(self.skus)]

    def usages(self, subscription: str, location: str) -> list[Any]:
        self.calls.append(f"usage.list {subscription} {location}")
        if not (DATA / f"usages-{location}.json").is_file():
            return []  # nothing recorded for this location: the preflight warns that it saw no quota
        return [models.Usage(v) for v in values(f"usages-{location}.json")]


def a100(**kw: Any) -> AzurePreflightInput:
    args: dict[str, Any] = dict(location="westeurope", zones=("1", "2"), vm_size="Standard_NC24ads_A100_v4", nodes=2,
                                subscription_id=SUB)
    args.update(kw)
    return AzurePreflightInput(**args)


def test_all_checks_pass_on_nc_a100() -> None:
    lines: list[str] = []
    api = Recorded()
    checks = run_preflight(a100(), say=lines.append, api=api)
    assert [c.ok for c in checks] == [True, True, True, True], lines
    assert lines == [
        f"[ok  ] credentials: subscription {SUB} as deployer@acme.example",
        "[ok  ] Standard_NC24ads_A100_v4 in westeurope: offered, family standardNCADSA100v4Family, 24 vCPUs, 1 GPUs; "
        "zones 1, 2",
        "[ok  ] quota standardNCADSA100v4Family: Standard NCADS_A100_v4 Family vCPUs in westeurope = 48, 0 in use, "
        "48 free; the part needs 2 x 24 = 48",
        "[ok  ] quota cores: Total Regional vCPUs in westeurope = 100, 8 in use, 92 free; the part needs 2 x 24 = 48",
    ]
    assert api.calls[1:] == [f"resourceSkus.list {SUB} westeurope", f"usage.list {SUB} westeurope"]
    raise_for(checks)


def test_a_restricted_zone_is_refused_with_the_usable_ones() -> None:
    checks = run_preflight(a100(zones=("1", "3")), say=lambda _: None, api=Recorded())
    offered = checks[1]
    assert offered.ok is False
    assert offered.message == "Standard_NC24ads_A100_v4 is not available in zone(s) 3 of westeurope; usable zones: 1, 2"
    assert len(checks) == 2  # no quota check for a size that cannot be placed


def test_a_size_restricted_for_the_subscription_is_refused() -> None:
    checks = run_preflight(a100(vm_size="Standard_ND96isr_H100_v5", nodes=1), say=lambda _: None, api=Recorded())
    assert checks[1].ok is False and "restricted in westeurope for this subscription (NotAvailableForSubscription)" \
        in checks[1].message
    with pytest.raises(DeployError) as err:
        raise_for(checks)
    assert err.value.exit_code == 5


def test_family_quota_short_is_exit_4() -> None:
    checks = run_preflight(a100(nodes=3), say=lambda _: None, api=Recorded())
    failed = [c for c in checks if c.ok is False]
    assert [c.name for c in failed] == ["quota standardNCADSA100v4Family"]
    assert "48 free; the part needs 3 x 24 = 72" in failed[0].message
    assert failed[0].fix is not None and "standardNCADSA100v4Family >= 72 vCPUs in westeurope" in failed[0].fix
    with pytest.raises(EnvironmentProblem) as err:
        raise_for(checks)
    assert err.value.exit_code == 4


def test_spot_counts_low_priority_cores() -> None:
    checks = run_preflight(a100(spot=True, nodes=1), say=lambda _: None, api=Recorded())
    assert [c.name for c in checks[2:]] == ["quota lowPriorityCores"]
    assert checks[2].ok is False and "Total Regional Low-priority vCPUs in westeurope = 3, 0 in use, 3 free" \
        in checks[2].message


def test_the_documented_example_response_offers_no_gpu_size() -> None:
    """The Resource SKUs API's own example (westus, Standard_A0/A1): an NC size is simply not there."""
    api = Recorded(skus="ListAvailableResourceSkus.json")
    checks = run_preflight(a100(location="westus", zones=()), say=lambda _: None, api=api)
    assert checks[1].ok is False and checks[1].message == "Standard_NC24ads_A100_v4 is not offered in westus"
    ok = run_preflight(a100(location="westus", zones=("3",), vm_size="Standard_A1", nodes=1), say=lambda _: None,
                       api=api)
    assert ok[1].ok is True and ok[1].message == "offered, family standardA0_A7Family, 1 vCPUs; zones 1, 2, 3"
    assert [(c.name, c.ok) for c in ok[2:]] == [("quota standardA0_A7Family", None), ("quota cores", None)]


def test_no_credentials_is_exit_4_one_line_and_nothing_else() -> None:
    api = Recorded(creds_error=azexc.ClientAuthenticationError(
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials:..."))
    checks = run_preflight(a100(), say=lambda _: None, api=api)
    assert len(checks) == 1 and api.calls == ["credentials"]
    with pytest.raises(CredentialsError) as err:
        raise_for(checks)
    line = err.value.one_line()
    assert err.value.exit_code == 4 and "\n" not in line and "no usable Azure credentials" in line
    assert "az login" in line


def test_real_sdk_without_credentials_is_exit_4(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """azure-identity's real DefaultAzureCredential in an environment with no credentials at all."""
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                "AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT",
                "AZURE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no az, azd or pwsh to ask
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")  # IMDS probe: refused at once
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    checks = run_preflight(a100(subscription_id=None), say=lambda _: None, api=SdkAzureApi())
    assert [(c.name, c.ok, c.error) for c in checks] == [("credentials", False, CredentialsError)]


def test_subscription_missing() -> None:
    import os

    saved = os.environ.pop("AZURE_SUBSCRIPTION_ID", None)
    try:
        checks = run_preflight(a100(subscription_id=None), say=lambda _: None, api=Recorded())
    finally:
        if saved is not None:
            os.environ["AZURE_SUBSCRIPTION_ID"] = saved
    assert checks[0].ok is False and "no subscription is named" in checks[0].message


def test_authorization_failure_is_a_credentials_error() -> None:
    class Denied(Recorded):
        def usages(self, subscription: str, location: str) -> list[Any]:
            raise azexc.HttpResponseError(message="(AuthorizationFailed) The client does not have authorization",
                                          response=_Response(403))

    with pytest.raises(CredentialsError, match="authorization failed"):
        run_preflight(a100(), say=lambda _: None, api=Denied())


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "Forbidden"
        self.headers: dict[str, str] = {}
        self.request = None

    def text(self) -> str:
        return ""
