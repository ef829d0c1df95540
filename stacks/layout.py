"""The parts of a plan as the emitters iterate them: each part's target, key and names, read from the plan.

Nothing here decides anything: the target (``Part.target``), the names (``Part.names``, ``Plan.names``), the
geography, the accelerator's device facts and the weight bytes are the planner's decisions, carried on the plan
(see :mod:`planner.optimizer.targets`, :mod:`planner.names`). The manifests builder, the Pulumi program, PLAN.md
and ``mlplan diff`` read them through this module so they all name and place things the same way. Pure (no
Pulumi import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.plan import KUBERNETES_TARGETS, Part, Plan, Target

__all__ = ["PartInfo", "gpus_per_pod", "gpus_per_replica", "has_iac", "nodes_per_replica", "parts"]


def gpus_per_replica(part: Part) -> int:
    """Accelerators one model replica uses: tensor-parallel degree x pipeline stages."""
    return max(1, part.tensor_parallel * part.pipeline_parallel)


def nodes_per_replica(part: Part) -> int:
    """Nodes one replica spans (a replica larger than a node spreads its pipeline stages over nodes)."""
    if part.gpus_per_node <= 0:
        return 1
    return max(1, math.ceil(gpus_per_replica(part) / part.gpus_per_node))


def gpus_per_pod(part: Part) -> int:
    """GPUs one pod requests: the replica's GPUs on one node (TP degree x PP stages per node); 0 where the
    accelerator has no device-plugin resource (CPUs, SBCs, MCUs)."""
    if part.gpus_per_node <= 0 or part.device.resource is None:
        return 0
    return gpus_per_replica(part) // nodes_per_replica(part)


@dataclass(frozen=True)
class PartInfo:
    """One part with the names every emitter uses (read from the plan)."""

    index: int
    part: Part

    @property
    def target(self) -> Target:
        return self.part.target

    @property
    def key(self) -> str:
        return self.part.names.key

    @property
    def namespace(self) -> str:
        return self.part.names.namespace

    @property
    def app(self) -> str:
        return self.part.names.app

    @property
    def uses_k8s(self) -> bool:
        return self.part.target in KUBERNETES_TARGETS


def parts(plan: Plan) -> list[PartInfo]:
    """Every part of the plan, in plan order."""
    return [PartInfo(index=i, part=p) for i, p in enumerate(plan.parts)]


def has_iac(plan: Plan) -> bool:
    """False for plans with nothing for Pulumi to create (firmware, localhost): those get no ``infra/``."""
    return any(p.target not in ("firmware", "local") for p in plan.parts)
