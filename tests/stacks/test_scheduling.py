"""Plan folders as a cluster reads them (:mod:`tests.stacks.scheduling`): every pod schedules on a node group the
stack creates (or the plan documents), every reference resolves, every volume is filled, Services and probes meet
their containers. Over every example, every factory plan and a random sample of recommended plans; then the
fault-finder's own negative tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from stacks import manifests
from tests import factories
from tests.fuzz_strategies import valid_spec_data
from tests.security import audit
from tests.stacks import scheduling
from tests.stacks.conftest import PLANS

Obj = dict[str, Any]


def folder_check(folder: Path, plan: Any) -> scheduling.Report:
    """The checks over the manifests a written folder holds, against the cluster its program creates."""
    rendered = scheduling.read_folder(folder)
    resources = audit.mock_run(plan)
    return scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources),
                            manifests.user_provided(plan, rendered))


@pytest.mark.parametrize("spec", audit.example_specs(), ids=lambda p: p.stem)
def test_every_example_folder_runs(tmp_path: Path, spec: Path) -> None:
    plan = audit.emit_example(spec, tmp_path / "plan")
    rep = folder_check(tmp_path / "plan", plan)
    assert rep.problems() == [], rep.problems()
    if any(p.target in ("aws-eks", "gcp-gke", "azure-aks", "kubeconfig", "edge-fleet") for p in plan.parts):
        assert rep.pods > 0


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_factory_plan_runs(name: str) -> None:
    rep = scheduling.check_plan(PLANS[name]())
    assert rep.problems() == [], rep.problems()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                HealthCheck.function_scoped_fixture])
@given(data=valid_spec_data())
def test_random_recommended_plans_run(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> None:
    from planner.catalog import Catalog
    from planner.errors import InfeasibleError
    from planner.optimizer import recommend
    from planner.specs import spec_from_data
    from stacks.writer import write_plan_folder

    spec = spec_from_data(data, source="spec")
    cat = Catalog.load(spec.catalog_overlay)
    try:
        rec = recommend(spec, cat, top=1)
    except InfeasibleError:
        return
    out = tmp_path_factory.mktemp("random") / "plan"
    write_plan_folder(spec, rec, out, catalog=cat, preview=False)
    rep = folder_check(out, rec.plans[0])
    assert rep.problems() == [], (rec.plans[0].id, rep.problems())


# ---------------------------------------------------------------------------------------------- negatives


def _case(name: str = "cloud_llm_single_gpu") -> tuple[Any, dict[str, list[Obj]], list[Any], list[Any]]:
    plan = PLANS[name]()
    rendered = manifests.render(plan, manifests.default_contexts(plan))
    resources = audit.mock_run(plan)
    return plan, rendered, resources, manifests.user_provided(plan, rendered)


def _pods(rendered: dict[str, list[Obj]]) -> list[Obj]:
    return [t["spec"] for objs in rendered.values() for o in objs for _, t, _ in scheduling.pod_templates(o)]


def test_a_tainted_only_cluster_leaves_the_ray_head_nowhere_to_run() -> None:
    plan, rendered, resources, inputs = _case()
    no_system = [r for r in resources if not r["name"].endswith("-system")]
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, no_system), inputs)
    assert any("head" in u and "nodeSelector mlplan.dev/pool=system" in u for u in rep.unschedulable), rep
    # the head without its selector still meets only the tainted GPU nodes
    for pod in _pods(rendered):
        pod.pop("nodeSelector", None) if not pod.get("tolerations") else None
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, no_system), inputs)
    assert any("taint nvidia.com/gpu:NoSchedule not tolerated" in u for u in rep.unschedulable), rep


def test_a_pod_larger_than_a_node_is_unschedulable() -> None:
    plan, rendered, resources, inputs = _case()
    worker = next(p for p in _pods(rendered) if p.get("tolerations"))
    res = worker["containers"][0]["resources"]
    res["requests"]["memory"] = res["limits"]["memory"] = "64Gi"  # a g6e.xlarge has 32 GiB
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("memory" in u and "allocatable" in u for u in rep.unschedulable), rep.unschedulable


def test_more_replicas_than_the_nodes_hold_is_unschedulable() -> None:
    plan, rendered, resources, inputs = _case("triton_tensor_parallel")  # 2 replicas x 4 GPUs on one 8-GPU node
    dep = next(o for objs in rendered.values() for o in objs if o["kind"] == "Deployment")
    dep["spec"]["replicas"] = 3
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("exceed its 1 node(s)" in u for u in rep.unschedulable), rep.unschedulable


def test_a_dangling_secret_is_found() -> None:
    plan, rendered, resources, inputs = _case()
    pod = _pods(rendered)[0]
    pod["containers"][0].setdefault("env", []).append(
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "key"}}})
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("Secret mlplan-test/api-key is neither created nor documented" in d for d in rep.dangling)
    # the same Secret, documented as the user's, is fine
    doc = [*inputs, manifests.UserInput("Secret", "mlplan-test", "api-key", "yours")]
    assert scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), doc).dangling == []


def test_an_undocumented_tls_secret_and_a_missing_configmap_are_found() -> None:
    plan, rendered, resources, inputs = _case("cloud_llm_pipeline_parallel")  # confidential: TLS front door
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), [])
    assert any("Secret mlplan-test/test-tls" in d for d in rep.dangling), rep.dangling
    broken = copy.deepcopy(rendered)
    for objs in broken.values():
        objs[:] = [o for o in objs if o["kind"] != "ConfigMap"]
    rep = scheduling.check(plan, broken, scheduling.cluster_model(plan, resources), inputs)
    assert any("ConfigMap mlplan-test/test-tls" in d for d in rep.dangling), rep.dangling


def test_a_model_volume_nothing_fills_is_found() -> None:
    plan, rendered, resources, inputs = _case()
    worker = next(p for p in _pods(rendered) if p.get("initContainers"))
    worker.pop("initContainers")
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("volume models is read by ray-worker and filled by nothing" in u for u in rep.unfilled)


def test_a_model_volume_smaller_than_the_weights_is_found() -> None:
    plan, rendered, resources, inputs = _case()
    worker = next(p for p in _pods(rendered) if p.get("initContainers"))
    next(v for v in worker["volumes"] if v["name"] == "models")["emptyDir"]["sizeLimit"] = "4Gi"
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("< 1.1 x" in u for u in rep.unfilled), rep.unfilled


def test_a_refusing_fetch_counts_only_when_the_weights_are_documented_as_yours() -> None:
    plan = factories.onprem_llm()  # vLLM on-prem: no bucket, no HF id -> the user's weights
    vllm = plan.parts[0].model_copy(update={"runtime": "vllm"})
    part = vllm.model_copy(update={"engine": factories.engine(vllm)})
    plan = plan.model_copy(update={"parts": (part,), "serving": plan.serving.model_copy(update={"runtime": "vllm"}),
                                   "model": plan.model.model_copy(update={"artifact": "/data/local/folder",
                                                                          "hf_id": None})})
    rendered = manifests.render(plan, manifests.default_contexts(plan))
    inputs = manifests.user_provided(plan, rendered)
    assert any(u.kind == "ModelWeights" for u in inputs)
    groups = scheduling.cluster_model(plan, [])
    assert scheduling.check(plan, rendered, groups, inputs).unfilled == []
    assert scheduling.check(plan, rendered, groups, [u for u in inputs if u.kind != "ModelWeights"]).unfilled


def test_service_ports_and_probes_must_meet_the_containers() -> None:
    plan, rendered, resources, inputs = _case("triton_tensor_parallel")
    broken = copy.deepcopy(rendered)
    svc = next(o for objs in broken.values() for o in objs if o["kind"] == "Service")
    svc["spec"]["ports"][0]["targetPort"] = "web"
    pod = next(p for p in _pods(broken) if p["containers"][0]["name"] == "server")
    pod["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/ready"
    rep = scheduling.check(plan, broken, scheduling.cluster_model(plan, resources), inputs)
    assert any("targetPort web" in p for p in rep.ports), rep.ports
    assert any("path /ready is not one" in p for p in rep.probes), rep.probes
    svc["spec"]["selector"] = {"app.kubernetes.io/name": "nobody"}
    rep = scheduling.check(plan, broken, scheduling.cluster_model(plan, resources), inputs)
    assert any("selects no pod" in p for p in rep.ports), rep.ports


def test_an_envoy_upstream_that_is_no_service_is_dangling() -> None:
    plan, rendered, resources, inputs = _case("hybrid_onprem_cloud_burst")
    import yaml

    cm = next(o for objs in rendered.values() for o in objs
              if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-router"))
    envoy = yaml.safe_load(cm["data"]["envoy.yaml"])
    for c in envoy["static_resources"]["clusters"]:
        if c["name"] == "local":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
                "address"] = "gone.mlplan-test.svc.cluster.local"
    cm["data"]["envoy.yaml"] = yaml.safe_dump(envoy)
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources), inputs)
    assert any("upstream gone.mlplan-test" in d for d in rep.dangling), rep.dangling
