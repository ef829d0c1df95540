"""Monthly cost primitives. Every assumption comes from :class:`planner.specs.Assumptions` and is echoed in the plan;
every platform price comes from the catalog (``services.yaml``), see :mod:`planner.optimizer.bill`, which composes
these primitives into the full bill of one part (compute, platform, network, storage).

- Cloud compute: price per hour x hours per month x nodes (on-demand or spot list price from the catalog).
- On-prem total cost of ownership (TCO): capex amortized straight-line over ``onprem_amortization_years``
  + power x PUE x $/kWh at the average utilization + operations per server. This is the usual
  datacenter TCO decomposition (Barroso, Hölzle & Ranganathan, "The Datacenter as a Computer", 3rd ed., ch. 6).
- Edge: devices amortized over ``edge_amortization_years`` + power (connectivity is a catalog price, billed by
  :mod:`planner.optimizer.bill` only for fleets that connect).
- Training: the cost of one run (node-hours x price), reported as the plan's monthly figure for one run a month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planner.specs import Assumptions

HOURS_PER_YEAR = 8760.0
GIB = float(2**30)
"""Cloud storage and transfer are billed per GiB ("GB" on the AWS and Azure pages is 2^30 bytes; GCP writes GiB:
https://cloud.google.com/storage/pricing#price-tables)."""

Group = Literal["compute", "platform", "network", "storage"]
GROUPS: tuple[Group, ...] = ("compute", "platform", "network", "storage")
"""How PLAN.md groups the bill: compute (instances, nodes, devices, power, tenancy fees), platform (control planes,
keys, monitoring, operations), network (NAT, load balancers, public IPs, egress, connectivity), storage (volumes,
object storage)."""


@dataclass(frozen=True, slots=True)
class BillLine:
    """One line of a bill: ``kind`` is the cost rule (see :data:`planner.optimizer.bill.KINDS`), ``item`` the
    human text with quantities and unit prices, ``source`` where the unit price comes from."""

    group: Group
    kind: str
    item: str
    usd: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    total: float
    lines: tuple[BillLine, ...]
    notes: tuple[str, ...] = ()

    @staticmethod
    def of(lines: list[BillLine] | tuple[BillLine, ...], notes: tuple[str, ...] = ()) -> CostBreakdown:
        return CostBreakdown(sum(x.usd for x in lines), tuple(lines), notes)


def cloud_compute(price_per_h: float, nodes: int, hours: float) -> float:
    """$/h x hours x nodes."""
    return price_per_h * hours * nodes


def power_monthly(watts: float, a: Assumptions, utilization: float, *, pue: float | None = None) -> float:
    """Energy cost: W x utilization x PUE x hours / 1000 x $/kWh."""
    return watts * utilization * (a.pue if pue is None else pue) * a.hours_per_month / 1000.0 * a.power_usd_per_kwh


def onprem_monthly(capex_usd: float, power_w: float, servers: int, a: Assumptions) -> list[BillLine]:
    """TCO per month: amortized capex + power x PUE + operations, per server x servers."""
    months = a.onprem_amortization_years * 12.0
    capex = capex_usd / months * servers
    power = power_monthly(power_w, a, a.gpu_average_utilization) * servers
    ops = a.onprem_ops_usd_per_server_month * servers
    return [
        BillLine("compute", "capex", f"capex ${capex_usd:,.0f} x {servers} / {months:g} months", capex,
                 "catalog on-prem server row; assumption onprem_amortization_years"),
        BillLine("compute", "power",
                 f"power {power_w:g} W x {a.gpu_average_utilization:.0%} x PUE {a.pue:g} @ ${a.power_usd_per_kwh}/kWh",
                 power, "assumptions power_usd_per_kwh, pue, gpu_average_utilization"),
        BillLine("platform", "operations", f"operations ${a.onprem_ops_usd_per_server_month:g}/server/month", ops,
                 "assumption onprem_ops_usd_per_server_month"),
    ]


def edge_monthly(price_usd: float, power_w: float, devices: int, a: Assumptions) -> list[BillLine]:
    """Devices amortized + power (no PUE: devices sit in the field)."""
    months = a.edge_amortization_years * 12.0
    capex = price_usd / months * devices
    power = power_monthly(power_w, a, a.edge_average_utilization, pue=1.0) * devices
    return [
        BillLine("compute", "devices", f"devices ${price_usd:,.0f} x {devices} / {months:g} months", capex,
                 "catalog edge device row; assumption edge_amortization_years"),
        BillLine("compute", "power", f"power {power_w:g} W x {a.edge_average_utilization:.0%} @ "
                 f"${a.power_usd_per_kwh}/kWh", power, "catalog edge device row; assumption power_usd_per_kwh"),
    ]
