"""Every rendered Kubernetes manifest validates (kubernetes-validate --strict, Kubernetes 1.32; KubeRay CRD
schema for RayService / RayJob) and carries the security defaults of the Pod Security "restricted" profile."""

from __future__ import annotations

from typing import Any

import pytest

from planner.errors import MissingDependency
from stacks import layout, manifests
from tests.stacks.conftest import PLANS

K8S_VERSION = "1.32"
K8S_PLANS = sorted(n for n in PLANS if manifests.render(PLANS[n]()))

Obj = dict[str, Any]


def rendered(name: str) -> list[Obj]:
    plan = PLANS[name]()
    return [o for objs in manifests.render(plan, manifests.default_contexts(plan)).values() for o in objs]


def pod_specs(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "DaemonSet"):
        return [spec["template"]["spec"]]
    cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec")
    if cluster:
        return [cluster["headGroupSpec"]["template"]["spec"]] + \
            [g["template"]["spec"] for g in cluster.get("workerGroupSpecs", [])]
    return []


def ray_cluster_schema() -> Obj:
    from serving.kuberay import rayservice_schema

    try:
        return rayservice_schema()["properties"]["spec"]["properties"]["rayClusterConfig"]  # type: ignore[no-any-return]
    except MissingDependency as e:
        pytest.skip(f"KubeRay CRD schema not available here: {e.message}")


@pytest.mark.parametrize("name", K8S_PLANS)
def test_every_manifest_validates(name: str) -> None:
    import jsonschema
    import kubernetes_validate

    from serving.kuberay import validate_rayservice

    for obj in rendered(name):
        if obj["kind"] == "RayService":
            try:
                validate_rayservice(obj)
            except MissingDependency as e:
                pytest.skip(f"KubeRay CRD schema not available here: {e.message}")
        elif obj["kind"] == "RayJob":
            # a RayJob's rayClusterSpec is the same RayClusterSpec as a RayService's rayClusterConfig
            jsonschema.Draft7Validator(ray_cluster_schema()).validate(obj["spec"]["rayClusterSpec"])
            # RayJobSpec fields (KubeRay ray-operator/apis/ray/v1/rayjob_types.go; suspend: no cluster is created)
            assert set(obj["spec"]) <= {"entrypoint", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished",
                                        "rayClusterSpec", "runtimeEnvYAML", "submissionMode", "suspend"}
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_validation_catches_a_broken_manifest() -> None:
    import kubernetes_validate

    dep = next(o for o in rendered("edge_vision") if o["kind"] == "DaemonSet")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limitz"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", K8S_PLANS)
def test_security_defaults_on_every_pod(name: str) -> None:
    objs = rendered(name)
    ns = next(o for o in objs if o["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objs:
        for spec in pod_specs(obj):
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert spec.get("automountServiceAccountToken") is False
            for c in spec["containers"] + spec.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"]["drop"] == ["ALL"]
                assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]
            for c in spec["containers"]:
                assert "readinessProbe" in c and "livenessProbe" in c, c["name"]
                if obj["kind"] in ("Deployment", "DaemonSet"):  # our own images: read-only root, /tmp emptyDir
                    assert c["securityContext"]["readOnlyRootFilesystem"] is True
                    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


@pytest.mark.parametrize("name", K8S_PLANS)
def test_quota_covers_every_pod_at_its_ceiling(name: str) -> None:
    plan = PLANS[name]()
    for objs in manifests.render(plan, manifests.default_contexts(plan)).values():  # one cluster per part
        hard = next(o for o in objs if o["kind"] == "ResourceQuota")["spec"]["hard"]
        need = {"cpu": 0.0, "memory": 0.0, "nvidia.com/gpu": 0.0}
        for o in objs:
            for spec in pod_specs(o):
                for k, v in manifests.pod_limits(spec).items():
                    need[k] = need.get(k, 0.0) + v
        assert float(hard.get("requests.nvidia.com/gpu", 0)) >= need["nvidia.com/gpu"]
        assert manifests.quantity(hard["limits.cpu"]) >= need["cpu"]
        assert manifests.quantity(hard["limits.memory"]) >= need["memory"]


def test_gpu_requests_equal_tp_times_pp_per_node() -> None:
    plan = PLANS["triton_tensor_parallel"]()
    info = layout.parts(plan)[0]
    c = manifests.server_container(plan, info)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == "4"
    # a pipeline split over two nodes: each node's pod holds TP x (PP stages on that node)
    pp = PLANS["cloud_llm_pipeline_parallel"]().parts[0]
    assert layout.nodes_per_replica(pp) == 2 and layout.gpus_per_pod(pp) == 8 == pp.tensor_parallel


def test_deny_by_default_only_for_confidential_and_stricter() -> None:
    kinds = {n: {(o["kind"], o["metadata"]["name"]) for o in rendered(n)} for n in K8S_PLANS}
    assert ("NetworkPolicy", "default-deny") in kinds["onprem_llm"]  # restricted
    assert ("NetworkPolicy", "default-deny") in kinds["cloud_llm_pipeline_parallel"]  # confidential
    assert not any(k == "NetworkPolicy" for k, _ in kinds["cloud_llm_tensor_parallel"])  # internal
    deny = next(o for o in rendered("onprem_llm") if o["metadata"]["name"] == "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_edge_pods_pinned_by_label_and_gpu_node_selector_in_cloud() -> None:
    ds = next(o for o in rendered("edge_vision") if o["kind"] == "DaemonSet")
    assert ds["spec"]["template"]["spec"]["nodeSelector"]["node-role.kubernetes.io/edge"] == "true"
    dep = next(o for o in rendered("triton_tensor_parallel") if o["kind"] == "Deployment")
    # the EKS accelerator node group carries both labels (stacks.aws.EksGpuCluster), and the taint tolerated
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge",
                                                               "mlplan.dev/pool": "accelerators"}
    assert dep["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_hpa_bounds_are_the_plans_replica_bounds() -> None:
    from stacks.manifests import server

    plan = PLANS["triton_tensor_parallel"]()
    info = layout.parts(plan)[0]
    # TensorRT-LLM's trtllm-serve exports no requests-in-flight gauge: no HPA, the planned replicas stay
    assert server.hpa(plan, info) is None
    triton = info.part.model_copy(update={"runtime": "triton"})
    hpa = server.hpa(plan, layout.PartInfo(0, triton))
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == \
        (plan.serving.min_replicas, plan.serving.max_replicas)
    pdb = next(o for o in rendered("triton_tensor_parallel") if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_quantities() -> None:
    assert manifests.quantity("500m") == 0.5
    assert manifests.quantity("16Gi") == 16 * 2**30
    assert manifests.quantity("4") == 4.0
