"""``mlplan preflight`` dispatches on the plan's cloud parts: GKE parts to the GCP checks, AKS parts to the
Azure checks (through their recorded-response seams), and says in one line, exit 4, when credentials are
absent (the real SDKs, in a subprocess with an empty credential environment)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from planner.errors import CredentialsError, EnvironmentProblem, InputError
from planner.plan import Plan
from stacks.deploy import preflight_clouds
from stacks.deploy.preflight import raise_for
from stacks.folder import load_folder
from tests import factories
from tests.deploy.conftest import write_plan_folder
from tests.deploy.test_cli import MLPLAN, ROOT, one_line_error
from tests.deploy.test_preflight_azure import SUB
from tests.deploy.test_preflight_azure import Recorded as AzureRecorded
from tests.deploy.test_preflight_gcp import Recorded as GcpRecorded


def gke_plan(**kw: Any) -> Plan:
    part: dict[str, Any] = dict(provider="gcp", region="europe-west4", geography="eu", instance="g2-standard-8",
                                accelerator="l4", nodes=2, replicas=2)
    part.update(kw)
    return factories._plan(factories._part(**part))


def aks_plan() -> Plan:
    return factories._plan(factories._part(provider="azure", region="westeurope", geography="eu",
                                           instance="Standard_NC24ads_A100_v4", accelerator="a100-80gb", nodes=2,
                                           replicas=2))


def test_a_gke_part_is_checked_in_the_regions_first_zone(tmp_path: Path) -> None:
    folder = load_folder(write_plan_folder(tmp_path / "g", gke_plan()))
    lines: list[str] = []
    api = GcpRecorded()
    checks = preflight_clouds.run(folder, say=lines.append, seams=preflight_clouds.Seams(gcp=api))
    assert lines == [
        "GCP part primary (g2-standard-8 in europe-west4):",
        "[ok  ] credentials: project acme-ml as deployer@acme-ml.iam.gserviceaccount.com",
        "  zone europe-west4-a: the first of europe-west4-a, europe-west4-b, europe-west4-c (pass --zone to check "
        "another)",
        "[ok  ] g2-standard-8 in europe-west4-a: offered: 8 vCPUs, 32 GiB, 1 x nvidia-l4",
        "[ok  ] quota NVIDIA_L4_GPUS: NVIDIA_L4_GPUS in europe-west4 = 8, 2 in use, 6 free; the part needs 2",
        "[ok  ] quota CPUS: CPUS in europe-west4 = 2400, 64 in use, 2336 free; the part needs 16",
    ]
    assert api.calls[:2] == ["credentials", "regions.get acme-ml europe-west4"]
    raise_for(checks)


def test_a_gke_part_in_a_given_zone(tmp_path: Path) -> None:
    folder = load_folder(write_plan_folder(tmp_path / "g", gke_plan(instance="a3-highgpu-8g", accelerator="h100-sxm",
                                                                    accelerator_count=8, gpus_per_node=8, nodes=1,
                                                                    replicas=1, tensor_parallel=8)))
    opts = preflight_clouds.PreflightOptions(gcp_zone="europe-west4-c")
    checks = preflight_clouds.run(folder, opts, say=lambda _: None, seams=preflight_clouds.Seams(gcp=GcpRecorded()))
    offered = next(c for c in checks if c.name == "a3-highgpu-8g in europe-west4-c")
    assert offered.ok is False and "not offered in zone europe-west4-c" in offered.message
    with pytest.raises(InputError, match="zone us-east1-b is not in region europe-west4"):
        preflight_clouds.run(folder, preflight_clouds.PreflightOptions(gcp_zone="us-east1-b"), say=lambda _: None,
                             seams=preflight_clouds.Seams(gcp=GcpRecorded()))


def test_gcp_without_credentials_is_exit_4(tmp_path: Path) -> None:
    from google.auth import exceptions as aexc

    folder = load_folder(write_plan_folder(tmp_path / "g", gke_plan()))
    api = GcpRecorded(creds_error=aexc.DefaultCredentialsError("Your default credentials were not found"))
    checks = preflight_clouds.run(folder, say=lambda _: None, seams=preflight_clouds.Seams(gcp=api))
    with pytest.raises(CredentialsError) as err:
        raise_for(checks)
    assert err.value.exit_code == 4 and "no Google Cloud credentials found" in err.value.one_line()
    assert api.calls == ["credentials"]  # nothing else is tried


def test_an_aks_part(tmp_path: Path) -> None:
    folder = load_folder(write_plan_folder(tmp_path / "a", aks_plan()))
    lines: list[str] = []
    opts = preflight_clouds.PreflightOptions(azure_subscription=SUB, azure_zones=("1", "2"))
    checks = preflight_clouds.run(folder, opts, say=lines.append, seams=preflight_clouds.Seams(azure=AzureRecorded()))
    assert lines[0] == "Azure part primary (Standard_NC24ads_A100_v4 in westeurope):"
    assert lines[1] == f"[ok  ] credentials: subscription {SUB} as deployer@acme.example"
    assert [c.ok for c in checks] == [True, True, True, True], lines
    raise_for(checks)


def test_plans_without_a_cloud_part_are_refused(tmp_path: Path) -> None:
    folder = load_folder(write_plan_folder(tmp_path / "o", factories.onprem_llm()))
    with pytest.raises(InputError, match="has no cloud part"):
        preflight_clouds.run(folder, say=lambda _: None)


@pytest.mark.slow
@pytest.mark.parametrize(("plan", "text"), [
    (gke_plan, "[FAIL] credentials: google.auth.default: no Google Cloud credentials found"),
    (aks_plan, "[FAIL] credentials: DefaultAzureCredential: no usable Azure credentials"),
])
def test_the_cli_without_credentials_is_exit_4(tmp_path: Path, plan: Any, text: str) -> None:
    folder = write_plan_folder(tmp_path / "p", plan())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOOGLE_", "GCLOUD_", "CLOUDSDK_", "AZURE_", "MSI_", "IDENTITY_"))}
    env.update({"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "True",
                "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9", "IDENTITY_ENDPOINT": "",
                "AZURE_SUBSCRIPTION_ID": SUB})
    done = subprocess.run([MLPLAN, "preflight", str(folder)], capture_output=True, text=True, env=env, timeout=180,
                          check=False, cwd=ROOT)
    assert done.returncode == 4, done.stdout + done.stderr
    assert text in done.stdout, done.stdout
    line = one_line_error(done)
    assert "preflight: 1 of 1 checks failed; first: credentials" in line and "To fix:" in line


def test_missing_sdk_is_environment_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_compute(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("google.cloud"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_compute)
    folder = load_folder(write_plan_folder(tmp_path / "g", gke_plan()))
    with pytest.raises(EnvironmentProblem, match="google-cloud-compute is not installed"):
        preflight_clouds.run(folder, say=lambda _: None)


def test_gcp_and_azure_server_errors_are_exit_4_retry_later(tmp_path: Path) -> None:
    from azure.core import exceptions as azexc
    from google.api_core import exceptions as gexc

    class GcpDown(GcpRecorded):
        def region(self, project: str, region: str) -> Any:
            raise gexc.InternalServerError("Internal error encountered.")

    folder = load_folder(write_plan_folder(tmp_path / "g", gke_plan()))
    with pytest.raises(EnvironmentProblem) as err:
        preflight_clouds.run(folder, say=lambda _: None, seams=preflight_clouds.Seams(gcp=GcpDown()))
    assert err.value.exit_code == 4
    assert "regions.get europe-west4: Compute Engine answered HTTP 500 (InternalServerError)" in err.value.one_line()

    class AzureDown(AzureRecorded):
        def resource_skus(self, subscription: str, location: str) -> list[Any]:
            e = azexc.HttpResponseError(message="(ServiceUnavailable) The service is unavailable.")
            e.status_code = 503
            raise e

    folder = load_folder(write_plan_folder(tmp_path / "a", aks_plan()))
    with pytest.raises(EnvironmentProblem) as err:
        preflight_clouds.run(folder, preflight_clouds.PreflightOptions(azure_subscription=SUB), say=lambda _: None,
                             seams=preflight_clouds.Seams(azure=AzureDown()))
    assert "resourceSkus.list: Azure Resource Manager answered HTTP 503 ((ServiceUnavailable)" \
        in err.value.one_line()
