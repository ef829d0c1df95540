"""Read SkyPilot's public catalog layout (``DIR/<cloud>/vms.csv``) into catalog ``instances`` rows.

Pure: reads files, no network. SkyPilot (https://github.com/skypilot-org/skypilot-catalog) keeps one CSV per cloud:

- AWS and Azure: one row per instance type x region (x availability zone on AWS), the GPU named in
  ``AcceleratorName``/``AcceleratorCount``, ``Price`` the on-demand and ``SpotPrice`` the spot price in USD/hour.
- GCP: the VM rows carry only the machine's vCPU/RAM price; the GPUs (and TPU slices) are separate rows with an empty
  ``InstanceType``. A GPU VM's price is its VM row plus the accelerator row of the same region (and zone) with the
  count the machine type attaches (``a3-highgpu-8g`` = 8 x ``H100``). TPU slices are standalone rows.

Rows the catalog cannot use become one line each in ``problems`` (the CSV line, what is wrong); GPU names the
catalog does not know are collected in ``unknown`` for the user to map (``mapping``), and produce no rows.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.catalog.schema import Accelerator, Instance
from planner.errors import CatalogError

CLOUDS = ("aws", "gcp", "azure")
REQUIRED = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "SpotPrice",
            "Region")
SOURCE = "SkyPilot catalog layout (https://github.com/skypilot-org/skypilot-catalog)"

# SkyPilot accelerator name -> catalog accelerator id
NAME_MAP: dict[str, str] = {
    "T4": "t4", "A10G": "a10g", "L4": "l4", "L40S": "l40s", "L40": "l40", "V100": "v100", "A100": "a100-40gb",
    "A100-80GB": "a100-80gb", "H100": "h100-sxm", "H100-MEGA": "h100-sxm", "H200": "h200", "B200": "b200",
    "B300": "b300", "GB200": "gb200", "MI300X": "mi300x", "MI325X": "mi325x", "MI355X": "mi355x",
    "Inferentia2": "inferentia2", "Trainium2": "trainium2", "Gaudi3": "gaudi3",
}
# instance-specific accelerator (the CSV's name is ambiguous): Azure's NC A100 v4 is the PCIe card, NC H100 v5 the NVL
INSTANCE_ACCELERATOR: tuple[tuple[str, str], ...] = (
    (r"^Standard_NC\d+ads_A100_v4$", "a100-80gb-pcie"),
    (r"^Standard_NC\d+ad[i]?s_H100_v5$", "h100-nvl"),
)
# CPU-only instance types the catalog models as one cpu-x86 slice
CPU_INSTANCES: dict[str, str] = {"c7i.4xlarge": "cpu-x86"}
# counts SkyPilot's CSV gets wrong, with the provider's own figure
COUNT_FIX: dict[str, tuple[int, str]] = {
    "Standard_ND96isr_H100_v5": (8, "ND H100 v5 has 8 GPUs "
                                    "(https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nd-h100-v5-series)"),
}
# GCP machine families: which accelerator row a VM row combines with, and how many
_GCP_ATTACH: tuple[tuple[str, str], ...] = (
    (r"^a2-highgpu-(\d+)g$", "A100"), (r"^a2-megagpu-(16)g$", "A100"), (r"^a2-ultragpu-(\d+)g$", "A100-80GB"),
    (r"^a3-highgpu-(\d+)g$", "H100"), (r"^a3-edgegpu-(8)g$", "H100"), (r"^a3-megagpu-(8)g$", "H100-MEGA"),
    (r"^a3-ultragpu-(8)g$", "H200"), (r"^a4-highgpu-(8)g$", "B200"),
)
_G2_L4 = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
# single-host TPU slices: (chips, host vCPU, host RAM GiB), Google Cloud TPU docs (ct6e-standard-*t, ct5lp-hightpu-*t)
TPU_HOSTS: dict[str, tuple[str, int, int, int]] = {
    "tpu-v6e-1": ("tpu-v6e", 1, 44, 176), "tpu-v6e-4": ("tpu-v6e", 4, 180, 720), "tpu-v6e-8": ("tpu-v6e", 8, 180, 1440),
    "tpu-v5litepod-1": ("tpu-v5e", 1, 24, 48), "tpu-v5litepod-4": ("tpu-v5e", 4, 112, 192),
    "tpu-v5litepod-8": ("tpu-v5e", 8, 224, 384),
}
DISCOUNT_FACTOR = 0.6  # a GCP GPU row under 60% of the same GPU's top per-GPU price is not a list price
PLACEHOLDER_FACTOR = 20.0  # a TPU row priced 20x the median per-chip price of its generation is a placeholder


def gcp_attachment(instance: str) -> tuple[str, int] | None:
    """(SkyPilot accelerator name, count) a GCP machine type carries, or None for CPU-only types."""
    for pattern, name in _GCP_ATTACH:
        m = re.match(pattern, instance)
        if m:
            return name, int(m.group(1))
    m = re.match(r"^g2-standard-(\d+)$", instance)
    if m and int(m.group(1)) in _G2_L4:
        return "L4", _G2_L4[int(m.group(1))]
    return None


@dataclass
class ImportResult:
    rows: list[Instance] = field(default_factory=list)
    unknown: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def overlay(self) -> dict[str, Any]:
        rows = sorted(self.rows, key=lambda i: (i.provider, i.region, i.instance))
        return {"instances": [r.model_dump(mode="json", exclude_none=True) for r in rows]}


def _num(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    v = float(text)
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"{text!r} is not a finite number")
    return v


def _read(path: Path) -> list[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{path}: not a SkyPilot vms.csv, missing column {missing[0]!r}",
                               fix=f"the header needs {', '.join(REQUIRED)}")
        return [(n + 2, row) for n, row in enumerate(reader)]


@dataclass
class _Offer:
    price: float
    spot: float | None
    lines: list[int]
    vcpu: float
    ram: float


def import_skypilot(folder: str | Path, *, accelerators: Mapping[str, Accelerator],
                    mapping: Mapping[str, str] | None = None, clouds: Iterable[str] = CLOUDS,
                    observed: date | None = None, label: str | None = None,
                    regions: Collection[tuple[str, str]] | None = None,
                    base_rows: Iterable[Instance] = (), discount_factor: float | None = None) -> ImportResult:
    """Catalog instance rows from ``folder/<cloud>/vms.csv`` for each cloud whose file exists.

    ``mapping`` maps a SkyPilot accelerator name (or an instance type) to a catalog accelerator id, on top of the
    built-in table. ``observed`` is the date the CSV was taken (prices and spot move); ``label`` names the CSV's
    origin (e.g. a commit) in each row's ``price_source``. ``regions``: the ``(provider, region)`` pairs the catalog
    knows; rows elsewhere are left out with one note per region. ``base_rows``: catalog rows whose network and
    dedicated-tenancy facts (which SkyPilot's CSV lacks) an imported row of the same instance type adopts.
    ``discount_factor``: GCP GPU rows below this share of the GPU's top per-GPU price are left out (default
    :data:`DISCOUNT_FACTOR`; 0 keeps every row, as the comparison benchmark does).
    """
    base = Path(folder)
    if not base.is_dir():
        raise CatalogError(f"{base}: not a folder", fix="pass the folder that holds <cloud>/vms.csv")
    names = {**NAME_MAP, **(mapping or {})}
    for key, acc in (mapping or {}).items():
        if acc not in accelerators:
            raise CatalogError(f"mapping {key}={acc}: unknown accelerator {acc!r}",
                               fix=f"use one of {', '.join(sorted(accelerators))}")
    result = ImportResult()
    shapes: dict[tuple[str, str], Instance] = {}
    for inst in base_rows:
        shapes.setdefault((inst.provider, inst.instance), inst)
    skipped: dict[tuple[str, str], int] = defaultdict(int)
    found = False
    for cloud in clouds:
        path = base / cloud / "vms.csv"
        if not path.exists():
            continue
        found = True
        lines = _read(path)
        offers = (_gcp_offers(path, lines, result, DISCOUNT_FACTOR if discount_factor is None else discount_factor)
                  if cloud == "gcp" else _plain_offers(path, lines, result))
        for (instance, acc_name, count, region), offer in sorted(offers.items()):
            acc_id = _accelerator(instance, acc_name, names)
            if acc_id is None:
                result.unknown[f"{cloud}:{acc_name}"].add(instance)
                continue
            if acc_id not in accelerators:
                result.problems.append(f"{path}:{offer.lines[0]}: {instance} maps to {acc_id!r}, not in the catalog")
                continue
            if regions is not None and (cloud, region) not in regions:
                skipped[(cloud, region)] += 1
                continue
            result.rows.extend(_instance(cloud, instance, region, acc_id, count, offer, path, observed, label,
                                         result, shapes.get((cloud, instance))))
    for (cloud, region), n in sorted(skipped.items()):
        result.notes.append(f"{cloud} region {region}: {n} row(s) left out, the catalog has no regions row for it "
                            "(add one with its geography and RTT zone to the overlay, then import again)")
    if not found:
        raise CatalogError(f"{base}: no <cloud>/vms.csv found for {', '.join(clouds)}",
                           fix="point at SkyPilot's catalog folder, e.g. catalogs/v8")
    return result


def _accelerator(instance: str, acc_name: str, names: Mapping[str, str]) -> str | None:
    if instance in names:
        return names[instance]
    if not acc_name:
        return CPU_INSTANCES.get(instance)
    for pattern, acc in INSTANCE_ACCELERATOR:
        if re.match(pattern, instance):
            return acc
    if acc_name in TPU_HOSTS:
        return TPU_HOSTS[acc_name][0]
    return names.get(acc_name)


def _plain_offers(path: Path, lines: list[tuple[int, dict[str, str]]],
                  result: ImportResult) -> dict[tuple[str, str, int, str], _Offer]:
    offers: dict[tuple[str, str, int, str], _Offer] = {}
    for n, row in lines:
        where = f"{path}:{n}"
        instance, region = (row.get("InstanceType") or "").strip(), (row.get("Region") or "").strip()
        try:
            if not instance or not region:
                raise ValueError("empty InstanceType or Region")
            acc_name = (row.get("AcceleratorName") or "").strip()
            count_f = _num(row.get("AcceleratorCount")) if acc_name else 1.0
            if count_f is None or count_f < 1 or count_f != int(count_f):
                result.notes.append(f"{where}: {instance} has {row.get('AcceleratorCount')!r} GPUs (a fractional "
                                    "or shared GPU): skipped")
                continue
            count = int(count_f)
            if instance in COUNT_FIX and COUNT_FIX[instance][0] != count:
                result.notes.append(f"{where}: {instance} AcceleratorCount {count} corrected to "
                                    f"{COUNT_FIX[instance][0]}: {COUNT_FIX[instance][1]}")
                count = COUNT_FIX[instance][0]
            price, spot = _num(row.get("Price")), _num(row.get("SpotPrice"))
            vcpu, ram = _num(row.get("vCPUs")), _num(row.get("MemoryGiB"))
        except ValueError as e:
            result.problems.append(f"{where}: {e}")
            continue
        if price is None or price <= 0:
            result.problems.append(f"{where}: {instance} in {region} has no on-demand price ({row.get('Price')!r}): "
                                   "no row (priced by reservation or capacity block only?)")
            continue
        if vcpu is None or vcpu < 1 or ram is None or ram <= 0:
            result.problems.append(f"{where}: {instance} has no vCPUs/MemoryGiB")
            continue
        _merge(offers, (instance, acc_name, count, region), price, spot, n, vcpu, ram, where, result)
    return offers


def _merge(offers: dict[tuple[str, str, int, str], _Offer], key: tuple[str, str, int, str], price: float,
           spot: float | None, line: int, vcpu: float, ram: float, where: str, result: ImportResult) -> None:
    spot = spot if spot is not None and 0 < spot < price else None
    old = offers.get(key)
    if old is None:
        offers[key] = _Offer(price, spot, [line], vcpu, ram)
        return
    if abs(old.price - price) > 1e-9:
        result.problems.append(f"{where}: {key[0]} in {key[3]}: on-demand {price:g} differs from {old.price:g} "
                               f"(line {old.lines[0]}); the first is kept")
    old.lines.append(line)
    if spot is not None and (old.spot is None or spot < old.spot):
        old.spot = spot


def _gcp_offers(path: Path, lines: list[tuple[int, dict[str, str]]], result: ImportResult,
                discount_factor: float) -> dict[tuple[str, str, int, str], _Offer]:
    vms: list[tuple[int, dict[str, str]]] = []
    acc: dict[tuple[str, int, str], dict[str, tuple[float, float | None, int]]] = defaultdict(dict)
    tpu: list[tuple[int, dict[str, str]]] = []
    for n, row in lines:
        if (row.get("InstanceType") or "").strip():
            vms.append((n, row))
            continue
        name = (row.get("AcceleratorName") or "").strip()
        if name.startswith("tpu-"):
            tpu.append((n, row))
            continue
        try:
            count = int(_num(row.get("AcceleratorCount")) or 0)
            price, spot = _num(row.get("Price")), _num(row.get("SpotPrice"))
        except ValueError as e:
            result.problems.append(f"{path}:{n}: {e}")
            continue
        if not name or count < 1 or price is None:
            result.problems.append(f"{path}:{n}: accelerator row without name, count or price")
            continue
        acc[(name, count, (row.get("Region") or "").strip())][(row.get("AvailabilityZone") or "").strip()] = \
            (price, spot, n)
    _drop_discounted(path, acc, result, discount_factor)
    offers: dict[tuple[str, str, int, str], _Offer] = {}
    for n, row in vms:
        where = f"{path}:{n}"
        instance, region = row["InstanceType"].strip(), (row.get("Region") or "").strip()
        attach = gcp_attachment(instance)
        if attach is None:
            continue  # a CPU-only machine type: the catalog does not model it
        try:
            price, spot = _num(row.get("Price")), _num(row.get("SpotPrice"))
            vcpu, ram = _num(row.get("vCPUs")), _num(row.get("MemoryGiB"))
        except ValueError as e:
            result.problems.append(f"{where}: {e}")
            continue
        if price is None or price <= 0:
            result.problems.append(f"{where}: {instance} in {region} has VM price {row.get('Price')!r}: not priced, "
                                   "no row")
            continue
        zones = acc.get((attach[0], attach[1], region))
        if not zones:
            result.problems.append(f"{where}: {instance} in {region}: no usable {attach[0]} x{attach[1]} accelerator "
                                   "row to add to the VM price, no row")
            continue
        zone = (row.get("AvailabilityZone") or "").strip()
        a_price, a_spot, a_line = zones.get(zone) or next(iter(zones.values()))
        total_spot = spot + a_spot if spot is not None and a_spot is not None else None
        _merge(offers, (instance, attach[0], attach[1], region), round(price + a_price, 5),
               round(total_spot, 5) if total_spot is not None else None, n, vcpu or 0, ram or 0, where, result)
        offers[(instance, attach[0], attach[1], region)].lines.append(a_line)
    _tpu_offers(path, tpu, offers, result)
    return offers


def _drop_discounted(path: Path, acc: dict[tuple[str, int, str], dict[str, tuple[float, float | None, int]]],
                     result: ImportResult, factor: float) -> None:
    """Remove GPU rows priced far below the same GPU elsewhere: not the on-demand list price.

    SkyPilot's GCP GPU rows come from per-region billing SKUs; in some regions the SKU it picks is about half the
    on-demand list price (e.g. H100 at $4.20/GPU-h in us-central1 against $9.80 in us-east4, while GCP's pricing
    page lists a3-highgpu-8g at $88.25/h in us-central1). A row below ``factor`` x the GPU's highest per-GPU
    price in any region is left out with one line.
    """
    top: dict[str, tuple[float, str]] = {}
    for (name, count, region), zones in acc.items():
        for price, _, _ in zones.values():
            if name not in top or price / count > top[name][0]:
                top[name] = (price / count, region)
    for (name, count, region), zones in list(acc.items()):
        for zone, (price, _, n) in list(zones.items()):
            ref, ref_region = top[name]
            if price / count < factor * ref:
                result.problems.append(
                    f"{path}:{n}: {name} x{count} in {zone or region} at ${price / count:.4g}/GPU-h is "
                    f"{price / count / ref:.0%} of the same GPU's ${ref:.4g}/GPU-h in {ref_region}: not an on-demand "
                    "list price (a discounted SKU?), not used")
                del zones[zone]
        if not zones:
            del acc[(name, count, region)]


def _tpu_offers(path: Path, rows: list[tuple[int, dict[str, str]]],
                offers: dict[tuple[str, str, int, str], _Offer], result: ImportResult) -> None:
    parsed: list[tuple[int, str, str, float, float | None]] = []
    for n, row in rows:
        name = row["AcceleratorName"].strip()
        try:
            price, spot = _num(row.get("Price")), _num(row.get("SpotPrice"))
        except ValueError as e:
            result.problems.append(f"{path}:{n}: {e}")
            continue
        if name not in TPU_HOSTS:
            if re.match(r"^tpu-(v6e|v5litepod)-\d+$", name):
                result.notes.append(f"{path}:{n}: {name} is a multi-host slice: not a single catalog row, skipped")
            continue
        if price is None or price <= 0:
            result.problems.append(f"{path}:{n}: {name} has no price")
            continue
        parsed.append((n, name, (row.get("Region") or "").strip(), price, spot))
    per_chip: dict[str, list[float]] = defaultdict(list)
    for _, name, _, price, _ in parsed:
        per_chip[TPU_HOSTS[name][0]].append(price / TPU_HOSTS[name][1])
    for n, name, region, price, spot in parsed:
        gen, chips, vcpu, ram = TPU_HOSTS[name]
        values = sorted(per_chip[gen])
        median = values[len(values) // 2]
        if price / chips > PLACEHOLDER_FACTOR * median:
            result.notes.append(f"{path}:{n}: {name} in {region} at ${price:g}/h is {price / chips / median:.0f}x the "
                                f"median ${median:g}/chip-hour: a placeholder for 'not offered', skipped")
            continue
        _merge(offers, (name, name, chips, region), price, spot, n, vcpu, ram, f"{path}:{n}", result)


def _instance(cloud: str, instance: str, region: str, acc_id: str, count: int, offer: _Offer, path: Path,
              observed: date | None, label: str | None, result: ImportResult,
              shape: Instance | None = None) -> list[Instance]:
    origin = f"{SOURCE} {path.parent.name}/vms.csv" + (f" ({label})" if label else "")
    lines = ", ".join(str(x) for x in offer.lines[:4]) + (" ..." if len(offer.lines) > 4 else "")
    how = "VM row + accelerator row" if cloud == "gcp" and not instance.startswith("tpu-") else "Price column"
    try:
        return [Instance(
            provider=cloud,
            instance=instance, region=region, accelerator=acc_id, accelerator_count=count,
            vcpu=max(1, int(offer.vcpu)), ram_gib=round(offer.ram, 2), on_demand_usd_per_h=offer.price,
            spot_usd_per_h=offer.spot, dedicated=shape.dedicated if shape is not None else False,
            network_gbps=shape.network_gbps if shape is not None else 25.0,
            source=f"{origin}, lines {lines}: {count}x {acc_id}, {int(offer.vcpu)} vCPU, {offer.ram:g} GiB"
                   + (f"; network and tenancy as the catalog's {instance} row" if shape is not None else
                      "; network 25 Gbit/s assumed, dedicated tenancy not claimed"),
            price_source=f"{origin}: {how}, {instance} in {region} (lines {lines})",
            price_observed=observed,
            spot_observed=observed if offer.spot is not None else None,
            spot_source=(f"{origin}: lowest SpotPrice over the region's zones" if offer.spot is not None else None),
        )]
    except ValidationError as e:
        result.problems.append(f"{path}:{offer.lines[0]}: {instance} in {region}: {e.errors()[0]['msg']}")
        return []
