"""``PLAN.md``: the human summary a reviewer reads in the pull request. Pure text from plain data."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from planner.markup import md, md_code
from planner.plan import Plan, Rejected, RuntimeCost
from planner.report import fmt_s, fmt_usd, headline, shape, where
from stacks import layout

PREVIEW_SKIPPED = "(offline preview skipped: written with --no-preview)"

TARGET_TEXT = {
    "aws-ec2": "one EC2 GPU instance in a private subnet running the model server (Docker), IMDSv2, SSM access",
    "aws-eks": "VPC + EKS cluster (an untainted system node group, a tainted GPU node group, the AWS Load Balancer "
               "Controller) + the Kubernetes objects in `k8s/`",
    "kubeconfig": "the Kubernetes objects in `k8s/`, applied to your existing cluster (kubeconfig secret)",
    "edge-fleet": "a fleet rollout to edge nodes (k3s), pinned by node labels; objects in `k8s/`",
    "firmware": "a firmware build plan (`firmware/`): this placement has no IaC",
    "local": "served on this machine by `mlplan deploy` (Ray Serve or tritonserver processes): no IaC",
    "gcp-gke": "VPC + private GKE cluster (Workload Identity, a system node pool, a tainted GPU node pool), a GCS "
               "model bucket + the Kubernetes objects in `k8s/`",
    "azure-aks": "resource group + VNet + AKS cluster (workload identity, a system pool, a tainted GPU pool), a "
                 "storage account for the model + the Kubernetes objects in `k8s/`",
}

ROUTING_TEXT = {
    "all": "all requests",
    "not-marked-public": "every request not marked public (untagged ones included)",
    "marked-public": "only requests marked `x-mlplan-data-class: public`",
    "local-sites": "its own sites' requests",
    "not-local": "requests from outside the edge sites",
}


def _figures(p: Plan) -> list[tuple[str, str]]:
    pr = p.predicted
    rows: list[tuple[str, str]] = []
    at = f" at {pr.planned_rps:,.3g} req/s" if pr.planned_rps is not None else ""
    for label, single, p50, p90, p99 in (
            ("time to first token", pr.ttft_s, pr.ttft_p50_s, pr.ttft_p90_s, pr.ttft_p99_s),
            ("time per output token", pr.tpot_s, pr.tpot_p50_s, pr.tpot_p90_s, pr.tpot_p99_s),
            ("latency per request", pr.latency_s, pr.latency_p50_s, pr.latency_p90_s, pr.latency_p99_s)):
        if p50 is not None:
            rows.append((f"{label}{at}: p50 / p90 / p99", f"{fmt_s(p50)} / {fmt_s(p90)} / {fmt_s(p99)}"))
        elif single is not None:  # a plan without percentiles (written before they existed)
            rows.append((label, fmt_s(single)))
    if pr.max_rps_within_slo is not None:
        rows.append(("load headroom: highest rate within the SLOs", f"{pr.max_rps_within_slo:,.3g} req/s"))
    if pr.throughput_tokens_per_s is not None:
        rows.append(("throughput", f"{pr.throughput_tokens_per_s:,.0f} tokens/s"))
    if p.workload == "inference":
        rows.append(("requests/s sustained", f"{pr.throughput_rps:,.1f}"))
    if pr.max_batch is not None:
        rows.append(("max batch", str(pr.max_batch)))
    if pr.network_rtt_s:
        rows.append(("network RTT (included)", fmt_s(pr.network_rtt_s)))
    rows.append(("memory per accelerator", f"{pr.memory_per_gpu_bytes / 2**30:,.1f} GiB of "
                                           f"{pr.memory_capacity_per_gpu_bytes / 2**30:,.1f} GiB "
                                           f"(headroom {pr.memory_headroom:.0%})"))
    if pr.energy_j_per_request is not None:
        rows.append(("energy per request", f"{pr.energy_j_per_request:,.1f} J"))
    if pr.training_time_s is not None:
        rows.append(("training time", f"{pr.training_time_s / 3600:,.1f} h"))
    return rows


def cost_table(plan: Plan) -> list[str]:
    """The ``## Cost breakdown`` section: the bill's lines grouped as compute, platform, network and storage, each
    group with its subtotal, then the total, what the bill leaves out, and the assumptions."""
    out = ["## Cost breakdown", "", "| group | item | USD/month |", "|---|---|---:|"]
    for group, lines, subtotal in plan.cost.groups():
        out += [f"|{f' {group} ' if i == 0 else ' '}| {md(line.item)} | {line.usd_per_month:,.2f} |"
                for i, line in enumerate(lines)]
        out.append(f"| | *{group} subtotal* | *{subtotal:,.2f}* |")
    out += [f"| **total** | | **{plan.cost.monthly_usd:,.2f}** |", ""]
    if plan.workload == "training":
        out += ["The total is one training run: every resource for the run's hours.", ""]
    if plan.cost.not_billed:
        out += ["Not in the bill: " + "; ".join(plan.cost.not_billed) + ".", ""]
    out += ["Assumptions: " + ", ".join(f"{md(k)} = {md(v)}" for k, v in sorted(plan.cost.assumptions.items())) + ".",
            ""]
    return out


def why_lost(best: Plan, other: Plan) -> str:
    """Why a runner-up ranked below the chosen plan: the cost delta and each figure where it is worse."""
    delta = other.monthly_cost_usd - best.monthly_cost_usd
    pct = delta / best.monthly_cost_usd if best.monthly_cost_usd else 0.0
    reasons = [f"+{fmt_usd(delta)}/month ({pct:+.0%})" if delta > 0.5 else "same monthly cost"]
    a, b = best.predicted, other.predicted
    for label, x, y in (("TTFT", a.ttft_s, b.ttft_s), ("TPOT", a.tpot_s, b.tpot_s),
                        ("latency", a.latency_s, b.latency_s), ("training time", a.training_time_s,
                                                                 b.training_time_s)):
        if x is not None and y is not None and y > x * 1.05:
            reasons.append(f"{label} {fmt_s(y)} vs {fmt_s(x)}")
    if b.memory_headroom < a.memory_headroom - 0.05:
        reasons.append(f"less memory headroom ({b.memory_headroom:.0%} vs {a.memory_headroom:.0%})")
    return "; ".join(reasons)


def _runtime_cost(c: RuntimeCost) -> str:
    """One line of what the runtime adds per request, as the part was sized with it, and where that comes from."""
    cpu = f", {c.cpu_s_per_request * 1e3:.2f} ms of CPU" if c.cpu_s_per_request > 0 else ""
    if cpu and c.front_share > 0:
        cpu += f" ({c.front_share:.0%} of it in the proxy ahead of the replica)"
    low = next((r for r in c.by_rate if r.cpu_s is not None), None)
    if cpu and low is not None and low.cpu_s is not None and low.cpu_s > c.cpu_s_per_request:
        cpu += (f", {low.cpu_s * 1e3:.2f} ms at {low.rate_rps:g} req/s (the rest of it beside the request path, "
                f"on the same cores)")
    if cpu and len(c.cpu_states) > 1:
        cpu += (f"; sized in each of the host's speed states (x{', x'.join(f'{k:g}' for k in c.cpu_states)} that CPU, "
                "as its calibration's runs moved)")
    return (f"overhead {c.overhead_s * 1e3:.2f} ms median, {c.overhead_p99_s * 1e3:.2f} ms p99{cpu} "
            f"({md(c.source)})")


def render(spec_name: str, catalog_version: str, plan: Plan, runners_up: list[Plan], rejected: list[Rejected],
           resources: list[str] | None, extra_notes: list[str], *, charts: list[str] | None = None) -> str:
    infos = layout.parts(plan)
    out: list[str] = [f"# mlplan plan: {md_code(spec_name)}", ""]
    out += [f"**Decision:** {md(where(plan))}: {md(shape(plan))}, {plan.dtype}, runtime {plan.serving.runtime}, "
            f"{plan.purchase}, **{fmt_usd(plan.monthly_cost_usd)}/month**.", "",
            f"- Plan id: {md_code(plan.id)} (catalog {md(catalog_version)})",
            f"- Model: {md(plan.model.name)} ({plan.model.kind}, {plan.model.params:,} parameters)",
            f"- Why: {md(plan.rationale)}", f"- Predicted: {headline(plan)}", ""]
    titles = {"cost-latency.svg": "cost vs latency of every plan considered: Pareto front, chosen plan, SLO, budget",
              "placement.svg": "which part runs where, and the data paths between them"}
    out += [f"![{titles.get(c, c)}]({c})" for c in charts or []]
    if charts:
        out.append("")
    out += ["## Predicted figures", "", "| figure | value |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in _figures(plan)]
    out += ["", *cost_table(plan)]
    out += ["## Where each part runs", "",
            "| part | placement | where | instance x nodes | GPUs/replica | replicas | traffic | IaC |",
            "|---|---|---|---|---:|---:|---:|---|"]
    for i in infos:
        p = i.part
        out.append(f"| {i.key} | {p.placement} | {md(p.provider)}/{md(p.region or 'fleet')} | "
                   f"{md(p.instance)} x {p.nodes} | "
                   f"{layout.gpus_per_replica(p)} (TP{p.tensor_parallel} x PP{p.pipeline_parallel}) | "
                   f"{p.replicas} | {p.traffic_fraction:.0%} | {i.target} |")
    out.append("")
    out += [f"- **{i.key}**: {TARGET_TEXT[i.target]}." for i in infos]
    out += [f"- **{i.key}** runtime {i.part.runtime} per request: {_runtime_cost(i.part.runtime_cost)}."
            for i in infos]
    if plan.placement == "hybrid":
        safe = next((i for i in infos if i.part.routing == "not-marked-public"), None)
        public = next((i for i in infos if i.part.routing == "marked-public"), None)
        out += ["", "### Routing between the parts", ""]
        if safe and public:
            out += [f"An Envoy router (`{safe.app}-router`, in `k8s/{safe.key}.yaml`) runs next to the "
                    f"{safe.part.placement} side as an allow-list: only requests with header "
                    f"`x-mlplan-data-class: public` go to {public.key}; every other request, an untagged one "
                    f"included, stays on {safe.key}, which is sized for the {safe.part.traffic_fraction:.0%} of "
                    f"requests not marked public. The cloud side is reached over private connectivity (VPN / "
                    f"Direct Connect) through an internal load balancer: set `mlplan:cloudEndpoint` to its "
                    f"`host:port`."]
        else:
            out += [f"- **{i.key}** serves {ROUTING_TEXT[i.part.routing]} ({i.part.traffic_fraction:.0%})."
                    for i in infos]
    s = plan.security
    out += ["", "## Security posture", "",
            f"- Data class: **{s.privacy}**; allowed regions: {md(', '.join(s.allowed_regions or ('any',)))}",
            f"- Encryption at rest: {'KMS, customer-managed key' if s.encryption_at_rest else 'provider default'}; "
            f"private networking: {'yes' if s.private_networking else 'no'}; NetworkPolicy deny-by-default: "
            f"{'yes' if s.deny_by_default_network else 'no'}", "",
            "| part | receives | data class | tenancy | where (geography) |", "|---|---|---|---|---|"]
    out += [f"| {i.key} | {ROUTING_TEXT[i.part.routing]} | {i.part.data_class} | {i.part.tenancy} | "
            f"{md(i.part.provider)}/{md(i.part.region or 'fleet')} ({md(i.part.geography or 'user sites')}) |"
            for i in infos]
    out += ["",
            "- Pods: Pod Security `restricted` (non-root, read-only root filesystem, no privilege escalation, all "
            "capabilities dropped, seccomp RuntimeDefault), requests = limits, startup/readiness/liveness probes.",
            ""]
    out += ["## Runner-up plans", ""]
    if runners_up:
        out += ["| rank | plan | where | shape | USD/month | why it lost |", "|---:|---|---|---|---:|---|"]
        out += [f"| {r.rank} | {md_code(r.id)} | {md(where(r))} | {md(shape(r))} | {r.monthly_cost_usd:,.0f} | "
                f"{md(why_lost(plan, r))} |" for r in runners_up]
    else:
        out.append("None: no other feasible plan.")
    out += ["", "## Rejected option classes", ""]
    if rejected:
        by: dict[str, list[Rejected]] = defaultdict(list)
        for r in rejected:
            by[r.constraint].append(r)
        for constraint in sorted(by):
            items = by[constraint]
            out.append(f"- **{constraint}** ({len(items)}): " + "; ".join(
                f"{md(r.option)}: {md(r.reason)}" for r in items[:5]) + (" ..." if len(items) > 5 else ""))
    else:
        out.append("None recorded.")
    out += ["", "## Resources the stack will create", ""]
    if resources is None:
        why = "see `firmware/FIRMWARE.md`" if any(i.target == "firmware" for i in infos) else \
            "it runs on this machine, started by `mlplan deploy` from `serving/`"
        out.append(f"None: this plan has no IaC ({why}).")
    else:
        out += ["From an offline preview: the Pulumi program in `infra/` run under Pulumi's mocks (no cloud "
                "credentials), i.e. what `pulumi up` would create.", "", "```"]
        out += resources
        out += ["```"]
    out += ["", "## Notes", ""]
    notes = list(plan.notes) + extra_notes
    out += [f"- {md(n)}" for n in plan.notes] + [f"- {n}" for n in extra_notes] if notes else ["None."]
    out.append("")
    return "\n".join(out)


def deploy_steps(plan: Plan, stack: str) -> list[str]:
    """Notes on how to apply this folder, per target."""
    targets = {i.target for i in layout.parts(plan)}
    steps: list[str] = []
    if targets & {"aws-eks", "aws-ec2", "gcp-gke", "azure-aks", "kubeconfig", "edge-fleet"}:
        steps.append(f"Apply: `mlplan deploy DIR` or, from mlplan's environment, `cd infra && pulumi stack select "
                     f"{stack} && PULUMI_PYTHON_CMD=$(which python) pulumi up` (the program runs with mlplan's own "
                     "Python; nothing is pip-installed). The stack output `endpoint` is the model's address; "
                     "`serving/endpoints.yaml` names the Service behind it.")
    if "gcp-gke" in targets:
        steps.append("GKE: set the project first, `pulumi config set gcp:project YOUR_PROJECT_ID`; credentials from "
                     "`gcloud auth application-default login` (the kubeconfig uses gke-gcloud-auth-plugin).")
    if "azure-aks" in targets:
        steps.append("AKS: `az login` first; the stack grants the signed-in identity cluster-admin on the new "
                     "cluster (Entra ID auth, local accounts off; kubelogin reads the kubeconfig).")
    if "kubeconfig" in targets:
        steps.append("Set the on-prem kubeconfig first: `pulumi config set --secret mlplan:kubeconfig "
                     "\"$(cat ~/.kube/config)\"` (stored encrypted, never in clear text).")
    if "edge-fleet" in targets:
        steps.append("Set the edge fleet's kubeconfig: `pulumi config set --secret mlplan:edgeKubeconfig ...`; "
                     "label the devices `node-role.kubernetes.io/edge=true` and "
                     "`mlplan.dev/device=<device id>`.")
    if "aws-eks" in targets:
        steps.append("The HPA scales on the server's requests-in-flight metric, served through a Prometheus "
                     "adapter (custom metrics API); without one the Deployment stays at its planned replicas.")
    for info in layout.parts(plan):
        if info.target == "aws-ec2" and info.part.runtime == "triton" and info.part.names.bucket:
            dest = f"s3://{info.part.names.bucket}/{plan.model.name}/triton"
            steps.append(f"Upload the Triton model repository before the first rollout: `aws s3 sync "
                         f"serving/triton/model_repository {dest}` (bucket created by the stack).")
    return steps


def user_input_notes(inputs: list[Any]) -> list[str]:
    """PLAN.md notes for what the plan leaves to you (:func:`stacks.manifests.user_provided`)."""
    out = []
    for u in inputs:
        where = f" in namespace {md_code(u.namespace)}" if u.namespace and u.kind == "Secret" else ""
        what = f"{md(u.kind)} {md_code(u.name)}{where}" if u.name else md(u.kind)
        cmd = f": {md_code(u.command)}" if u.command else ""
        out.append(f"{'You provide' if u.required else 'Optional'}: {what}: {md(u.how)}{cmd}.")
    return out


def resource_lines(resources: list[dict[str, Any]]) -> list[str]:
    """Sorted ``type name (region)`` lines; the Kubernetes objects of each ConfigGroup are listed under it."""
    top: list[tuple[str, list[str]]] = []
    for r in resources:
        typ, name = r["type"], r["name"]
        if typ == "pulumi:pulumi:Stack" or r.get("read"):
            continue  # reads (the endpoint Service looked up after apply) create nothing
        extra = f" ({r['region']})" if r.get("region") else ""
        if typ == "kubernetes:helm.sh/v3:Release":
            extra = f" (chart {r['inputs'].get('chart')} {r['inputs'].get('version')})"
        children = []
        if typ == "kubernetes:yaml/v2:ConfigGroup":
            for o in r["inputs"].get("objs") or []:
                md = o.get("metadata", {})
                ns = f"{md['namespace']}/" if md.get("namespace") else ""
                children.append(f"    {o.get('kind')} {ns}{md.get('name')}")
        top.append((f"{typ} {name}{extra}", children))
    out: list[str] = []
    for line, children in sorted(top):
        out.append(line)
        out += children
    return out
