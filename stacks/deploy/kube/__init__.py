"""Kubernetes target: server-side apply of the emitted manifests with the ``kubernetes`` Python client, and
only ever to this deployment's own objects.

One module per job:

- :mod:`~stacks.deploy.kube.client`: kubeconfig, API discovery, the I/O boundary (client errors -> mlplan errors);
- :mod:`~stacks.deploy.kube.manifests`: which manifests, read and checked, in apply order;
- :mod:`~stacks.deploy.kube.ownership`: the labels every applied object carries and who owns a live object;
- :mod:`~stacks.deploy.kube.apply`: survey, namespaces, server-side apply, prune;
- :mod:`~stacks.deploy.kube.rollout`: readiness, the rollout wait, ``status``;
- :mod:`~stacks.deploy.kube.teardown`: ``destroy`` and prune deletes;
- :mod:`~stacks.deploy.kube.target`: :class:`KubernetesTarget`, the :class:`~stacks.deploy.target.DeployTarget`.
"""

from __future__ import annotations

from stacks.deploy.kube.client import FIELD_MANAGER
from stacks.deploy.kube.context import TARGET
from stacks.deploy.kube.manifests import Manifest, read_manifests, select_manifests
from stacks.deploy.kube.ownership import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, OWNER_LABEL
from stacks.deploy.kube.rollout import readiness
from stacks.deploy.kube.target import KubernetesTarget

__all__ = ["DEPLOYMENT_LABEL", "FIELD_MANAGER", "MANAGED_BY_LABEL", "OWNER_LABEL", "TARGET", "KubernetesTarget",
           "Manifest", "read_manifests", "readiness", "select_manifests"]
