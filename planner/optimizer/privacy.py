"""Privacy classes and data residency: which placements and regions may see the data.

The rules (documented in README "Privacy classes"):

=============  ======================================================================================
public         anywhere allowed by ``allowed_regions``
internal       anywhere allowed by ``allowed_regions``
confidential   cloud only in allowed regions, with encryption at rest and private networking
restricted     (PII) no shared public cloud: cloud only when ``allowed_regions`` is given explicitly AND
               ``dedicated_tenancy`` is accepted, on instances offered on dedicated hosts
air-gapped     on-prem or edge only, never cloud, never a hybrid with a cloud side
=============  ======================================================================================

Each check returns ``None`` when allowed, else a one-line reason. They are pure and total: the property tests
feed them arbitrary constraints and regions.
"""

from __future__ import annotations

from planner.catalog.schema import Instance, OnPremServer, Region
from planner.specs import Constraints


def region_allowed(region: Region, allowed: tuple[str, ...] | None) -> bool:
    """A region passes if ``allowed`` is None, or names the region id or its geography (``eu``, ``us`` ...)."""
    if allowed is None:
        return True
    names = {a.lower() for a in allowed}
    return region.region.lower() in names or region.geography in names or f"{region.provider}:{region.region}" in names


def cloud_privacy_reason(inst: Instance, region: Region, c: Constraints) -> str | None:
    """Why this cloud instance may not hold the data, or None."""
    label = f"{inst.instance} {inst.provider}/{inst.region}"
    if c.privacy == "air-gapped":
        return f"{label}: privacy air-gapped allows on-prem or edge only"
    if c.privacy == "restricted":
        if c.allowed_regions is None:
            return f"{label}: restricted data needs explicitly allowed regions for any cloud"
        if not c.dedicated_tenancy:
            return f"{label}: restricted data needs dedicated tenancy (set constraints.dedicated_tenancy: true)"
        if not inst.dedicated:
            return f"{label}: restricted data needs dedicated hosts, not offered for {inst.instance}"
    if not region_allowed(region, c.allowed_regions):
        allowed = ", ".join(c.allowed_regions or ())
        return f"{label}: residency {allowed} only ({inst.region} is {region.geography})"
    return None


def onprem_privacy_reason(server: OnPremServer, c: Constraints) -> str | None:
    """On-prem is always private; residency applies when the site's geography is known."""
    if server.geography == "any" or c.allowed_regions is None:
        return None
    names = {a.lower() for a in c.allowed_regions}
    if server.geography in names or server.site.lower() in names:
        return None
    return f"{server.sku} at {server.site}: residency {', '.join(c.allowed_regions)} only (site is {server.geography})"


def needs_private_networking(c: Constraints) -> bool:
    return c.privacy in ("confidential", "restricted", "air-gapped")


def cloud_allowed_at_all(c: Constraints) -> bool:
    return c.privacy != "air-gapped" and not (
        c.privacy == "restricted" and (c.allowed_regions is None or not c.dedicated_tenancy)
    )
