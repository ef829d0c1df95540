"""Hand-built, valid :class:`planner.plan.Plan` values for every placement.

Emitter and deploy tests use these so they do not depend on the optimizer's choices; the optimizer's own tests
check that real recommendations have the same shape. Each factory takes keyword overrides.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from planner import names
from planner.catalog import Catalog
from planner.optimizer.devices import device_of
from planner.optimizer.nodes import SYSTEM_POOLS, model_volume_gib, node_disk_gib, node_shape
from planner.optimizer.runtimes import runtime_cost
from planner.optimizer.targets import deploy_target
from planner.plan import (
    Cost,
    CostLine,
    Device,
    Engine,
    ModelRef,
    Names,
    NodeShape,
    Part,
    PartNames,
    Plan,
    Predicted,
    Security,
    Serving,
    Training,
)
from planner.specs import Constraints, ModelSpec, Spec, TensorSpec

#: (vCPU, GiB) of the instance types the factories use (AWS instance type pages)
NODE_SIZES = {"g6e.xlarge": (4, 32), "g6.xlarge": (4, 16), "p5.48xlarge": (192, 2048), "p4d.24xlarge": (96, 1152),
              "g2-standard-8": (8, 32), "Standard_NC40ads_H100_v5": (40, 320)}
BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
SPEC_NAME = "test"


@cache
def _catalog() -> Catalog:
    return Catalog.load()


def device(accelerator: str) -> Device:
    cat = _catalog()
    hw = cat.edge_devices.get(accelerator) or cat.accelerator(accelerator)
    return device_of(hw)


def node(part: Part) -> NodeShape:
    vcpu, gib = NODE_SIZES.get(part.instance, (None, None))
    return node_shape(part.provider if part.placement == "cloud" else part.placement, vcpu, gib,
                      part.gpus_per_node)


def part_names(part: Part, multi: bool, spec_name: str = SPEC_NAME, model: str = "m") -> PartNames:
    key = names.part_key(part.role, part.placement, multi)
    cloud = part.placement == "cloud" and part.region is not None
    return PartNames(key=key, namespace=names.dns_label(f"mlplan-{spec_name}"), app=names.service_name(spec_name),
                     resource_prefix=names.dns_label(f"mlplan-{spec_name}-{key}", 38),
                     bucket=names.bucket_name(spec_name, model, part.region or "") if cloud else None,
                     role=names.role_name(spec_name, part.region or "") if cloud else None,
                     storage_account=names.storage_account_name(spec_name, model, part.region or "")
                     if cloud and part.provider == "azure" else None)


def engine(part: Part, *, batch: int = 64, max_model_len: int = 768) -> Engine | None:
    """Engine settings as the planner decides them (:mod:`planner.optimizer.engine`) for an LLM part."""
    if part.runtime not in ("vllm", "tensorrt-llm"):
        return None
    own = part.dtype in ("bf16", "fp16", "fp8")
    return Engine(max_num_seqs=batch, max_num_batched_tokens=max(8192, batch), max_model_len=max_model_len,
                  gpu_memory_utilization=0.9, kv_cache_dtype="fp8" if part.dtype == "fp8" else "auto",
                  quantization="fp8" if part.dtype == "fp8" else None,
                  checkpoint="the model's own weights" if own else f"a {part.dtype} checkpoint of the model "
                                                                   "(the engine reads its quantization method)")


def finish_part(part: Part, *, params: int, multi: bool = False, training: bool = False,
                privacy: str = "internal", routing: str = "all", spec_name: str = SPEC_NAME,
                model: str = "m") -> Part:
    """Fill the fields the planner derives (target, node shape, device, names, weight bytes, data class)."""
    data_class = "public" if routing == "marked-public" else privacy
    tenancy = ("dedicated" if data_class == "restricted" else "shared") if part.placement == "cloud" else "owned"
    target = deploy_target(placement=part.placement, provider=part.provider, instance=part.instance,
                           runtime=part.runtime, nodes=part.nodes, replicas=part.replicas,
                           gpus_per_replica=part.tensor_parallel * part.pipeline_parallel, training=training)
    upd = {"target": target, "routing": routing, "data_class": data_class, "tenancy": tenancy,
           "device": device(part.accelerator), "weights_bytes": int(params * BYTES[part.dtype]),
           "names": part_names(part, multi, spec_name, model)}
    if part.engine is None and not training:
        upd["engine"] = engine(part)
    p = part.model_copy(update=upd)
    w = p.weights_bytes
    return p.model_copy(update={
        "node": node(p), "model_volume_gib": model_volume_gib(w), "system_pool": SYSTEM_POOLS.get(target),
        "node_disk_gib": node_disk_gib(w, gpus_per_replica=p.tensor_parallel * p.pipeline_parallel,
                                       gpus_per_node=p.gpus_per_node, has_device=p.device.resource is not None)})


def spec_for(plan: Plan, name: str = SPEC_NAME) -> Spec:
    """A spec the plan keeps the promises of: its privacy class and regions (restricted: dedicated tenancy)."""
    s = plan.security
    return Spec(name=name, model=ModelSpec(preset="llama-3-8b"),
                constraints=Constraints(privacy=s.privacy, allowed_regions=s.allowed_regions,  # type: ignore[arg-type]
                                        dedicated_tenancy=s.privacy == "restricted"))

MLP_INPUTS = (TensorSpec(name="input", dtype="fp32", shape=(64,)),)
MLP_OUTPUTS = (TensorSpec(name="logits", dtype="fp32", shape=(10,)),)


def _cost(total: float, *lines: tuple[str, float]) -> Cost:
    return Cost(
        monthly_usd=total,
        lines=tuple(CostLine(item=i, usd_per_month=v) for i, v in (lines or (("compute", total),))),
        assumptions={"hours_per_month": 730.0},
    )


def _security(privacy: str = "internal", regions: tuple[str, ...] | None = None,
              parts: tuple[Part, ...] = ()) -> Security:
    strict = privacy in ("confidential", "restricted", "air-gapped")
    cloud = [p for p in parts if p.placement == "cloud"]
    return Security(
        privacy=privacy,
        allowed_regions=regions,
        encryption_at_rest=True,
        private_networking=strict,
        dedicated_tenancy=bool(cloud) and all(p.tenancy == "dedicated" for p in cloud),
        deny_by_default_network=strict,
    )


def _llm_model(name: str = "llama-3-8b", params: int = 8_030_261_248) -> ModelRef:
    return ModelRef(name=name, kind="llm", family="llama", params=params, artifact=f"s3://models/{name}",
                    hf_id=f"meta-llama/{name}", input_tokens=512, output_tokens=256, max_context=8192)


_PLACEHOLDER_NODE = NodeShape(vcpu=1, memory_mib=1, accelerators=0, allocatable_cpu_millicores=1,
                              allocatable_memory_mib=1, max_pods=1, reserves="placeholder")


def _part(**kw: Any) -> Part:
    """A part with the planner-derived fields as placeholders; :func:`_plan` fills them (:func:`finish_part`)."""
    base: dict[str, Any] = dict(
        role="primary", placement="cloud", provider="aws", region="us-east-1", geography="us",
        instance="g6e.xlarge", accelerator="l40s", accelerator_count=1, gpus_per_node=1, nodes=2, tensor_parallel=1,
        pipeline_parallel=1, replicas=2, dtype="fp8", purchase="on-demand", traffic_fraction=1.0, runtime="vllm",
        monthly_cost_usd=2717.06, target="aws-eks", data_class="internal", tenancy="shared",
        node=_PLACEHOLDER_NODE, device=Device(vendor="cpu", resource=None), weights_bytes=0,
        names=PartNames(key="x", namespace="x", app="x", resource_prefix="x"),
    )
    base.update(kw)
    base.setdefault("runtime_cost", runtime_cost(base["runtime"]))
    return Part(**base)


def _plan(part: Part, **kw: Any) -> Plan:
    base: dict[str, Any] = dict(
        rank=1,
        id=f"{part.placement}-{part.provider}-{part.region or 'fleet'}-{part.instance}-{part.dtype}"
           f"-tp{part.tensor_parallel}pp{part.pipeline_parallel}",
        workload="inference",
        placement=part.placement,
        provider=part.provider,
        region=part.region,
        instance=part.instance,
        accelerator=part.accelerator,
        accelerator_count=part.accelerator_count,
        gpus_per_node=part.gpus_per_node,
        nodes=part.nodes,
        tensor_parallel=part.tensor_parallel,
        pipeline_parallel=part.pipeline_parallel,
        replicas=part.replicas,
        dtype=part.dtype,
        purchase=part.purchase,
        monthly_cost_usd=part.monthly_cost_usd,
        cost=_cost(part.monthly_cost_usd),
        predicted=Predicted(
            ttft_s=0.12, tpot_s=0.021, throughput_tokens_per_s=5200.0, throughput_rps=20.0, max_batch=64,
            network_rtt_s=0.004, memory_per_gpu_bytes=40_000_000_000, memory_capacity_per_gpu_bytes=51_539_607_552,
            memory_headroom=0.22, energy_j_per_request=120.0,
        ),
        rationale="cheapest option meeting TTFT 1 s and TPOT 50 ms",
        pareto=True,
        parts=(part,),
        model=_llm_model(),
        serving=Serving(runtime=part.runtime, max_batch_size=64, preferred_batch_sizes=(16, 32, 64),
                        max_queue_delay_us=5000, max_ongoing_requests=64, min_replicas=part.replicas,
                        max_replicas=part.replicas * 2, target_ongoing_requests=32.0),
        security=_security(),
    )
    base.update(kw)
    # the fields the planner derives, recomputed from each part's own fields and the plan's security
    sec: Security = base["security"]
    model: ModelRef = base["model"]
    parts = base["parts"]
    done = tuple(finish_part(p, params=model.params, multi=len(parts) > 1, training=base["workload"] == "training",
                             privacy=sec.privacy, routing=p.routing, model=model.name) for p in parts)
    base["parts"] = done
    base["security"] = _security(sec.privacy, sec.allowed_regions, done)
    base.setdefault("names", Names(project=names.dns_label(f"mlplan-{SPEC_NAME}"), stack=SPEC_NAME))
    return Plan(**base)


def cloud_llm_single_gpu(**kw: Any) -> Plan:
    """Llama-3-8B fp8 on 2 x g6e.xlarge (1 x L40S each), vLLM, us-east-1."""
    return _plan(_part(), **kw)


def cloud_llm_tensor_parallel(**kw: Any) -> Plan:
    """Llama-3-70B bf16 on p5.48xlarge, TP 4, 2 replicas on one node."""
    part = _part(instance="p5.48xlarge", accelerator="h100-sxm", accelerator_count=4, gpus_per_node=8, nodes=1,
                 tensor_parallel=4, replicas=2, dtype="bf16", monthly_cost_usd=40179.2)
    return _plan(part, model=_llm_model("llama-3-70b", 70_553_706_496), **kw)


def cloud_llm_pipeline_parallel(**kw: Any) -> Plan:
    """Llama-3.1-405B bf16 across 2 x p5.48xlarge: TP 8 x PP 2, one replica, EU region, confidential."""
    part = _part(instance="p5.48xlarge", region="eu-west-1", geography="eu", accelerator="h100-sxm",
                 accelerator_count=16, gpus_per_node=8, nodes=2, tensor_parallel=8, pipeline_parallel=2, replicas=1,
                 dtype="bf16", monthly_cost_usd=88000.0)
    kw.setdefault("security", _security("confidential", ("eu",)))
    return _plan(part, model=_llm_model("llama-3.1-405b", 405_853_388_800), **kw)


def onprem_llm(**kw: Any) -> Plan:
    """Mistral-7B int8 on owned 4 x L40S servers, 3 replicas, restricted data, Triton."""
    part = _part(placement="on-prem", provider="onprem", region="datacenter", geography="any",
                 instance="l40s-4gpu-server",
                 accelerator="l40s", accelerator_count=1, gpus_per_node=4, nodes=1, replicas=3, dtype="int8",
                 purchase="owned", runtime="ray", monthly_cost_usd=1900.0)
    return _plan(part, model=_llm_model("mistral-7b", 7_241_732_096), security=_security("restricted"), **kw)


def edge_vision(**kw: Any) -> Plan:
    """yolov8n int8 on a fleet of 12 Jetson Orin Nano devices (k3s), Triton."""
    part = _part(placement="edge", provider="edge", region=None, geography=None, instance="jetson-orin-nano",
                 accelerator="jetson-orin-nano", accelerator_count=1, gpus_per_node=1, nodes=12, replicas=12,
                 dtype="int8", purchase="buy", runtime="triton", monthly_cost_usd=210.0)
    model = ModelRef(name="yolov8n", kind="vision", family="cnn", params=3_200_000,
                     inputs=(TensorSpec(name="images", dtype="fp32", shape=(3, 640, 640)),),
                     outputs=(TensorSpec(name="output0", dtype="fp32", shape=(84, 8400)),))
    predicted = Predicted(latency_s=0.011, throughput_rps=30.0 * 12, memory_per_gpu_bytes=200_000_000,
                          memory_capacity_per_gpu_bytes=8 * 2**30, memory_headroom=0.97)
    serving = Serving(runtime="triton", max_batch_size=4, preferred_batch_sizes=(2, 4), max_queue_delay_us=2000,
                      max_ongoing_requests=8, min_replicas=1, max_replicas=1, target_ongoing_requests=2.0)
    return _plan(part, model=model, predicted=predicted, serving=serving, **kw)


def microcontroller(**kw: Any) -> Plan:
    """A keyword-spotting DS-CNN int8 on STM32H7 boards: a firmware plan, not IaC."""
    part = _part(placement="edge", provider="edge", region=None, geography=None, instance="stm32h7",
                 accelerator="stm32h7",
                 accelerator_count=1, gpus_per_node=1, nodes=500, replicas=500, dtype="int8", purchase="buy",
                 runtime="firmware", monthly_cost_usd=450.0)
    model = ModelRef(name="kws-ds-cnn", kind="audio", family="cnn", params=38_604,
                     inputs=(TensorSpec(name="mfcc", dtype="int8", shape=(49, 10, 1)),),
                     outputs=(TensorSpec(name="scores", dtype="int8", shape=(12,)),))
    predicted = Predicted(latency_s=0.009, throughput_rps=500 / 1.0, memory_per_gpu_bytes=70_000,
                          memory_capacity_per_gpu_bytes=1 * 2**20, memory_headroom=0.93)
    serving = Serving(runtime="firmware", max_batch_size=1, preferred_batch_sizes=(1,), max_queue_delay_us=0,
                      max_ongoing_requests=1, min_replicas=1, max_replicas=1, target_ongoing_requests=1.0)
    return _plan(part, model=model, predicted=predicted, serving=serving, **kw)


def hybrid_onprem_cloud_burst(**kw: Any) -> Plan:
    """Llama-3-8B: sensitive traffic on-prem (L4 server), cloud burst on AWS eu-central-1."""
    onprem = _part(role="sensitive", placement="on-prem", provider="onprem", region="datacenter", geography="eu",
                   instance="l4-8gpu-server", accelerator="l4", gpus_per_node=8, nodes=1, replicas=2,
                   dtype="int8", purchase="owned", traffic_fraction=0.4, runtime="ray", monthly_cost_usd=700.0,
                   routing="not-marked-public")
    burst = _part(role="burst", region="eu-central-1", geography="eu", instance="g6.xlarge", accelerator="l4",
                  nodes=3, replicas=3, dtype="int8", traffic_fraction=0.6, monthly_cost_usd=2100.0,
                  routing="marked-public")
    return _plan(onprem, placement="hybrid", parts=(onprem, burst), monthly_cost_usd=2800.0,
                 cost=_cost(2800.0, ("on-prem sensitive", 700.0), ("cloud burst", 2100.0)),
                 id="hybrid-onprem-datacenter+aws-eu-central-1-l4-int8",
                 security=_security("confidential", ("eu",)), **kw)


def local_demo(runtime: str = "ray", **kw: Any) -> Plan:
    """The small ONNX MLP the project ships, served on this machine's CPU."""
    part = _part(placement="on-prem", provider="onprem", region="local", geography="any", instance="localhost",
                 accelerator="cpu-x86", accelerator_count=1, gpus_per_node=0, nodes=1, replicas=1, dtype="fp32",
                 purchase="owned", runtime=runtime, monthly_cost_usd=0.0)
    model = ModelRef(name="mlp-demo", kind="other", family="mlp", params=85_002,
                     artifact="builtin://mlp-demo", inputs=MLP_INPUTS, outputs=MLP_OUTPUTS)
    predicted = Predicted(latency_s=0.004, throughput_rps=200.0, memory_per_gpu_bytes=2_000_000,
                          memory_capacity_per_gpu_bytes=8 * 2**30, memory_headroom=0.99)
    serving = Serving(runtime=runtime, max_batch_size=8, preferred_batch_sizes=(4, 8),  # type: ignore[arg-type]
                      max_queue_delay_us=2000, max_ongoing_requests=16, min_replicas=1, max_replicas=1,
                      target_ongoing_requests=4.0)
    return _plan(part, model=model, predicted=predicted, serving=serving, id="local-cpu-mlp-demo", **kw)


def training_zero(**kw: Any) -> Plan:
    """Fine-tune Llama-3-8B with ZeRO-3 on 2 x p4d.24xlarge (16 x A100 40GB)."""
    part = _part(instance="p4d.24xlarge", accelerator="a100-40gb", accelerator_count=16, gpus_per_node=8,
                 nodes=2, replicas=1, dtype="bf16", runtime="ray", monthly_cost_usd=3300.0)
    training = Training(data_parallel=16, zero_stage=3, activation_checkpointing=True,
                        model_states_bytes_per_gpu=8_030_261_248, time_s=36000.0)
    predicted = Predicted(throughput_rps=0.0, memory_per_gpu_bytes=30_000_000_000,
                          memory_capacity_per_gpu_bytes=40 * 2**30, memory_headroom=0.30, training_time_s=36000.0)
    return _plan(part, workload="training", training=training, predicted=predicted, **kw)


ALL_PLANS = {
    "cloud_llm_single_gpu": cloud_llm_single_gpu,
    "cloud_llm_tensor_parallel": cloud_llm_tensor_parallel,
    "cloud_llm_pipeline_parallel": cloud_llm_pipeline_parallel,
    "onprem_llm": onprem_llm,
    "edge_vision": edge_vision,
    "microcontroller": microcontroller,
    "hybrid_onprem_cloud_burst": hybrid_onprem_cloud_burst,
    "local_demo": local_demo,
    "training_zero": training_zero,
}
