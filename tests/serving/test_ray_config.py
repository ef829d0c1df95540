"""Serve configs for every factory plan: Ray's schema accepts them, they carry the plan verbatim, and the strict
check catches keys ServeDeploySchema would silently ignore."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from planner.errors import ArtifactError, InputError
from planner.plan import Plan
from serving.ray_config import (
    RAY_APP_IMPORT_PATH,
    VLLM_IMPORT_PATH,
    ServeConfigError,
    build_serve_config,
    validate_serve_config,
)
from tests import factories

RAY_PLANS = {n: f() for n, f in factories.ALL_PLANS.items() if f().serving.runtime in ("ray", "vllm")}


def test_every_ray_runtime_factory_is_covered() -> None:
    assert set(RAY_PLANS) >= {"cloud_llm_single_gpu", "cloud_llm_tensor_parallel", "cloud_llm_pipeline_parallel",
                              "onprem_llm", "hybrid_onprem_cloud_burst", "local_demo"}


@pytest.mark.parametrize("name", sorted(RAY_PLANS))
def test_config_validates_and_carries_the_plan(name: str) -> None:
    plan = RAY_PLANS[name]
    cfg = build_serve_config(plan)
    schema = validate_serve_config(cfg)
    assert len(schema.applications) == 1
    app = cfg["applications"][0]
    s, part = plan.serving, plan.parts[0]
    assert app["route_prefix"] == s.route_prefix
    if plan.serving.runtime == "vllm":
        assert app["import_path"] == VLLM_IMPORT_PATH
        llm = app["args"]["llm_configs"][0]
        assert llm["engine_kwargs"]["tensor_parallel_size"] == plan.tensor_parallel
        assert llm["engine_kwargs"]["pipeline_parallel_size"] == plan.pipeline_parallel
        assert llm["engine_kwargs"]["max_num_seqs"] == s.max_batch_size
        dep = llm["deployment_config"]
    else:
        assert app["import_path"] == RAY_APP_IMPORT_PATH
        assert app["args"]["max_batch_size"] == s.max_batch_size
        assert app["args"]["batch_wait_timeout_s"] == pytest.approx(s.max_queue_delay_us / 1e6)
        assert app["args"]["model_uri"] == plan.model.artifact
        (dep,) = app["deployments"]
        gpus = 0 if part.gpus_per_node == 0 or part.accelerator.startswith("cpu") else part.accelerator_count
        assert dep["ray_actor_options"]["num_gpus"] == gpus
    assert dep["max_ongoing_requests"] == s.max_ongoing_requests
    lo, hi = (part.replicas, part.replicas) if len(plan.parts) > 1 else (s.min_replicas, s.max_replicas)
    if lo == hi:
        assert dep["num_replicas"] == lo and "autoscaling_config" not in dep
    else:
        auto = dep["autoscaling_config"]
        assert (auto["min_replicas"], auto["max_replicas"]) == (lo, hi)
        assert auto["target_ongoing_requests"] == s.target_ongoing_requests


def test_pipeline_parallel_plan_spans_nodes_with_ray_executor() -> None:
    cfg = build_serve_config(factories.cloud_llm_pipeline_parallel())
    eng = cfg["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    assert (eng["tensor_parallel_size"], eng["pipeline_parallel_size"]) == (8, 2)
    assert eng["distributed_executor_backend"] == "ray" and eng["dtype"] == "bfloat16"


def test_hybrid_part_configs_use_each_parts_runtime() -> None:
    plan = factories.hybrid_onprem_cloud_burst()
    onprem, burst = plan.parts
    a = build_serve_config(plan, onprem)["applications"][0]
    b = build_serve_config(plan, burst)["applications"][0]
    assert a["import_path"] == RAY_APP_IMPORT_PATH and b["import_path"] == VLLM_IMPORT_PATH
    assert a["deployments"][0]["num_replicas"] == onprem.replicas
    assert b["args"]["llm_configs"][0]["deployment_config"]["num_replicas"] == burst.replicas
    assert a["name"] != b["name"]


def _mutations() -> list[tuple[str, Any, str]]:
    """(description, mutate(cfg), expected key path) for the strict check."""
    def top(c: dict[str, Any]) -> None:
        c["aplications"] = []

    def app(c: dict[str, Any]) -> None:
        c["applications"][0]["route_prefx"] = "/x"

    def dep(c: dict[str, Any]) -> None:
        c["applications"][0]["deployments"][0]["max_ongoing_request"] = 3

    def auto(c: dict[str, Any]) -> None:
        d = c["applications"][0]["deployments"][0]
        del d["num_replicas"]
        d["autoscaling_config"] = {"min_replica": 1, "max_replicas": 2}

    def http(c: dict[str, Any]) -> None:
        c["http_options"]["hots"] = "0.0.0.0"

    def actor(c: dict[str, Any]) -> None:
        c["applications"][0]["deployments"][0]["ray_actor_options"]["num_gpu"] = 1

    return [("top", top, "aplications"), ("app", app, "applications[0].route_prefx"),
            ("dep", dep, "applications[0].deployments[0].max_ongoing_request"),
            ("auto", auto, "applications[0].deployments[0].autoscaling_config.min_replica"),
            ("http", http, "http_options.hots"), ("actor", actor, "num_gpu")]


@pytest.mark.parametrize(("what", "mutate", "key"), _mutations(), ids=[m[0] for m in _mutations()])
def test_strict_check_names_the_unknown_key(what: str, mutate: Any, key: str) -> None:
    cfg = build_serve_config(factories.local_demo())
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(ServeConfigError) as exc:
        validate_serve_config(bad)
    assert key in exc.value.key_path
    assert isinstance(exc.value, ArtifactError) and isinstance(exc.value, ValueError)
    validate_serve_config(cfg)  # the original still passes


def test_schema_errors_are_reported_with_their_path() -> None:
    cfg = build_serve_config(factories.local_demo())
    cfg["applications"][0]["deployments"][0]["max_ongoing_requests"] = "lots"
    with pytest.raises(ServeConfigError, match="max_ongoing_requests"):
        validate_serve_config(cfg)
    with pytest.raises(ServeConfigError):
        validate_serve_config({"proxy_location": "EveryNode"})  # no applications


def test_strict_check_covers_llm_app_args() -> None:
    cfg = build_serve_config(factories.cloud_llm_tensor_parallel())
    llm = cfg["applications"][0]["args"]["llm_configs"][0]
    for mutate, key in ((lambda c: c.update(engine_kwarg={}), "engine_kwarg"),
                        (lambda c: c["model_loading_config"].update(model_sauce="x"), "model_sauce"),
                        (lambda c: c["deployment_config"].update(num_replica=2), "num_replica"),
                        (lambda c: c["engine_kwargs"].update(tensor_parallel_size=0), "tensor_parallel_size")):
        bad = copy.deepcopy(cfg)
        mutate(bad["applications"][0]["args"]["llm_configs"][0])
        with pytest.raises(ServeConfigError) as exc:
            validate_serve_config(bad)
        assert key in exc.value.key_path
    assert llm["accelerator_type"] == "H100"


@pytest.mark.parametrize("plan", [factories.edge_vision(), factories.microcontroller()], ids=["triton", "firmware"])
def test_non_ray_runtimes_are_refused(plan: Plan) -> None:
    with pytest.raises(InputError, match="not served by Ray Serve"):
        build_serve_config(plan)


def test_ray_runtime_without_artifact_is_an_input_error() -> None:
    plan = factories.local_demo()
    plan = plan.model_copy(update={"model": plan.model.model_copy(update={"artifact": None})})
    with pytest.raises(InputError, match="no artifact"):
        build_serve_config(plan)
