"""The residency and privacy guard: does a written plan keep the promises of the spec it was planned from?

A plan folder stores the spec it was planned from and that spec's hash (``plan.yaml``: ``spec``,
``spec_sha256``). Before anything is built from a plan (manifests, the Pulumi program, a deploy), the emitters
call :func:`check_plan`, which re-applies the optimizer's own privacy rules (:func:`planner.privacy.
part_reason`) to every part against the stored spec's constraints, and checks that the plan's security block
states what the parts do. A hand-edited ``plan.yaml`` (a region moved outside residency, a security block
loosened, a hybrid part given data it may not see) yields no folder, no manifest and no resource.

Pure: it needs the plan and the spec (each part carries its region's geography from the catalog). Given the
catalog too (the plan writer has it), it also checks each cloud part's geography against the catalog's row, so a
plan whose region was moved without its geography is refused before a folder is written. A written folder is
tamper-evident rather than tamper-proof: its marker hashes every file and ``plan.yaml`` hashes its spec copy, so
an edit shows unless the editor also recomputes both hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from planner.catalog import Catalog
from planner.errors import ArtifactError
from planner.plan import Plan
from planner.privacy import PUBLIC, needs_private_networking, part_reason
from planner.specs import Spec

_FIX = "re-plan with `mlplan plan SPEC --out DIR`; never edit plan.yaml by hand"


def spec_digest(data: Any) -> str:
    """sha256 of a spec as canonical JSON (sorted keys, no whitespace): the hash stored beside its copy."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def expected_data_class(spec: Spec, routing: str) -> str:
    """The data class a part with this routing receives: only ``marked-public`` parts receive public data."""
    return PUBLIC if routing == "marked-public" else spec.constraints.privacy


def check_plan(plan: Plan, spec: Spec, catalog: Catalog | None = None) -> None:
    """Raise :class:`ArtifactError` (one line) if ``plan`` breaks a privacy or residency rule of ``spec``, or
    states a security posture its parts do not have (or, given ``catalog``, a geography the catalog does not)."""
    c = spec.constraints
    cloud = [p for p in plan.parts if p.placement == "cloud"]
    for p in plan.parts:
        label = f"part {p.names.key} ({p.instance} {p.provider}/{p.region})"
        if catalog is not None and p.placement == "cloud":
            row = catalog.regions.get((p.provider, p.region or ""))
            if row is None:
                raise ArtifactError(f"{label}: region {p.provider}/{p.region} is not in the catalog", fix=_FIX)
            if row.geography != p.geography:
                raise ArtifactError(f"{label}: the plan places {p.region} in geography {p.geography}, the "
                                    f"catalog in {row.geography}", fix=_FIX)
        want = expected_data_class(spec, p.routing)
        if p.data_class != want:
            raise ArtifactError(f"{label} claims data class {p.data_class}, but with routing {p.routing} it "
                                f"receives {want} data under the spec", fix=_FIX)
        if p.routing == "marked-public" and len(plan.parts) < 2:
            raise ArtifactError(f"{label} takes only requests marked public, but no other part takes the rest",
                                fix=_FIX)
        if p.placement == "cloud" and (p.tenancy == "dedicated") != (p.data_class == "restricted"):
            raise ArtifactError(f"{label}: tenancy {p.tenancy} does not match its data class {p.data_class}",
                                fix=_FIX)
        why = part_reason(placement=p.placement, provider=p.provider, region=p.region, geography=p.geography,
                          label=label, data_class=p.data_class, dedicated_capable=p.tenancy == "dedicated", c=c)
        if why is not None:
            raise ArtifactError(f"plan {plan.id} breaks its spec: {why}", fix=_FIX)
    s = plan.security
    expect = {
        "privacy": c.privacy, "allowed_regions": c.allowed_regions, "encryption_at_rest": True,
        "private_networking": needs_private_networking(c.privacy),
        "dedicated_tenancy": bool(cloud) and all(p.tenancy == "dedicated" for p in cloud),
        "deny_by_default_network": needs_private_networking(c.privacy),
    }
    for key, value in expect.items():
        if getattr(s, key) != value:
            raise ArtifactError(f"plan {plan.id}: security.{key} is {getattr(s, key)!r}, but the spec and the "
                                f"plan's parts give {value!r}", fix=_FIX)
