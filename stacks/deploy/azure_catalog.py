"""``mlplan catalog refresh --provider azure``: Azure instance prices from the public Azure Retail Prices API.

The API (https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices) needs no account:
``GET https://prices.azure.com/api/retail/prices?$filter=...`` returns at most 100 ``Items`` per page and a
``NextPageLink`` to the next page (``null`` on the last). For each region the refresh asks for the Virtual Machines
consumption meters of the GPU sizes the catalog knows and keeps, per size:

- the Linux pay-as-you-go price: ``type`` Consumption, a ``productName`` without "Windows", a ``skuName`` without
  "Spot" or "Low Priority", ``unitOfMeasure`` "1 Hour", USD;
- the Linux Spot price: the same, with "Spot" in ``skuName``.

The API tells prices, not shapes: GPU model, count, vCPU, RAM and network come from the catalog's row of the same
size (any region). Sizes the catalog does not know are listed in the file's header. HTTP goes through
:mod:`stacks.deploy.http_seam` (tests replay recorded answers); errors are one line, exit 4 (network, HTTP 429)
or 5 (HTTP 5xx, a body that is not the expected JSON).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from planner.catalog.schema import Instance
from planner.errors import CatalogError, InputError
from stacks.deploy.http_seam import Fetch, PriceSourceError, get_json, urllib_fetch

API = "https://prices.azure.com/api/retail/prices"
API_DOC = "https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices"
MAX_PAGES = 50
SKUS_PER_QUERY = 12  # keeps the $filter URL short


def price_filter(region: str, skus: Iterable[str]) -> str:
    names = " or ".join(f"armSkuName eq '{s}'" for s in sorted(skus))
    return (f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{region}' "
            f"and ({names})")


def query_url(region: str, skus: Iterable[str]) -> str:
    return API + "?" + urllib.parse.urlencode({"$filter": price_filter(region, skus)}, quote_via=urllib.parse.quote)


def fetch_items(fetch: Fetch, url: str, *, timeout_s: float = 30.0, max_pages: int = MAX_PAGES) -> list[dict[str, Any]]:
    """Every item of a query, following ``NextPageLink`` (at most ``max_pages`` pages)."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    for page in range(1, max_pages + 1):
        assert next_url is not None
        what = f"Azure Retail Prices API page {page}"
        body = get_json(fetch, next_url, timeout_s=timeout_s, what=what)
        if not isinstance(body, dict) or not isinstance(body.get("Items"), list):
            raise PriceSourceError(f"{what}: the answer has no 'Items' list (keys: "
                                   f"{', '.join(sorted(body)) if isinstance(body, dict) else type(body).__name__})",
                                   fix=f"check the API's response format at {API_DOC}")
        items.extend(i for i in body["Items"] if isinstance(i, dict))
        link = body.get("NextPageLink")
        if not link:
            return items
        if not isinstance(link, str) or not link.startswith(("https://prices.azure.com/", "https://prices.azure.com:443/")):
            raise PriceSourceError(f"{what}: NextPageLink {str(link)[:80]!r} does not point at prices.azure.com",
                                   fix="retry later; do not follow links to other hosts")
        next_url = link
    raise PriceSourceError(f"Azure Retail Prices API: more than {max_pages} pages for one query",
                           fix="refresh fewer regions or sizes at a time")


def linux_prices(items: Iterable[Mapping[str, Any]],
                 region: str | None = None) -> dict[str, tuple[float | None, float | None, str]]:
    """``armSkuName -> (Linux on-demand USD/h, Linux spot USD/h, effectiveStartDate)`` from consumption items.

    Kept: ``type`` Consumption, USD, "1 Hour", the first price tier, the primary meter region, ``armRegionName`` =
    ``region`` (when given). Left out: Windows products, Low Priority meters, DevTest, Reservation, other currencies.
    """
    out: dict[str, tuple[float | None, float | None, str]] = {}
    for it in items:
        sku, product, name = str(it.get("armSkuName", "")), str(it.get("productName", "")), str(it.get("skuName", ""))
        if (it.get("type") != "Consumption" or "Windows" in product or "Low Priority" in name
                or it.get("unitOfMeasure") != "1 Hour" or it.get("currencyCode", "USD") != "USD" or not sku
                or it.get("isPrimaryMeterRegion") is False or (region and it.get("armRegionName") != region)):
            continue
        try:
            price = float(it.get("retailPrice", it.get("unitPrice")))
            tier = float(it.get("tierMinimumUnits") or 0)
        except (TypeError, ValueError):
            continue
        if tier > 0:
            continue
        if not math.isfinite(price) or price <= 0:
            continue
        od, spot, since = out.get(sku, (None, None, ""))
        if "Spot" in name:
            spot = price if spot is None else min(spot, price)
        else:
            od = price if od is None else min(od, price)
            since = str(it.get("effectiveStartDate", ""))[:10]
        out[sku] = (od, spot, since)
    return out


def refresh_catalog_azure(*, regions: Iterable[str], out_path: str | Path, catalog: Any = None,
                          fetch: Fetch | None = None, skus: Iterable[str] | None = None, today: date | None = None,
                          timeout_s: float = 30.0) -> Path:
    """Write (or update) the overlay at ``out_path`` with Azure rows for ``regions``; return the path.

    Other sections and rows of an existing overlay are kept; Azure instance rows of the refreshed regions are
    replaced. ``fetch`` is the HTTP seam (default: urllib).
    """
    regions = sorted(set(regions))
    if not regions:
        raise InputError("catalog refresh needs at least one region", fix="pass --region eastus (repeatable)")
    if catalog is None:
        from planner.catalog import Catalog

        catalog = Catalog.load()
    unknown_regions = [r for r in regions if ("azure", r) not in catalog.regions]
    if unknown_regions:
        raise InputError(f"Azure region {unknown_regions[0]!r} is not in the catalog",
                         fix="add a regions row for it in the overlay first (geography and network zone)")
    shapes: dict[str, Instance] = {}
    for inst in catalog.instances:
        if inst.provider == "azure":
            shapes.setdefault(inst.instance, inst)
    wanted = sorted(set(skus) if skus is not None else set(shapes))
    out = Path(out_path)
    existing: dict[str, Any] = {}
    if out.exists():
        loaded = yaml.safe_load(out.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise CatalogError(f"{out} is not a catalog overlay (a mapping of sections)", fix="move it aside")
        existing = loaded or {}
    day = today or date.today()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    unknown = sorted(s for s in wanted if s not in shapes)
    fetch = fetch or urllib_fetch
    for region in regions:
        prices: dict[str, tuple[float | None, float | None, str]] = {}
        for i in range(0, len(wanted), SKUS_PER_QUERY):
            prices.update(linux_prices(fetch_items(fetch, query_url(region, wanted[i:i + SKUS_PER_QUERY]),
                                                   timeout_s=timeout_s), region))
        for sku in wanted:
            od, spot, since = prices.get(sku, (None, None, ""))
            if sku not in shapes:
                continue
            if od is None:
                notes.append(f"{sku} in {region}: no Linux pay-as-you-go price in the API; row skipped")
                continue
            shape = shapes[sku]
            origin = f"Azure Retail Prices API ({API_DOC}), {region}, read {day}"
            row = shape.model_copy(update={
                "region": region, "on_demand_usd_per_h": od,
                "spot_usd_per_h": spot if spot is not None and spot < od else None,
                "price_source": f"{origin}: Linux Consumption meter of {sku}"
                                + (f", effective {since}" if since else ""),
                "price_observed": day,
                "spot_observed": day if spot is not None and spot < od else None,
                "spot_source": f"{origin}: Linux Spot meter of {sku}" if spot is not None and spot < od else None,
                "spot_interruption": None, "spot_interruption_source": None, "spot_interruption_observed": None,
            })
            rows.append(Instance.model_validate(row.model_dump()).model_dump(mode="json", exclude_none=True))
    kept = [r for r in existing.get("instances") or []
            if not (r.get("provider") == "azure" and r.get("region") in regions)]
    data = {k: v for k, v in existing.items() if k != "instances"}
    data["instances"] = sorted(kept + rows, key=lambda r: (r["provider"], r["region"], r["instance"]))
    catalog.with_overlay(data, source=str(out))
    header = [f"# mlplan catalog overlay. Azure rows refreshed by `mlplan catalog refresh --provider azure` on {day}",
              f"# for {', '.join(regions)} from the Azure Retail Prices API (Linux pay-as-you-go and Spot meters)."]
    if unknown:
        header.append("# sizes the catalog has no shape for (add an instances row with the GPU, vCPU and RAM from "
                      "the Azure size docs, then refresh): " + ", ".join(unknown))
    header += [f"# note: {n}" for n in notes]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(out)
    return out
