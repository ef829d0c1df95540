"""The seam between the deploy verbs and the places a plan runs: the :class:`DeployTarget` Protocol.

``stacks.deploy.targets`` (the verbs behind ``mlplan deploy / status / destroy``) holds the folder's lock, keeps
the state file and prints; a target does the work on one kind of place. Three implement it:

- :class:`stacks.deploy.local.LocalTarget`: Ray Serve or Triton on this machine;
- :class:`stacks.deploy.kube.KubernetesTarget`: server-side apply to the kubeconfig's cluster;
- :class:`stacks.deploy.pulumi_target.PulumiTarget`: the folder's Pulumi stack through the Automation API.

Tests fake the seam the way httpx's ``BaseTransport`` is faked: ``targets.deploy(..., factory=...)`` takes any
callable that returns a :class:`DeployTarget`, so the verbs' locking, state and output are tested without
servers, clusters or clouds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stacks.folder import Target as TargetName

#: One line of progress for the user (the CLI prints it on stderr as it happens).
Say = Callable[[str], None]


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did, or what ``plan`` (a dry run: nothing changes) found it would do.

    ``changed`` counts what was (or would be) created, reconfigured, restarted or removed: 0 means the deployment
    already matched the plan folder. ``details`` holds the target's own report (``objects`` and ``pruned`` on
    Kubernetes, ``smoke`` on local, ``preview`` and ``outputs`` on Pulumi)."""

    target: TargetName
    changed: int
    endpoint: str | None = None
    dry_run: bool = False
    ready: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    """``status`` of one target: healthy, and one line per thing it runs."""

    healthy: bool
    lines: tuple[str, ...]


@runtime_checkable
class DeployTarget(Protocol):
    """One place a plan folder deploys to. Every method reads the folder and the deploy state it was made with;
    ``apply`` and ``destroy`` record each step in the state as it happens and report it with the ``say``
    callback they were made with."""

    name: TargetName

    def plan(self) -> Applied:
        """What ``apply`` would do; changes nothing (Kubernetes ``dryRun=All``, ``pulumi preview``, local config
        validation)."""
        ...

    def apply(self) -> Applied:
        """Make the deployment match the folder. Idempotent: a second apply changes nothing."""
        ...

    def status(self) -> Health:
        """Whether what the state records is running and healthy (reads only)."""
        ...

    def destroy(self) -> int:
        """Remove what this folder's deployments created (nothing else); the number of things removed."""
        ...

    def close(self) -> None:
        """Release connections; the target is not used afterwards."""
        ...
