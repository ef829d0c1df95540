"""Read the plan folder that ``mlplan plan SPEC --out DIR`` writes: the only input of deploy.

Layout (the contract between the emitters and deploy)::

    DIR/plan.yaml                          {mlplan_version, catalog_version, spec, plan, runners_up, rejected}
    DIR/infra/                             Pulumi project (Pulumi.yaml, __main__.py, Pulumi.<stack>.yaml)
    DIR/serving/ray/serve_config.yaml      Ray Serve config
    DIR/serving/kuberay/rayservice.yaml    RayService (Kubernetes + Ray)
    DIR/serving/triton/model_repository/   Triton model repository
    DIR/k8s/*.yaml                         Kubernetes manifests
    DIR/firmware/                          microcontroller plans
    DIR/.mlplan/                           deploy state (written by deploy only)

A missing or corrupt folder raises :class:`~planner.errors.ArtifactError` with the command that makes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from planner.errors import ArtifactError, InputError
from planner.plan import Plan
from planner.specs import format_validation_error, read_yaml

Target = Literal["local", "kubernetes", "pulumi"]
TARGETS: tuple[Target, ...] = ("local", "kubernetes", "pulumi")
REMAKE = "run `mlplan plan SPEC --out DIR` to (re)write the plan folder"


@dataclass(frozen=True)
class PlanFolder:
    root: Path
    plan: Plan
    data: dict[str, Any]

    # ---------------------------------------------------------------------------------------- paths
    @property
    def state_dir(self) -> Path:
        return self.root / ".mlplan"

    @property
    def infra_dir(self) -> Path:
        return self.root / "infra"

    @property
    def serve_config(self) -> Path:
        return self.root / "serving" / "ray" / "serve_config.yaml"

    @property
    def rayservice(self) -> Path:
        return self.root / "serving" / "kuberay" / "rayservice.yaml"

    @property
    def triton_repository(self) -> Path:
        return self.root / "serving" / "triton" / "model_repository"

    @property
    def k8s_dir(self) -> Path:
        return self.root / "k8s"

    def k8s_files(self) -> list[Path]:
        """``k8s/*.yaml`` in name order (one file per Kubernetes part, named by its part key)."""
        if not self.k8s_dir.is_dir():
            return []
        return sorted(p for p in self.k8s_dir.glob("*.y*ml") if p.is_file())

    def part_targets(self) -> dict[str, str]:
        """Part key -> deploy target of each part, as the emitters name them (``stacks.layout``)."""
        from stacks.layout import parts

        return {info.key: str(info.target) for info in parts(self.plan)}

    def cloud_cluster_keys(self) -> set[str]:
        """Parts whose manifests the Pulumi stack applies to the cluster it creates (EKS), not kubeconfig's."""
        return {k for k, t in self.part_targets().items() if t == "aws-eks"}

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            rel = path.relative_to(self.root)
            raise ArtifactError(f"{self.root}: {what} is missing ({rel})",
                                fix=f"{REMAKE}; this plan's placement is {self.plan.placement}")
        return path

    # ------------------------------------------------------------------------------------- targets
    def default_target(self) -> Target:
        """local for a plan on this machine; kubernetes for on-prem / edge (and clusters mlplan does not
        create); pulumi for AWS cloud. A hybrid plan needs its target named (one per side)."""
        plan = self.plan
        targets = set(self.part_targets().values())
        if "firmware" in targets:
            raise InputError(f"plan {plan.id} is a microcontroller firmware plan: it has no deploy target",
                             fix=f"build and flash it from {self.root / 'firmware'}")
        kinds: set[Target] = set()
        for t in targets:
            kinds.add("local" if t == "local" else "pulumi" if t.startswith("aws-") else "kubernetes")
        if len(kinds) == 1:
            return kinds.pop()
        raise InputError(
            f"plan {plan.id} is hybrid: it deploys with " + " and ".join(f"--target {k}" for k in sorted(kinds)),
            fix="run `mlplan deploy DIR --target T` once per target",
        )

def load_folder(path: str | Path) -> PlanFolder:
    """Load and validate ``DIR/plan.yaml``; raise ArtifactError (one line, with a fix) if it is not usable.

    The one reader of plan folders (deploy, status, destroy, preflight and ``mlplan diff``): the same safe YAML
    reader as specs (regular files only, size cap, no duplicate keys), and any OS error on the path (a name too
    long, a permission) is the same one-line ArtifactError."""
    root = Path(path)
    try:
        if not root.exists():
            raise ArtifactError(f"plan folder not found: {root}", fix=REMAKE)
        if not root.is_dir():
            raise ArtifactError(f"not a plan folder (it is a file): {root}", fix=REMAKE)
        plan_file = root / "plan.yaml"
        if not plan_file.is_file():
            raise ArtifactError(f"{root} has no plan.yaml, so it is not a plan folder", fix=REMAKE)
    except OSError as e:
        raise ArtifactError(f"cannot read plan folder {str(root)[:80]!r}: {e.strerror or e}", fix=REMAKE) from None
    data = read_yaml(plan_file, what="plan", error=ArtifactError)
    if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
        raise ArtifactError(f"{plan_file} has no 'plan' mapping", fix=REMAKE)
    try:
        plan = Plan.model_validate(data["plan"])
    except ValidationError as e:
        raise ArtifactError(format_validation_error(e, f"{plan_file}: plan"), fix=REMAKE) from None
    return PlanFolder(root=root.resolve(), plan=plan, data=data)
