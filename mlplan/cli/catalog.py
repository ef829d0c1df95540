"""``mlplan catalog``: list and filter the hardware catalog.

``mlplan catalog refresh --provider aws|azure`` updates an overlay from the provider's price sources;
``mlplan catalog import skypilot DIR --out OVERLAY.yaml`` turns SkyPilot's public catalog CSVs into an overlay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

Section = Literal["accelerators", "edge", "instances", "onprem", "regions", "services"]

catalog_app = typer.Typer(help="List and filter the hardware catalog; refresh or import a catalog overlay.")
import_app = typer.Typer(help="Turn another tool's public price catalog into a catalog overlay.")
catalog_app.add_typer(import_app, name="import")


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.callback(invoke_without_command=True)
def catalog_cmd(
    ctx: typer.Context,
    section: Annotated[Section, typer.Option("--kind", help="which table")] = "instances",
    provider: Annotated[str | None, typer.Option(help="aws, gcp, azure (services: also onprem, edge)")] = None,
    region: Annotated[str | None, typer.Option(help="region id or geography (eu, us, ...)")] = None,
    accelerator: Annotated[str | None, typer.Option(help="accelerator id, e.g. h100-sxm")] = None,
    max_price: Annotated[float | None, typer.Option(help="instances: on-demand $/h at most")] = None,
    overlay: Annotated[Path | None, typer.Option("--catalog", help="catalog overlay YAML")] = None,
    models: Annotated[bool, typer.Option("--models", help="list the model presets instead")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the catalog (instances by default), filtered; --models lists the model presets."""
    if ctx.invoked_subcommand is not None:
        return
    from planner.catalog import Catalog

    cat = Catalog.load(overlay)
    rows: list[dict[str, Any]]
    if models:
        from planner.models.presets import all_presets

        rows = [{"name": n, "kind": a.kind, "family": a.family, "params": a.params, "active_params": a.active_params,
                 "source": a.source} for n, a in all_presets().items()]
        section = "models"  # type: ignore[assignment]
    else:
        rows = _rows(cat, section)
    if provider:
        rows = [r for r in rows if r.get("provider") == provider]
    if region:
        geo: dict[tuple[str, str], str] = {(r.provider, r.region): r.geography for r in cat.regions.values()}
        rows = [r for r in rows if region in (r.get("region"), geo.get((str(r.get("provider")), str(r.get("region")))))]
    if accelerator:
        rows = [r for r in rows if accelerator in (r.get("accelerator"), r.get("id"))]
    if max_price is not None:
        rows = [r for r in rows if float(r.get("on_demand_usd_per_h", 0)) <= max_price]
    if json_out:
        print(json.dumps({"version": cat.version, "kind": section, "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"catalog {cat.version}: {section} ({len(rows)})", title_justify="left")
    hidden = ("interconnect", "tflops", "sparse_tflops", "tops", "spot_observed", "spot_interruption_observed")
    cols = [k for k in (rows[0] if rows else {}) if k not in hidden and not k.endswith("source")]
    for k in cols:
        t.add_column(k, overflow="fold")
    for r in rows:
        t.add_row(*[str(r[k]) for k in cols])
    Console(width=200).print(t)


def _rows(cat: Any, section: str) -> list[dict[str, Any]]:
    if section == "accelerators":
        return [a.model_dump(mode="json") for a in sorted(cat.accelerators.values(), key=lambda a: a.id)]
    if section == "edge":
        return [d.model_dump(mode="json") for d in sorted(cat.edge_devices.values(), key=lambda d: d.id)]
    if section == "onprem":
        return [s.model_dump(mode="json") for s in cat.onprem_servers]
    if section == "regions":
        return [r.model_dump(mode="json") for r in cat.regions.values()]
    if section == "services":
        return [p.model_dump(mode="json") for p in sorted(cat.services.values(), key=lambda p: p.key)]
    return [i.model_dump(mode="json") for i in sorted(cat.instances, key=lambda i: (i.provider, i.region,
                                                                                      i.on_demand_usd_per_h))]


@catalog_app.command("refresh")
def refresh_cmd(
    provider: Annotated[Literal["aws", "azure"], typer.Option(
        help="aws: your account's EC2 + Pricing APIs; azure: the public Azure Retail Prices API (no account)")] = "aws",
    region: Annotated[list[str] | None, typer.Option(
        help="regions to read (repeatable; default us-east-1 on aws, eastus on azure)")] = None,
    out: Annotated[Path, typer.Option(help="overlay file to write (updated if it exists)")] = Path(
        "catalog-overlay.yaml"),
    endpoint_url: Annotated[str | None, typer.Option(help="aws: endpoint (e.g. a moto server for testing)")] = None,
    timeout: Annotated[float, typer.Option(help="azure: seconds per HTTP request", min=1)] = 30.0,
) -> None:
    """Update a catalog overlay with current prices: AWS from the account, Azure from the public price API."""
    if provider == "azure":
        from stacks.deploy.azure_catalog import refresh_catalog_azure

        if endpoint_url is not None:
            from planner.errors import InputError

            raise InputError("--endpoint-url is for --provider aws", fix="drop --endpoint-url")
        path = refresh_catalog_azure(regions=region or ["eastus"], out_path=out, timeout_s=timeout)
        print(f"wrote {path}")
        return
    from stacks.deploy.aws_catalog import refresh_catalog

    factory = None
    if endpoint_url is not None:
        import boto3

        def factory(service: str, region_name: str) -> Any:
            return boto3.client(service, region_name=region_name, endpoint_url=endpoint_url)

    path = refresh_catalog(provider, regions=region or ["us-east-1"], out_path=out, client_factory=factory)
    print(f"wrote {path}")


@import_app.command("skypilot")
def import_skypilot_cmd(
    folder: Annotated[Path, typer.Argument(help="SkyPilot catalog folder holding <cloud>/vms.csv (e.g. catalogs/v8)")],
    out: Annotated[Path, typer.Option(help="overlay file to write")] = Path("catalog-overlay.yaml"),
    cloud: Annotated[list[str] | None, typer.Option(help="aws, gcp, azure (repeatable; default: every file found)")]
    = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="NAME=ACCELERATOR_ID for a GPU name (or instance "
                                                               "type) the importer does not know (repeatable)")]
    = None,
    observed: Annotated[str | None, typer.Option(help="date the CSVs were taken, YYYY-MM-DD (default: today)")]
    = None,
    label: Annotated[str | None, typer.Option(help="where the CSVs come from, e.g. 'skypilot-catalog @abc123'")]
    = None,
    overlay: Annotated[Path | None, typer.Option("--catalog", help="catalog overlay the rows build on (its "
                                                                   "accelerators and regions)")] = None,
) -> None:
    """Write a catalog overlay from SkyPilot's public catalog CSVs; GPUs it cannot name are listed for --map."""
    from datetime import date

    import yaml

    from planner.catalog import Catalog
    from planner.catalog.skypilot import CLOUDS, import_skypilot
    from planner.errors import CatalogError, InputError

    clouds = tuple(cloud or CLOUDS)
    bad = [c for c in clouds if c not in CLOUDS]
    if bad:
        raise InputError(f"--cloud {bad[0]!r} is not one of {', '.join(CLOUDS)}", fix="use aws, gcp or azure")
    mapping: dict[str, str] = {}
    for item in map_ or []:
        name, sep, acc = item.partition("=")
        if not sep or not name.strip() or not acc.strip():
            raise InputError(f"--map {item!r} is not NAME=ACCELERATOR_ID",
                             fix="e.g. --map RTXPRO6000=rtx-pro-6000-blackwell")
        mapping[name.strip()] = acc.strip()
    try:
        day = date.fromisoformat(observed) if observed else date.today()
    except ValueError:
        raise InputError(f"--observed {observed!r} is not a date", fix="use YYYY-MM-DD") from None
    cat = Catalog.load(overlay)
    result = import_skypilot(folder, accelerators=cat.accelerators, mapping=mapping, clouds=clouds, observed=day,
                             label=label, regions=set(cat.regions), base_rows=cat.instances)
    for line in result.problems:
        print(f"skipped: {line}")
    if result.unknown:
        print("GPU names the catalog does not know (map each with --map NAME=ACCELERATOR_ID; no rows written for "
              "them):")
        for key, instances in sorted(result.unknown.items()):
            shown = ", ".join(sorted(instances)[:6]) + (" ..." if len(instances) > 6 else "")
            print(f"  {key}: {len(instances)} instance type(s): {shown}")
    if not result.rows:
        raise CatalogError(f"{folder}: no importable rows (problems: {len(result.problems)}, unknown GPU names: "
                           f"{len(result.unknown)})", fix="check the folder layout, or map the GPU names with --map")
    data = result.overlay()
    cat.with_overlay(data, source=str(out))  # the overlay must load: same checks as --catalog
    header = [f"# mlplan catalog overlay from SkyPilot's catalog CSVs in {folder} "
              f"({label or 'origin not given'}), taken {day}: {len(result.rows)} instance rows.",
              "# Load it with `mlplan recommend SPEC --catalog FILE` or `mlplan catalog --catalog FILE`."]
    header += [f"# unknown GPU name {k}: {', '.join(sorted(v))}" for k, v in sorted(result.unknown.items())]
    header += [f"# skipped: {p}" for p in result.problems] + [f"# note: {n}" for n in result.notes]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}: {len(result.rows)} instance rows, {len(result.problems)} skipped, "
          f"{len(result.unknown)} unknown GPU names, {len(result.notes)} notes")
