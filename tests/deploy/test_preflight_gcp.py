"""GKE preflight against recorded Compute Engine responses (tests/data/preflight/gcp, see its README), parsed by
google-cloud-compute's own message types and served through the preflight's SDK seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from planner.errors import CredentialsError, DeployError, EnvironmentProblem, InputError
from stacks.deploy.preflight import raise_for
from stacks.deploy.preflight_gcp import GcpPreflightInput, SdkGcpApi, quota_metric, run_preflight

compute_v1 = pytest.importorskip("google.cloud.compute_v1")
gexc = pytest.importorskip("google.api_core.exceptions")

DATA = Path(__file__).resolve().parents[1] / "data" / "preflight" / "gcp"


def body(name: str) -> str:
    return (DATA / name).read_text()


class Recorded:
    """The seam, answering from the recorded bodies (strictly parsed: an unknown field fails the test)."""

    def __init__(self, *, project: str | None = "acme-ml", creds_error: Exception | None = None) -> None:
        self.project, self.creds_error = project, creds_error
        self.calls: list[str] = []

    def credentials(self) -> tuple[str | None, str]:
        self.calls.append("credentials")
        if self.creds_error is not None:
            raise self.creds_error
        return self.project, "deployer@acme-ml.iam.gserviceaccount.com"

    def region(self, project: str, region: str) -> Any:
        self.calls.append(f"regions.get {project} {region}")
        return compute_v1.Region.from_json(body(f"region-{region}.json"))

    def machine_type(self, project: str, zone: str, machine_type: str) -> Any:
        self.calls.append(f"machineTypes.get {zone} {machine_type}")
        path = DATA / f"machine-type-{machine_type}.json"
        recorded = compute_v1.MachineType.from_json(path.read_text()) if path.is_file() else None
        if recorded is None or not recorded.zone.endswith(zone):
            error = json.loads(body("error-404-machine-type.json"))["error"]
            raise gexc.from_http_status(error["code"], error["message"], errors=error["errors"])
        return recorded

    def accelerator_type(self, project: str, zone: str, accelerator_type: str) -> Any:
        self.calls.append(f"acceleratorTypes.get {zone} {accelerator_type}")
        recorded = compute_v1.AcceleratorType.from_json(body(f"accelerator-type-{accelerator_type}.json"))
        if recorded.zone.rsplit("/", 1)[-1] != zone:
            raise gexc.NotFound(f"The resource '{accelerator_type}' was not found")
        return recorded


def g2(**kw: Any) -> GcpPreflightInput:
    args: dict[str, Any] = dict(region="europe-west4", zone="europe-west4-a", machine_type="g2-standard-8",
                                accelerator_type="nvidia-l4", accelerator_count=1, nodes=2)
    args.update(kw)
    return GcpPreflightInput(**args)


def test_all_checks_pass_on_g2_l4() -> None:
    lines: list[str] = []
    checks = run_preflight(g2(), say=lines.append, api=Recorded())
    assert [c.ok for c in checks] == [True, True, True, True], lines
    assert lines == [
        "[ok  ] credentials: project acme-ml as deployer@acme-ml.iam.gserviceaccount.com",
        "[ok  ] g2-standard-8 in europe-west4-a: offered: 8 vCPUs, 32 GiB, 1 x nvidia-l4",
        "[ok  ] quota NVIDIA_L4_GPUS: NVIDIA_L4_GPUS in europe-west4 = 8, 2 in use, 6 free; the part needs 2",
        "[ok  ] quota CPUS: CPUS in europe-west4 = 2400, 64 in use, 2336 free; the part needs 16",
    ]
    raise_for(checks)


def test_quota_short_is_exit_4_with_the_request_to_make() -> None:
    checks = run_preflight(g2(nodes=7), say=lambda _: None, api=Recorded())  # 7 L4s, 6 free
    failed = [c for c in checks if c.ok is False]
    assert [c.name for c in failed] == ["quota NVIDIA_L4_GPUS"]
    assert failed[0].fix is not None and "NVIDIA_L4_GPUS >= 9 in europe-west4" in failed[0].fix
    with pytest.raises(EnvironmentProblem) as err:
        raise_for(checks)
    assert err.value.exit_code == 4


def test_spot_counts_preemptible_quotas() -> None:
    checks = {c.name: c for c in run_preflight(g2(spot=True), say=lambda _: None, api=Recorded())}
    assert checks["quota PREEMPTIBLE_NVIDIA_L4_GPUS"].ok is True
    cpus = checks["quota PREEMPTIBLE_CPUS"]  # the recorded project has no preemptible vCPU quota
    assert cpus.ok is False and "= 0, 0 in use, 0 free; the part needs 16" in cpus.message


def test_a3_not_offered_in_the_zone_fails_and_its_quota_is_unpublished() -> None:
    inp = g2(zone="europe-west4-c", machine_type="a3-highgpu-8g", accelerator_type="nvidia-h100-80gb",
             accelerator_count=8, nodes=1)
    checks = run_preflight(inp, say=lambda _: None, api=Recorded())
    offered = next(c for c in checks if c.name == "a3-highgpu-8g in europe-west4-c")
    assert offered.ok is False and "not offered in zone europe-west4-c" in offered.message
    quota = next(c for c in checks if c.name == "quota NVIDIA_H100_GPUS")
    assert quota.ok is None and "publishes no NVIDIA_H100_GPUS quota" in quota.message  # a warning
    with pytest.raises(DeployError) as err:
        raise_for(checks)
    assert err.value.exit_code == 5


def test_a3_in_its_zone_matches_eight_h100() -> None:
    inp = g2(zone="europe-west4-b", machine_type="a3-highgpu-8g", accelerator_type="nvidia-h100-80gb",
             accelerator_count=8, nodes=1)
    checks = run_preflight(inp, say=lambda _: None, api=Recorded())
    assert checks[1].ok is True and checks[1].message == "offered: 208 vCPUs, 1872 GiB, 8 x nvidia-h100-80gb"


def test_accelerator_count_mismatch_is_a_catalog_problem() -> None:
    checks = run_preflight(g2(accelerator_count=2), say=lambda _: None, api=Recorded())
    assert checks[1].ok is False and "the part expects 2 x nvidia-l4" in checks[1].message


def test_n1_with_attached_t4_checks_the_accelerator_type_in_the_zone() -> None:
    inp = g2(zone="europe-west4-b", machine_type="n1-standard-8", accelerator_type="nvidia-tesla-t4",
             accelerator_count=4, nodes=1)
    api = Recorded()
    checks = {c.name: c for c in run_preflight(inp, say=lambda _: None, api=api)}
    assert checks["nvidia-tesla-t4 in europe-west4-b"].ok is True
    assert checks["quota NVIDIA_T4_GPUS"].ok is True  # 4 of 4
    assert "acceleratorTypes.get europe-west4-b nvidia-tesla-t4" in api.calls
    too_many = run_preflight(g2(zone="europe-west4-b", machine_type="n1-standard-8",
                                accelerator_type="nvidia-tesla-t4", accelerator_count=8, nodes=1),
                             say=lambda _: None, api=Recorded())
    assert any(c.ok is False and "at most 4 per instance" in c.message for c in too_many)


def test_no_credentials_is_exit_4_one_line_and_nothing_else() -> None:
    from google.auth.exceptions import DefaultCredentialsError

    api = Recorded(creds_error=DefaultCredentialsError("Your default credentials were not found."))
    checks = run_preflight(g2(), say=lambda _: None, api=api)
    assert len(checks) == 1 and checks[0].ok is False and api.calls == ["credentials"]
    with pytest.raises(CredentialsError) as err:
        raise_for(checks)
    assert err.value.exit_code == 4
    line = err.value.one_line()
    assert "\n" not in line and "no Google Cloud credentials found" in line and "To fix:" in line


def test_real_sdk_without_credentials_is_exit_4(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real google-auth chain in an environment with no credentials at all."""
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server: fail fast, offline
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    checks = run_preflight(g2(), say=lambda _: None, api=SdkGcpApi())
    assert [(c.name, c.ok, c.error) for c in checks] == [("credentials", False, CredentialsError)]


def test_permission_denied_is_a_credentials_error() -> None:
    class Denied(Recorded):
        def region(self, project: str, region: str) -> Any:
            raise gexc.Forbidden("Required 'compute.regions.get' permission for 'projects/acme-ml'")

    with pytest.raises(CredentialsError, match="permission denied"):
        run_preflight(g2(), say=lambda _: None, api=Denied())


def test_project_missing_from_credentials_and_args() -> None:
    checks = run_preflight(g2(), say=lambda _: None, api=Recorded(project=None))
    assert checks[0].ok is False and "name no project" in checks[0].message and checks[0].error is CredentialsError


@pytest.mark.parametrize(("acc", "spot", "metric"), [("nvidia-l4", False, "NVIDIA_L4_GPUS"),
                                                      ("nvidia-a100-80gb", True, "PREEMPTIBLE_NVIDIA_A100_80GB_GPUS"),
                                                      ("tpu-v5-lite-podslice", False, "TPU_LITE_PODSLICE_V5"),
                                                      ("nvidia-unknown", False, None)])
def test_quota_metric_names(acc: str, spot: bool, metric: str | None) -> None:
    assert quota_metric(acc, spot) == metric
    known = {m.name for m in compute_v1.Quota.Metric}  # the API's own list: every name we use that it has
    if metric and acc != "nvidia-unknown":
        assert metric in known


def test_zone_outside_the_region_is_an_input_error() -> None:
    with pytest.raises(InputError, match="zone us-central1-a is not in region europe-west4"):
        g2(zone="us-central1-a")
