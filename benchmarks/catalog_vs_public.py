"""Compare the catalog's instance prices with a public SkyPilot catalog folder, row by row.

    .venv/bin/python benchmarks/catalog_vs_public.py DIR [--catalog OVERLAY.yaml [--overlay-only]] [--worst 15]

``DIR`` holds SkyPilot's ``<cloud>/vms.csv`` (e.g. a checkout of skypilot-org/skypilot-catalog ``catalogs/v8``, or
the small fixture ``tests/data/skypilot``). Every catalog instance row whose ``(provider, instance type, region)``
is also priced in DIR is compared: ratio = catalog on-demand / public on-demand (and the same for spot where both
have one). Prints, per provider, how many rows overlap, the ratio distribution and how many are within the
tolerance (default 2%), then the worst rows. GCP rows outside the tolerance get the known explanation (SkyPilot
prices GCP GPUs from per-region SKUs that are not all list prices; the catalog keeps GCP's us-central1 list price).

``--catalog`` adds an overlay; with ``--overlay-only`` only the overlay's own rows are compared (e.g. a file of an
older catalog's rows). Exit status 1 if an AWS or Azure row is outside the tolerance.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from planner.catalog import Catalog
from planner.catalog.schema import Instance
from planner.catalog.skypilot import import_skypilot

GCP_NOTE = ("GCP: SkyPilot adds a per-region GPU SKU to the VM price. In some regions that SKU is about half the "
            "GPU's on-demand price elsewhere (H100 $4.20/GPU-h in us-central1, us-west1 and asia against $9.80 in "
            "us-east4; GCP's pricing page lists a3-highgpu-8g at $88.25/h in us-central1, SkyPilot's sum is $43.07): "
            "a discounted SKU, not the list price. The importer rejects such rows and the catalog keeps GCP's list "
            "price; see each row's price_source.")


def compare(rows: list[Instance], public: list[Instance]) -> list[tuple[Instance, Instance, float, float | None]]:
    """(catalog row, public row, on-demand ratio, spot ratio or None) for every key both price."""
    pub = {r.key: r for r in public}
    out = []
    for r in rows:
        p = pub.get(r.key)
        if p is None:
            continue
        spot = (r.spot_usd_per_h / p.spot_usd_per_h if r.spot_usd_per_h and p.spot_usd_per_h else None)
        out.append((r, p, r.on_demand_usd_per_h / p.on_demand_usd_per_h, spot))
    return out


def _q(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("folder", type=Path, help="SkyPilot catalog folder: <cloud>/vms.csv")
    ap.add_argument("--catalog", type=Path, default=None, help="catalog overlay to apply first")
    ap.add_argument("--overlay-only", action="store_true", help="compare only the overlay's instance rows")
    ap.add_argument("--tolerance", type=float, default=0.02, help="relative difference counted as a match")
    ap.add_argument("--worst", type=int, default=15, help="how many of the worst rows to list")
    args = ap.parse_args(argv)

    cat = Catalog.load(args.catalog)
    rows = list(cat.instances)
    if args.overlay_only:
        if args.catalog is None:
            ap.error("--overlay-only needs --catalog")
        data = yaml.safe_load(args.catalog.read_text(encoding="utf-8")) or {}
        keys = {(r["provider"], r["instance"], r["region"]) for r in data.get("instances") or []}
        rows = [r for r in rows if r.key in keys]
    result = import_skypilot(args.folder, accelerators=cat.accelerators, discount_factor=0.0)
    checked = import_skypilot(args.folder, accelerators=cat.accelerators)
    discounted = {r.key for r in result.rows} - {r.key for r in checked.rows}
    pairs = compare(rows, result.rows)
    by: dict[str, list[tuple[Instance, Instance, float, float | None]]] = defaultdict(list)
    for pair in pairs:
        by[pair[0].provider].append(pair)
    tol = args.tolerance
    print(f"catalog {cat.version} vs {args.folder}: {len(pairs)} overlapping rows "
          f"(of {len(rows)} catalog rows, {len(result.rows)} public rows)")
    print()
    print(f"| provider | rows | within {tol:.0%} | min | p10 | median | p90 | max | spot rows | spot median |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for prov in ("aws", "gcp", "azure"):
        ps = by.get(prov, [])
        if not ps:
            print(f"| {prov} | 0 | | | | | | | | |")
            continue
        ratios = [x[2] for x in ps]
        spots = [x[3] for x in ps if x[3] is not None]
        within = sum(abs(r - 1) <= tol + 1e-12 for r in ratios)
        print(f"| {prov} | {len(ps)} | {within} | {min(ratios):.3f} | {_q(ratios, .1):.3f} | "
              f"{statistics.median(ratios):.3f} | {_q(ratios, .9):.3f} | {max(ratios):.3f} | {len(spots)} | "
              + (f"{statistics.median(spots):.3f} |" if spots else " |"))
    print()
    worst = sorted(pairs, key=lambda x: -abs(x[2] - 1))[:args.worst]
    print(f"worst {len(worst)} rows (catalog / public on-demand):")
    print()
    print("| provider | instance | region | catalog $/h | public $/h | ratio | note |")
    print("|---|---|---|---:|---:|---:|---|")
    for r, p, ratio, _ in worst:
        note = "public GPU part is a discounted SKU (importer rejects it)" if r.key in discounted else ""
        print(f"| {r.provider} | {r.instance} | {r.region} | {r.on_demand_usd_per_h:g} | "
              f"{p.on_demand_usd_per_h:g} | {ratio:.3f} | {note} |")
    off_gcp = [x for x in by.get("gcp", []) if abs(x[2] - 1) > tol]
    if off_gcp:
        print()
        print(f"{len(off_gcp)} GCP rows differ by more than {tol:.0%}. {GCP_NOTE}")
    bad = [x for prov in ("aws", "azure") for x in by.get(prov, []) if abs(x[2] - 1) > tol]
    if bad:
        print()
        print(f"{len(bad)} AWS/Azure rows differ by more than {tol:.0%}.")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
