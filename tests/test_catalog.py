"""The embedded hardware catalog: it loads, every row is sourced, the figures are the datasheet/price-page ones,
and user overlays replace / add rows or fail with a one-line CatalogError naming the bad field."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.catalog import DATA_DIR, Catalog
from planner.catalog.schema import Accelerator, Instance
from planner.errors import CatalogError

URL = re.compile(r"https?://\S+")


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


def raw(name: str) -> Any:
    return yaml.safe_load((DATA_DIR / name).read_text())


def aws(cat: Catalog, instance: str, region: str = "us-east-1") -> Instance:
    rows = [i for i in cat.instances if i.key == ("aws", instance, region)]
    assert len(rows) == 1, (instance, region, rows)
    return rows[0]


# ------------------------------------------------------------------------------------------------- loading
def test_embedded_catalog_loads_with_version(cat: Catalog) -> None:
    assert cat.version == "2026.12.1"
    assert raw("VERSION.yaml") == {"version": "2026.12.1", "updated": "2026-11-30"}
    assert cat.overlay is None
    assert len(cat.accelerators) >= 25 and len(cat.edge_devices) >= 7
    assert len(cat.instances) >= 250 and len(cat.onprem_servers) >= 6 and len(cat.services) >= 40
    cat.check_references()


def test_every_row_names_a_source_with_a_url(cat: Catalog) -> None:
    rows: list[Any] = [*cat.accelerators.values(), *cat.edge_devices.values(), *cat.instances,
                       *cat.onprem_servers, *cat.regions.values(), cat.rtt, *cat.services.values()]
    # on-prem defaults are the planner's own assumptions (planner/specs.py), named as such
    missing = [r for r in rows if not URL.search(r.source) and not r.source.startswith("planning default:")]
    assert not missing, [getattr(r, "id", getattr(r, "instance", r)) for r in missing[:5]]


def test_no_duplicate_keys_in_the_data_files() -> None:
    ids = [r["id"] for r in raw("accelerators.yaml")["rows"]] + [r["id"] for r in raw("edge_devices.yaml")["rows"]]
    assert [k for k, n in Counter(ids).items() if n > 1] == []
    keys = [(r["provider"], r["instance"], r["region"])
            for p in sorted(DATA_DIR.glob("instances_*.yaml")) for r in yaml.safe_load(p.read_text())["rows"]]
    assert [k for k, n in Counter(keys).items() if n > 1] == []
    skus = [r["sku"] for r in raw("onprem_servers.yaml")["rows"]]
    assert [k for k, n in Counter(skus).items() if n > 1] == []
    regions = [(r["provider"], r["region"]) for r in raw("regions.yaml")["rows"]]
    assert [k for k, n in Counter(regions).items() if n > 1] == []


def test_instance_files_are_split_by_provider() -> None:
    for p in DATA_DIR.glob("instances_*.yaml"):
        provider = p.stem.removeprefix("instances_")
        assert {r["provider"] for r in yaml.safe_load(p.read_text())["rows"]} == {provider}


# ------------------------------------------------------------------------------------------------ required ids
REQUIRED_ACCELERATORS = {"h100-sxm", "h100-pcie", "h200", "a100-40gb", "a100-80gb", "l40s", "l4", "a10g", "t4",
                         "v100", "mi300x", "cpu-x86",
                         # the hardware of 2026 (issue 15)
                         "b200", "b300", "gb200", "mi325x", "mi355x", "gaudi3", "tpu-v5e", "tpu-v6e", "inferentia2",
                         "trainium2", "rtx-pro-6000-blackwell"}
REQUIRED_EDGE = {"jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "raspberry-pi-5", "coral-edge-tpu",
                 "stm32h7", "stm32n6"}


def test_required_ids_exist(cat: Catalog) -> None:
    assert set(cat.accelerators) >= REQUIRED_ACCELERATORS
    assert set(cat.edge_devices) >= REQUIRED_EDGE
    assert cat.accelerator("cpu-x86").vendor == "cpu"
    assert cat.accelerator("mi300x").vendor == "amd"


def test_unknown_ids_raise_catalog_error_listing_the_known_ones(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"unknown accelerator 'h1000'.*To fix: use one of .*h100-sxm"):
        cat.accelerator("h1000")
    with pytest.raises(CatalogError, match=r"unknown edge device 'pi9'.*jetson-orin-nano"):
        cat.edge_device("pi9")


# ------------------------------------------------------------------------------------------------ accelerators
@pytest.mark.parametrize(("acc", "dtype", "dense"), [
    ("h100-sxm", "bf16", 989.5), ("h100-sxm", "fp8", 1979.0), ("h100-sxm", "tf32", 494.5), ("h100-sxm", "fp32", 67.0),
    ("h100-pcie", "bf16", 756.0), ("h200", "fp8", 1979.0),
    ("a100-40gb", "bf16", 312.0), ("a100-80gb", "bf16", 312.0), ("a100-40gb", "int8", 624.0),
    ("l40s", "fp8", 733.0), ("l40s", "bf16", 362.05),
    ("l4", "fp8", 242.5), ("l4", "bf16", 121.0),  # the L4 datasheet's 485 FP8 / 242 BF16 are "with sparsity"
    ("t4", "fp16", 65.0), ("t4", "int8", 130.0), ("v100", "fp16", 125.0),
    ("mi300x", "bf16", 1307.4), ("mi300x", "fp8", 2614.9),
])
def test_dense_tflops_match_the_datasheets(cat: Catalog, acc: str, dtype: str, dense: float) -> None:
    assert cat.accelerator(acc).tflops[dtype] == pytest.approx(dense, rel=0.01)


@pytest.mark.parametrize(("acc", "gib", "gbps", "tdp"), [
    ("h100-sxm", 80, 3350, 700), ("h200", 141, 4800, 700), ("a100-40gb", 40, 1555, 400), ("a100-80gb", 80, 2039, 400),
    ("l40s", 48, 864, 350), ("l4", 24, 300, 72), ("a10g", 24, 600, 300), ("t4", 16, 320, 70), ("v100", 16, 900, 300),
    ("mi300x", 192, 5300, 750),
])
def test_memory_bandwidth_and_power(cat: Catalog, acc: str, gib: int, gbps: int, tdp: int) -> None:
    a = cat.accelerator(acc)
    assert (a.memory_gib, a.bandwidth_gbps, a.tdp_w) == (gib, gbps, tdp)
    assert a.memory_sold_bytes == gib * 2**30  # memory_gib stays the marketed figure, for display
    assert a.usable_memory_mib is not None and a.memory_bytes == int(a.usable_memory_mib * 2**20) <= gib * 2**30


def test_dtype_support_follows_the_architecture(cat: Catalog) -> None:
    fp8 = {a.id for a in cat.accelerators.values() if "fp8" in a.tflops}
    hopper_ada_blackwell_cdna3_4 = {"h100-sxm", "h100-pcie", "h100-nvl", "h200", "l40s", "l40", "l4", "rtx-6000-ada",
                                    "rtx-4090", "b200", "b300", "gb200", "rtx-pro-6000-blackwell", "mi300x", "mi325x",
                                    "mi355x", "gaudi3", "inferentia2", "trainium2"}
    assert fp8 <= hopper_ada_blackwell_cdna3_4 and {"h100-sxm", "h200", "l40s", "l4", "mi300x", "b200"} <= fp8
    fp4 = {a.id for a in cat.accelerators.values() if "fp4" in a.tflops}
    assert fp4 == {"b200", "b300", "gb200", "rtx-pro-6000-blackwell", "mi355x"}  # Blackwell and CDNA 4 only
    for old in ("t4", "v100"):
        assert not cat.accelerator(old).supports("bf16") and not cat.accelerator(old).supports("tf32")
    for ampere in ("a100-40gb", "a100-80gb", "a10g"):
        assert cat.accelerator(ampere).supports("int4") and not cat.accelerator(ampere).supports("fp8")
    assert not cat.accelerator("v100").supports("int8")


def test_tensor_rates_are_ordered_like_real_hardware(cat: Catalog) -> None:
    """Halving errors show up as broken ratios: dense bf16 is 2x tf32, fp8/int8 2x bf16 on tensor-core GPUs."""
    order = ["fp32", "tf32", "bf16", "fp8"]
    for a in cat.accelerators.values():
        present = [a.tflops[d] for d in order if d in a.tflops]
        assert present == sorted(present), a.id
        if a.vendor == "nvidia" and "fp8" in a.tflops and a.id != "rtx-4090":
            assert a.tflops["fp8"] == pytest.approx(2 * a.tflops["bf16"], rel=0.02), a.id
        if "tf32" in a.tflops and "bf16" in a.tflops and a.vendor != "cpu":
            # Blackwell datasheets round: B200 TF32 1.1 PF vs BF16 2.25 PF dense
            assert a.tflops["bf16"] == pytest.approx(2 * a.tflops["tf32"], rel=0.05), a.id
        for dtype, sparse in a.sparse_tflops.items():  # 2:4 sparsity doubles the dense rate on every datasheet
            # (B300's dense FP4 is 3/4 of its sparse figure: Blackwell Ultra raised dense FP4 only)
            assert dtype not in a.tflops or a.tflops[dtype] < sparse <= 2.05 * a.tflops[dtype], (a.id, dtype)


def test_interconnect_is_one_direction_per_gpu(cat: Catalog) -> None:
    h100 = cat.accelerator("h100-sxm").interconnect
    assert (h100.kind, h100.bandwidth_gbps, h100.gpus_per_domain) == ("nvlink", 450, 8)
    assert cat.accelerator("a100-40gb").interconnect.bandwidth_gbps == 300
    assert cat.accelerator("mi300x").interconnect.kind == "infinity-fabric"
    for pcie in ("l40s", "l4", "t4", "a10g"):
        ic = cat.accelerator(pcie).interconnect
        assert ic.kind == "pcie" and ic.bandwidth_gbps == cat.accelerator(pcie).pcie_gbps
    for a in cat.accelerators.values():
        assert a.interconnect.bandwidth_gbps < a.bandwidth_gbps, a.id


# ------------------------------------------------------------------------------------------------ edge devices
def test_edge_devices(cat: Catalog) -> None:
    coral = cat.edge_device("coral-edge-tpu")
    assert coral.int8_only and set(coral.tops) == {"int8"} and coral.tops["int8"] == 4.0
    h7 = cat.edge_device("stm32h7")
    assert (h7.kind, h7.ram_mib, h7.storage_mib, h7.ram_bytes) == ("mcu", 1.0, 2.0, 2**20)
    n6 = cat.edge_device("stm32n6")
    assert n6.tops["int8"] == 0.6 and n6.ram_mib == pytest.approx(4.0)
    nano, nx, agx = (cat.edge_device(d) for d in ("jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin"))
    assert nano.tops["int8"] < nx.tops["int8"] < agx.tops["int8"]
    assert nano.ram_mib < 8 * 1024 and agx.ram_mib < 64 * 1024  # the OS keeps part of the unified memory
    for d in cat.edge_devices.values():
        assert d.runtime and d.price_usd > 0 and d.power_w > 0
        if d.kind == "mcu":
            assert d.ram_mib <= 8 and d.power_w < 2


# ------------------------------------------------------------------------------------------------- instances
@pytest.mark.parametrize(("instance", "price"), [
    ("p5.48xlarge", 55.04), ("p4d.24xlarge", 21.957642), ("g5.xlarge", 1.006), ("g6.xlarge", 0.8048),
    ("g6e.xlarge", 1.861), ("p5.4xlarge", 6.88), ("p5en.48xlarge", 63.296), ("p6-b200.48xlarge", 113.9328),
])
def test_aws_us_east_1_list_prices_are_exact(cat: Catalog, instance: str, price: float) -> None:
    assert aws(cat, instance).on_demand_usd_per_h == price


@pytest.mark.parametrize(("instance", "acc", "n", "net"), [
    ("p5.48xlarge", "h100-sxm", 8, 3200), ("p5en.48xlarge", "h200", 8, 3200), ("p4d.24xlarge", "a100-40gb", 8, 400),
    ("p4de.24xlarge", "a100-80gb", 8, 400), ("g6e.xlarge", "l40s", 1, 20), ("g6e.12xlarge", "l40s", 4, 100),
    ("g6e.48xlarge", "l40s", 8, 400), ("g6.xlarge", "l4", 1, 10), ("g6.48xlarge", "l4", 8, 100),
    ("g5.xlarge", "a10g", 1, 10), ("g5.12xlarge", "a10g", 4, 40), ("g5.48xlarge", "a10g", 8, 100),
    ("g4dn.xlarge", "t4", 1, 25), ("g4dn.12xlarge", "t4", 4, 50), ("p3.2xlarge", "v100", 1, 10),
    ("p3.8xlarge", "v100", 4, 10), ("p5.4xlarge", "h100-sxm", 1, 100), ("p6-b200.48xlarge", "b200", 8, 3200),
    ("inf2.xlarge", "inferentia2", 1, 15), ("inf2.48xlarge", "inferentia2", 12, 100),
])
def test_aws_families(cat: Catalog, instance: str, acc: str, n: int, net: int) -> None:
    i = aws(cat, instance) if instance != "p5e.48xlarge" else aws(cat, instance, "us-east-2")
    assert (i.accelerator, i.accelerator_count, i.network_gbps) == (acc, n, net)


@pytest.mark.parametrize(("provider", "instance", "acc", "n"), [
    ("gcp", "a3-highgpu-8g", "h100-sxm", 8), ("gcp", "a2-highgpu-1g", "a100-40gb", 1),
    ("gcp", "a2-highgpu-8g", "a100-40gb", 8), ("gcp", "a2-ultragpu-1g", "a100-80gb", 1),
    ("gcp", "a2-ultragpu-8g", "a100-80gb", 8), ("gcp", "g2-standard-4", "l4", 1), ("gcp", "g2-standard-48", "l4", 4),
    ("gcp", "n1-standard-8-t4x1", "t4", 1),
    ("azure", "Standard_ND96isr_H100_v5", "h100-sxm", 8), ("azure", "Standard_NC24ads_A100_v4", "a100-80gb-pcie", 1),
    ("azure", "Standard_NC4as_T4_v3", "t4", 1), ("azure", "Standard_ND96amsr_A100_v4", "a100-80gb", 8),
    ("gcp", "a3-megagpu-8g", "h100-sxm", 8), ("gcp", "a3-ultragpu-8g", "h200", 8), ("gcp", "tpu-v6e-8", "tpu-v6e", 8),
    ("azure", "Standard_NC40ads_H100_v5", "h100-nvl", 1),
])
def test_gcp_and_azure_families(cat: Catalog, provider: str, instance: str, acc: str, n: int) -> None:
    rows = [i for i in cat.find_instance(instance) if i.provider == provider]
    assert rows, instance
    assert {(i.accelerator, i.accelerator_count) for i in rows} == {(acc, n)}


def test_every_instance_resolves_accelerator_and_region(cat: Catalog) -> None:
    for i in cat.instances:
        assert i.accelerator in cat.accelerators, i.key
        assert cat.region(i.provider, i.region).provider == i.provider, i.key
    for s in cat.onprem_servers:
        assert s.accelerator in cat.accelerators, s.sku


def test_spot_is_cheaper_than_on_demand(cat: Catalog) -> None:
    spot = [i for i in cat.instances if i.spot_usd_per_h is not None]
    assert len(spot) > len(cat.instances) // 2
    for i in spot:
        assert i.spot_usd_per_h is not None
        # observed spot prices, not a fixed fraction: Azure T4 spot sells at ~12% of on-demand
        assert 0.05 * i.on_demand_usd_per_h <= i.spot_usd_per_h < i.on_demand_usd_per_h, i.key
        assert i.spot_observed is not None and i.spot_source, i.key  # spot moves hourly: every figure is dated


def test_region_coverage_per_provider(cat: Catalog) -> None:
    for provider in ("aws", "gcp", "azure"):
        geos = Counter(cat.region(provider, r).geography for r in {i.region for i in cat.instances
                                                                    if i.provider == provider})
        if provider == "azure":  # the public per-region Azure figures read cover US regions only (README)
            assert geos["us"] >= 3 and set(geos) == {"us"}, geos
            continue
        assert geos["us"] >= 2 and geos["eu"] >= 2 and geos["apac"] >= 1, (provider, geos)
    aws_regions = {i.region for i in cat.instances if i.provider == "aws"}
    assert {"eu-south-2", "ap-northeast-2", "ap-northeast-3", "eu-west-3"} <= aws_regions
    for region in ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1"):
        names = {i.instance for i in cat.instances if i.key[0] == "aws" and i.region == region}
        assert {"p4d.24xlarge", "g5.xlarge", "g4dn.xlarge"} <= names, region
        # EC2 does not offer G6/G6e in eu-west-1 (DescribeInstanceTypeOfferings; see the moto cross-check below)
        assert ("g6.xlarge" in names) == (region != "eu-west-1"), region


def test_regional_prices_are_near_the_us_price(cat: Catalog) -> None:
    """EU/APAC list prices are typically 0-50% above the provider's cheapest US region, never below."""
    by_instance: dict[tuple[str, str], dict[str, float]] = {}
    for i in cat.instances:
        by_instance.setdefault((i.provider, i.instance), {})[i.region] = i.on_demand_usd_per_h
    for (provider, instance), prices in by_instance.items():
        us = min(p for r, p in prices.items() if cat.region(provider, r).geography == "us")
        for r, p in prices.items():
            assert us <= p <= 1.7 * us, (provider, instance, r, p, us)
    assert aws(cat, "g5.xlarge", "eu-west-1").on_demand_usd_per_h > aws(cat, "g5.xlarge").on_demand_usd_per_h


def test_price_per_gpu_is_sane(cat: Catalog) -> None:
    for i in cat.instances:
        per = i.on_demand_usd_per_h / i.accelerator_count
        assert 0.3 <= per <= 20.0, i.key
    h100 = aws(cat, "p5.48xlarge").on_demand_usd_per_h / 8
    l4 = aws(cat, "g6.xlarge").on_demand_usd_per_h
    assert h100 > l4


def test_dedicated_flags_are_honest(cat: Catalog) -> None:
    not_claimed = {"inf2", "p6-b200", "p6-b300"}  # Dedicated Host support for these families not verified
    assert all(i.dedicated == (i.family not in not_claimed) for i in cat.instances if i.provider == "aws")
    assert not any(i.dedicated for i in cat.instances if i.provider == "azure")
    gcp = {i.instance: i.dedicated for i in cat.instances if i.provider == "gcp"}
    assert gcp["n1-standard-8-t4x1"] and not gcp["a3-highgpu-8g"]


# ------------------------------------------------------------------------------------------- regions and RTT
def test_every_region_zone_is_in_the_rtt_table(cat: Catalog) -> None:
    zones = set(cat.rtt.zones)
    assert {"us-east", "us-west", "us-central", "ca-central", "sa-east", "eu-west", "eu-central", "eu-north", "uk",
            "me", "af-south", "apac-ne", "apac-se", "apac-s", "au"} <= zones
    for r in cat.regions.values():
        assert r.zone in zones
    assert cat.region("aws", "eu-west-2").geography == "uk"
    assert cat.region("gcp", "europe-west4").geography == "eu"


def test_rtt_covers_every_pair_symmetrically(cat: Catalog) -> None:
    for a, b in itertools.product(cat.rtt.zones, repeat=2):
        assert cat.rtt_ms(a, b) == cat.rtt_ms(b, a)
        if a == b:
            assert 1 <= cat.rtt_ms(a, b) <= 5
        else:
            assert 10 <= cat.rtt_ms(a, b) <= 450, (a, b)


def test_rtt_is_geographically_plausible(cat: Catalog) -> None:
    r = cat.rtt_ms
    assert r("us-east", "eu-west") < r("us-east", "apac-se")
    assert r("eu-west", "uk") < r("eu-west", "us-east") < r("eu-west", "apac-ne")
    assert r("apac-ne", "apac-se") < r("apac-ne", "eu-central")
    assert 60 <= r("us-east", "eu-west") <= 90  # transatlantic, N. Virginia - Ireland
    # a direct path is never much slower than a detour through a third zone
    for a, b, c in itertools.permutations(cat.rtt.zones, 3):
        assert r(a, b) <= 1.5 * (r(a, c) + r(c, b)) + 10, (a, b, c)


# --------------------------------------------------------------------------------------------------- on-prem
def test_onprem_skus(cat: Catalog) -> None:
    skus = {s.sku: s for s in cat.onprem_servers}
    dgx = skus["dgx-h100"]
    assert (dgx.accelerator, dgx.accelerator_count) == ("h100-sxm", 8)
    assert 300_000 <= dgx.capex_usd <= 450_000 and 9_000 <= dgx.power_w <= 11_000
    for s in skus.values():
        assert s.available is None and s.capex_usd > 0
        acc = cat.accelerator(s.accelerator)
        assert s.power_w > acc.tdp_w * s.accelerator_count, s.sku  # GPUs plus host


# --------------------------------------------------------------------------------------------------- overlays
def write(tmp_path: Path, doc: Any) -> Path:
    p = tmp_path / "overlay.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_overlay_replaces_a_price_and_adds_inventory(tmp_path: Path, cat: Catalog) -> None:
    g5 = aws(cat, "g5.xlarge").model_dump()
    g5.update(on_demand_usd_per_h=0.70, spot_usd_per_h=None, source="our EDP discount, contract 2026-07")
    owned = {"sku": "our-l40s-box", "site": "fra-dc1", "geography": "eu", "accelerator": "l40s", "accelerator_count": 4,
             "capex_usd": 0, "power_w": 2200, "available": 3, "source": "asset register, rack B4"}
    over = Catalog.load(overlay=write(tmp_path, {"instances": [g5], "onprem_servers": [owned]}))
    assert over.version == "2026.12.1+overlay" and over.overlay is not None
    new = aws(over, "g5.xlarge")
    assert new.on_demand_usd_per_h == 0.70 and new.spot_usd_per_h is None
    assert len(over.instances) == len(cat.instances)
    assert aws(over, "g5.xlarge", "eu-west-1") == aws(cat, "g5.xlarge", "eu-west-1")
    added = [s for s in over.onprem_servers if s.sku == "our-l40s-box"]
    assert len(added) == 1 and added[0].available == 3
    assert len(over.onprem_servers) == len(cat.onprem_servers) + 1
    assert aws(cat, "g5.xlarge").on_demand_usd_per_h == 1.006  # the embedded catalog is untouched


def test_overlay_adds_an_accelerator_and_an_instance_using_it(tmp_path: Path, cat: Catalog) -> None:
    acc = cat.accelerator("h100-sxm").model_dump()
    acc.update(id="h100-sxm-capped", tdp_w=500, source="our power-capped fleet, internal measurement 2026")
    inst = aws(cat, "p5.48xlarge").model_dump()
    inst.update(instance="p5.48xlarge-capped", accelerator="h100-sxm-capped", source="internal")
    over = Catalog.load(overlay=write(tmp_path, {"accelerators": [acc], "instances": [inst]}))
    assert isinstance(over.accelerator("h100-sxm-capped"), Accelerator)
    assert over.find_instance("p5.48xlarge-capped")[0].accelerator == "h100-sxm-capped"


def test_bad_overlay_row_names_the_field(tmp_path: Path, cat: Catalog) -> None:
    bad = aws(cat, "g5.xlarge").model_dump()
    bad["on_demand_usd_per_h"] = -1
    with pytest.raises(CatalogError, match=r"instances\[0\].*field 'on_demand_usd_per_h' = -1"):
        Catalog.load(overlay=write(tmp_path, {"instances": [bad]}))
    row = {"sku": "x", "accelerator": "l4", "accelerator_count": 1, "capex_usd": 1, "power_w": 100,
           "source": "quote", "gpus": 2}
    with pytest.raises(CatalogError, match=r"onprem_servers\[0\].*field 'gpus'"):
        Catalog.load(overlay=write(tmp_path, {"onprem_servers": [row]}))


def test_overlay_reference_and_shape_errors(tmp_path: Path, cat: Catalog) -> None:
    inst = aws(cat, "g5.xlarge").model_dump()
    inst["accelerator"] = "b400"
    with pytest.raises(CatalogError, match=r"unknown accelerator 'b400'.*To fix: add it under accelerators"):
        Catalog.load(overlay=write(tmp_path, {"instances": [inst]}))
    inst = aws(cat, "g5.xlarge").model_dump()
    inst["region"] = "mars-north-1"
    with pytest.raises(CatalogError, match=r"unknown region aws/mars-north-1"):
        Catalog.load(overlay=write(tmp_path, {"instances": [inst]}))
    with pytest.raises(CatalogError, match=r"unknown section 'gpus'"):
        Catalog.load(overlay=write(tmp_path, {"gpus": []}))
    with pytest.raises(CatalogError, match=r"must be a list of rows"):
        Catalog.load(overlay=write(tmp_path, {"instances": {"a": 1}}))
    with pytest.raises(CatalogError, match=r"must be a mapping"):
        Catalog.load(overlay=write(tmp_path, ["instances"]))


# ------------------------------------------------------------------- AWS rows against EC2's own data (moto)
@functools.cache
def _ec2_snapshot() -> tuple[dict[str, Any], dict[str, frozenset[str]]]:
    """DescribeInstanceTypes / DescribeInstanceTypeOfferings (per region) as shipped with moto, read as data."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("moto is not installed: cannot cross-check AWS rows against EC2's instance data")
    res = Path(next(iter(spec.submodule_search_locations))) / "ec2" / "resources"
    types = json.loads(gzip.decompress((res / "instance_types.json.gz").read_bytes()))
    offered = {f.name.removesuffix(".json.gz"): frozenset(o["InstanceType"]
                                                          for o in json.loads(gzip.decompress(f.read_bytes())))
               for f in (res / "instance_type_offerings" / "region").glob("*.json.gz")}
    return types, offered


# P3 is no longer returned by DescribeInstanceTypes (so absent from the snapshot); everything else must be there.
NOT_IN_EC2_SNAPSHOT = frozenset({"p3.2xlarge", "p3.8xlarge"})


def test_aws_shapes_match_describe_instance_types(cat: Catalog) -> None:
    """vCPU, RAM, GPU count, GPU model and GPU memory of every AWS row agree with EC2's DescribeInstanceTypes."""
    types, _ = _ec2_snapshot()
    unknown = set()
    for i in (i for i in cat.instances if i.provider == "aws"):
        t = types.get(i.instance)
        if t is None:
            unknown.add(i.instance)
            continue
        assert t["VCpuInfo"]["DefaultVCpus"] == i.vcpu, i.key
        assert t["MemoryInfo"]["SizeInMiB"] / 1024 == pytest.approx(i.ram_gib, rel=0.02), i.key
        gpus = (t.get("GpuInfo") or {}).get("Gpus", [])
        acc = cat.accelerator(i.accelerator)
        if acc.vendor == "cpu":
            assert gpus == [], i.key
            continue
        if acc.vendor == "aws":  # Inferentia / Trainium: EC2 lists them under NeuronInfo, not GpuInfo
            neuron = t["NeuronInfo"]["NeuronDevices"][0]
            assert neuron["Count"] == i.accelerator_count, i.key
            assert neuron["MemoryInfo"]["SizeInMiB"] == acc.usable_memory_mib, i.key
            continue
        assert gpus[0]["Count"] == i.accelerator_count, i.key
        assert re.search(rf"\b{re.escape(gpus[0]['Name'])}\b", acc.name), (i.key, gpus[0]["Name"], acc.name)
        usable_gib = gpus[0]["MemoryInfo"]["SizeInMiB"] / 1024  # EC2 reports usable memory, under the marketed GB
        assert usable_gib <= acc.memory_gib <= usable_gib * 1.1, i.key
        assert acc.usable_memory_mib is not None and acc.usable_memory_mib <= acc.memory_gib * 1024, i.key
    assert unknown <= NOT_IN_EC2_SNAPSHOT, f"not EC2 instance types: {sorted(unknown - NOT_IN_EC2_SNAPSHOT)}"


def test_aws_rows_are_offered_in_their_region(cat: Catalog) -> None:
    """The optimizer must never recommend an instance type a region does not sell (e.g. g6e in eu-west-1)."""
    _, offered = _ec2_snapshot()
    missing = sorted(i.key[1:] for i in cat.instances if i.provider == "aws"
                     and i.instance not in NOT_IN_EC2_SNAPSHOT and i.instance not in offered.get(i.region, ()))
    assert missing == []


# ------------------------------------------------------------------------ edge rows usable by the estimator
@pytest.mark.parametrize(("preset", "device", "dtype"), [
    ("mobilenet-v2", "coral-edge-tpu", "int8"), ("mobilenet-v2", "raspberry-pi-5", "int8"),
    ("mobilenet-v2", "jetson-orin-nano", "fp16"), ("kws-ds-cnn", "stm32h7", "int8"), ("kws-ds-cnn", "stm32n6", "int8"),
    ("llama-3.2-1b", "jetson-orin-nano", "int4"),
])
def test_edge_rows_fit_the_models_they_are_sold_for(cat: Catalog, preset: str, device: str, dtype: str) -> None:
    """Each edge row, through the real estimator, runs the model class the vendor benchmarks it with (Coral:
    MobileNet; STM32: keyword spotting; Orin Nano: a 1B LLM). A Coral row with only the 8 MB on-chip cache as
    'RAM' could never hold the 16 MiB libedgetpu runtime and would reject every model."""
    from planner.estimator.edge import estimate_edge
    from planner.models import resolve
    from planner.specs import ModelSpec

    e = estimate_edge(resolve(ModelSpec(preset=preset)), cat.edge_device(device), dtype)
    assert e.fits, e.reason
    assert 0 < e.latency_s < 5.0


# ----------------------------------------------------------------------- usable memory (issue 15, part 1)
def test_usable_memory_is_the_driver_figure_with_a_source(cat: Catalog) -> None:
    for a in cat.accelerators.values():
        if a.vendor == "cpu":
            continue
        assert a.usable_memory_mib is not None and a.usable_memory_source, a.id
        assert a.usable_memory_mib <= a.memory_gib * 1024, a.id
        assert a.memory_bytes <= a.memory_sold_bytes, a.id
    # measured (nvidia-smi / EC2 / rocminfo) figures are strictly below the marketed size
    for acc, mib in (("l4", 23034), ("a10g", 23028), ("l40s", 46068), ("h100-sxm", 81559), ("t4", 15360),
                     ("h200", 143771), ("b200", 183359), ("mi300x", 196592)):
        a = cat.accelerator(acc)
        assert a.usable_memory_mib == mib and a.memory_bytes < a.memory_sold_bytes, acc


def test_usable_memory_needs_a_source_and_cannot_exceed_the_sold_size() -> None:
    row = Catalog.load().accelerator("l4").model_dump()
    with pytest.raises(ValueError, match="exceeds the sold"):
        Accelerator.model_validate({**row, "usable_memory_mib": 30000})
    with pytest.raises(ValueError, match="needs usable_memory_source"):
        Accelerator.model_validate({**row, "usable_memory_source": None})


def test_the_estimator_profile_plans_on_usable_memory(cat: Catalog) -> None:
    from planner.estimator.hardware import profile

    l4 = profile(cat.accelerator("l4"))
    assert l4.memory_bytes == 23034 * 2**20 < 24 * 2**30
    legacy = cat.accelerator("l4").model_copy(update={"usable_memory_mib": None, "usable_memory_source": None})
    assert profile(legacy).memory_bytes == 24 * 2**30  # rows without the figure (old overlays) keep the sold size


# -------------------------------------------------------------------------- the hardware of 2026 (part 3)
@pytest.mark.parametrize(("acc", "gib", "gbps", "dtype", "dense"), [
    ("b200", 180, 8000, "fp8", 4500), ("b200", 180, 8000, "fp4", 9000), ("b300", 288, 8000, "fp4", 13500),
    ("gb200", 186, 8000, "bf16", 2500), ("mi325x", 256, 6000, "fp8", 2614.9), ("mi355x", 288, 8000, "fp4", 10066.3),
    ("gaudi3", 128, 3700, "bf16", 1835), ("tpu-v5e", 16, 819, "bf16", 197), ("tpu-v6e", 32, 1640, "bf16", 918),
    ("inferentia2", 32, 820, "bf16", 190), ("trainium2", 96, 2900, "fp8", 1299),
    ("rtx-pro-6000-blackwell", 96, 1597, "fp4", 2000),
])
def test_new_accelerators_carry_datasheet_figures(cat: Catalog, acc: str, gib: int, gbps: int, dtype: str,
                                                  dense: float) -> None:
    a = cat.accelerator(acc)
    assert (a.memory_gib, a.bandwidth_gbps) == (gib, gbps)
    assert a.tflops[dtype] == pytest.approx(dense, rel=0.01)
    assert URL.search(a.source)


def test_interconnect_domains(cat: Catalog) -> None:
    gb200 = cat.accelerator("gb200").interconnect
    assert (gb200.kind, gb200.gpus_per_domain) == ("nvlink", 72)  # NVL72: TP up to 72 inside one NVLink domain
    assert cat.accelerator("b200").interconnect.gpus_per_domain == 8
    assert cat.accelerator("tpu-v6e").interconnect.kind == "ici"
    assert cat.accelerator("trainium2").interconnect.kind == "neuronlink"
    assert cat.accelerator("gaudi3").interconnect.kind == "ethernet"


@functools.cache
def _ray_accelerator_types() -> frozenset[str]:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed")
    text = (Path(next(iter(spec.submodule_search_locations))) / "util" / "accelerators" / "accelerators.py").read_text()
    return frozenset(re.findall(r'^[A-Z0-9_a-z]+ = "([^"]+)"', text, flags=re.M))


#: nvidia.com/gpu.product values as seen on real nodes (NVIDIA GPU Feature Discovery README and issues; EKS/GKE
#: node listings): an independent check of the catalog's labels.
GFD_LABELS = {"t4": "Tesla-T4", "a10g": "NVIDIA-A10G", "l4": "NVIDIA-L4", "l40s": "NVIDIA-L40S",
              "a100-40gb": "NVIDIA-A100-SXM4-40GB", "a100-80gb": "NVIDIA-A100-SXM4-80GB",
              "h100-sxm": "NVIDIA-H100-80GB-HBM3"}


def test_serving_names_live_in_the_catalog(cat: Catalog) -> None:
    """GPU product label, Ray accelerator type and device-plugin resource of every accelerator row."""
    ray_types = _ray_accelerator_types()
    vendor_resource = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "aws": "aws.amazon.com/neuron",
                       "google": "google.com/tpu", "intel": "habana.ai/gaudi"}
    for a in cat.accelerators.values():
        if a.vendor == "cpu":
            assert a.device_resource is None
            continue
        assert a.device_resource == vendor_resource[a.vendor], a.id
        assert a.names_source, a.id
        if a.ray_type is not None:
            assert a.ray_type in ray_types, (a.id, a.ray_type)
        if a.vendor == "nvidia" and a.id != "b300":  # no authoritative GFD label for B300 found yet
            assert a.gpu_product and " " not in a.gpu_product, a.id
        if a.id in GFD_LABELS:  # product names NVML reports for these GPUs, as GPU Feature Discovery labels them
            assert a.gpu_product == GFD_LABELS[a.id], a.id
    labelled = [a.id for a in cat.accelerators.values() if a.vendor == "nvidia" and a.gpu_product]
    assert len(labelled) == sum(a.vendor == "nvidia" for a in cat.accelerators.values()) - 1  # all but B300


@pytest.mark.parametrize(("provider", "instance", "region"), [
    ("aws", "p5.4xlarge", "us-east-1"), ("aws", "p5en.48xlarge", "us-east-1"), ("aws", "p6-b200.48xlarge", "us-east-1"),
    ("aws", "inf2.xlarge", "us-east-1"), ("aws", "g6e.xlarge", "eu-south-2"), ("aws", "p5.48xlarge", "ap-northeast-2"),
    ("aws", "g4dn.xlarge", "ap-northeast-3"), ("aws", "g6.xlarge", "eu-west-3"),
    ("gcp", "a3-megagpu-8g", "us-central1"), ("gcp", "a3-ultragpu-8g", "us-east4"), ("gcp", "tpu-v6e-8", "us-east4"),
    ("azure", "Standard_ND96amsr_A100_v4", "eastus"), ("azure", "Standard_NC40ads_H100_v5", "eastus"),
])
def test_new_instances_and_regions(cat: Catalog, provider: str, instance: str, region: str) -> None:
    rows = [i for i in cat.instances if i.key == (provider, instance, region)]
    assert len(rows) == 1
    assert rows[0].price_source and rows[0].price_observed is not None


def test_rows_without_a_public_on_demand_price_are_absent(cat: Catalog) -> None:
    """p5e.48xlarge ($60.48 had no source) and trn2.48xlarge are sold through Capacity Blocks only: SkyPilot's
    CSV has an empty Price for them, so the catalog has no on-demand row to invent."""
    names = {i.instance for i in cat.instances}
    assert "p5e.48xlarge" not in names and "trn2.48xlarge" not in names
    assert "Standard_ND96isr_MI300X_v5" not in names  # no public per-region figure read


# ------------------------------------------------------------- per-row prices with sources (part 2)
def test_every_price_is_the_rows_own_figure_with_a_source_and_date(cat: Catalog) -> None:
    for i in cat.instances:
        assert i.price_source and i.price_observed is not None, i.key
        assert "ratio" not in i.price_source.lower(), i.key  # no region x ratio prices any more


def test_prices_differ_per_family_and_region_not_by_one_ratio(cat: Catalog) -> None:
    """AWS ap-northeast-1 is 45% over us-east-1 for g5 but 25% for p5: one ratio per region was wrong."""
    ratio = {f: aws(cat, f, "ap-northeast-1").on_demand_usd_per_h / aws(cat, f).on_demand_usd_per_h
             for f in ("g5.xlarge", "p4d.24xlarge", "p5.48xlarge")}
    assert ratio["g5.xlarge"] == pytest.approx(1.45, abs=0.02)
    assert ratio["p5.48xlarge"] == pytest.approx(1.25, abs=0.02)
    assert max(ratio.values()) - min(ratio.values()) > 0.1


def test_azure_southcentralus_is_priced_from_its_own_figures(cat: Catalog) -> None:
    def az(name: str, region: str) -> Instance:
        return next(i for i in cat.instances if i.key == ("azure", name, region))

    east, south = az("Standard_NC24ads_A100_v4", "eastus"), az("Standard_NC24ads_A100_v4", "southcentralus")
    assert (east.on_demand_usd_per_h, south.on_demand_usd_per_h) == (3.673, 4.408)
    assert south.price_source and "southcentralus" in south.price_source


def test_spot_risk_line(cat: Catalog) -> None:
    p5 = aws(cat, "p5.48xlarge")
    assert p5.spot_interruption == "<5%" and p5.spot_interruption_observed is not None
    assert "interruptions <5% of instances per month (AWS Spot Advisor, 2026-09-20)" in p5.spot_risk()
    g5 = aws(cat, "g5.xlarge")
    assert g5.spot_interruption is None and "interruption frequency unknown" in g5.spot_risk()
    assert aws(cat, "p5.4xlarge").spot_risk() == "no spot offering in the catalog"
    row = g5.model_dump()
    with pytest.raises(ValueError, match="spot_interruption needs"):
        Instance.model_validate({**row, "spot_interruption": ">20%"})


def test_instance_shapes_for_node_sizing(cat: Catalog) -> None:
    """vCPU and RAM (the Kubernetes emitters size nodes with them) on every row; AWS rows match EC2 (above)."""
    for i in cat.instances:
        assert i.vcpu >= 1 and i.ram_gib > 0, i.key
    assert (aws(cat, "p5.4xlarge").vcpu, aws(cat, "p5.4xlarge").ram_gib) == (16, 256.0)


# ------------------------------------------------------------------------- platform prices (part 4)
SERVICE_ITEMS = {"k8s_control_plane", "nat_gateway", "nat_gateway_data", "block_volume", "object_storage", "kms_key",
                 "kms_requests", "egress_internet", "dedicated_region_fee"}


def test_services_cover_the_bill_items_per_provider(cat: Catalog) -> None:
    for provider in ("aws", "gcp", "azure"):
        assert set(cat.service_items(provider)) >= SERVICE_ITEMS, provider
    assert {"load_balancer_nlb", "load_balancer_alb", "load_balancer_alb_lcu", "dedicated_host"} <= set(
        cat.service_items("aws"))
    assert {"edge_connectivity"} <= set(cat.service_items("edge"))
    assert {"onprem_network", "onprem_storage"} <= set(cat.service_items("onprem"))


def test_service_price_lookup(cat: Catalog) -> None:
    assert cat.service_price("aws", "us-east-1", "k8s_control_plane").usd == 0.10
    assert cat.service_price("aws", "eu-central-1", "nat_gateway").usd == 0.052  # a regional row
    assert cat.service_price("aws", "ap-south-1", "nat_gateway").region == "*"  # falls back to the provider row
    fee = cat.service_price("aws", "us-east-1", "dedicated_region_fee")
    assert (fee.usd, fee.unit) == (2.0, "hour") and URL.search(fee.source)
    assert cat.service_price("gcp", "us-central1", "object_storage").unit == "gb_month"
    with pytest.raises(CatalogError, match=r"no aws price for 'teleport'.*To fix: add a services row"):
        cat.service_price("aws", "us-east-1", "teleport")


def test_service_prices_are_overridable(tmp_path: Path, cat: Catalog) -> None:
    row = cat.service_price("aws", "us-east-1", "k8s_control_plane").model_dump()
    over = Catalog.load(overlay=write(tmp_path, {"services": [
        {**row, "usd": 0.0, "source": "our enterprise agreement, 2026"},
        {**row, "region": "eu-west-1", "usd": 0.6, "note": "extended support", "source": "https://aws.amazon.com/eks/pricing/"},
    ]}))
    assert over.service_price("aws", "us-east-1", "k8s_control_plane").usd == 0.0
    assert over.service_price("aws", "eu-west-1", "k8s_control_plane").usd == 0.6
    assert cat.service_price("aws", "us-east-1", "k8s_control_plane").usd == 0.10
    with pytest.raises(CatalogError, match=r"services\[0\].*field 'unit'"):
        Catalog.load(overlay=write(tmp_path, {"services": [{**row, "unit": "fortnight"}]}))
