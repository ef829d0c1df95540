"""The plan folder that ``mlplan plan SPEC --out DIR`` writes: the only input of deploy, diff and the Pulumi
program, read here and nowhere else.

Layout (the contract between the emitters and deploy)::

    DIR/.mlplan-folder                     the ownership marker: plan id and a sha256 of every file written
    DIR/plan.yaml                          {mlplan_version, catalog_version, spec, spec_sha256, plan, runners_up,
                                            rejected}
    DIR/infra/                             Pulumi project (Pulumi.yaml, __main__.py, Pulumi.<stack>.yaml)
    DIR/serving/ray/serve_config.yaml      Ray Serve config
    DIR/serving/kuberay/rayservice.yaml    RayService (Kubernetes + Ray)
    DIR/serving/triton/model_repository/   Triton model repository
    DIR/k8s/*.yaml                         Kubernetes manifests
    DIR/firmware/                          microcontroller plans
    DIR/.mlplan/                           deploy state (written by deploy only)

The marker makes the folder mlplan's own: ``mlplan plan --out`` replaces only a folder that holds one, and only
if every path in it is one mlplan wrote (``.mlplan/`` deploy state and Pulumi's ``infra/venv`` aside). Loading
checks the marker's hashes (a file changed since ``mlplan plan`` wrote it is refused, except the Pulumi stack
config ``infra/Pulumi.<stack>.yaml``, where ``pulumi config set`` keeps the user's settings), the spec copy's
hash, and the plan against that spec (:func:`planner.guard.check_plan`).

A missing or corrupt folder raises :class:`~planner.errors.ArtifactError` with the command that makes one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from planner.errors import ArtifactError, InputError, MlplanError
from planner.guard import check_plan, spec_digest
from planner.plan import Plan
from planner.specs import Spec, format_validation_error, read_yaml, spec_from_data

Target = Literal["local", "kubernetes", "pulumi"]
TARGETS: tuple[Target, ...] = ("local", "kubernetes", "pulumi")
REMAKE = "run `mlplan plan SPEC --out DIR` to (re)write the plan folder"

MARKER = ".mlplan-folder"
MARKER_FORMAT = 1
STATE_DIR = ".mlplan"
#: paths mlplan does not write but may find in its own folder: deploy state (carried over when the folder is
#: replaced) and what Pulumi and Python create when the stack runs (regenerated, so replacing them loses nothing)
TOOL_PATHS = (STATE_DIR, "infra/venv", "infra/__pycache__")
#: targets the Pulumi stack creates (a cloud instance or a managed cluster): deployed with ``--target pulumi``
PULUMI_TARGETS = ("aws-ec2", "aws-eks", "gcp-gke", "azure-aks")
CLOUD_CLUSTER_TARGETS = ("aws-eks", "gcp-gke", "azure-aks")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def marker_text(plan_id: str, root: Path, files: Iterable[Path]) -> str:
    """The marker of a folder whose files are ``files`` (under ``root``): plan id, a sha256 per file and one
    over the sorted list (the folder's content hash)."""
    hashes = {p.relative_to(root).as_posix(): file_sha256(p) for p in files}
    listing = "".join(f"{k}\t{v}\n" for k, v in sorted(hashes.items()))
    data = {"format": MARKER_FORMAT, "plan_id": plan_id, "files": dict(sorted(hashes.items())),
            "sha256": hashlib.sha256(listing.encode()).hexdigest()}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_marker(root: Path) -> dict[str, Any] | None:
    """The parsed marker of ``root``, or None if it has none (or an unreadable one)."""
    path = root / MARKER
    try:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8")[:10_000_000])
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or not isinstance(data.get("files"), dict):
        return None
    return data


def _is_tool_path(rel: str) -> bool:
    return any(rel == t or rel.startswith(t + "/") for t in TOOL_PATHS) or "/__pycache__/" in f"/{rel}/"


def foreign_paths(root: Path, marker: dict[str, Any]) -> list[str]:
    """Paths in ``root`` that mlplan did not write (the marker does not list them), tool paths aside."""
    listed = set(marker["files"]) | {MARKER}
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not _is_tool_path(rel_dir + d)]
        for name in filenames:
            rel = rel_dir + name
            if rel not in listed and not _is_tool_path(rel):
                out.append(rel)
        for d in dirnames:
            rel = rel_dir + d
            if not any(f.startswith(rel + "/") for f in listed) and not os.listdir(os.path.join(dirpath, d)):
                out.append(rel + "/")
    return sorted(out)


def changed_files(root: Path, marker: dict[str, Any]) -> list[str]:
    """Files the marker lists that are missing or differ from what mlplan wrote (Pulumi stack config aside)."""
    out = []
    for rel, digest in sorted(marker["files"].items()):
        if rel.startswith("infra/Pulumi.") and rel != "infra/Pulumi.yaml":
            continue  # the stack config: `pulumi config set` writes the user's settings here
        path = root / rel
        try:
            if not path.is_file() or file_sha256(path) != digest:
                out.append(rel)
        except OSError:
            out.append(rel)
    return out


@dataclass(frozen=True)
class PlanFolder:
    root: Path
    plan: Plan
    data: dict[str, Any]
    spec: Spec

    # ---------------------------------------------------------------------------------------- paths
    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

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
        """Part key -> deploy target of each part, as the plan decided it."""
        return {p.names.key: p.target for p in self.plan.parts}

    def cloud_cluster_keys(self) -> set[str]:
        """Parts whose manifests the Pulumi stack applies to the cluster it creates, not kubeconfig's."""
        return {k for k, t in self.part_targets().items() if t in CLOUD_CLUSTER_TARGETS}

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
            kinds.add("local" if t == "local" else "pulumi" if t in PULUMI_TARGETS else "kubernetes")
        if len(kinds) == 1:
            return kinds.pop()
        raise InputError(
            f"plan {plan.id} is hybrid: it deploys with " + " and ".join(f"--target {k}" for k in sorted(kinds)),
            fix="run `mlplan deploy DIR --target T` once per target",
        )

def load_folder(path: str | Path, *, sealed: bool = True) -> PlanFolder:
    """Load and verify a plan folder; raise ArtifactError (one line, with a fix) if it is not usable.

    The one reader of plan folders (deploy, status, destroy, preflight, ``mlplan diff`` and the Pulumi program):
    the same safe YAML reader as specs (regular files only, size cap, no duplicate keys); the marker's hashes;
    the spec copy and its hash; the plan against that spec (the residency and privacy guard). Any OS error on
    the path (a name too long, a permission) is the same one-line ArtifactError.

    ``sealed=False`` skips the marker checks: only for a folder still being written (the offline preview the
    writer runs before it seals the folder with its marker)."""
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
    marker = read_marker(root) if sealed else {"files": {}, "plan_id": None}
    if marker is None:
        raise ArtifactError(f"{root} has no valid {MARKER} marker, so mlplan did not write it", fix=REMAKE)
    changed = changed_files(root, marker)
    if changed:
        more = f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
        raise ArtifactError(f"{root}: {changed[0]}{more} changed since `mlplan plan` wrote the folder",
                            fix=f"{REMAKE}; change the spec, not the generated files")
    data = read_yaml(plan_file, what="plan", error=ArtifactError)
    if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
        raise ArtifactError(f"{plan_file} has no 'plan' mapping", fix=REMAKE)
    try:
        plan = Plan.model_validate(data["plan"])
    except ValidationError as e:
        raise ArtifactError(format_validation_error(e, f"{plan_file}: plan"), fix=REMAKE) from None
    if sealed and marker.get("plan_id") != plan.id:
        raise ArtifactError(f"{root}: the marker names plan {marker.get('plan_id')!r}, plan.yaml {plan.id!r}",
                            fix=REMAKE)
    spec_data = data.get("spec")
    if spec_digest(spec_data) != data.get("spec_sha256"):
        raise ArtifactError(f"{plan_file}: the stored spec does not match its spec_sha256", fix=REMAKE)
    try:
        spec = spec_from_data(spec_data, source=f"{plan_file}: spec")
    except MlplanError as e:
        raise ArtifactError(e.message, fix=REMAKE) from None
    check_plan(plan, spec)
    return PlanFolder(root=root.resolve(), plan=plan, data=data, spec=spec)
