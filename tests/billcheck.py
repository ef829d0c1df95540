"""The bill against the stack, shared by ``tests/test_bill.py`` and ``benchmarks/bill_vs_stack.py``.

- :func:`cases`: the plans to check: every example's chosen plan, each example's best plan on each cloud it may use
  (``constraints.providers`` narrowed to one), and (``factories=True``) every factory plan of
  ``tests/stacks/conftest.py``;
- :func:`stack_resources`: every resource the plan's Pulumi program creates, recorded under Pulumi's mocks
  (:mod:`stacks.preview`). GKE and AKS parts that ``stacks/program.py`` does not build yet are built with the
  GCP / Azure components (:mod:`stacks.gcp`, :mod:`stacks.azure`) from the part's fields, as the program will;
- :func:`check`: :func:`planner.optimizer.bill.check_resources` on the two.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.errors import InfeasibleError
from planner.optimizer.bill import BillCheck, check_resources, is_private, node_disk_gib
from planner.plan import Part, Plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PRIVATE = ("confidential", "restricted", "air-gapped")


@dataclass(frozen=True)
class Case:
    label: str
    plan: Plan


def example_specs() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".catalog.yaml"))


def cases(*, providers: bool = True, factories: bool = False) -> Iterator[Case]:
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec

    for path in example_specs():
        spec = load_spec(path)
        cat = Catalog.load(spec.catalog_overlay)
        top = recommend(spec, cat, top=1).plans[0]
        yield Case(path.stem, top)
        if not providers or not ({"cloud", "hybrid"} & set(spec.constraints.placements)) \
                or spec.constraints.privacy == "air-gapped":
            continue
        for provider in ("aws", "gcp", "azure"):
            narrowed = spec.model_copy(update={"constraints": spec.constraints.model_copy(
                update={"providers": (provider,)})})
            try:
                plan = recommend(narrowed, cat, top=1).plans[0]
            except InfeasibleError:
                continue
            if plan.id != top.id and any(p.provider == provider for p in plan.parts):
                yield Case(f"{path.stem} [{provider}]", plan)
    if factories:
        from tests.stacks.conftest import PLANS

        for name, make in PLANS.items():
            yield Case(f"factory:{name}", make())


# ------------------------------------------------------------------------------------------- GKE / AKS parts


def _disk(part: Part) -> int:
    return node_disk_gib(part.weights_bytes, gpus_per_replica=part.tensor_parallel * part.pipeline_parallel,
                         gpus_per_node=part.gpus_per_node, has_device=part.device.resource is not None)


def gke_args(plan: Plan, part: Part) -> Any:
    """GkePartArgs for a part, from its fields (zones a-c of the region; CMEK and an internal load balancer for
    confidential and restricted data)."""
    from stacks.gcp import GKE_ACCELERATOR_TYPES, GkePartArgs

    region = part.region or ""
    private = is_private(part.data_class, part.routing)
    return GkePartArgs(
        name=part.names.resource_prefix, project="mlplan-preview", region=region,
        zones=tuple(f"{region}-{z}" for z in "abc"), machine_type=part.instance,
        accelerator_type=GKE_ACCELERATOR_TYPES.get(part.accelerator), accelerator_count=part.gpus_per_node,
        accelerator=part.accelerator, nodes=part.nodes, max_nodes=max(part.nodes, plan.serving.max_replicas),
        bucket_name=part.names.bucket or "mlplan-preview-bucket", model_prefix=plan.model.name,
        serving_namespace=part.names.namespace, serving_service_account=part.names.app,
        spot=part.purchase == "spot", disk_gib=_disk(part), private=private, cmek=part.data_class in PRIVATE,
        internal_lb=private)


def aks_args(plan: Plan, part: Part) -> Any:
    """AksPartArgs for a part, from its fields (zones 1-3; CMK and an internal load balancer for confidential and
    restricted data; dedicated hosts for dedicated tenancy)."""
    from stacks.azure import AksPartArgs

    private = is_private(part.data_class, part.routing)
    account = re.sub(r"[^a-z0-9]", "", part.names.resource_prefix.lower())[:24].ljust(3, "0")
    return AksPartArgs(
        name=part.names.resource_prefix, location=part.region or "", zones=("1", "2", "3"), vm_size=part.instance,
        gpus_per_node=part.gpus_per_node, gpu_vendor="amd" if part.device.vendor == "amd" else "nvidia",
        accelerator=part.accelerator, nodes=part.nodes, max_nodes=max(part.nodes, plan.serving.max_replicas),
        storage_account=account, container="models", model_prefix=plan.model.name,
        serving_namespace=part.names.namespace, serving_service_account=part.names.app,
        spot=part.purchase == "spot", disk_gib=_disk(part), private=private, cmk=part.data_class in PRIVATE,
        dedicated=part.tenancy == "dedicated", internal_lb=private)


def stack_resources(plan: Plan) -> list[dict[str, Any]]:
    """Every resource the plan's stack creates, under Pulumi's mocks."""
    from stacks.preview import run_under_mocks
    from stacks.program import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pulumi-aws / pulumi-gcp import-time aliases
        resources = run_under_mocks(lambda: build(plan))
        built = {r["type"].split(":", 1)[0] for r in resources}
        todo = [p for p in plan.parts if (p.target == "gcp-gke" and "gcp" not in built)
                or (p.target == "azure-aks" and "azure-native" not in built)]
        if todo:
            def program() -> None:
                from stacks.clouds import build_cloud_part, install_cluster_addons
                from stacks.layout import parts
                from stacks.manifests import needs_kuberay

                infos = {i.part.names.key: i for i in parts(plan)}
                for p in todo:
                    args = gke_args(plan, p) if p.target == "gcp-gke" else aks_args(plan, p)
                    out = build_cloud_part(args)
                    install_cluster_addons(p.names.resource_prefix, out,
                                           kuberay=needs_kuberay(plan, infos[p.names.key]))

            resources += run_under_mocks(program)
    return resources


def check(plan: Plan) -> tuple[BillCheck, list[dict[str, Any]]]:
    resources = stack_resources(plan)
    return check_resources(plan, resources), resources
