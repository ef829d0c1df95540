"""Turn costed candidates into :class:`~planner.plan.Plan` values: serving settings, security, rationale."""

from __future__ import annotations

import math
from dataclasses import replace

from planner import names
from planner.estimator.inference import weights_bytes
from planner.estimator.shape import shape_of
from planner.models import image_context_tokens
from planner.models.arch import ModelArch
from planner.optimizer.bill import NOT_BILLED
from planner.optimizer.costs import BillLine
from planner.optimizer.engine import engine_settings
from planner.optimizer.nodes import SYSTEM_POOLS, model_volume_gib, node_disk_gib
from planner.optimizer.search import Candidate, Hybrid, Side
from planner.optimizer.slo import LoadFigures, max_ongoing_requests, preferred_batch_sizes
from planner.optimizer.training import TrainCandidate
from planner.plan import (
    Cost,
    CostLine,
    ModelRef,
    Names,
    Part,
    PartNames,
    Plan,
    Predicted,
    Security,
    Serving,
    Target,
    Training,
)
from planner.privacy import needs_private_networking
from planner.specs import Spec


def _r(x: float | None, nd: int = 6) -> float | None:
    """Round floats so plan.yaml diffs stay readable and stable."""
    return None if x is None else float(f"{x:.{nd}g}")


def model_ref(spec: Spec, arch: ModelArch) -> ModelRef:
    w = spec.workload
    llm = arch.is_llm and w.kind == "inference"
    return ModelRef(
        name=arch.name, hf_id=arch.hf_id, kind=arch.kind, family=arch.family, params=arch.params,
        artifact=spec.model.artifact,
        inputs=arch.inputs, outputs=arch.outputs,
        input_tokens=(w.input_tokens + image_context_tokens(arch, w.images_per_request)
                      if llm and w.kind == "inference" else None),
        output_tokens=w.output_tokens if llm and w.kind == "inference" else None,
        max_context=arch.max_context,
    )


def security(spec: Spec, parts: list[Part]) -> Security:
    """What the plan's resources do, as a whole. ``dedicated_tenancy`` is true only when the plan has cloud
    parts and every one of them runs on dedicated hosts; each part states its own tenancy and data class."""
    c = spec.constraints
    cloud = [p for p in parts if p.placement == "cloud"]
    return Security(
        privacy=c.privacy,
        allowed_regions=c.allowed_regions,
        encryption_at_rest=True,  # always on: costs nothing on any provider we emit for
        private_networking=needs_private_networking(c.privacy),
        dedicated_tenancy=bool(cloud) and all(p.tenancy == "dedicated" for p in cloud),
        deny_by_default_network=needs_private_networking(c.privacy),
    )


def plan_names(spec: Spec) -> Names:
    return Names(project=names.dns_label(f"mlplan-{spec.name}", 60), stack=names.dns_label(spec.name, 40))


def part_names(spec: Spec, arch: ModelArch, side: Side, target: Target, multi: bool) -> PartNames:
    """Names unique per spec (see :mod:`planner.names`); cloud parts also name their bucket and role."""
    key = names.part_key(side.role, side.placement, multi)
    cloud = side.placement == "cloud" and side.region is not None
    return PartNames(
        key=key, namespace=names.dns_label(f"mlplan-{spec.name}", 63), app=names.service_name(spec.name, 63),
        resource_prefix=names.dns_label(f"mlplan-{spec.name}-{key}", 38),
        bucket=names.bucket_name(spec.name, arch.name, side.region or "") if cloud else None,
        role=names.role_name(spec.name, side.region or "") if cloud else None,
        storage_account=names.storage_account_name(spec.name, arch.name, side.region or "")
        if cloud and side.provider == "azure" else None,
    )


def part_weights_bytes(arch: ModelArch, dtype: str) -> int:
    """Weight bytes of the whole model in ``dtype``, as the estimator counts them (quantization scales
    included; embeddings kept at 16 bit under weight quantization)."""
    return int(weights_bytes(shape_of(arch), dtype))


def serving(spec: Spec, cand: Candidate, runtime: str, replicas: int) -> Serving:
    """Batching and autoscaling: the settings the planner simulated the replicas with
    (:mod:`planner.optimizer.slo`).

    - LLMs (continuous batching): max batch = ``max_num_seqs`` (the largest batch whose TPOT with prefill stalls
      meets the SLO); no batch wait (a new request joins the running batch at the next step).
    - Others (dynamic batching): preferred sizes are powers of two up to the batch; the batch wait is the one the
      simulation chose (0, or what the latency SLO leaves after two batch latencies, capped at 10 ms).
    """
    opt, w = cand.option, spec.workload
    b = max(1, opt.batch)
    llm = opt.ttft_s is not None
    delay = 0 if llm or b == 1 else round(opt.queue_delay_s * 1e6)
    peak = w.peak_to_average if w.kind == "inference" else 1.0
    min_rep = max(1, math.ceil(replicas / peak))
    return Serving(
        runtime=runtime,
        max_batch_size=b,
        preferred_batch_sizes=preferred_batch_sizes(b),
        max_queue_delay_us=delay,
        max_ongoing_requests=opt.max_ongoing or max_ongoing_requests(b),
        min_replicas=min_rep,
        max_replicas=max(replicas, min_rep),
        target_ongoing_requests=float(max(1.0, round(b * spec.assumptions.planning_utilization, 2))),
    )


def _part(spec: Spec, arch: ModelArch, side: Side, *, accelerator_count: int, nodes: int, tp: int, pp: int,
          replicas: int, dtype: str, purchase: str, monthly: float, target: Target, multi: bool,
          ep: int = 1) -> Part:
    weights = part_weights_bytes(arch, dtype)
    return Part(
        role=side.role, placement=side.placement, provider=side.provider, region=side.region,
        geography=side.geography, instance=side.instance, accelerator=side.accelerator,
        accelerator_count=accelerator_count, gpus_per_node=side.gpus_per_node, nodes=nodes, tensor_parallel=tp,
        pipeline_parallel=pp, replicas=replicas, dtype=dtype, purchase=purchase,
        traffic_fraction=side.traffic_fraction, runtime=side.runtime,
        monthly_cost_usd=round(monthly, 2), target=target, routing=side.routing, data_class=side.data_class,
        tenancy=side.tenancy, node=side.node, device=side.device, runtime_cost=side.runtime_cost,
        weights_bytes=weights, names=part_names(spec, arch, side, target, multi),
        expert_parallel=ep, model_volume_gib=model_volume_gib(weights),
        node_disk_gib=node_disk_gib(weights, gpus_per_replica=tp * pp, gpus_per_node=side.gpus_per_node,
                                    has_device=side.device.resource is not None),
        system_pool=SYSTEM_POOLS.get(target),
    )


def _candidate_part(spec: Spec, arch: ModelArch, c: Candidate, multi: bool) -> Part:
    o = c.option
    part = _part(spec, arch, c.side, accelerator_count=o.gpus, nodes=c.nodes, tp=o.tp, pp=o.pp,
                 replicas=c.replicas, dtype=o.dtype, purchase=c.purchase, monthly=c.monthly, target=c.target,
                 multi=multi, ep=o.ep)
    if c.side.runtime in ("vllm", "tensorrt-llm"):
        part = part.model_copy(update={"engine": engine_settings(
            spec, arch, dtype=o.dtype, batch=o.batch, ep=o.ep, memory_bytes=o.capacity_bytes_per_gpu,
            accelerator=c.accelerator, batched_tokens=o.max_num_batched_tokens)})
    return part


def _assumptions(spec: Spec) -> dict[str, float | str]:
    """The spec's assumptions as the plan echoes them: numbers as floats, ``service_prices`` flattened to
    ``service_prices.<item>``."""
    out: dict[str, float | str] = {}
    for k, v in sorted(spec.assumptions.model_dump().items()):
        if isinstance(v, dict):
            out.update({f"{k}.{item}": float(usd) for item, usd in sorted(v.items())})
        elif v is None:  # an optional override left unset: the default rule applies
            continue
        else:
            out[k] = float(v) if isinstance(v, int | float) else str(v)
    return out


def _cost(spec: Spec, lines: list[tuple[str, BillLine]], parts: list[Part]) -> Cost:
    """The plan's bill from (part key, line) pairs; a plan with cloud parts says what the bill leaves out."""
    return Cost(
        monthly_usd=round(sum(x.usd for _, x in lines), 2),
        lines=tuple(CostLine(item=x.item, usd_per_month=round(x.usd, 2), group=x.group, kind=x.kind, part=key,
                             source=x.source) for key, x in lines),
        assumptions=_assumptions(spec),
        not_billed=NOT_BILLED if any(p.placement == "cloud" for p in parts) else (),
    )


def plan_id(parts: list[Part]) -> str:
    bits = []
    for p in parts:
        where = p.region or "fleet"
        bits.append(f"{p.placement}-{p.provider}-{where}-{p.instance}-{p.dtype}-tp{p.tensor_parallel}"
                    f"pp{p.pipeline_parallel}" + (f"ep{p.expert_parallel}" if p.expert_parallel > 1 else "")
                    + ("-spot" if p.purchase == "spot" else ""))
    return "+".join(bits)


def predicted(spec: Spec, c: Candidate, rps_total: float, max_rps_within_slo: float | None = None) -> Predicted:
    """Figures as a user measures them: latency percentiles at the planned peak rate, simulated with the plan's
    replicas and engine settings (network RTT and the runtime's serving time included; a dynamic batcher's wait
    too); the single figures are the p50s."""
    o = c.option
    load: LoadFigures | None = o.load
    ttft = load.ttft if load is not None else None
    tpot = load.tpot if load is not None else None
    lat = load.latency if load is not None else None
    llm = o.ttft_s is not None

    def pick(t: tuple[float, float, float] | None, i: int) -> float | None:
        return _r(t[i]) if t is not None else None

    return Predicted(
        ttft_s=pick(ttft, 0) if llm else None, tpot_s=pick(tpot, 0) if llm else None,
        throughput_tokens_per_s=_r(o.tokens_per_s * c.replicas if o.tokens_per_s is not None else None),
        latency_s=pick(lat, 0),
        ttft_p50_s=pick(ttft, 0), ttft_p90_s=pick(ttft, 1), ttft_p99_s=pick(ttft, 2),
        tpot_p50_s=pick(tpot, 0), tpot_p90_s=pick(tpot, 1), tpot_p99_s=pick(tpot, 2),
        latency_p50_s=pick(lat, 0), latency_p90_s=pick(lat, 1), latency_p99_s=pick(lat, 2),
        planned_rps=_r(load.rate_rps / max(1e-12, c.side.traffic_fraction)) if load is not None else None,
        max_rps_within_slo=_r(max_rps_within_slo),
        throughput_rps=_r(rps_total) or 0.0,
        max_batch=o.max_batch, network_rtt_s=_r(c.rtt_s) or 0.0,
        memory_per_gpu_bytes=int(o.memory_bytes_per_gpu), memory_capacity_per_gpu_bytes=int(o.capacity_bytes_per_gpu),
        memory_headroom=_r(o.headroom, 4) or 0.0, energy_j_per_request=_r(o.energy_j_per_request),
    )


def rationale(spec: Spec, c: Candidate, rank: int, cheapest_other: float | None,
              max_rps_within_slo: float | None = None) -> str:
    o, k = c.option, spec.constraints
    q = k.slo_percentile
    load: LoadFigures | None = o.load
    at = f"p{q:g}"

    def pval(t: tuple[float, float, float] | None) -> float | None:
        """The figure at the SLO percentile (interpolated between p50, p90 and p99 like Analytic.at)."""
        if t is None:
            return None
        p50, p90, p99 = t
        if q <= 50:
            return p50
        if q <= 90:
            return p50 + (p90 - p50) * (q - 50) / 40.0
        return p90 + (p99 - p90) * min(1.0, (q - 90) / 9.0)

    slo = []
    if load is not None:
        for label, t, lim, fmt in (("TTFT", load.ttft, k.ttft_s, ".0f"), ("TPOT", load.tpot, k.tpot_s, ".1f"),
                                   ("latency", load.latency if (o.ttft_s is None or k.latency_s) else None,
                                    k.latency_s, ".1f")):
            v = pval(t)
            if v is not None:
                slo.append(f"{label} {at} {v * 1e3:{fmt}} ms" + (f" <= {lim * 1e3:.0f}" if lim else ""))
    head = "cheapest plan meeting every constraint" if rank == 1 else f"rank {rank}"
    shape = f"{c.replicas} x {o.gpus} {c.accelerator} ({o.dtype}, TP{o.tp}" + (f" PP{o.pp}" if o.pp > 1 else "") + ")"
    batch = f"max_num_seqs {o.batch}" if o.ttft_s is not None else f"batch {o.batch}" + (
        f", wait {o.queue_delay_s * 1e3:g} ms" if o.queue_delay_s else "")
    rate = f" at {load.rate_rps / max(1e-12, c.side.traffic_fraction):,.3g} req/s" if load is not None else ""
    room = f"; holds up to {max_rps_within_slo:,.3g} req/s" if max_rps_within_slo is not None else ""
    tail = f"; next different option costs ${cheapest_other:,.0f}/month" if cheapest_other is not None else ""
    return f"{head}: {shape}, {batch}, {', '.join(slo) or 'no latency SLO'}{rate}{room}{tail}"


def inference_plan(spec: Spec, arch: ModelArch, cand: Candidate | Hybrid, rank: int, pareto: bool,
                   next_cost: float | None, *, max_rps_within_slo: float | None = None) -> Plan:
    cands = list(cand.parts) if isinstance(cand, Hybrid) else [cand]
    parts = [_candidate_part(spec, arch, c, len(cands) > 1) for c in cands]
    primary = cands[0]
    lines: list[tuple[str, BillLine]] = []
    for c, p in zip(cands, parts, strict=True):
        prefix = f"{c.role} {c.placement}: " if isinstance(cand, Hybrid) else ""
        lines.extend((p.names.key, replace(x, item=prefix + x.item)) for x in c.cost.lines)
    rps_total = sum(c.option.rps * c.replicas * spec.assumptions.planning_utilization for c in cands)
    notes = []
    if isinstance(cand, Hybrid):
        notes.append(" + ".join(f"{p.role}: {p.traffic_fraction:.0%} of traffic on {p.placement} {p.instance}"
                                for p in parts))
    notes += [n for c in cands for n in c.cost.notes]  # spot interruption risk
    p0 = parts[0]
    srv = serving(spec, primary, p0.runtime, p0.replicas)
    return Plan(
        rank=rank, id=plan_id(parts), workload="inference",
        placement="hybrid" if isinstance(cand, Hybrid) else p0.placement,
        provider=p0.provider, region=p0.region, instance=p0.instance, accelerator=p0.accelerator,
        accelerator_count=p0.accelerator_count, gpus_per_node=p0.gpus_per_node, nodes=p0.nodes,
        tensor_parallel=p0.tensor_parallel, pipeline_parallel=p0.pipeline_parallel, replicas=p0.replicas,
        dtype=p0.dtype, purchase=p0.purchase, monthly_cost_usd=round(cand.monthly, 2), cost=_cost(spec, lines, parts),
        predicted=predicted(spec, primary, rps_total, max_rps_within_slo),
        rationale=rationale(spec, primary, rank, next_cost, max_rps_within_slo),
        pareto=pareto, parts=tuple(parts), model=model_ref(spec, arch),
        serving=srv, security=security(spec, parts), names=plan_names(spec), notes=tuple(notes),
    )


def training_plan(spec: Spec, arch: ModelArch, t: TrainCandidate, rank: int, pareto: bool,
                  next_cost: float | None) -> Plan:
    gpus = t.tp * t.pp
    part = _part(spec, arch, t.side, accelerator_count=gpus, nodes=t.nodes, tp=t.tp, pp=t.pp, replicas=t.dp,
                 dtype=t.dtype, purchase=t.purchase, monthly=t.monthly, target=t.target, multi=False)
    notes = ["monthly_cost_usd is the cost of one training run", *t.cost.notes]
    if t.placement == "cloud":
        notes.append("hybrid pattern: train here on data that may leave its site, then plan the serving side "
                     "separately (an inference spec with the inference data's privacy class, e.g. on-prem)")
    if spec.constraints.privacy in ("restricted", "air-gapped") and t.placement == "on-prem":
        notes.append("training data may not leave its sites: consider federated training across sites "
                     "(e.g. Flower / NVIDIA FLARE) if the data is split over several locations")
    tail = f"; next option ${next_cost:,.0f}" if next_cost is not None else ""
    rat = (f"{'cheapest run meeting every constraint' if rank == 1 else f'rank {rank}'}: {t.nodes} x {t.instance} "
           f"({t.nodes * t.gpus_per_node} {t.accelerator}), DP{t.dp} TP{t.tp} PP{t.pp} ZeRO-{t.zero}, "
           f"{t.time_s / 3600:.1f} h{tail}")
    return Plan(
        rank=rank, id=plan_id([part]) + f"-zero{t.zero}-n{t.nodes}", workload="training", placement=t.placement,
        provider=t.provider, region=t.region, instance=t.instance, accelerator=t.accelerator,
        accelerator_count=gpus, gpus_per_node=t.gpus_per_node, nodes=t.nodes, tensor_parallel=t.tp,
        pipeline_parallel=t.pp, replicas=t.dp, dtype=t.dtype, purchase=t.purchase,
        monthly_cost_usd=round(t.monthly, 2), cost=_cost(spec, [(part.names.key, x) for x in t.cost.lines], [part]),
        predicted=Predicted(
            throughput_rps=0.0, memory_per_gpu_bytes=t.total_bytes_per_gpu,
            memory_capacity_per_gpu_bytes=t.capacity_bytes_per_gpu,
            memory_headroom=_r(1 - t.total_bytes_per_gpu / t.capacity_bytes_per_gpu, 4) or 0.0,
            training_time_s=_r(t.time_s),
        ),
        rationale=rat, pareto=pareto, parts=(part,), model=model_ref(spec, arch),
        serving=Serving(runtime="ray", max_batch_size=1, preferred_batch_sizes=(1,), max_queue_delay_us=0,
                        max_ongoing_requests=1, min_replicas=1, max_replicas=1, target_ongoing_requests=1.0),
        security=security(spec, [part]), names=plan_names(spec),
        training=Training(data_parallel=t.dp, zero_stage=t.zero, activation_checkpointing=t.checkpointing,
                          model_states_bytes_per_gpu=t.model_states_bytes_per_gpu, time_s=_r(t.time_s) or 0.0,
                          entrypoint=spec.workload.entrypoint if spec.workload.kind == "training" else None),
        notes=tuple(notes),
    )
