"""The hardware catalog: versioned data files behind one facade.

The embedded data lives in ``planner/catalog/data/*.yaml`` (each row names its source). A user overlays their
own file (on-prem inventory, negotiated prices) with ``Catalog.load(overlay=path)``: rows with the same key
replace embedded rows, new keys add rows. Keys: accelerators and edge devices by ``id``, instances by
``(provider, instance, region)``, on-prem servers by ``sku``, regions by ``(provider, region)``, platform
service prices by ``(provider, region, item)``, a host's measured serving figures (``serving_calibrations``, written
by ``mlplan calibrate``) by ``(host, runtime)``.

The optimizer only ever sees a :class:`Catalog`; nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from planner.catalog.schema import (
    Accelerator,
    EdgeDevice,
    Instance,
    OnPremServer,
    Region,
    RttTable,
    ServicePrice,
    ServingCalibration,
)
from planner.errors import CatalogError
from planner.specs import format_validation_error, read_yaml

DATA_DIR = Path(__file__).parent / "data"
SECTIONS = ("accelerators", "edge_devices", "instances", "onprem_servers", "regions", "services",
            "serving_calibrations")

__all__ = ["Accelerator", "Catalog", "EdgeDevice", "Instance", "OnPremServer", "Region", "RttTable", "ServicePrice",
           "ServingCalibration"]

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Catalog:
    version: str
    accelerators: Mapping[str, Accelerator]
    edge_devices: Mapping[str, EdgeDevice]
    instances: tuple[Instance, ...]
    onprem_servers: tuple[OnPremServer, ...]
    regions: Mapping[tuple[str, str], Region]
    rtt: RttTable
    services: Mapping[tuple[str, str, str], ServicePrice] = field(default_factory=dict)
    serving: Mapping[tuple[str, str], ServingCalibration] = field(default_factory=dict)
    overlay: str | None = None
    _zone_cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # -------------------------------------------------------------------------------------------- loading
    @staticmethod
    def load(overlay: str | Path | None = None) -> Catalog:
        base = _embedded()
        if overlay is None:
            return base
        data = read_yaml(Path(overlay), what="catalog overlay", error=CatalogError)
        return base.with_overlay(data, source=str(overlay))

    def with_overlay(self, data: Any, *, source: str = "overlay") -> Catalog:
        if data is None:
            return self
        if not isinstance(data, dict):
            raise CatalogError(f"{source}: a catalog overlay must be a mapping of sections {', '.join(SECTIONS)}")
        unknown = sorted(set(map(str, data)) - set(SECTIONS) - {"version"})
        if unknown:
            raise CatalogError(f"{source}: unknown section {unknown[0]!r}", fix=f"use {', '.join(SECTIONS)}")
        acc = dict(self.accelerators)
        acc.update({r.id: r for r in _rows(Accelerator, data.get("accelerators"), source, "accelerators")})
        edge = dict(self.edge_devices)
        edge.update({r.id: r for r in _rows(EdgeDevice, data.get("edge_devices"), source, "edge_devices")})
        inst = {r.key: r for r in self.instances}
        inst.update({r.key: r for r in _rows(Instance, data.get("instances"), source, "instances")})
        srv = {r.sku: r for r in self.onprem_servers}
        srv.update({r.sku: r for r in _rows(OnPremServer, data.get("onprem_servers"), source, "onprem_servers")})
        reg = dict(self.regions)
        reg.update({(r.provider, r.region): r for r in _rows(Region, data.get("regions"), source, "regions")})
        svc = dict(self.services)
        svc.update({r.key: r for r in _rows(ServicePrice, data.get("services"), source, "services")})
        cal = dict(self.serving)
        cal.update({r.key: r for r in _rows(ServingCalibration, data.get("serving_calibrations"), source,
                                            "serving_calibrations")})
        cat = Catalog(
            version=f"{self.version}+overlay",
            accelerators=acc,
            edge_devices=edge,
            instances=tuple(inst.values()),
            onprem_servers=tuple(srv.values()),
            regions=reg,
            rtt=self.rtt,
            services=svc,
            serving=cal,
            overlay=source,
        )
        cat.check_references()
        return cat

    def check_references(self) -> None:
        for i in self.instances:
            if i.accelerator not in self.accelerators:
                raise CatalogError(f"instance {i.instance}: unknown accelerator {i.accelerator!r}",
                                   fix="add it under accelerators")
            if (i.provider, i.region) not in self.regions:
                raise CatalogError(f"instance {i.instance}: unknown region {i.provider}/{i.region}",
                                   fix="add it under regions")
        for s in self.onprem_servers:
            if s.accelerator not in self.accelerators:
                raise CatalogError(f"on-prem server {s.sku}: unknown accelerator {s.accelerator!r}",
                                   fix="add it under accelerators")
        for r in self.regions.values():
            if r.zone not in self.rtt.zones:
                raise CatalogError(f"region {r.provider}/{r.region}: unknown network zone {r.zone!r}")

    # ------------------------------------------------------------------------------------------- queries
    def accelerator(self, acc_id: str) -> Accelerator:
        try:
            return self.accelerators[acc_id]
        except KeyError:
            raise CatalogError(
                f"unknown accelerator {acc_id!r}", fix=f"use one of {', '.join(sorted(self.accelerators))}"
            ) from None

    def edge_device(self, dev_id: str) -> EdgeDevice:
        try:
            return self.edge_devices[dev_id]
        except KeyError:
            raise CatalogError(
                f"unknown edge device {dev_id!r}", fix=f"use one of {', '.join(sorted(self.edge_devices))}"
            ) from None

    def region(self, provider: str, region: str) -> Region:
        return self.regions[(provider, region)]

    def rtt_ms(self, zone_a: str, zone_b: str) -> float:
        """Round-trip time between two network zones (symmetric)."""
        if zone_a == zone_b:
            return self.rtt.rtt_ms.get(zone_a, {}).get(zone_b, 0.0)
        row = self.rtt.rtt_ms.get(zone_a, {})
        if zone_b in row:
            return row[zone_b]
        back = self.rtt.rtt_ms.get(zone_b, {})
        if zone_a in back:
            return back[zone_a]
        raise CatalogError(f"RTT table has no entry for {zone_a} <-> {zone_b}")

    def serving_calibration(self, host: str, runtime: str) -> ServingCalibration | None:
        """The figures ``runtime`` was measured with on ``host`` (an on-prem sku or instance type), if any."""
        return self.serving.get((host, runtime))

    def find_instance(self, name: str) -> list[Instance]:
        return [i for i in self.instances if i.instance == name]

    def service_price(self, provider: str, region: str, item: str) -> ServicePrice:
        """The price of a platform ``item`` (see ``data/services.yaml``) in ``region``: the region's own row, else
        the provider-wide ``*`` row. The returned row's ``region`` says which one applied (show it on the bill)."""
        for key in ((provider, region, item), (provider, "*", item)):
            row = self.services.get(key)
            if row is not None:
                return row
        known = sorted({k[2] for k in self.services if k[0] == provider})
        raise CatalogError(f"no {provider} price for {item!r} in the catalog (region {region})",
                           fix=f"add a services row (provider {provider}, item {item}) in a catalog overlay"
                               + (f"; known items: {', '.join(known)}" if known else ""))

    def service_items(self, provider: str) -> list[str]:
        return sorted({k[2] for k in self.services if k[0] == provider})


def _rows(kind: type[R], items: Any, source: str, section: str) -> list[R]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise CatalogError(f"{source}: section {section!r} must be a list of rows")
    out: list[R] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise CatalogError(f"{source}: {section}[{n}] must be a mapping")
        try:
            out.append(kind.model_validate(item))
        except ValidationError as e:
            raise CatalogError(format_validation_error(e, f"{source}: {section}[{n}]")) from None
    return out


def _load_section(kind: type[R], name: str) -> list[R]:
    path = DATA_DIR / f"{name}.yaml"
    data = read_yaml(path, what="catalog", trusted=True)
    return _rows(kind, data.get("rows"), str(path.name), name)


def _files_rows(kind: type[R], names: Iterable[str]) -> list[R]:
    out: list[R] = []
    for n in names:
        out.extend(_load_section(kind, n))
    return out


@cache
def _embedded() -> Catalog:
    version = read_yaml(DATA_DIR / "VERSION.yaml", what="catalog", trusted=True)["version"]
    instance_files = sorted(p.stem for p in DATA_DIR.glob("instances_*.yaml"))
    rtt = RttTable.model_validate(read_yaml(DATA_DIR / "rtt.yaml", what="catalog", trusted=True))
    cat = Catalog(
        version=str(version),
        accelerators={r.id: r for r in _load_section(Accelerator, "accelerators")},
        edge_devices={r.id: r for r in _load_section(EdgeDevice, "edge_devices")},
        instances=tuple(_files_rows(Instance, instance_files)),
        onprem_servers=tuple(_load_section(OnPremServer, "onprem_servers")),
        regions={(r.provider, r.region): r for r in _load_section(Region, "regions")},
        rtt=rtt,
        services={r.key: r for r in _load_section(ServicePrice, "services")},
    )
    cat.check_references()
    return cat
