"""The Kubernetes :class:`~stacks.deploy.target.DeployTarget`: the jobs of this package behind the four verbs."""

from __future__ import annotations

from typing import Any

from stacks.deploy.kube.apply import apply_folder
from stacks.deploy.kube.client import KubeClient
from stacks.deploy.kube.context import TARGET, KubeContext
from stacks.deploy.kube.ownership import Identity, owner_label_value
from stacks.deploy.kube.rollout import status as rollout_status
from stacks.deploy.kube.teardown import destroy as teardown_destroy
from stacks.deploy.state import DeployState
from stacks.deploy.target import Applied, Health, Say
from stacks.folder import PlanFolder, Target


class KubernetesTarget:
    name: Target = "kubernetes"

    def __init__(self, folder: PlanFolder, state: DeployState, *, kubeconfig: str | None = None,
                 context: str | None = None, namespace: str = "default", say: Say = print, console: Any = None,
                 wait: bool = True, timeout_s: float = 600.0, force_conflicts: bool = True,
                 poll_s: float = 2.0) -> None:
        recorded = state.target(TARGET) or {}
        # status / destroy default to the kubeconfig and context the deploy used
        self.client = KubeClient(kubeconfig or recorded.get("kubeconfig"), context or recorded.get("context"),
                                 folder.state_dir)
        self.folder, self.state, self.say, self.console = folder, state, say, console
        self.default_namespace = namespace
        self.wait, self.timeout_s, self.force_conflicts, self.poll_s = wait, timeout_s, force_conflicts, poll_s

    def _ctx(self, *, create_identity: bool) -> KubeContext:
        ident = Identity(owner=owner_label_value(self.folder.plan.names.project),
                         deployment=self.state.deployment_id(create=create_identity))
        return KubeContext(self.folder, self.state, self.client, ident, self.say, self.default_namespace,
                           self.console)

    def plan(self) -> Applied:
        return apply_folder(self._ctx(create_identity=False), dry_run=True, force=self.force_conflicts,
                                  wait=False, timeout_s=self.timeout_s, poll_s=self.poll_s)

    def apply(self) -> Applied:
        return apply_folder(self._ctx(create_identity=True), dry_run=False, force=self.force_conflicts,
                                  wait=self.wait, timeout_s=self.timeout_s, poll_s=self.poll_s)

    def status(self) -> Health:
        return rollout_status(self._ctx(create_identity=False))

    def destroy(self) -> int:
        return teardown_destroy(self._ctx(create_identity=False))

    def close(self) -> None:
        self.client.close()
