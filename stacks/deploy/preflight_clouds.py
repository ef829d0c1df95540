"""``mlplan preflight DIR``: every cloud part of the plan checked against its own account, by provider.

- AWS parts (EC2 / EKS): :class:`stacks.deploy.preflight.Preflight` (credentials, offering, GPU specs, vCPU
  quota, bucket names), once for all of them;
- GCP parts (GKE): :func:`stacks.deploy.preflight_gcp.run_preflight` per part (credentials, machine type and
  accelerator offered in the zone, regional quotas). The zone is ``--zone``, else the first zone ``regions.get``
  lists for the part's region (the plan names regions, not zones);
- Azure parts (AKS): :func:`stacks.deploy.preflight_azure.run_preflight` per part (credentials, the VM size
  offered and not restricted in the location / zones, the family's vCPU quota).

Each provider's check lines are printed as they complete; :func:`stacks.deploy.preflight.raise_for` turns the
list into the exit code (4 when credentials are missing or refused, or a quota is short; 5 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from planner.errors import InputError
from planner.plan import Part
from stacks.deploy.preflight import Check
from stacks.folder import PlanFolder

PROVIDERS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class PreflightOptions:
    """What the command line adds to the plan: an AWS session (profile) and bucket names, a catalog to compare
    GPU specs with, the GCP zone and project, the Azure subscription and zones."""

    aws_session: Any = None
    buckets: tuple[str, ...] = ()
    catalog: Any = None
    gcp_zone: str | None = None
    gcp_project: str | None = None
    azure_subscription: str | None = None
    azure_zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Seams:
    """The SDK seams, for tests: a boto3 client factory, a GcpApi, an AzureApi (None: the real SDKs)."""

    aws: Any = None
    gcp: Any = None
    azure: Any = None


def cloud_parts(folder: PlanFolder) -> list[Part]:
    parts = [p for p in folder.plan.parts if p.placement == "cloud"]
    if not parts:
        raise InputError(f"plan {folder.plan.id} has no cloud part ({folder.plan.placement}): preflight checks cloud "
                         "accounts", fix="run preflight on the folder of a cloud or hybrid plan")
    other = sorted({p.provider for p in parts} - set(PROVIDERS))
    if other:
        raise InputError(f"plan {folder.plan.id}: preflight knows AWS, GCP and Azure, not {other[0]!r}",
                         fix="check that account by hand")
    return parts


def run(folder: PlanFolder, opts: PreflightOptions | None = None, say: Callable[[str], None] = print,
        seams: Seams | None = None) -> list[Check]:
    """Every check of every cloud part, each line printed with ``say`` as it completes."""
    opts = opts or PreflightOptions()
    seams = seams or Seams()
    parts = cloud_parts(folder)
    checks: list[Check] = []
    if any(p.provider == "aws" for p in parts):
        from stacks.deploy.preflight import Preflight

        say("AWS:")
        checks += Preflight(folder, client_factory=seams.aws, session=opts.aws_session, buckets=opts.buckets,
                            catalog=opts.catalog, say=say).run()
    for part in parts:
        if part.provider == "gcp":
            say(f"GCP part {part.names.key} ({part.instance} in {part.region}):")
            checks += gcp_part(part, opts, say, seams.gcp)
        elif part.provider == "azure":
            say(f"Azure part {part.names.key} ({part.instance} in {part.region}):")
            checks += azure_part(part, opts, say, seams.azure)
    return checks


def _region(part: Part) -> str:
    if not part.region:
        raise InputError(f"part {part.names.key} names no region", fix="plan again")
    return part.region


def gcp_part(part: Part, opts: PreflightOptions, say: Callable[[str], None], api: Any = None) -> list[Check]:
    from stacks.deploy import preflight_gcp as g

    region = _region(part)
    accelerator = None
    if part.gpus_per_node > 0 and part.device.resource:
        from stacks.gcp import gke_accelerator_type

        accelerator = gke_accelerator_type(part.accelerator)
    inp = g.GcpPreflightInput(region=region, zone=opts.gcp_zone or f"{region}-a", machine_type=part.instance,
                              accelerator_type=accelerator, accelerator_count=part.gpus_per_node, nodes=part.nodes,
                              spot=part.purchase == "spot", project=opts.gcp_project)
    api = api if api is not None else g.SdkGcpApi()
    if opts.gcp_zone:
        return g.run_preflight(inp, say=say, api=api)
    pre = g.GcpPreflight(inp, api, say)
    project = pre.check_credentials()
    if project is None:
        return pre.checks
    found = pre._call(f"regions.get {region}", lambda: api.region(project, region))
    zones = sorted(str(z).rsplit("/", 1)[-1] for z in (getattr(found, "zones", None) or []))
    if not zones:
        pre.add(Check(f"zones of {region}", False, f"regions.get lists no zone of {region}",
                      "pass --zone, or check the region name"))
        return pre.checks
    say(f"  zone {zones[0]}: the first of {', '.join(zones)} (pass --zone to check another)")
    pre.inp = replace(inp, zone=zones[0])
    machine = pre.check_offered(project)
    pre.check_quota(project, machine)
    return pre.checks


def azure_part(part: Part, opts: PreflightOptions, say: Callable[[str], None], api: Any = None) -> list[Check]:
    from stacks.deploy import preflight_azure as a

    inp = a.AzurePreflightInput(location=_region(part), zones=opts.azure_zones, vm_size=part.instance,
                                nodes=part.nodes, spot=part.purchase == "spot",
                                subscription_id=opts.azure_subscription)
    return a.run_preflight(inp, say=say, api=api if api is not None else a.SdkAzureApi())
