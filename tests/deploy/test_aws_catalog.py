"""Catalog refresh: EC2 GPU instance types from a real moto server; prices from the Pricing API through
botocore's ``Stubber`` (moto does not implement Pricing), answering in the real ``GetProducts`` shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from planner.catalog.schema import Instance
from planner.errors import InputError
from stacks.deploy.aws_catalog import match_accelerator, parse_network_gbps, refresh_catalog
from tests.deploy.conftest import reset_moto, small_catalog

pytestmark = pytest.mark.slow
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
KNOWN = {"L40S": "l40s", "A10G": "a10g", "H100": "h100-sxm", "L4": "l4"}


def _product(instance: str, region: str, tenancy: str, usd: str) -> str:
    """One PriceList entry as GetProducts returns it: a JSON document in a string."""
    sku = f"SKU{abs(hash((instance, tenancy))) % 10**8:08d}"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance, "regionCode": region, "operatingSystem": "Linux", "tenancy": tenancy,
            "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
            "servicecode": "AmazonEC2", "usagetype": f"BoxUsage:{instance}"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": f"${usd} per On Demand Linux {instance} Instance Hour",
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "pricePerUnit": {"USD": usd}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}}}},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"})


def _filters(instance: str, region: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
        ("instanceType", instance), ("regionCode", region), ("operatingSystem", "Linux"),
        ("preInstalledSw", "NA"), ("capacitystatus", "Used"), ("licenseModel", "No License required"))]


def test_refresh_writes_a_loadable_overlay(tmp_path: Path, moto_url: str) -> None:
    reset_moto(moto_url)
    session = boto3.Session(**CREDS)
    ec2 = session.client("ec2", region_name="us-east-1", endpoint_url=moto_url)
    offered = {o["InstanceType"] for p in ec2.get_paginator("describe_instance_type_offerings")
               .paginate(LocationType="region") for o in p["InstanceTypeOfferings"]}
    gpu_types = {t["InstanceType"]: t["GpuInfo"]["Gpus"][0] for p in ec2.get_paginator("describe_instance_types")
                 .paginate() for t in p["InstanceTypes"] if t.get("GpuInfo", {}).get("Gpus")}
    catalog = small_catalog()
    expected = sorted(t for t, g in gpu_types.items() if t in offered and match_accelerator(catalog.accelerators, g))
    unknown = sorted(t for t, g in gpu_types.items() if t in offered and t not in expected)
    assert "g6e.xlarge" in expected and "p5.48xlarge" in expected and "g5.xlarge" in expected
    assert unknown  # e.g. T4 / A100 / M60 machines: not in this small catalog

    pricing = session.client("pricing", region_name="us-east-1")
    stub = Stubber(pricing)
    for n, t in enumerate(expected):
        if t == "g5.48xlarge":  # a type without a Linux price: skipped with a note
            stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                              {"ServiceCode": "AmazonEC2", "Filters": _filters(t, "us-east-1"),
                               "FormatVersion": "aws_v1", "MaxResults": 100})
            continue
        page1 = {"FormatVersion": "aws_v1", "PriceList": [_product(t, "us-east-1", "Shared", f"{1 + n / 10:.4f}")],
                 "NextToken": "page-2"}
        page2 = {"FormatVersion": "aws_v1",
                 "PriceList": [_product(t, "us-east-1", "Dedicated", f"{1.1 + n / 10:.4f}")] if n % 2 else []}
        stub.add_response("get_products", page1, {"ServiceCode": "AmazonEC2", "Filters": _filters(t, "us-east-1"),
                                                  "FormatVersion": "aws_v1", "MaxResults": 100})
        stub.add_response("get_products", page2, {"ServiceCode": "AmazonEC2", "Filters": _filters(t, "us-east-1"),
                                                  "FormatVersion": "aws_v1", "MaxResults": 100,
                                                  "NextToken": "page-2"})

    def factory(service: str, region: str) -> Any:
        return pricing if service == "pricing" else session.client(service, region_name=region,
                                                                   endpoint_url=moto_url)

    out = tmp_path / "overlay.yaml"
    # an existing overlay: its on-prem rows and other regions' rows are kept, its stale us-east-1 row replaced
    out.write_text(yaml.safe_dump({
        "onprem_servers": [{"sku": "l40s-4gpu-server", "accelerator": "l40s", "accelerator_count": 4,
                            "capex_usd": 60000, "power_w": 1800, "available": 2, "source": "our inventory"}],
        "instances": [
            {"provider": "aws", "instance": "g6e.xlarge", "region": "us-east-1", "accelerator": "l40s",
             "accelerator_count": 1, "vcpu": 4, "ram_gib": 32, "on_demand_usd_per_h": 99.0, "source": "stale"},
            {"provider": "aws", "instance": "g6e.xlarge", "region": "eu-west-1", "accelerator": "l40s",
             "accelerator_count": 1, "vcpu": 4, "ram_gib": 32, "on_demand_usd_per_h": 2.1, "source": "negotiated"},
        ]}))
    with stub:
        path = refresh_catalog("aws", regions=["us-east-1"], out_path=out, client_factory=factory, catalog=catalog)
    stub.assert_no_pending_responses()
    assert path == out
    text = out.read_text()
    data = yaml.safe_load(text)
    rows = {(r["instance"], r["region"]): Instance.model_validate(r) for r in data["instances"]}
    priced = [t for t in expected if t != "g5.48xlarge"]
    assert sorted(t for t, r in rows if r == "us-east-1") == priced
    g6e = rows[("g6e.xlarge", "us-east-1")]
    n = expected.index("g6e.xlarge")
    assert g6e.accelerator == "l40s" and g6e.accelerator_count == 1 and g6e.vcpu == 4 and g6e.ram_gib == 32
    assert g6e.on_demand_usd_per_h == pytest.approx(1 + n / 10)
    assert g6e.dedicated is bool(n % 2)
    assert g6e.spot_usd_per_h == pytest.approx(1e-5)  # moto's fixed spot price history
    assert g6e.network_gbps == 20.0  # "Up to 20 Gigabit"
    p5 = rows[("p5.48xlarge", "us-east-1")]
    assert p5.accelerator == "h100-sxm" and p5.accelerator_count == 8 and p5.network_gbps == 3200
    assert rows[("g6e.xlarge", "eu-west-1")].on_demand_usd_per_h == 2.1  # other region kept
    assert data["onprem_servers"][0]["sku"] == "l40s-4gpu-server"  # other sections kept
    assert "g5.48xlarge in us-east-1: no Linux on-demand price" in text
    assert "GPUs the catalog does not know" in text and unknown[0] in text
    assert "accelerators" not in data  # no invented datasheet numbers
    catalog.with_overlay(data, source=str(out))  # loads with the catalog's own checks


def test_refresh_adds_a_region_row_for_a_new_region(tmp_path: Path, moto_url: str) -> None:
    reset_moto(moto_url)
    session = boto3.Session(**CREDS)
    pricing = session.client("pricing", region_name="us-east-1")
    stub = Stubber(pricing)
    # only the L40S machines of eu-central-1, with no prices: every row is skipped, but the region row is made
    catalog = small_catalog()
    accs = {"l40s": catalog.accelerators["l40s"]}
    import dataclasses

    cat = dataclasses.replace(catalog, accelerators=accs)
    ec2 = session.client("ec2", region_name="eu-central-1", endpoint_url=moto_url)
    offered = {o["InstanceType"] for p in ec2.get_paginator("describe_instance_type_offerings")
               .paginate(LocationType="region") for o in p["InstanceTypeOfferings"]}
    l40s = sorted(t["InstanceType"] for p in ec2.get_paginator("describe_instance_types").paginate()
                  for t in p["InstanceTypes"] if t.get("GpuInfo", {}).get("Gpus")
                  and t["GpuInfo"]["Gpus"][0]["Name"] == "L40S" and t["InstanceType"] in offered)
    for t in l40s:
        stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                           "PriceList": [_product(t, "eu-central-1", "Shared", "2.5")]})
    out = tmp_path / "o.yaml"
    with stub:
        refresh_catalog(regions=["eu-central-1"], out_path=out, catalog=cat,
                        client_factory=lambda s, r: pricing if s == "pricing" else session.client(
                            s, region_name=r, endpoint_url=moto_url))
    data = yaml.safe_load(out.read_text())
    assert data["regions"] == [{"provider": "aws", "region": "eu-central-1", "geography": "eu",
                                "zone": "eu-central", "source": data["regions"][0]["source"]}]
    assert len(data["instances"]) == len(l40s) > 0


def test_refresh_rejects_other_providers(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="supports provider 'aws'"):
        refresh_catalog("gcp", regions=["us-central1"], out_path=tmp_path / "x.yaml")


@pytest.mark.parametrize(("text", "gbps"), [("Up to 25 Gigabit", 25), ("4x 100 Gigabit", 400),
                                            ("3200 Gigabit", 3200), ("Moderate", None)])
def test_network(text: str, gbps: float | None) -> None:
    assert parse_network_gbps(text) == gbps


def test_match_accelerator_uses_name_and_memory() -> None:
    accs = small_catalog().accelerators
    assert match_accelerator(accs, {"Name": "L4", "MemoryInfo": {"SizeInMiB": 22888}}) == "l4"
    assert match_accelerator(accs, {"Name": "L40S", "MemoryInfo": {"SizeInMiB": 45776}}) == "l40s"
    assert match_accelerator(accs, {"Name": "H100", "MemoryInfo": {"SizeInMiB": 81559}}) == "h100-sxm"
    assert match_accelerator(accs, {"Name": "H100", "MemoryInfo": {"SizeInMiB": 40960}}) is None  # other variant
    assert match_accelerator(accs, {"Name": "T4", "MemoryInfo": {"SizeInMiB": 15360}}) is None
