"""Monthly cost models. Every assumption comes from :class:`planner.specs.Assumptions` and is echoed in the plan.

- Cloud: price per hour x hours per month x nodes (on-demand or spot list price from the catalog; a dedicated
  tenancy premium where the privacy class needs dedicated hosts).
- On-prem total cost of ownership (TCO): capex amortized straight-line over ``onprem_amortization_years``
  + power x PUE x $/kWh at the average utilization + operations per server. This is the usual
  datacenter TCO decomposition (Barroso, Hölzle & Ranganathan, "The Datacenter as a Computer", 3rd ed., ch. 6).
- Edge: devices amortized over ``edge_amortization_years`` + power + connectivity per device.
- Training: the cost of one run (node-hours x price), reported as the plan's monthly figure for one run a month.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.specs import Assumptions

HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    total: float
    lines: tuple[tuple[str, float], ...]


def cloud_monthly(price_per_h: float, nodes: int, a: Assumptions, *, dedicated: bool = False) -> CostBreakdown:
    """$/h x hours/month x nodes (+ dedicated-tenancy premium)."""
    compute = price_per_h * a.hours_per_month * nodes
    lines = [(f"compute: {nodes} node(s) x ${price_per_h:.4f}/h x {a.hours_per_month:g} h", compute)]
    if dedicated:
        premium = compute * a.dedicated_tenancy_premium
        lines.append((f"dedicated tenancy premium {a.dedicated_tenancy_premium:.0%}", premium))
    return CostBreakdown(sum(v for _, v in lines), tuple(lines))


def cloud_run(price_per_h: float, nodes: int, hours: float, *, dedicated_premium: float = 0.0) -> CostBreakdown:
    """One training run: node-hours x price."""
    compute = price_per_h * nodes * hours
    lines = [(f"training run: {nodes} node(s) x {hours:.1f} h x ${price_per_h:.4f}/h", compute)]
    if dedicated_premium:
        lines.append((f"dedicated tenancy premium {dedicated_premium:.0%}", compute * dedicated_premium))
    return CostBreakdown(sum(v for _, v in lines), tuple(lines))


def power_monthly(watts: float, a: Assumptions, utilization: float, *, pue: float | None = None) -> float:
    """Energy cost: W x utilization x PUE x hours / 1000 x $/kWh."""
    return watts * utilization * (a.pue if pue is None else pue) * a.hours_per_month / 1000.0 * a.power_usd_per_kwh


def onprem_monthly(capex_usd: float, power_w: float, servers: int, a: Assumptions) -> CostBreakdown:
    """TCO per month: amortized capex + power x PUE + operations, per server x servers."""
    months = a.onprem_amortization_years * 12.0
    capex = capex_usd / months * servers
    power = power_monthly(power_w, a, a.gpu_average_utilization) * servers
    ops = a.onprem_ops_usd_per_server_month * servers
    return CostBreakdown(
        capex + power + ops,
        (
            (f"capex ${capex_usd:,.0f} x {servers} / {months:g} months", capex),
            (f"power {power_w:g} W x {a.gpu_average_utilization:.0%} x PUE {a.pue:g} @ ${a.power_usd_per_kwh}/kWh",
             power),
            (f"operations ${a.onprem_ops_usd_per_server_month:g}/server/month", ops),
        ),
    )


def edge_monthly(price_usd: float, power_w: float, devices: int, a: Assumptions) -> CostBreakdown:
    """Devices amortized + power (no PUE: devices sit in the field) + connectivity."""
    months = a.edge_amortization_years * 12.0
    capex = price_usd / months * devices
    power = power_monthly(power_w, a, a.edge_average_utilization, pue=1.0) * devices
    conn = a.edge_connectivity_usd_per_device_month * devices
    return CostBreakdown(
        capex + power + conn,
        (
            (f"devices ${price_usd:,.0f} x {devices} / {months:g} months", capex),
            (f"power {power_w:g} W x {a.edge_average_utilization:.0%} @ ${a.power_usd_per_kwh}/kWh", power),
            (f"connectivity ${a.edge_connectivity_usd_per_device_month:g}/device/month", conn),
        ),
    )
