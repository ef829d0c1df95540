"""``mlplan catalog import skypilot``: SkyPilot's public catalog CSVs -> a catalog overlay.

Small CSVs in SkyPilot's layout (columns as in skypilot-org/skypilot-catalog catalogs/v8) exercise each rule; the
fixture tests/data/skypilot holds real rows (see its README) and is checked end to end, including the comparison
benchmark."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from mlplan.cli import main
from planner.catalog import Catalog
from planner.catalog.skypilot import gcp_attachment, import_skypilot
from planner.errors import CatalogError

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "skypilot"
AWS_HEAD = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
            "AvailabilityZone")
GCP_HEAD = ("InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,"
            "SpotPrice")
AZURE_HEAD = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


def folder(tmp_path: Path, **clouds: list[str]) -> Path:
    heads = {"aws": AWS_HEAD, "gcp": GCP_HEAD, "azure": AZURE_HEAD}
    for cloud, lines in clouds.items():
        (tmp_path / cloud).mkdir(parents=True, exist_ok=True)
        (tmp_path / cloud / "vms.csv").write_text("\n".join([heads[cloud], *lines]) + "\n")
    return tmp_path


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------------------------- AWS / Azure
def test_aws_rows_one_per_region_with_the_lowest_spot_over_zones(tmp_path: Path, cat: Catalog) -> None:
    # g5.xlarge us-east-1 list price 1.006 (AWS on-demand page); spot per zone differs
    d = folder(tmp_path, aws=[
        "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,0.4511,us-east-1,use1-az1",
        "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,0.4246,us-east-1,use1-az2",
        "g5.xlarge,A10G,1.0,4.0,16.0,,1.006,,us-east-1,use1-az4",
    ])
    res = import_skypilot(d, accelerators=cat.accelerators, observed=date(2026, 11, 30), label="test")
    assert res.problems == [] and res.unknown == {}
    [row] = res.rows
    assert (row.instance, row.region, row.accelerator, row.accelerator_count) == ("g5.xlarge", "us-east-1", "a10g", 1)
    assert (row.on_demand_usd_per_h, row.spot_usd_per_h) == (1.006, 0.4246)
    assert row.price_observed == row.spot_observed == date(2026, 11, 30)
    assert row.price_source and "aws/vms.csv (test)" in row.price_source and "lines 2, 3, 4" in row.price_source


def test_malformed_rows_are_one_clear_line_each(tmp_path: Path, cat: Catalog) -> None:
    d = folder(tmp_path, aws=[
        "p5e.48xlarge,H200,8.0,192.0,2048.0,,,,us-east-2,use2-az1",  # real: no on-demand price (capacity blocks)
        "g6f.2xlarge,L4,0.25,8.0,32.0,,0.49,0.2,us-east-1,use1-az1",  # a fractional GPU
        "g5.xlarge,A10G,one,4.0,16.0,,1.006,0.4,us-east-1,use1-az1",  # not a number
        "g6.xlarge,L4,1.0,4.0,16.0,,nan,0.3,us-east-1,use1-az1",  # NaN
        ",L4,1.0,4.0,16.0,,0.8,0.3,us-east-1,use1-az1",  # no instance type
        "g6.xlarge,L4,1.0,4.0,16.0,,0.8048,0.3,us-east-1,use1-az1",
        "g6.xlarge,L4,1.0,4.0,16.0,,0.9,0.3,us-east-1,use1-az2",  # disagrees with the line above
    ])
    res = import_skypilot(d, accelerators=cat.accelerators)
    path = d / "aws" / "vms.csv"
    assert len(res.problems) == 5, res.problems
    assert res.problems[0] == (f"{path}:2: p5e.48xlarge in us-east-2 has no on-demand price (''): no row (priced by "
                               "reservation or capacity block only?)")
    assert res.problems[1].startswith(f"{path}:4: could not convert string to float: 'one'")
    assert res.problems[2] == f"{path}:5: 'nan' is not a finite number"
    assert res.problems[3] == f"{path}:6: empty InstanceType or Region"
    assert res.problems[4] == f"{path}:8: g6.xlarge in us-east-1: on-demand 0.9 differs from 0.8048 (line 7); the " \
                              "first is kept"
    assert all("\n" not in p for p in res.problems)
    assert res.notes == [f"{path}:3: g6f.2xlarge has '0.25' GPUs (a fractional or shared GPU): skipped"]
    assert [(r.instance, r.on_demand_usd_per_h) for r in res.rows] == [("g6.xlarge", 0.8048)]


def test_a_file_that_is_not_a_skypilot_csv_is_a_catalog_error(tmp_path: Path, cat: Catalog) -> None:
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "vms.csv").write_text("InstanceType,Price\ng5.xlarge,1.0\n")
    with pytest.raises(CatalogError, match=r"not a SkyPilot vms.csv, missing column 'AcceleratorName'"):
        import_skypilot(tmp_path, accelerators=cat.accelerators)
    with pytest.raises(CatalogError, match=r"no <cloud>/vms.csv found"):
        import_skypilot(tmp_path, accelerators=cat.accelerators, clouds=("gcp",))
    with pytest.raises(CatalogError, match=r"not a folder"):
        import_skypilot(tmp_path / "nope", accelerators=cat.accelerators)


def test_unknown_gpu_names_are_listed_and_mappable(tmp_path: Path, cat: Catalog) -> None:
    d = folder(tmp_path, aws=["g6f.xlarge,L4,1.0,4.0,16.0,,0.8,0.3,us-east-1,use1-az1",
                              "p4x.8xlarge,H20,8.0,96.0,1024.0,,40.0,12.0,us-east-1,use1-az1"])
    res = import_skypilot(d, accelerators=cat.accelerators)
    assert {k: sorted(v) for k, v in res.unknown.items()} == {"aws:H20": ["p4x.8xlarge"]}
    assert [r.instance for r in res.rows] == ["g6f.xlarge"]
    mapped = import_skypilot(d, accelerators=cat.accelerators, mapping={"H20": "h100-sxm"})
    assert mapped.unknown == {} and {r.instance for r in mapped.rows} == {"g6f.xlarge", "p4x.8xlarge"}
    with pytest.raises(CatalogError, match=r"mapping H20=h20: unknown accelerator 'h20'"):
        import_skypilot(d, accelerators=cat.accelerators, mapping={"H20": "h20"})


def test_azure_count_fix_and_instance_specific_accelerators(tmp_path: Path, cat: Catalog) -> None:
    # real SkyPilot rows (coopslarhette/skypilot-catalog azure/vms.csv): ND H100 v5 is listed with 12 GPUs
    d = folder(tmp_path, azure=[
        "Standard_ND96isr_H100_v5,H100,12,96.0,1900,H100,98.32,,eastus,V2",
        "Standard_NC24ads_A100_v4,A100-80GB,1,24.0,220,A100-80GB,3.673,0.444433,eastus,V2",
        "Standard_NC40ads_H100_v5,H100,1,40.0,320,H100,6.98,,eastus,V2",
    ])
    res = import_skypilot(d, accelerators=cat.accelerators)
    rows = {r.instance: r for r in res.rows}
    assert rows["Standard_ND96isr_H100_v5"].accelerator_count == 8
    assert any("AcceleratorCount 12 corrected to 8" in n for n in res.notes)
    assert rows["Standard_NC24ads_A100_v4"].accelerator == "a100-80gb-pcie"  # the PCIe card, not SXM
    assert rows["Standard_NC40ads_H100_v5"].accelerator == "h100-nvl"
    assert rows["Standard_NC40ads_H100_v5"].spot_usd_per_h is None


def test_regions_the_catalog_lacks_are_left_out_with_one_note_and_shapes_adopted(tmp_path: Path,
                                                                                 cat: Catalog) -> None:
    d = folder(tmp_path, aws=["p5.48xlarge,H100,8.0,192.0,2048.0,,55.04,17.6,us-east-1,use1-az1",
                              "p5.48xlarge,H100,8.0,192.0,2048.0,,60.0,20.0,mx-central-1,mxc1-az1",
                              "g6.xlarge,L4,1.0,4.0,16.0,,0.9,0.3,mx-central-1,mxc1-az1"])
    res = import_skypilot(d, accelerators=cat.accelerators, regions=set(cat.regions), base_rows=cat.instances)
    assert [r.region for r in res.rows] == ["us-east-1"]
    assert res.notes == ["aws region mx-central-1: 2 row(s) left out, the catalog has no regions row for it (add "
                         "one with its geography and RTT zone to the overlay, then import again)"]
    p5 = res.rows[0]
    assert (p5.network_gbps, p5.dedicated) == (3200, True)  # from the catalog's p5.48xlarge row


# -------------------------------------------------------------------------------------------------------- GCP
def test_gcp_vm_and_accelerator_rows_are_combined(tmp_path: Path, cat: Catalog) -> None:
    # real rows (skypilot-org/skypilot-catalog gcp/vms.csv @006059e0): the a3-ultragpu-8g VM part and H200 x8 part
    d = folder(tmp_path, gcp=[
        "a3-ultragpu-8g,224.0,2952.0,,,,us-east4,us-east4-b,12.266,2.80034",
        "a3-ultragpu-8g,224.0,2952.0,,,,us-west1,us-west1-c,12.266,3.74713",
        "g2-standard-48,48.0,192.0,,,,us-central1,us-central1-a,2.0,0.8",
        ",,,H200,8,{'Gpus': []},us-east4,us-east4-b,74.49392,29.2536",
        ",,,L4,4,{'Gpus': []},us-central1,us-central1-a,2.24016,0.8924",
    ])
    res = import_skypilot(d, accelerators=cat.accelerators)
    rows = {(r.instance, r.region): r for r in res.rows}
    a3 = rows[("a3-ultragpu-8g", "us-east4")]
    assert (a3.accelerator, a3.accelerator_count, a3.vcpu, a3.ram_gib) == ("h200", 8, 224, 2952.0)
    assert a3.on_demand_usd_per_h == pytest.approx(12.266 + 74.49392)
    assert a3.spot_usd_per_h == pytest.approx(2.80034 + 29.2536)
    assert a3.price_source and "VM row + accelerator row" in a3.price_source
    g2 = rows[("g2-standard-48", "us-central1")]
    assert (g2.accelerator, g2.accelerator_count, g2.on_demand_usd_per_h) == ("l4", 4, pytest.approx(4.24016))
    path = d / "gcp" / "vms.csv"
    assert res.problems == [f"{path}:3: a3-ultragpu-8g in us-west1: no usable H200 x8 accelerator row to add to the "
                            "VM price, no row"]


def test_gcp_zero_vm_prices_discounted_gpu_skus_and_tpu_placeholders(tmp_path: Path, cat: Catalog) -> None:
    d = folder(tmp_path, gcp=[  # real rows of the same SkyPilot file
        "a4-highgpu-8g,224.0,3968.0,,,,us-central1,us-central1-b,0.0,0.0",
        "a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-a,9.46006,2.88933",
        "a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,9.46006,2.15966",
        ",,,B200,8,{'Gpus': []},us-central1,us-central1-b,90.216,32.6064",
        ",,,H100,8,{'Gpus': []},us-central1,us-central1-a,33.60609,23.9408",
        ",,,H100,8,{'Gpus': []},us-east4,us-east4-a,78.37241,17.8848",
        ",,,tpu-v6e-1,1,tpu-v6e-1,us-central1,us-central1-a,2.7,0.54421",
        ",,,tpu-v6e-1,1,tpu-v6e-1,asia-east1,asia-east1-c,700.0,700.0",
        ",,,tpu-v6e-8,1,tpu-v6e-8,us-central1,us-central1-a,21.6,4.35366",
        ",,,tpu-v6e-16,1,tpu-v6e-16,us-central1,us-central1-a,43.2,8.7",
    ])
    res = import_skypilot(d, accelerators=cat.accelerators)
    path = d / "gcp" / "vms.csv"
    assert res.problems == [
        f"{path}:6: H100 x8 in us-central1-a at $4.201/GPU-h is 43% of the same GPU's $9.797/GPU-h in us-east4: not "
        "an on-demand list price (a discounted SKU?), not used",
        f"{path}:2: a4-highgpu-8g in us-central1 has VM price '0.0': not priced, no row",
        f"{path}:3: a3-highgpu-8g in us-central1: no usable H100 x8 accelerator row to add to the VM price, no row",
    ]
    assert any(n.startswith(f"{path}:9: tpu-v6e-1 in asia-east1 at $700/h is") and "placeholder" in n
               for n in res.notes)
    assert f"{path}:11: tpu-v6e-16 is a multi-host slice: not a single catalog row, skipped" in res.notes
    rows = {(r.instance, r.region): r for r in res.rows}
    assert rows[("a3-highgpu-8g", "us-east4")].on_demand_usd_per_h == pytest.approx(87.83247)
    tpu = rows[("tpu-v6e-8", "us-central1")]
    assert (tpu.accelerator, tpu.accelerator_count, tpu.on_demand_usd_per_h) == ("tpu-v6e", 8, 21.6)
    kept = import_skypilot(d, accelerators=cat.accelerators, discount_factor=0.0)
    assert ("a3-highgpu-8g", "us-central1") in {(r.instance, r.region) for r in kept.rows}


@pytest.mark.parametrize(("instance", "attach"), [
    ("a3-highgpu-8g", ("H100", 8)), ("a3-megagpu-8g", ("H100-MEGA", 8)), ("a3-ultragpu-8g", ("H200", 8)),
    ("a4-highgpu-8g", ("B200", 8)), ("a2-ultragpu-4g", ("A100-80GB", 4)), ("g2-standard-96", ("L4", 8)),
    ("g2-standard-24", ("L4", 2)), ("n2-standard-8", None),
])
def test_gcp_machine_types_attach_the_documented_gpus(instance: str, attach: tuple[str, int] | None) -> None:
    """Counts from https://cloud.google.com/compute/docs/gpus (A3/A4/A2/G2 machine types)."""
    assert gcp_attachment(instance) == attach


# --------------------------------------------------------------------------------------- fixture of real rows
def test_the_fixture_of_real_rows_imports(cat: Catalog) -> None:
    res = import_skypilot(FIXTURE, accelerators=cat.accelerators)
    assert res.unknown == {}
    assert {r.provider for r in res.rows} == {"aws", "gcp", "azure"}
    got = {r.key: r.on_demand_usd_per_h for r in res.rows}
    # list prices from the providers' pages, independent of SkyPilot
    assert got[("aws", "p5.48xlarge", "us-east-1")] == 55.04
    assert got[("aws", "g6e.xlarge", "us-east-1")] == 1.861
    assert got[("azure", "Standard_NC24ads_A100_v4", "eastus")] == 3.673
    assert ("aws", "p5e.48xlarge", "us-east-2") not in got and ("aws", "trn2.48xlarge", "us-east-2") not in got
    assert ("gcp", "a3-highgpu-8g", "us-central1") not in got  # discounted GPU SKU rejected


def test_the_embedded_catalog_agrees_with_the_public_rows(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("catalog_vs_public", ROOT / "benchmarks" / "catalog_vs_public.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "| aws | 228 | 228 |" in out and "| azure | 32 | 32 |" in out
    assert "gcp | a3-highgpu-8g | us-central1 | 88.2454 | 43.0662 | 2.049 | public GPU part is a discounted SKU" in out


def test_the_benchmark_fails_when_an_aws_row_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("catalog_vs_public", ROOT / "benchmarks" / "catalog_vs_public.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d = folder(tmp_path, aws=["g5.xlarge,A10G,1.0,4.0,16.0,,1.10,0.4,us-east-1,use1-az1"])
    assert bench.main([str(d)]) == 1
    out = capsys.readouterr().out
    assert "| aws | g5.xlarge | us-east-1 | 1.006 | 1.1 | 0.915 |" in out and "1 AWS/Azure rows differ" in out


# ---------------------------------------------------------------------------------------------------- the CLI
def test_cli_writes_an_overlay_that_recommend_and_catalog_load(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "overlay.yaml"
    code, stdout, err = cli(["catalog", "import", "skypilot", str(FIXTURE), "--out", str(out), "--observed",
                             "2026-11-30", "--label", "fixture"], capsys)
    assert code == 0, err
    assert "skipped: " in stdout and stdout.strip().endswith("notes")
    assert "wrote " in stdout and "289 instance rows" in stdout
    text = out.read_text()
    assert text.startswith("# mlplan catalog overlay from SkyPilot's catalog CSVs")
    assert "# skipped: " in text and "# note: " in text
    over = Catalog.load(out)
    assert over.version.endswith("+overlay")
    code, stdout, err = cli(["catalog", "--catalog", str(out), "--provider", "gcp", "--region", "us-east4", "--json"],
                            capsys)
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    assert {r["instance"] for r in rows} >= {"a3-highgpu-8g", "a3-ultragpu-8g", "tpu-v6e-8"}
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {preset: llama-3-8b}\nworkload: {kind: inference, requests_per_s: 1}\n"
                    "constraints: {placements: [cloud]}\n")
    code, stdout, err = cli(["recommend", str(spec), "--catalog", str(out), "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["plans"]


def test_cli_lists_unknown_gpu_names_and_fails_cleanly_without_rows(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    d = folder(tmp_path / "in", aws=["p4x.8xlarge,H20,8.0,96.0,1024.0,,40.0,12.0,us-east-1,use1-az1"])
    code, stdout, err = cli(["catalog", "import", "skypilot", str(d), "--out", str(tmp_path / "o.yaml")], capsys)
    assert code == 2
    assert "aws:H20: 1 instance type(s): p4x.8xlarge" in stdout
    assert err.startswith("mlplan: error: ") and err.count("\n") == 1 and "--map" in err
    assert not (tmp_path / "o.yaml").exists()
    code, stdout, err = cli(["catalog", "import", "skypilot", str(d), "--out", str(tmp_path / "o.yaml"),
                             "--map", "H20=h100-sxm"], capsys)
    assert code == 0, err
    rows = yaml.safe_load((tmp_path / "o.yaml").read_text())["instances"]
    assert [(r["instance"], r["accelerator"]) for r in rows] == [("p4x.8xlarge", "h100-sxm")]
    for bad, msg in ((["--map", "H20"], "is not NAME=ACCELERATOR_ID"), (["--cloud", "oci"], "is not one of"),
                     (["--observed", "yesterday"], "is not a date"), (["--map", "H20=h20"], "unknown accelerator")):
        code, _, err = cli(["catalog", "import", "skypilot", str(d), "--out", str(tmp_path / "p.yaml"), *bad], capsys)
        assert code == 2 and msg in err and "internal error" not in err, (bad, err)
