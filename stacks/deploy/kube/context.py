"""What every job of the Kubernetes target shares: the folder, its deploy state, the client, the identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.errors import DeployError
from stacks.deploy.kube.client import KubeClient
from stacks.deploy.kube.ownership import Identity
from stacks.deploy.state import DeployState
from stacks.deploy.target import Say
from stacks.folder import PlanFolder

TARGET = "kubernetes"


@dataclass
class KubeContext:
    folder: PlanFolder
    state: DeployState
    client: KubeClient
    ident: Identity
    say: Say
    default_namespace: str = "default"
    console: Any = None

    def record(self) -> dict[str, Any]:
        return self.state.target(TARGET) or {}

    def recorded(self) -> list[dict[str, Any]]:
        """The objects the state records as this folder's, in the order they were applied."""
        return [dict(r) for r in self.record().get("resources", [])]

    def same_cluster(self) -> None:
        """Refuse to read or delete on another cluster than the one this folder was deployed to."""
        rec = self.record()
        server = rec.get("server")
        if server and rec.get("resources") and server != self.client.host:
            raise DeployError(f"{self.folder.root} was deployed to {server}, but the kubeconfig now points at "
                              f"{self.client.host}", fix="pass the --kubeconfig / --context used for the deploy")
