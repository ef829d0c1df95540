"""``mlplan catalog refresh --provider aws``: the user's catalog overlay, refreshed from their AWS account.

For each region: the GPU instance types offered there (EC2 ``DescribeInstanceTypeOfferings`` +
``DescribeInstanceTypes``: GPU name, count and memory, vCPUs, RAM, network), their Linux on-demand price (Pricing
``GetProducts``, shared tenancy, and whether a dedicated-tenancy price exists) and the latest Linux spot price
(EC2 ``DescribeSpotPriceHistory``). Rows follow ``planner/catalog/schema.py``; the file is an overlay that
``Catalog.load(overlay=...)`` and the spec's ``catalog_overlay`` accept.

An existing overlay is updated, not replaced: its other sections and rows (on-prem servers, other providers,
other regions) are kept; AWS instance rows of the refreshed regions are replaced.

GPUs the catalog does not know get no invented numbers: EC2 tells a GPU's name and memory but not its memory
bandwidth, TFLOPS or TDP, which the estimator needs. They are listed in the file's header (with what EC2 says)
so the user can add an ``accelerators`` row from the datasheet; their instance rows appear on the next refresh.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from planner.catalog.schema import Accelerator, Instance, Region
from planner.errors import CatalogError, DeployError, InputError
from stacks.deploy.aws import ClientFactory, aws_errors, classify, default_factory, normalise_gpu

PRICING_REGION = "us-east-1"  # the Pricing API answers in us-east-1, eu-central-1 and ap-south-1
MEMORY_MATCH = 0.12  # EC2's usable MiB vs. the datasheet's GB
_GEOGRAPHY = {"us": "us", "ca": "ca", "sa": "sa", "eu": "eu", "me": "me", "il": "me", "af": "af", "ap": "apac",
              "cn": "cn", "mx": "us"}


def match_accelerator(accelerators: Mapping[str, Accelerator], gpu: Mapping[str, Any]) -> str | None:
    """The catalog accelerator id of an EC2 ``GpuInfo.Gpus`` entry: same model name, memory within 12%."""
    name = normalise_gpu(str(gpu.get("Name", "")))
    mem = float(gpu.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024
    best: tuple[float, str] | None = None
    for acc in accelerators.values():
        tokens = {normalise_gpu(acc.id.split("-")[0])} | {normalise_gpu(w) for w in acc.name.split()}
        if not name or name not in tokens:
            continue
        ref = acc.usable_memory_mib / 1024 if acc.usable_memory_mib else acc.memory_gib  # EC2 reports usable MiB
        diff = abs(ref - mem) / ref
        if mem and diff > MEMORY_MATCH:
            continue
        if best is None or diff < best[0]:
            best = (diff, acc.id)
    return best[1] if best else None


def parse_network_gbps(text: str) -> float | None:
    """``Up to 25 Gigabit`` -> 25, ``4x 100 Gigabit`` -> 400, ``3200 Gigabit`` -> 3200, ``Moderate`` -> None."""
    m = re.search(r"(?:(\d+)x\s*)?(\d+(?:\.\d+)?)\s*Gigabit", text or "")
    if not m:
        return None
    return float(m.group(2)) * (int(m.group(1)) if m.group(1) else 1)


def on_demand_price(pricing: Any, instance: str, region: str) -> tuple[float | None, bool]:
    """(Linux shared-tenancy on-demand USD/hour, dedicated tenancy offered) from the Pricing API."""
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
        ("instanceType", instance), ("regionCode", region), ("operatingSystem", "Linux"),
        ("preInstalledSw", "NA"), ("capacitystatus", "Used"), ("licenseModel", "No License required"))]
    price: float | None = None
    dedicated = False
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1",
                              "MaxResults": 100}
        if token:
            kw["NextToken"] = token
        page = pricing.get_products(**kw)
        for raw in page.get("PriceList", []):
            item = json.loads(raw) if isinstance(raw, str) else raw
            tenancy = item.get("product", {}).get("attributes", {}).get("tenancy")
            usd = _hourly_usd(item)
            if usd is None or usd <= 0:
                continue
            if tenancy == "Shared":
                price = usd if price is None else min(price, usd)
            elif tenancy == "Dedicated":
                dedicated = True
        token = page.get("NextToken")
        if not token:
            return price, dedicated


def _hourly_usd(item: Mapping[str, Any]) -> float | None:
    for term in (item.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if dim.get("unit") in ("Hrs", "Hours") and "USD" in dim.get("pricePerUnit", {}):
                return float(dim["pricePerUnit"]["USD"])
    return None


def spot_price(ec2: Any, instance: str) -> float | None:
    """Latest Linux/UNIX spot price, the lowest over the region's zones (None if EC2 reports none)."""
    try:
        hist = ec2.describe_spot_price_history(InstanceTypes=[instance], ProductDescriptions=["Linux/UNIX"],
                                               MaxResults=100)
    except aws_errors() as e:
        err = classify(e, "ec2:DescribeSpotPriceHistory")
        if type(err) is DeployError:  # the region refuses spot prices for this type: the row has no spot price
            return None
        raise err from None
    latest: dict[str, tuple[Any, float]] = {}
    for h in hist.get("SpotPriceHistory", []):
        if not str(h.get("ProductDescription", "")).startswith("Linux/UNIX"):
            continue
        az, ts, p = h.get("AvailabilityZone", ""), h.get("Timestamp"), float(h["SpotPrice"])
        if az not in latest or (ts is not None and ts > latest[az][0]):
            latest[az] = (ts, p)
    prices = [p for _, p in latest.values() if p > 0]
    return min(prices) if prices else None


def _region_row(region: str, zones: Iterable[str], today: str) -> Region | None:
    """A Region row for a region the catalog lacks, when its geography and RTT zone follow from its name."""
    prefix = region.split("-")[0]
    zone = re.sub(r"-\d+$", "", region)
    if prefix not in _GEOGRAPHY or zone not in set(zones):
        return None
    return Region(provider="aws", region=region, geography=_GEOGRAPHY[prefix], zone=zone,
                  source=f"AWS region name {region}, mlplan catalog refresh {today}")


def refresh_catalog(provider: str = "aws", *, regions: Iterable[str], out_path: str | Path, session: Any = None,
                    client_factory: ClientFactory | None = None, catalog: Any = None,
                    pricing_region: str = PRICING_REGION) -> Path:
    """Write (or update) the catalog overlay at ``out_path`` from the account; return the path.

    ``session``: a boto3 Session (default: a new one, the usual credential chain); ``client_factory``
    ``(service, region) -> client`` overrides it (tests point it at moto and a Stubber).
    """
    if provider != "aws":
        raise InputError(f"catalog refresh supports provider 'aws', not {provider!r}", fix="use --provider aws")
    regions = sorted(set(regions))
    if not regions:
        raise InputError("catalog refresh needs at least one region", fix="pass --region us-east-1 (repeatable)")
    out = Path(out_path)
    existing: dict[str, Any] = {}
    if out.exists():
        try:
            loaded = yaml.safe_load(out.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise CatalogError(f"{out} is not a readable catalog overlay: {str(e).splitlines()[0][:160]}",
                               fix="move it aside, or fix the YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise CatalogError(f"{out} is not a catalog overlay (a mapping of sections)", fix="move it aside")
        existing = loaded or {}
    if catalog is None:
        from planner.catalog import Catalog

        catalog = Catalog.load()
    known = dict(catalog.accelerators)
    for row in existing.get("accelerators") or []:
        acc = Accelerator.model_validate(row)
        known[acc.id] = acc
    known_regions = set(catalog.regions) | {("aws", r.get("region")) for r in existing.get("regions") or []}
    factory = client_factory or default_factory(session)
    pricing = factory("pricing", pricing_region)
    day = date.today()
    today = day.isoformat()

    rows: list[dict[str, Any]] = []
    new_regions: list[dict[str, Any]] = []
    unknown: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for region in regions:
        if ("aws", region) not in known_regions:
            reg = _region_row(region, catalog.rtt.zones, today)
            if reg is None:
                notes.append(f"region {region}: unknown to the catalog and no RTT zone fits; add a regions row")
                continue
            new_regions.append(reg.model_dump(mode="json"))
        ec2 = factory("ec2", region)
        try:
            offered = {o["InstanceType"] for page in ec2.get_paginator("describe_instance_type_offerings")
                       .paginate(LocationType="region") for o in page.get("InstanceTypeOfferings", [])}
            types = [t for page in ec2.get_paginator("describe_instance_types").paginate()
                     for t in page.get("InstanceTypes", []) if t.get("GpuInfo", {}).get("Gpus")]
        except aws_errors() as e:
            raise classify(e, f"ec2 in {region}") from None
        for it in sorted(types, key=lambda t: str(t["InstanceType"])):
            name = it["InstanceType"]
            if name not in offered:
                continue
            gpu = it["GpuInfo"]["Gpus"][0]
            acc_id = match_accelerator(known, gpu)
            if acc_id is None:
                key = normalise_gpu(str(gpu.get("Name", ""))) or "unknown"
                entry = unknown.setdefault(key, {"name": f"{gpu.get('Manufacturer', '')} {gpu.get('Name', '')}"
                                                 .strip(),
                                                 "memory_gib": round(gpu["MemoryInfo"]["SizeInMiB"] / 1024, 1),
                                                 "instances": set()})
                entry["instances"].add(name)
                continue
            try:
                usd, dedicated = on_demand_price(pricing, name, region)
            except aws_errors() as e:
                raise classify(e, "pricing:GetProducts") from None
            if usd is None:
                notes.append(f"{name} in {region}: no Linux on-demand price in the Pricing API; row skipped")
                continue
            spot = spot_price(ec2, name)
            row = Instance(
                provider="aws", instance=name, region=region, accelerator=acc_id,
                accelerator_count=sum(int(g.get("Count", 0)) for g in it["GpuInfo"]["Gpus"]),
                vcpu=int(it["VCpuInfo"]["DefaultVCpus"]),
                ram_gib=round(it["MemoryInfo"]["SizeInMiB"] / 1024, 2),
                on_demand_usd_per_h=usd, spot_usd_per_h=spot, dedicated=dedicated,
                network_gbps=parse_network_gbps(str(it.get("NetworkInfo", {}).get("NetworkPerformance", ""))) or 10.0,
                source=f"AWS EC2 DescribeInstanceTypes + Pricing GetProducts, {region}, refreshed {today}",
                price_source=f"AWS Pricing GetProducts (AmazonEC2, Linux, shared tenancy, on-demand), {name} in "
                             f"{region}, read {today}",
                price_observed=day,
                spot_observed=day if spot is not None else None,
                spot_source=(f"EC2 DescribeSpotPriceHistory (Linux/UNIX), latest price, lowest over {region}'s zones"
                             if spot is not None else None),
            )
            rows.append(row.model_dump(mode="json", exclude_none=True))

    kept = [r for r in existing.get("instances") or []
            if not (r.get("provider") == "aws" and r.get("region") in regions)]
    data = {k: v for k, v in existing.items() if k not in ("instances", "regions")}
    data["instances"] = sorted(kept + rows, key=lambda r: (r["provider"], r["region"], r["instance"]))
    all_regions = (existing.get("regions") or []) + new_regions
    if all_regions:
        data["regions"] = sorted(all_regions, key=lambda r: (r["provider"], r["region"]))
    catalog.with_overlay(data, source=str(out))  # the file must load: same checks as Catalog.load(overlay)
    header = [
        "# mlplan catalog overlay. AWS rows refreshed from the account by `mlplan catalog refresh --provider aws`",
        f"# on {today} for {', '.join(regions)}: EC2 DescribeInstanceTypes / DescribeInstanceTypeOfferings,",
        "# Pricing GetProducts (Linux, shared tenancy, on-demand), EC2 DescribeSpotPriceHistory (Linux/UNIX).",
    ]
    if unknown:
        header.append("# GPUs the catalog does not know (EC2 gives no bandwidth / TFLOPS / TDP): add an accelerators")
        header.append("# row for each from its datasheet, then refresh again to get their instance rows:")
        for key, u in sorted(unknown.items()):
            header.append(f"#   {key}: {u['name']}, {u['memory_gib']} GiB; instances: "
                          f"{', '.join(sorted(u['instances']))}")
    header += [f"# note: {n}" for n in notes]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(out)
    return out
