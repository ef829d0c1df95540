"""Privacy classes and data residency: which placements and regions may see the data.

The rules (documented in README "Privacy classes"), applied to every part of every plan, hybrids included, for
the data class that part receives:

=============  ======================================================================================
public         anywhere allowed by ``allowed_regions``
internal       anywhere allowed by ``allowed_regions``
confidential   cloud only in allowed regions, with encryption at rest and private networking
restricted     (PII) no shared public cloud: cloud only when ``allowed_regions`` is given explicitly AND
               ``dedicated_tenancy`` is accepted, on instances offered on dedicated hosts
air-gapped     on-prem or edge only, never cloud
=============  ======================================================================================

``allowed_regions`` binds every part, whatever data it receives (fail closed). A part receives the spec's data
class unless a hybrid router sends it only requests positively marked public (``routing: marked-public``);
everything else, untagged requests included, stays on the privacy-safe side.

Each check returns ``None`` when allowed, else a one-line reason. They are pure and total: the property tests
feed them arbitrary constraints and regions, and the plan guard (:mod:`planner.guard`) re-applies the same
function to a written plan.
"""

from __future__ import annotations

import difflib

from planner.catalog import Catalog
from planner.errors import SpecError
from planner.specs import PRIVACY_ORDER, Constraints

PUBLIC = "public"


def region_allowed(provider: str, region: str, geography: str | None, allowed: tuple[str, ...] | None) -> bool:
    """A region passes if ``allowed`` is None, or names the region id, its geography or ``provider:region``."""
    if allowed is None:
        return True
    names = {a.lower() for a in allowed}
    return (region.lower() in names or (geography is not None and geography in names)
            or f"{provider}:{region}".lower() in names)


def part_reason(*, placement: str, provider: str, region: str | None, geography: str | None, label: str,
                data_class: str, dedicated_capable: bool, c: Constraints) -> str | None:
    """Why a part of this placement and region may not receive data of ``data_class``, or None.

    ``dedicated_capable``: the cloud instance is offered on dedicated hosts / sole tenancy."""
    if placement == "cloud":
        if data_class == "air-gapped":
            return f"{label}: privacy air-gapped allows on-prem or edge only"
        if data_class == "restricted":
            if c.allowed_regions is None:
                return f"{label}: restricted data needs explicitly allowed regions for any cloud"
            if not c.dedicated_tenancy:
                return f"{label}: restricted data needs dedicated tenancy (set constraints.dedicated_tenancy: true)"
            if not dedicated_capable:
                return f"{label}: restricted data needs dedicated hosts, not offered for this instance"
        if not region_allowed(provider, region or "", geography, c.allowed_regions):
            return f"{label}: residency {', '.join(c.allowed_regions or ())} only ({region} is {geography})"
        return None
    if placement == "on-prem":
        if c.allowed_regions is None or geography in (None, "any"):
            return None
        names = {a.lower() for a in c.allowed_regions}
        if geography in names or (region or "").lower() in names:
            return None
        return f"{label}: residency {', '.join(c.allowed_regions)} only (site {region} is {geography})"
    return None  # edge devices sit at the user's own sites


def stricter(a: str, b: str) -> str:
    """The more sensitive of two data classes."""
    return a if PRIVACY_ORDER.index(a) >= PRIVACY_ORDER.index(b) else b


def needs_private_networking(privacy: str) -> bool:
    return privacy in ("confidential", "restricted", "air-gapped")


def cloud_allowed_at_all(c: Constraints) -> bool:
    return c.privacy != "air-gapped" and not (
        c.privacy == "restricted" and (c.allowed_regions is None or not c.dedicated_tenancy)
    )


def check_names(c: Constraints, cat: Catalog) -> None:
    """Every name in ``allowed_regions`` is a region id, ``provider:region``, a geography or an on-prem site of
    the catalog, and ``users_location`` is a network zone of its RTT table; else one line with "did you mean"."""
    regions = {r.region.lower() for r in cat.regions.values()}
    qualified = {f"{r.provider}:{r.region}".lower() for r in cat.regions.values()}
    geos = {r.geography for r in cat.regions.values()} | {s.geography for s in cat.onprem_servers}
    sites = {s.site.lower() for s in cat.onprem_servers}
    known = regions | qualified | geos | sites
    for name in c.allowed_regions or ():
        if name.lower() not in known:
            raise SpecError(f"constraints.allowed_regions: unknown region or geography {name!r}{_close(name, known)}",
                            fix=f"use region ids or one of the geographies {', '.join(sorted(geos - {'any'}))}")
    z = c.users_location
    if z is not None and z not in cat.rtt.zones:
        raise SpecError(f"constraints.users_location: unknown network zone {z!r}{_close(z, set(cat.rtt.zones))}",
                        fix=f"use one of {', '.join(cat.rtt.zones)}")


def _close(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name.lower(), sorted(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
