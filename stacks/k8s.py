"""Kubernetes building blocks as Pulumi ComponentResources (pulumi-kubernetes 4.x).

The objects themselves come from :mod:`stacks.manifests` (the same dicts written to ``k8s/*.yaml``) and are
applied with ``pulumi_kubernetes.yaml.v2.ConfigGroup(objs=...)``, so the stack and the rendered manifests never
disagree. Operators come from their upstream Helm charts, pinned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: KubeRay operator chart. Source: https://ray-project.github.io/kuberay-helm/ (chart kuberay-operator).
KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"
KUBERAY_VERSION = "1.4.2"
#: NVIDIA device plugin chart (advertises nvidia.com/gpu). Source: https://github.com/NVIDIA/k8s-device-plugin
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
DEVICE_PLUGIN_VERSION = "0.17.1"
#: AMD GPU device plugin chart (advertises amd.com/gpu). Source: https://github.com/ROCm/k8s-device-plugin
#: (helm/amd-gpu/Chart.yaml version 0.16.0, appVersion 1.31.0.2; values: node_selector_enabled, node_selector,
#: tolerations).
AMD_DEVICE_PLUGIN_REPO = "https://rocm.github.io/k8s-device-plugin/"
AMD_DEVICE_PLUGIN_VERSION = "0.16.0"


def cluster_provider(name: str, kubeconfig: pulumi.Input[str], parent: pulumi.Resource | None = None,
                     depends_on: Sequence[pulumi.Resource] = ()) -> k8s.Provider:
    """A provider for one cluster. ``kubeconfig`` is a secret Output (config.require_secret or EKS output)."""
    return k8s.Provider(name, kubeconfig=kubeconfig, enable_server_side_apply=True,
                        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)))


class KubeRayOperator(pulumi.ComponentResource):
    """The KubeRay operator (RayService / RayCluster / RayJob CRDs and controller), from its Helm chart."""

    def __init__(self, name: str, *, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:KubeRayOperator", name, None, opts)
        self.release = k8s.helm.v3.Release(
            name, name="kuberay-operator", chart="kuberay-operator", version=KUBERAY_VERSION,
            repository_opts={"repo": KUBERAY_REPO}, namespace="kuberay-system", create_namespace=True,
            atomic=True, values={"resources": {"requests": {"cpu": "100m", "memory": "512Mi"},
                                               "limits": {"cpu": "500m", "memory": "512Mi"}}},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin DaemonSet on GPU nodes (the AL2023 NVIDIA AMI ships the driver, not the plugin)."""

    def __init__(self, name: str, *, provider: k8s.Provider, extra_tolerations: Sequence[dict[str, str]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:NvidiaDevicePlugin", name, None, opts)
        tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        tolerations += [t for t in extra_tolerations if t not in tolerations]
        self.release = k8s.helm.v3.Release(
            name, name="nvidia-device-plugin", chart="nvidia-device-plugin", version=DEVICE_PLUGIN_VERSION,
            repository_opts={"repo": DEVICE_PLUGIN_REPO}, namespace="nvidia-device-plugin",
            create_namespace=True, atomic=True,
            values={"nodeSelector": {"mlplan.dev/gpu": "true"},
                    "tolerations": tolerations},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class AmdDevicePlugin(pulumi.ComponentResource):
    """The ROCm device plugin DaemonSet (advertises ``amd.com/gpu``) on the AMD GPU nodes (``mlplan.dev/gpu``)."""

    def __init__(self, name: str, *, provider: k8s.Provider, extra_tolerations: Sequence[dict[str, str]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:AmdDevicePlugin", name, None, opts)
        tolerations = [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        tolerations += [t for t in extra_tolerations if t not in tolerations]
        self.release = k8s.helm.v3.Release(
            name, name="amd-gpu", chart="amd-gpu", version=AMD_DEVICE_PLUGIN_VERSION,
            repository_opts={"repo": AMD_DEVICE_PLUGIN_REPO}, namespace="kube-amd-gpu", create_namespace=True,
            atomic=True,
            values={"node_selector_enabled": True, "node_selector": {"mlplan.dev/gpu": "true"},
                    "tolerations": tolerations},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class ModelServing(pulumi.ComponentResource):
    """Applies one part's manifests (namespace, quota, policies, workload, service, HPA, PDB, RayService)."""

    def __init__(self, name: str, *, objs: list[dict[str, Any]], provider: k8s.Provider,
                 depends_on: Sequence[pulumi.Resource] = (), opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:ModelServing", name, None, opts)
        self.objects = k8s.yaml.v2.ConfigGroup(
            name, objs=objs, opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(depends_on)))
        self.register_outputs({"objects": [f"{o['kind']}/{o['metadata']['name']}" for o in objs]})
