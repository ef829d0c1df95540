"""``mlplan preflight`` for a GKE part: check a Google Cloud project before a deploy, with google-cloud-compute.

Checks, each a line (the AWS preflight's :class:`~stacks.deploy.preflight.Check`), a fix when it fails:

1. credentials: Application Default Credentials load (``google.auth.default``); else CredentialsError (exit 4)
   and nothing else is tried;
2. offered: ``machineTypes.get`` finds the machine type in the chosen zone, and its built-in accelerators (A2, A3,
   G2, TPU machine types) are the ones the part expects; for a machine type without built-in accelerators (N1 + T4)
   ``acceleratorTypes.get`` finds the accelerator in the zone with enough cards per instance;
3. quota: ``regions.get`` quotas: the accelerator's regional metric (``NVIDIA_L4_GPUS``,
   ``PREEMPTIBLE_NVIDIA_L4_GPUS`` for Spot, ``TPU_LITE_PODSLICE_V5``, ...) and ``CPUS`` / ``PREEMPTIBLE_CPUS``
   (limit - usage) cover ``per node x nodes``. Newer GPUs (H100 on-demand, H200, B200) have no ``regions.get``
   metric in many projects (they are Cloud Quotas ``GPUS-PER-GPU-FAMILY-per-project-region``): that is a warning.

Every call goes through :class:`GcpApi` (the SDK seam): tests pass one that answers with recorded response bodies
parsed by the SDK's own message types. API references: https://cloud.google.com/compute/docs/reference/rest/v1/
(regions/get, machineTypes/get, acceleratorTypes/get); quota metric names: ``google.cloud.compute_v1.Quota.Metric``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from planner.errors import CredentialsError, DeployError, EnvironmentProblem, InputError, MissingDependency
from stacks.deploy.preflight import Check

#: GKE accelerator type -> the regional quota metric of regions.get (Spot / preemptible: ``PREEMPTIBLE_`` prefix).
#: Sources: google.cloud.compute_v1.Quota.Metric (the API's enum) and https://cloud.google.com/compute/resource-usage
#: (GPU quota). The H100 on-demand / H100 Mega / H200 / B200 names follow the same pattern; the enum lacks them, so
#: a project without them gets a warning, not a failure.
QUOTA_METRICS: dict[str, str] = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
    "nvidia-h100-mega-80gb": "NVIDIA_H100_MEGA_GPUS",
    "nvidia-h200-141gb": "NVIDIA_H200_GPUS",
    "nvidia-b200": "NVIDIA_B200_GPUS",
    "tpu-v5-lite-podslice": "TPU_LITE_PODSLICE_V5",
    "tpu-v5-lite-device": "TPU_LITE_DEVICE_V5",
    "tpu-v4-podslice": "TPU_PODSLICE_V4",
}
READONLY_SCOPE = "https://www.googleapis.com/auth/compute.readonly"


@dataclass(frozen=True)
class GcpPreflightInput:
    """What one GKE part asks of the project. ``project`` None: the credentials' default project."""

    region: str
    zone: str
    machine_type: str
    accelerator_type: str | None
    accelerator_count: int  # per node
    nodes: int
    spot: bool = False
    project: str | None = None

    def __post_init__(self) -> None:
        if self.zone.rsplit("-", 1)[0] != self.region:
            raise InputError(f"preflight: zone {self.zone} is not in region {self.region}",
                             fix="pass a zone of the part's region")


class GcpApi(Protocol):
    """The Compute Engine calls preflight makes. Results are ``google.cloud.compute_v1`` messages (Region,
    MachineType, AcceleratorType); a missing resource raises ``google.api_core.exceptions.NotFound``."""

    def credentials(self) -> tuple[str | None, str]:
        """(default project or None, who: service-account email or credential kind)."""
        ...

    def region(self, project: str, region: str) -> Any: ...

    def machine_type(self, project: str, zone: str, machine_type: str) -> Any: ...

    def accelerator_type(self, project: str, zone: str, accelerator_type: str) -> Any: ...


class SdkGcpApi:
    """:class:`GcpApi` over google-auth and google-cloud-compute (the usual ADC chain)."""

    def __init__(self) -> None:
        try:
            import google.auth  # noqa: F401
            from google.cloud import compute_v1  # noqa: F401
        except ImportError:
            raise MissingDependency("google-cloud-compute is not installed", fix="pip install 'mlplan[gcp]'") from None
        self._creds: Any = None

    def credentials(self) -> tuple[str | None, str]:
        import google.auth

        self._creds, project = google.auth.default(scopes=[READONLY_SCOPE])
        who = getattr(self._creds, "service_account_email", None) or type(self._creds).__name__
        return project, str(who)

    def region(self, project: str, region: str) -> Any:
        from google.cloud import compute_v1

        return compute_v1.RegionsClient(credentials=self._creds).get(project=project, region=region)

    def machine_type(self, project: str, zone: str, machine_type: str) -> Any:
        from google.cloud import compute_v1

        return compute_v1.MachineTypesClient(credentials=self._creds).get(project=project, zone=zone,
                                                                          machine_type=machine_type)

    def accelerator_type(self, project: str, zone: str, accelerator_type: str) -> Any:
        from google.cloud import compute_v1

        return compute_v1.AcceleratorTypesClient(credentials=self._creds).get(project=project, zone=zone,
                                                                              accelerator_type=accelerator_type)


def quota_metric(accelerator_type: str, spot: bool) -> str | None:
    metric = QUOTA_METRICS.get(accelerator_type)
    return f"PREEMPTIBLE_{metric}" if metric and spot else metric


def _classify(e: Exception, what: str) -> Exception:
    """A google-api-core / google-auth failure as a one-line mlplan error; NotFound passes through."""
    try:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc
    except ImportError:  # pragma: no cover - the SDK is there whenever it raised
        return e
    if isinstance(e, aexc.DefaultCredentialsError):
        return CredentialsError(f"{what}: no Google Cloud credentials found",
                                fix="gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS")
    if isinstance(e, (aexc.RefreshError, gexc.Unauthenticated)):
        return CredentialsError(f"{what}: Google refused the credentials ({type(e).__name__})",
                                fix="gcloud auth application-default login again")
    if isinstance(e, (gexc.PermissionDenied, gexc.Forbidden)):
        return CredentialsError(f"{what}: permission denied ({getattr(e, 'message', e)})",
                                fix="grant the deploy identity roles/compute.viewer on the project")
    if isinstance(e, (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError, aexc.TransportError)):
        return EnvironmentProblem(f"{what}: cannot reach Compute Engine ({type(e).__name__})",
                                  fix="check the network and proxy, then retry")
    if isinstance(e, (gexc.TooManyRequests, gexc.ServerError)):  # HTTP 429 / 5xx: Google's side, for now
        return EnvironmentProblem(f"{what}: Compute Engine answered HTTP {getattr(e, 'code', '?')} "
                                  f"({type(e).__name__})", fix="retry later; if it persists, check "
                                                               "https://status.cloud.google.com")
    return e


def sdk_errors() -> tuple[type[Exception], ...]:
    """What a google-auth / google-api-core call raises (catch exactly these at the call, then classify)."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    return gexc.GoogleAPIError, aexc.GoogleAuthError


def _not_found(e: Exception) -> bool:
    try:
        from google.api_core import exceptions as gexc
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, gexc.NotFound)


class GcpPreflight:
    def __init__(self, inp: GcpPreflightInput, api: GcpApi, say: Callable[[str], None]) -> None:
        self.inp, self.api, self.say = inp, api, say
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.say(check.line())
        return check

    def run(self) -> list[Check]:
        project = self.check_credentials()
        if project is None:
            return self.checks
        machine = self.check_offered(project)
        self.check_quota(project, machine)
        return self.checks

    def check_credentials(self) -> str | None:
        try:
            default_project, who = self.api.credentials()
        except sdk_errors() as e:
            err = _classify(e, "google.auth.default")
            if not isinstance(err, (CredentialsError, EnvironmentProblem)):
                raise
            self.add(Check("credentials", False, err.message, err.fix, type(err)))
            return None
        project = self.inp.project or default_project
        if not project:
            self.add(Check("credentials", False, f"credentials of {who} name no project",
                           "gcloud config set project PROJECT (or set GOOGLE_CLOUD_PROJECT)", CredentialsError))
            return None
        self.add(Check("credentials", True, f"project {project} as {who}"))
        return project

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """The call's result, None when the resource does not exist; other failures as mlplan errors."""
        try:
            return fn()
        except sdk_errors() as e:
            if _not_found(e):
                return None
            err = _classify(e, what)
            raise (err if err is not e else DeployError(f"{what} failed: {e}", fix="retry; check "
                                                        "https://status.cloud.google.com if it persists")) from None

    def check_offered(self, project: str) -> Any:
        inp = self.inp
        name = f"{inp.machine_type} in {inp.zone}"
        machine = self._call("compute.machineTypes.get",
                             lambda: self.api.machine_type(project, inp.zone, inp.machine_type))
        if machine is None:
            self.add(Check(name, False, f"{inp.machine_type} is not offered in zone {inp.zone}",
                           "plan again with another zone or region (allowed_regions), or another machine type"))
            return None
        built_in = [(a.guest_accelerator_type, int(a.guest_accelerator_count)) for a in machine.accelerators]
        desc = f"{machine.guest_cpus} vCPUs, {machine.memory_mb / 1024:.0f} GiB"
        if built_in:
            desc += ", " + ", ".join(f"{n} x {t}" for t, n in built_in)
            want = (inp.accelerator_type, inp.accelerator_count)
            if inp.accelerator_type and want not in built_in:
                self.add(Check(name, False, f"{desc}; the part expects {inp.accelerator_count} x "
                               f"{inp.accelerator_type}", "fix the catalog row (machine type / accelerators) and "
                               "plan again"))
                return machine
            self.add(Check(name, True, f"offered: {desc}"))
            return machine
        self.add(Check(name, True, f"offered: {desc}"))
        if inp.accelerator_type:  # attached accelerators (N1 + T4/V100/P100): the type must exist in the zone
            acc_name = f"{inp.accelerator_type} in {inp.zone}"
            acc = self._call("compute.acceleratorTypes.get",
                             lambda: self.api.accelerator_type(project, inp.zone, str(inp.accelerator_type)))
            if acc is None:
                self.add(Check(acc_name, False, f"{inp.accelerator_type} is not offered in zone {inp.zone}",
                               "plan again with a zone that has it"))
            elif int(acc.maximum_cards_per_instance) < inp.accelerator_count:
                self.add(Check(acc_name, False, f"at most {acc.maximum_cards_per_instance} per instance, the part "
                               f"attaches {inp.accelerator_count}", "plan again with fewer per node"))
            else:
                self.add(Check(acc_name, True, f"{acc.description}, up to {acc.maximum_cards_per_instance} "
                               "per instance"))
        return machine

    def check_quota(self, project: str, machine: Any) -> None:
        inp = self.inp
        region = self._call("compute.regions.get", lambda: self.api.region(project, inp.region))
        if region is None:
            self.add(Check(f"region {inp.region}", False, f"project {project} has no region {inp.region}",
                           "plan again with a region the project can use"))
            return
        quotas = {q.metric: (float(q.limit), float(q.usage)) for q in region.quotas}
        wanted: list[tuple[str | None, int, str]] = []
        if inp.accelerator_type:
            wanted.append((quota_metric(inp.accelerator_type, inp.spot), inp.accelerator_count * inp.nodes,
                           inp.accelerator_type))
        if machine is not None:
            wanted.append(("PREEMPTIBLE_CPUS" if inp.spot else "CPUS", int(machine.guest_cpus) * inp.nodes, "vCPUs"))
        for metric, need, what in wanted:
            if metric is None or metric not in quotas:
                self.add(Check(f"quota {metric or what}", None,
                               f"regions.get for {inp.region} publishes no {metric or what} quota",
                               "check 'GPUs per GPU family' for the region in the console's Quotas page "
                               "(Cloud Quotas GPUS-PER-GPU-FAMILY-per-project-region)"))
                continue
            limit, usage = quotas[metric]
            free = limit - usage
            msg = f"{metric} in {inp.region} = {limit:g}, {usage:g} in use, {free:g} free; the part needs {need}"
            if free >= need:
                self.add(Check(f"quota {metric}", True, msg))
            else:
                self.add(Check(f"quota {metric}", False, msg,
                               f"request {metric} >= {usage + need:g} in {inp.region} (console: IAM & Admin > "
                               "Quotas), or plan with fewer nodes", EnvironmentProblem))


def run_preflight(inp: GcpPreflightInput, say: Callable[[str], None] = print,
                  api: GcpApi | None = None) -> list[Check]:
    """Every check for one GKE part, each printed with ``say`` as it completes. Stops after a failed credentials
    check. Turn the result into an exit code with :func:`stacks.deploy.preflight.raise_for`."""
    return GcpPreflight(inp, api if api is not None else SdkGcpApi(), say).run()
