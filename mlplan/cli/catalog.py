"""``mlplan catalog``: list and filter the hardware catalog; ``mlplan catalog refresh`` updates an overlay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

Section = Literal["accelerators", "edge", "instances", "onprem", "regions"]

catalog_app = typer.Typer(help="List and filter the hardware catalog; refresh an overlay from a cloud account.")


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.callback(invoke_without_command=True)
def catalog_cmd(
    ctx: typer.Context,
    section: Annotated[Section, typer.Option("--kind", help="which table")] = "instances",
    provider: Annotated[str | None, typer.Option(help="aws, gcp, azure")] = None,
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
    cols = [k for k in (rows[0] if rows else {}) if k not in ("source", "interconnect", "tflops", "tops")]
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
    return [i.model_dump(mode="json") for i in sorted(cat.instances, key=lambda i: (i.provider, i.region,
                                                                                      i.on_demand_usd_per_h))]


@catalog_app.command("refresh")
def refresh_cmd(
    provider: Annotated[Literal["aws"], typer.Option(help="only aws is supported")] = "aws",
    region: Annotated[list[str] | None, typer.Option(help="regions to read (repeatable)")] = None,
    out: Annotated[Path, typer.Option(help="overlay file to write")] = Path("catalog-overlay.yaml"),
    endpoint_url: Annotated[str | None, typer.Option(help="AWS endpoint (e.g. a moto server for testing)")] = None,
) -> None:
    """Update a catalog overlay from the AWS account: GPU instance types (EC2) and prices (Pricing API)."""
    from stacks.deploy.aws_catalog import refresh_catalog

    factory = None
    if endpoint_url is not None:
        import boto3

        def factory(service: str, region_name: str) -> Any:
            return boto3.client(service, region_name=region_name, endpoint_url=endpoint_url)

    path = refresh_catalog(provider, regions=region or ["us-east-1"], out_path=out, client_factory=factory)
    print(f"wrote {path}")
