"""RayService objects: valid against the real KubeRay CRD schema, strict on unknown fields, carrying the plan's
nodes, GPUs per node, GPU type and TP/PP, with secure pod defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from planner.errors import ArtifactError
from planner.plan import Plan
from serving import hardware
from serving.kuberay import build_rayservice, build_rayservices, schemas_dir, uses_kubernetes, validate_rayservice
from tests import factories

needs_schema = pytest.mark.skipif(
    schemas_dir() is None,
    reason="RayService CRD schema not found (set MLPLAN_SCHEMAS_DIR or put shared/schemas beside the checkout)",
)

K8S = {"cloud_llm_single_gpu", "cloud_llm_tensor_parallel", "cloud_llm_pipeline_parallel", "onprem_llm",
       "hybrid_onprem_cloud_burst"}


@pytest.mark.parametrize("name", sorted(factories.ALL_PLANS))
def test_which_plans_use_kubernetes(name: str) -> None:
    plan = factories.ALL_PLANS[name]()
    assert bool(build_rayservices(plan, "ns")) == (name in K8S)


def test_kubernetes_decision_rules() -> None:
    single = factories.cloud_llm_single_gpu()
    one_node = single.parts[0].model_copy(update={"nodes": 1})
    assert uses_kubernetes(single, single.parts[0])  # 2 nodes x 1 GPU
    assert not uses_kubernetes(single, one_node)  # a single cloud GPU box: plain serve run
    demo = factories.local_demo()
    assert not uses_kubernetes(demo, demo.parts[0])  # localhost
    assert not uses_kubernetes(factories.training_zero(), factories.training_zero().parts[0])


def manifests_quantity(q: str) -> float:
    from stacks.manifests import quantity

    return quantity(q)


def _workers(rs: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return groups


@needs_schema
@pytest.mark.parametrize("name", sorted(K8S))
def test_rayservice_validates_and_carries_the_plan(name: str) -> None:
    plan: Plan = factories.ALL_PLANS[name]()
    services = build_rayservices(plan, "ml-serving")
    assert len(services) == sum(uses_kubernetes(plan, p) for p in plan.parts)
    for rs, part in zip(services, [p for p in plan.parts if uses_kubernetes(plan, p)], strict=True):
        validate_rayservice(rs)
        assert rs["metadata"]["namespace"] == "ml-serving"
        (group,) = _workers(rs)
        assert group["replicas"] == group["minReplicas"] == part.nodes
        assert group["maxReplicas"] >= part.nodes
        container = group["template"]["spec"]["containers"][0]
        gpus = container["resources"]["limits"][hardware.device_resource(part)]
        assert group["rayStartParams"]["num-gpus"] == gpus == str(part.gpus_per_node)
        assert container["resources"]["requests"] == container["resources"]["limits"]
        selector = group["template"]["spec"]["nodeSelector"]
        if part.placement == "cloud":  # the accelerator pool the stacks create: both labels on every node of it
            assert selector == {hardware.INSTANCE_TYPE_LABEL: part.instance, hardware.POOL_LABEL: "accelerators"}
        else:
            assert selector[hardware.GPU_PRODUCT_LABEL] == part.device.gpu_product
        # the worker takes the node's allocatable less the DaemonSets' share: never more than the node has
        assert manifests_quantity(container["resources"]["requests"]["cpu"]) * 1000 <= \
            part.node.allocatable_cpu_millicores - hardware.DAEMONSET_CPU_M
        assert manifests_quantity(container["resources"]["requests"]["memory"]) / 2**20 <= \
            part.node.allocatable_memory_mib - hardware.DAEMONSET_MEMORY_MIB
        for spec in (group["template"]["spec"], rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]):
            assert spec["serviceAccountName"] == part.names.app  # workload identity reaches every pod
        serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
        app = serve["applications"][0]
        if app["import_path"].startswith("ray.serve.llm"):
            eng = app["args"]["llm_configs"][0]["engine_kwargs"]
            assert (eng["tensor_parallel_size"], eng["pipeline_parallel_size"]) == \
                (part.tensor_parallel, part.pipeline_parallel)
            assert part.engine is not None
            assert (eng["max_num_seqs"], eng["max_model_len"], eng["gpu_memory_utilization"]) == \
                (part.engine.max_num_seqs, part.engine.max_model_len, part.engine.gpu_memory_utilization)
            # the weights come from the worker's own copy, fetched by its init container into the models volume
            source = app["args"]["llm_configs"][0]["model_loading_config"]["model_source"]
            spec = group["template"]["spec"]
            assert source.startswith("/models/") and spec["initContainers"][0]["name"] == "fetch-model"
            assert any(v["name"] == "models" for v in spec["volumes"])
        else:
            assert app["deployments"][0]["ray_actor_options"]["num_gpus"] == part.accelerator_count


@needs_schema
@pytest.mark.parametrize("name", sorted(K8S))
def test_pods_have_secure_defaults_and_probes(name: str) -> None:
    rs = build_rayservices(factories.ALL_PLANS[name](), "ns")[0]
    cluster = rs["spec"]["rayClusterConfig"]
    for tpl in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
        spec = tpl["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
            assert "exec" in c["readinessProbe"] and "exec" in c["livenessProbe"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


@needs_schema
def test_schema_rejects_a_wrong_type_and_a_missing_required_field() -> None:
    rs = build_rayservice(factories.cloud_llm_tensor_parallel(), "ns")
    bad = copy.deepcopy(rs)
    _workers(bad)[0]["replicas"] = "two"
    with pytest.raises(ArtifactError, match=r"workerGroupSpecs\[0\]\.replicas"):
        validate_rayservice(bad)
    bad = copy.deepcopy(rs)
    del _workers(bad)[0]["groupName"]
    with pytest.raises(ArtifactError, match="groupName"):
        validate_rayservice(bad)


@needs_schema
def test_unknown_fields_are_rejected_not_pruned() -> None:
    rs = build_rayservice(factories.cloud_llm_single_gpu(), "ns")
    for mutate, key in ((lambda o: o["spec"].update(serveConfig="x"), "spec.serveConfig"),
                        (lambda o: _workers(o)[0].update(replica=1), "replica"),
                        (lambda o: _workers(o)[0]["template"]["spec"]["containers"][0].update(resource={}),
                         "containers[0].resource")):
        bad = copy.deepcopy(rs)
        mutate(bad)
        with pytest.raises(ArtifactError, match="unknown field") as exc:
            validate_rayservice(bad)
        assert key in str(exc.value)


@needs_schema
def test_embedded_serve_config_is_validated_too() -> None:
    rs = build_rayservice(factories.onprem_llm(), "ns")
    serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
    serve["applications"][0]["deployments"][0]["num_replica"] = 3
    rs["spec"]["serveConfigV2"] = yaml.safe_dump(serve)
    with pytest.raises(ArtifactError, match="num_replica"):
        validate_rayservice(rs)


def test_missing_schema_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from planner.errors import MissingDependency
    from serving import kuberay

    monkeypatch.setenv("MLPLAN_SCHEMAS_DIR", str(tmp_path))
    monkeypatch.setattr(kuberay, "SCHEMA_FILE", "absent.yaml")
    kuberay.rayservice_schema.cache_clear()
    try:
        with pytest.raises(MissingDependency, match="MLPLAN_SCHEMAS_DIR"):
            kuberay.rayservice_schema()
    finally:
        kuberay.rayservice_schema.cache_clear()
