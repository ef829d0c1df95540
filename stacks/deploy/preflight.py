"""``mlplan preflight DIR``: check an AWS account before a cloud deploy, with boto3.

Checks, each a line with a fix when it fails:

1. credentials: ``sts:GetCallerIdentity`` answers (else CredentialsError, exit 4; nothing else is tried);
2. offered: ``ec2:DescribeInstanceTypeOfferings`` lists the instance type in the region
   (``LocationType=region``) and in which availability zones (``LocationType=availability-zone``);
3. GPU specs: ``ec2:DescribeInstanceTypes`` ``GpuInfo`` (count, name, memory) matches the plan and the catalog;
4. quota: the EC2 vCPU quota of the instance's family class (Service Quotas ``GetServiceQuota``, e.g.
   L-DB2E81BA "Running On-Demand G and VT instances") minus the vCPUs already running in that class covers
   ``vCPUs per instance x nodes``;
5. buckets: every bucket the stack will create is free (``s3:HeadBucket`` 404; 403 means another account owns
   it), and the model artifact's bucket exists and is readable (200).

Exit: 0 when all pass (warnings allowed), else the first failure's class: 4 for credentials / quota
(the account is not ready), 5 for the rest (the plan cannot be deployed as emitted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from planner.errors import DeployError, EnvironmentProblem, InputError, MlplanError
from stacks.deploy.aws import (
    ON_DEMAND_QUOTAS,
    SPOT_QUOTAS,
    ClientFactory,
    aws_errors,
    classify,
    default_factory,
    error_code,
    normalise_gpu,
    quota_class,
)
from stacks.folder import PlanFolder

GPU_MEMORY_TOLERANCE = 0.10  # EC2 reports usable MiB (e.g. 81559 MiB for an 80 GB H100)


@dataclass
class Check:
    name: str
    ok: bool | None  # True pass, False fail, None warning (does not fail preflight)
    message: str
    fix: str | None = None
    error: type[MlplanError] = DeployError

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[self.ok]
        text = f"[{mark}] {self.name}: {self.message}"
        return text + (f" -- To fix: {self.fix}" if self.fix and self.ok is not True else "")


def aws_parts(folder: PlanFolder) -> list[Any]:
    parts = [p for p in folder.plan.parts if p.placement == "cloud" and p.provider == "aws"]
    if not parts:
        raise InputError(f"plan {folder.plan.id} has no AWS cloud part ({folder.plan.placement}, "
                         f"{folder.plan.provider}): preflight checks AWS accounts",
                         fix="run preflight on a plan folder of an AWS cloud or hybrid plan")
    return parts


def stack_buckets(folder: PlanFolder) -> list[str]:
    """Buckets the Pulumi stack will create: each AWS part's model bucket (``mlplan:modelBucket`` from
    ``infra/Pulumi.<stack>.yaml``, else the plan's ``names.bucket``), plus any other
    config value whose key ends in bucket / bucketName."""
    if not folder.infra_dir.is_dir():
        return []
    config: dict[str, Any] = {}
    for f in sorted(folder.infra_dir.glob("Pulumi.*.yaml")):
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        config.update({str(k): v for k, v in (data.get("config") or {}).items()})
    names: set[str] = set()
    for key, value in config.items():
        short = key.split(":")[-1].lower().replace("_", "")
        if isinstance(value, str) and value and (short.endswith("bucket") or short.endswith("bucketname")):
            names.add(value)
    override = config.get("mlplan:modelBucket")
    for part in folder.plan.parts:
        if part.target in ("aws-ec2", "aws-eks") and part.names.bucket and not override:
            names.add(part.names.bucket)
    return sorted(names)


class Preflight:
    def __init__(self, folder: PlanFolder, *, client_factory: ClientFactory | None = None, session: Any = None,
                 buckets: Iterable[str] = (), catalog: Any = None,
                 say: Callable[[str], None] = print) -> None:
        self.folder = folder
        self.client = client_factory or default_factory(session)
        self.buckets = sorted(set(buckets) | set(stack_buckets(folder)))
        self.catalog = catalog
        self.say = say
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.say(check.line())
        return check

    def _catalog(self) -> Any:
        if self.catalog is None:
            try:
                from planner.catalog import Catalog

                self.catalog = Catalog.load()
            except MlplanError:
                self.catalog = False
        return self.catalog or None

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> list[Check]:
        parts = aws_parts(self.folder)
        region0 = parts[0].region or "us-east-1"
        if not self.check_credentials(region0):
            return self.checks
        seen: set[tuple[str, str]] = set()
        for part in parts:
            key = (part.region or region0, part.instance)
            if key in seen:
                continue
            seen.add(key)
            region = key[0]
            ec2 = self.client("ec2", region)
            if not self.check_offered(ec2, region, part.instance):
                continue
            info = self.check_gpus(ec2, region, part)
            if info is not None:
                self.check_quota(ec2, region, part, info)
        self.check_buckets(region0)
        return self.checks

    def check_credentials(self, region: str) -> bool:
        try:
            ident = self.client("sts", region).get_caller_identity()
        except aws_errors() as e:
            err = classify(e, "sts:GetCallerIdentity")
            self.add(Check("credentials", False, err.message, err.fix, type(err)))
            return False
        self.add(Check("credentials", True, f"account {ident['Account']} as {ident['Arn']}"))
        return True

    def check_offered(self, ec2: Any, region: str, instance: str) -> bool:
        flt = [{"Name": "instance-type", "Values": [instance]}]
        try:
            regional = _all(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                            LocationType="region", Filters=flt)
            zonal = _all(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
                         LocationType="availability-zone", Filters=flt)
        except aws_errors() as e:
            raise classify(e, "ec2:DescribeInstanceTypeOfferings") from None
        if not regional:
            self.add(Check(f"{instance} in {region}", False, f"{instance} is not offered in {region}",
                           "plan again with allowed_regions / providers that offer it, or pick another instance"))
            return False
        zones = sorted(o["Location"] for o in zonal)
        if not zones:
            self.add(Check(f"{instance} in {region}", False, f"{instance} is offered in {region} but in no zone",
                           "pick another region"))
            return False
        self.add(Check(f"{instance} in {region}", True, f"offered in {len(zones)} zone(s): {', '.join(zones)}"))
        return True

    def check_gpus(self, ec2: Any, region: str, part: Any) -> dict[str, Any] | None:
        name = f"{part.instance} GPUs"
        try:
            info: dict[str, Any] = ec2.describe_instance_types(InstanceTypes=[part.instance])["InstanceTypes"][0]
        except aws_errors() as e:
            if error_code(e) == "InvalidInstanceType":
                self.add(Check(name, False, f"EC2 does not know instance type {part.instance}",
                               "check the catalog row; plan again"))
                return None
            raise classify(e, "ec2:DescribeInstanceTypes") from None
        gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
        if not gpus:
            ok = part.accelerator.startswith("cpu") or part.gpus_per_node == 0
            self.add(Check(name, ok or False, "no GPUs" if ok else f"{part.instance} has no GPU, the plan "
                           f"expects {part.gpus_per_node} x {part.accelerator}", "fix the catalog row; plan again"))
            return info
        count = sum(int(g.get("Count", 0)) for g in gpus)
        gpu = gpus[0]
        mem_gib = float(gpu.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024
        problems: list[str] = []
        if count != part.gpus_per_node:
            problems.append(f"{count} GPUs per instance, the plan assumes {part.gpus_per_node}")
        cat = self._catalog()
        acc = cat.accelerators.get(part.accelerator) if cat is not None else None
        names = {normalise_gpu(part.accelerator)}
        if acc is not None:
            names.add(normalise_gpu(acc.name))
            if mem_gib and abs(mem_gib - acc.memory_gib) > GPU_MEMORY_TOLERANCE * acc.memory_gib:
                problems.append(f"{mem_gib:.1f} GiB per GPU, the catalog says {acc.memory_gib:g} GiB")
        row = next((i for i in (cat.find_instance(part.instance) if cat is not None else [])
                    if i.provider == "aws"), None)
        if row is not None and row.accelerator_count != count:
            problems.append(f"the catalog row says {row.accelerator_count} GPUs")
        gpu_norm = normalise_gpu(str(gpu.get("Name", "")))
        if gpu_norm and not any(gpu_norm in n or n.startswith(gpu_norm) for n in names):
            problems.append(f"GPU {gpu.get('Manufacturer', '')} {gpu.get('Name')} is not {part.accelerator}")
        desc = f"{count} x {gpu.get('Manufacturer', '')} {gpu.get('Name')} {mem_gib:.1f} GiB"
        if problems:
            self.add(Check(name, False, f"{desc}: " + "; ".join(problems),
                           "update the catalog row (mlplan catalog refresh --provider aws) and plan again"))
        else:
            self.add(Check(name, True, desc + (" (matches the catalog)" if acc is not None else
                                                " (matches the plan; no catalog row to compare)")))
        return info

    def check_quota(self, ec2: Any, region: str, part: Any, info: dict[str, Any]) -> None:
        cls = quota_class(part.instance)
        table = SPOT_QUOTAS if part.purchase == "spot" else ON_DEMAND_QUOTAS
        if cls not in table:
            self.add(Check(f"quota {cls}", None, f"no known vCPU quota for {part.instance} ({part.purchase})"))
            return
        code, title = table[cls]
        vcpus = int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))
        need = vcpus * part.nodes
        sq = self.client("service-quotas", region)
        try:
            try:
                value = float(sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
            except aws_errors() as e:
                if error_code(e) != "NoSuchResourceException":
                    raise
                value = float(sq.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        except aws_errors() as e:
            if error_code(e) in ("AccessDeniedException", "AccessDenied"):
                self.add(Check(f"quota {code}", None, f"cannot read {title} (access denied)",
                               "allow servicequotas:GetServiceQuota, or check the quota in the console"))
                return
            raise classify(e, "service-quotas:GetServiceQuota") from None
        used = self._running_vcpus(ec2, cls)
        free = value - used
        msg = f"{title} ({code}) = {value:g} vCPUs, {used} in use, {free:g} free; the plan needs " \
              f"{part.nodes} x {vcpus} = {need}"
        if free >= need:
            self.add(Check(f"quota {code}", True, msg))
        else:
            self.add(Check(f"quota {code}", False, msg,
                           f"aws service-quotas request-service-quota-increase --region {region} --service-code ec2 "
                           f"--quota-code {code} --desired-value {int(used + need)}", EnvironmentProblem))

    def _running_vcpus(self, ec2: Any, cls: str) -> int:
        """vCPUs of the pending/running instances of quota class ``cls`` (each type's default vCPUs)."""
        flt = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        counts: dict[str, int] = {}
        try:
            for page in ec2.get_paginator("describe_instances").paginate(Filters=flt):
                for res in page.get("Reservations", []):
                    for inst in res.get("Instances", []):
                        if quota_class(inst["InstanceType"]) == cls:
                            counts[inst["InstanceType"]] = counts.get(inst["InstanceType"], 0) + 1
            if not counts:
                return 0
            vcpus = {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
                     for t in _all(ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=sorted(counts))}
        except aws_errors() as e:
            raise classify(e, "ec2:DescribeInstances") from None
        return sum(n * vcpus.get(t, 0) for t, n in counts.items())

    def check_buckets(self, region: str) -> None:
        s3 = self.client("s3", region)
        for bucket in self.buckets:
            status = _head_bucket(s3, bucket)
            if status == 404:
                self.add(Check(f"bucket {bucket}", True, "name is free"))
            elif status == 403:
                self.add(Check(f"bucket {bucket}", False, "name is taken by another AWS account",
                               "choose another bucket name in infra/Pulumi.<stack>.yaml config and rerun"))
            else:
                self.add(Check(f"bucket {bucket}", None, "already exists in this account (an earlier deploy?)",
                               "if it is not this stack's, choose another name"))
        artifact = self.folder.plan.model.artifact or ""
        if artifact.startswith("s3://"):
            bucket = artifact[len("s3://"):].split("/", 1)[0]
            status = _head_bucket(s3, bucket)
            if status == 200:
                self.add(Check(f"model bucket {bucket}", True, "exists and is readable"))
            elif status == 403:
                self.add(Check(f"model bucket {bucket}", False, "exists but this account may not read it",
                               f"grant s3:GetObject/s3:ListBucket on {bucket} to the deploy role"))
            else:
                self.add(Check(f"model bucket {bucket}", False, "does not exist",
                               f"upload the weights to {artifact} (or fix model.artifact) and plan again"))


def _head_bucket(s3: Any, bucket: str) -> int:
    try:
        s3.head_bucket(Bucket=bucket)
        return 200
    except aws_errors() as e:
        code = error_code(e)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return 404
        if code in ("403", "AccessDenied", "Forbidden"):
            return 403
        raise classify(e, "s3:HeadBucket") from None


def _all(client: Any, op: str, key: str, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator(op).paginate(**kw):
        out.extend(page.get(key, []))
    return out


def raise_for(checks: list[Check]) -> None:
    """Raise the first failed check's error (one line) naming how many failed; return if all passed."""
    failed = [c for c in checks if c.ok is False]
    if not failed:
        return
    first = next((c for c in failed if c.error is not DeployError), failed[0])
    raise first.error(f"preflight: {len(failed)} of {len(checks)} checks failed; first: {first.name}: "
                      f"{first.message}", fix=first.fix)
