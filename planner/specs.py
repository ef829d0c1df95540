"""User-facing specs: what model, what workload, what constraints.

Every spec object is immutable (``frozen``) and validated at construction (``extra="forbid"``), as SkyPilot's
resources are. One YAML file holds all three sections plus optional cost ``assumptions``::

    model: {preset: llama-3-8b}             # or {hf_config: path/config.json} or {params: 13e9} or a custom model
    workload: {kind: inference, requests_per_s: 5, input_tokens: 512, output_tokens: 256}
    constraints: {ttft_s: 1.0, tpot_s: 0.05, privacy: confidential, allowed_regions: [eu], budget_usd_per_month: 20000}

:func:`load_spec` turns a file into a :class:`Spec` or raises :class:`~planner.errors.SpecError` with one line that
names the field, the bad value and the fix.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import stat
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from planner.errors import MlplanError, SpecError

Dtype = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"]
SERVING_DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")
"""fp4: MXFP4 / NVFP4 weights (gpt-oss, NVFP4 checkpoints); weight-only W4A16 math where the hardware has no fp4."""
Placement = Literal["cloud", "on-prem", "edge", "hybrid"]
Privacy = Literal["public", "internal", "confidential", "restricted", "air-gapped"]
PRIVACY_ORDER: tuple[str, ...] = ("public", "internal", "confidential", "restricted", "air-gapped")
ModelKind = Literal["llm", "encoder", "vision", "audio", "other"]
Optimizer = Literal["adamw", "adam", "sgd", "sgd-momentum"]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
"""Region ids, geographies, zones: identifier characters only, so they render safely in Markdown, HTML and Rich."""
MAX_RPS = 1_000_000.0
"""Requests/s of one spec: a million is beyond any single service's planning; larger loads are split."""
MAX_TOKENS = 10_000_000
"""Tokens per request: the longest context any published model accepts (Llama 4 Scout: 10M)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str | bytes | bytearray):
        return "a string (remove the quotes)"
    return type(value).__name__


def _number_kind(annotation: Any) -> type | None:
    """``int`` or ``float`` if the field holds a number (optional or inside a tuple), else None."""
    if annotation in (int, float):
        return annotation  # type: ignore[no-any-return]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, typing.Annotated):
        kinds = {_number_kind(a) for a in typing.get_args(annotation) if a not in (type(None), Ellipsis)}
        kinds.discard(None)
        return kinds.pop() if len(kinds) == 1 else None
    return None


def _check_number(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}must be a number, not {_kind(value)}")
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{where}must be a whole number")
        return int(value) if abs(value) < 1e18 else value
    return value


class Frozen(BaseModel):
    """Every spec object: immutable, no unknown keys, no NaN/Infinity, and strict numbers: YAML's ``true`` /
    ``false``, quoted numbers and bytes are refused where a number is expected (pydantic would read ``true`` as
    1 and ``"8"`` as 8). Every numeric field also has a lower and an upper bound."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            kind = _number_kind(field.annotation) if field is not None else None
            if kind is None or value is None:
                continue
            try:
                if isinstance(value, list | tuple):
                    out[name] = type(value)(_check_number(v, kind, f"item {i} ") for i, v in enumerate(value))
                else:
                    out[name] = _check_number(value, kind, "")
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        return out


# --------------------------------------------------------------------------------------------------- model


class TensorSpec(Frozen):
    """One input or output of a non-LLM model (for Triton / ONNX serving). ``-1`` marks a dynamic dimension."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    dtype: Literal["fp32", "fp16", "int64", "int32", "int8", "uint8", "bool", "string"] = "fp32"
    shape: tuple[int, ...] = Field(max_length=16, description="shape without the batch dimension")

    @field_validator("shape")
    @classmethod
    def _dims(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d == 0 or d < -1 or d > 1_000_000_000 for d in v):
            raise ValueError("dimensions must be 1..1e9, or -1 for a dynamic dimension")
        return v


class ModelSpec(Frozen):
    """How the user names a model: exactly one of ``preset``, ``hf_config`` or ``params``.

    - ``preset``: a name from the embedded presets (``mlplan catalog --models`` lists them).
    - ``hf_config``: a Hugging Face ``config.json`` read offline.
    - ``params`` alone: a decoder LLM of that size, with a standard shape derived from the size.
    - ``params`` with ``flops_per_inference`` and ``input_shape``: a vision / other model.
    """

    preset: str | None = Field(default=None, min_length=1, max_length=200)
    hf_config: str | None = Field(default=None, min_length=1, max_length=4096)
    params: float | None = Field(default=None, gt=0, le=1e14)
    kind: ModelKind | None = None
    name: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")
    flops_per_inference: float | None = Field(default=None, gt=0, le=1e18)
    input_shape: tuple[int, ...] | None = Field(default=None, min_length=1, max_length=16)
    layers: int | None = Field(default=None, ge=1, le=4096)
    hidden_size: int | None = Field(default=None, ge=1, le=1_048_576)
    artifact: str | None = Field(default=None, min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]*$",
                                 description="where the weights live: a path or s3://bucket/key")
    inputs: tuple[TensorSpec, ...] | None = Field(default=None, max_length=64)
    outputs: tuple[TensorSpec, ...] | None = Field(default=None, max_length=64)
    max_context: int | None = Field(default=None, ge=1, le=100_000_000)
    hf_id: str | None = Field(default=None, max_length=200,
                              pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                              description="Hugging Face repository id (org/name) the serving runtime fetches")
    active_params: float | None = Field(default=None, gt=0, le=1e14,
                                        description="MoE with params: parameters per token")
    experts: int | None = Field(default=None, ge=1, le=4096, description="MoE with params: routed experts")
    experts_per_token: int | None = Field(default=None, ge=1, le=4096, description="MoE with params: top-k")

    @field_validator("input_shape")
    @classmethod
    def _input_dims(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and any(d < 1 or d > 1_000_000_000 for d in v):
            raise ValueError("dimensions must be 1..1e9")
        return v

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        given = [k for k in ("preset", "hf_config", "params") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of preset, hf_config or params (got {', '.join(given) or 'none'})"
            )
        if self.flops_per_inference is not None and self.params is None:
            raise ValueError("flops_per_inference only goes with params (a custom model)")
        moe = [k for k in ("active_params", "experts", "experts_per_token") if getattr(self, k) is not None]
        if moe and self.params is None:
            raise ValueError(f"{', '.join(moe)} only go with params (a bare-size mixture of experts)")
        if self.active_params is not None and self.params is not None and self.active_params > self.params:
            raise ValueError(f"active_params ({self.active_params:g}) must be at most params ({self.params:g})")
        if (self.experts is None) != (self.experts_per_token is None):
            raise ValueError("give experts and experts_per_token together")
        if self.experts is not None and self.experts_per_token is not None and self.experts_per_token > self.experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) must be at most experts ({self.experts})")
        return self


# ------------------------------------------------------------------------------------------------ workload


class TokenBin(Frozen):
    """One bar of a token-length histogram: ``weight`` (any positive scale; the weights are normalised) of the
    requests have ``tokens`` tokens."""

    tokens: int = Field(ge=1, le=MAX_TOKENS)
    weight: float = Field(gt=0, le=1e9)


MAX_BINS = 64
"""Bars of one token-length histogram: enough for any measured length distribution at the planner's resolution."""


class InferenceWorkload(Frozen):
    """The traffic an inference deployment serves.

    Token lengths are the mean prompt / answer of a request (``input_tokens`` / ``output_tokens``). They are fixed
    unless the workload also gives their distribution, either as a relative spread around the mean (uniform in
    [n (1 - s), n (1 + s)], vLLM ``bench serve --random-range-ratio s``) or as a small histogram, whose weighted
    mean is then the mean (``input_tokens`` may be left out; given, it must match)::

        input_tokens: 1024
        input_tokens_spread: 0.5          # prompts of 512-1536 tokens, uniformly
        output_tokens_histogram:          # 70% short answers, 30% long ones
          - {tokens: 64, weight: 0.7}
          - {tokens: 1024, weight: 0.3}

    Arrivals are a Poisson process at ``requests_per_s`` x ``peak_to_average`` (the planner sizes for the peak);
    ``burstiness`` > 1 makes them bursty (gamma inter-arrival times with that coefficient of variation).
    """

    kind: Literal["inference"] = "inference"
    requests_per_s: float = Field(default=1.0, gt=0, le=MAX_RPS)
    input_tokens: int = Field(default=512, ge=1, le=MAX_TOKENS, description="mean prompt tokens per request")
    output_tokens: int = Field(default=256, ge=1, le=MAX_TOKENS, description="mean output tokens per request")
    input_tokens_spread: float = Field(
        default=0.0, ge=0.0, le=0.95,
        description="prompt lengths uniform in [n (1 - s), n (1 + s)] around the mean n (0: all the same)")
    output_tokens_spread: float = Field(
        default=0.0, ge=0.0, le=0.95,
        description="output lengths uniform in [n (1 - s), n (1 + s)] around the mean n (0: all the same)")
    input_tokens_histogram: tuple[TokenBin, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_BINS,
        description="prompt lengths as [{tokens, weight}, ...]; their weighted mean is input_tokens")
    output_tokens_histogram: tuple[TokenBin, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_BINS,
        description="output lengths as [{tokens, weight}, ...]; their weighted mean is output_tokens")
    burstiness: float = Field(
        default=1.0, ge=1.0, le=10.0,
        description="coefficient of variation of the gaps between requests: 1 Poisson arrivals, above 1 bursty "
                    "(gamma gaps; vLLM bench serve --burstiness B is 1 / B**0.5 here)")
    batch_size: int | None = Field(default=None, ge=1, le=65_536, description="fixed batch for non-LLM models")
    peak_to_average: float = Field(default=1.0, ge=1.0, le=100.0)
    local_traffic_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="share of requests from the edge sites themselves (edge + cloud-fallback hybrids)")
    sensitive_traffic_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="share of requests that carry the spec's data class; clients mark the rest "
                    "x-mlplan-data-class: public (on-prem + cloud hybrids)")
    fleet_size: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="edge: sites that each need their own device (cameras, stores, sensors)")
    images_per_request: int = Field(
        default=0, ge=0, le=1024, description="vision-language models: images in each request's prompt")

    @model_validator(mode="before")
    @classmethod
    def _histogram_means(cls, data: Any) -> Any:
        """A histogram sets its length's mean: ``input_tokens`` / ``output_tokens`` are derived from it when left
        out, and must agree with it (to the token) when given."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for what in ("input_tokens", "output_tokens"):
            bins = data.get(f"{what}_histogram")
            if bins is None:
                continue
            if data.get(f"{what}_spread") not in (None, 0, 0.0):
                raise ValueError(f"{what}_spread: give either {what}_spread or {what}_histogram, not both")
            mean = _histogram_mean(bins)
            if mean is None:
                continue  # malformed bins: the field's own validation reports them
            given = data.get(what)
            if given is None:
                out[what] = max(1, round(mean))
            elif isinstance(given, int | float) and not isinstance(given, bool) and abs(given - mean) > 1.0:
                raise ValueError(f"{what}: {given!r} differs from the weighted mean of {what}_histogram "
                                 f"({mean:.1f}); leave {what} out or make them agree")
        return out

    @property
    def max_input_tokens(self) -> int:
        """The longest prompt the workload sends (the mean when lengths are fixed)."""
        return _longest(self.input_tokens, self.input_tokens_spread, self.input_tokens_histogram)

    @property
    def max_output_tokens(self) -> int:
        """The longest answer the workload asks for (the mean when lengths are fixed)."""
        return _longest(self.output_tokens, self.output_tokens_spread, self.output_tokens_histogram)


def _histogram_mean(bins: Any) -> float | None:
    """Weighted mean of raw histogram bins ([{tokens, weight}, ...]), or None if they are not well formed."""
    try:
        pairs = [(b["tokens"], b["weight"]) for b in bins]
    except (TypeError, KeyError):
        return None
    if not pairs or any(isinstance(v, bool) or not isinstance(v, int | float) for p in pairs for v in p):
        return None
    total = sum(w for _, w in pairs)
    if not total > 0 or any(w < 0 or n < 1 for n, w in pairs):
        return None
    return float(sum(n * w for n, w in pairs) / total)


def _longest(mean: int, spread: float, bins: tuple[TokenBin, ...] | None) -> int:
    if bins:
        return max(b.tokens for b in bins)
    return max(1, round(mean * (1.0 + spread)))


class TrainingWorkload(Frozen):
    kind: Literal["training"] = "training"
    tokens: float | None = Field(default=None, gt=0, le=1e16, description="training tokens per epoch (LLMs)")
    samples: float | None = Field(default=None, gt=0, le=1e14, description="samples per epoch (non-LLM)")
    epochs: float = Field(default=1.0, gt=0, le=10_000)
    sequence_length: int = Field(default=2048, ge=1, le=MAX_TOKENS)
    micro_batch_size: int = Field(default=1, ge=1, le=65_536)
    optimizer: Optimizer = "adamw"
    mixed_precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    activation_checkpointing: StrictBool = True
    zero_stage: Literal[0, 1, 2, 3] | None = Field(default=None, description="fix the ZeRO/FSDP stage; default: search")
    target_wall_time_h: float | None = Field(default=None, gt=0, le=87_600)
    method: Literal["full", "lora"] = "full"
    entrypoint: str | None = Field(default=None, min_length=1, max_length=4000,
                                   description="the training command the job runs (your code, in the vendor's Ray "
                                               "image), e.g. 'python train.py --deepspeed_config "
                                               "/etc/mlplan/ds_config.json'; without it the emitted RayJob is a "
                                               "template that refuses to start")

    @model_validator(mode="after")
    def _amount(self) -> TrainingWorkload:
        if self.tokens is None and self.samples is None:
            raise ValueError("a training workload needs tokens (LLMs) or samples (other models)")
        return self


Workload = Annotated[InferenceWorkload | TrainingWorkload, Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------- constraints


class Constraints(Frozen):
    ttft_s: float | None = Field(default=None, gt=0, le=3600,
                                 description="time to first token SLO (LLM), at slo_percentile")
    tpot_s: float | None = Field(default=None, gt=0, le=60,
                                 description="time per output token SLO (LLM), at slo_percentile")
    latency_s: float | None = Field(default=None, gt=0, le=3600,
                                    description="end-to-end latency SLO per request (LLM: to the last token)")
    slo_percentile: float = Field(
        default=99.0, ge=50.0, le=99.9,
        description="the percentile of requests that must meet ttft_s, tpot_s and latency_s at the planned peak "
                    "rate (99: p99; 50: the median)")
    min_throughput_rps: float | None = Field(default=None, gt=0, le=MAX_RPS)
    privacy: Privacy = "internal"
    allowed_regions: tuple[Identifier, ...] | None = Field(
        default=None, min_length=1, max_length=64,
        description="region ids or geographies (us, eu, apac, ...); None = anywhere")
    dedicated_tenancy: StrictBool = Field(default=False,
                                          description="restricted data: dedicated hosts are acceptable")
    budget_usd_per_month: float | None = Field(default=None, gt=0, le=1e10)
    placements: tuple[Placement, ...] = ("cloud", "on-prem", "edge", "hybrid")
    precisions: tuple[Dtype, ...] = ("bf16", "fp16", "fp8", "int8", "int4")
    providers: tuple[Literal["aws", "gcp", "azure"], ...] | None = None
    allow_spot: StrictBool = False
    onprem_owned_only: StrictBool = Field(
        default=False, description="on-prem: only servers on hand (inventory rows with `available`), buy nothing"
    )
    users_location: Identifier | None = Field(default=None,
                                              description="where users are, for network RTT (e.g. eu-west)")
    memory_headroom: float = Field(default=0.10, ge=0.0, le=0.8)
    runtime: Literal["ray", "triton", "vllm", "tensorrt-llm"] | None = Field(
        default=None, description="serving runtime preference; default: chosen per model kind and hardware"
    )
    max_training_days: float = Field(default=30.0, gt=0, le=3650, description="training: longest acceptable run")
    max_accuracy_loss: Literal["none", "small", "moderate"] = Field(
        default="small", description="none: fp16/bf16 only; small: fp8/int8 too; moderate: int4 too"
    )

    @field_validator("placements", "precisions")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must list at least one value")
        return v


class Assumptions(Frozen):
    """Cost assumptions; all visible in the output and overridable in the spec."""

    hours_per_month: float = Field(default=730.0, gt=0, le=744)
    onprem_amortization_years: float = Field(default=4.0, gt=0, le=30)
    power_usd_per_kwh: float = Field(default=0.12, ge=0, le=10)
    pue: float = Field(default=1.4, ge=1.0, le=3.0)
    onprem_ops_usd_per_server_month: float = Field(default=400.0, ge=0, le=1e6)
    edge_amortization_years: float = Field(default=3.0, gt=0, le=30)
    edge_connectivity_usd_per_device_month: float = Field(default=5.0, ge=0, le=1e4)
    edge_average_utilization: float = Field(default=0.5, gt=0, le=1)
    gpu_average_utilization: float = Field(default=0.6, gt=0, le=1)
    training_mfu: float = Field(default=0.40, gt=0, le=1)
    dedicated_tenancy_premium: float = Field(
        default=0.10, ge=0, le=2,
        description="dedicated-tenancy / sole-tenant uplift on the instance price, used where the catalog row has "
                    "no dedicated_usd_per_h (AWS also bills its per-region dedicated fee, a catalog price)")
    planning_utilization: float = Field(
        default=0.8, gt=0, le=1, description="plan replicas to run at this fraction of their saturated throughput")
    bytes_per_token: float = Field(
        default=4.0, gt=0, le=1e6,
        description="bytes on the wire per LLM token (egress, load balancer data): ~4 characters of English per "
                    "token (https://help.openai.com/en/articles/4936856-what-are-tokens-and-how-to-count-them); "
                    "set ~200 for responses streamed as server-sent events (one JSON chunk per token)")
    request_bytes_per_request: float | None = Field(
        default=None, ge=0, le=1e12,
        description="bytes of one request on the wire (load balancer data); default: input tokens x bytes_per_token "
                    "for LLMs, the model's input tensors for other models (raw tensors: set the encoded size, "
                    "e.g. a JPEG, if clients send that)")
    response_bytes_per_request: float | None = Field(
        default=None, ge=0, le=1e12,
        description="bytes of one response on the wire (egress, load balancer data); default: output tokens x "
                    "bytes_per_token for LLMs, the model's output tensors for other models")
    nat_gb_per_node_month: float = Field(
        default=20.0, ge=0, le=1e6,
        description="GB a private node pulls through the NAT gateway a month: container images (a vLLM / Triton "
                    "image is ~10 GB compressed) and OS updates; weights come from the bucket through the "
                    "provider's private endpoint and do not cross the NAT")
    kms_requests_per_month: float = Field(
        default=10_000.0, ge=0, le=1e12,
        description="key requests a month (volume attaches, bucket reads with a bucket key, secrets decryption)")
    control_plane_log_gb_per_month: float = Field(
        default=5.0, ge=0, le=1e6, description="GB of control-plane logs the stack turns on (EKS api/audit/"
                                               "authenticator to CloudWatch)")
    service_prices: dict[Annotated[str, Field(pattern=r"^([a-z]+\.)?[a-z0-9_]+$", max_length=64)],
                         Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=64,
        description="override catalog platform prices (planner/catalog/data/services.yaml) by item, in the row's "
                    "unit: {egress_internet: 0.05} for every provider, {aws.k8s_control_plane: 0.6} for one")

    @field_validator("service_prices", mode="before")
    @classmethod
    def _prices_are_numbers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key, value in v.items():
                _check_number(value, float, f"{key} ")
        return v


class Spec(Frozen):
    name: str = Field(default="mlplan", max_length=40, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    model: ModelSpec
    workload: Workload = Field(default_factory=InferenceWorkload)
    constraints: Constraints = Field(default_factory=Constraints)
    assumptions: Assumptions = Field(default_factory=Assumptions)
    catalog_overlay: str | None = Field(default=None, min_length=1, max_length=4096,
                                        description="path to a catalog overlay file")

    @model_validator(mode="before")
    @classmethod
    def _inference_by_default(cls, data: Any) -> Any:
        """A workload without ``kind`` is an inference workload (the common case; training names itself)."""
        if isinstance(data, dict) and isinstance(data.get("workload"), dict) and "kind" not in data["workload"]:
            return {**data, "workload": {"kind": "inference", **data["workload"]}}
        return data


# ------------------------------------------------------------------------------------------------- loading


def _short_repr(value: Any) -> str:
    """A bounded repr: nested containers and long strings are cut, so a 1 MB or deeply nested value stays short."""
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlist, r.maxdict = 2, 50, 50, 4, 3
    try:
        shown = r.repr(value)
    except (RecursionError, ValueError):  # ValueError: an int over Python's 4,300-digit str() limit
        shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= 60 else shown[:57] + "..."


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: the first failing field, its bad value and what was expected.

    A missing field is named as missing (its "value" would be the whole parent mapping); an unknown field as
    unknown, so a typo such as ``modle:`` reads as what it is.
    """
    errors = err.errors()
    first: dict[str, Any] = dict(errors[0])
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p in {"inference", "training"}))
    msg = first["msg"].removeprefix("Value error, ")
    head, sep, rest = msg.partition(": ")
    given = first.get("input")
    if sep and isinstance(given, dict) and head in given:  # a model-level check that names one field
        loc, msg, first["input"] = f"{loc}.{head}" if loc else head, rest, given[head]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"field '{loc}'" if loc else "the document"
    if first["type"] == "missing":
        return f"{source}: {where} is missing: {msg}{more}"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown {where} = {_short_repr(first.get('input'))}: {msg}{more}"
    return f"{source}: {where} = {_short_repr(first.get('input'))}: {msg}{more}"


def _alias_references(root: yaml.Node) -> int:
    """How many alias references a composed YAML document holds (edges to a node already reached), counted
    without expanding them, so a billion-laughs document is refused before anything is built from it."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    aliases = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            aliases += 1
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return aliases


class _UniqueKeyLoader(yaml.CSafeLoader):
    """libyaml's safe parser (fast, nesting capped at 1,000 levels) with a constructor that rejects duplicate
    keys and alias bombs, and reads dates as plain strings.

    The pure-Python parser needs ~20 us per byte of dense flow YAML (a 1 MB file: over 10 s); libyaml parses the
    same in milliseconds, so any file under the size cap loads or fails well inside a second.
    """

    max_aliases = 32

    def construct_document(self, node: yaml.Node) -> Any:
        if _alias_references(node) > self.max_aliases:
            raise yaml.constructor.ConstructorError(
                None, None, f"more than {self.max_aliases} YAML aliases (an alias bomb?)", node.start_mark
            )
        return super().construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "unhashable mapping key", key_node.start_mark
                ) from None
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Implicit timestamps are not resolved: ``name: 2024-02-30`` stays the string it looks like instead of failing in
# ``datetime``. Explicit ``!!python/...`` tags are unknown to the SafeLoader and fail as bad YAML.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 floats (``13e9``, ``2.0e9``): PyYAML follows YAML 1.1, where an exponent needs a dot and a sign, so it
# reads ``params: 13e9`` as the string "13e9". Specs refuse strings where numbers go, so these must be numbers.
# Appended after the 1.1 resolvers: integers and 1.1 floats resolve as before. (YAML 1.2 core schema, 10.3.2.)
_YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
for _first in "-+.0123456789":
    _UniqueKeyLoader.yaml_implicit_resolvers.setdefault(_first, []).append(("tag:yaml.org,2002:float", _YAML12_FLOAT))

MAX_SPEC_BYTES = 65_536
"""A spec is a few hundred bytes; 64 KiB is generous and keeps the worst case (dense flow YAML) well under 1 s."""
MAX_YAML_BYTES = 1_000_000
"""Other user YAML (catalog overlays: an inventory or a refreshed price list can be large)."""


def read_yaml(path: Path, *, what: str = "spec", error: type[MlplanError] = SpecError, trusted: bool = False,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read a YAML file safely or raise ``error`` (a :class:`SpecError` by default) in one line.

    Safe means: a regular file only (a FIFO or ``/dev/zero`` would hang or fill memory), at most
    ``max_bytes`` read, UTF-8 (a BOM is allowed), no NUL bytes, libyaml's safe parser with no duplicate keys and at
    most 32 aliases, and every failure of the YAML library (a 5,000-digit integer, an explicit ``!!timestamp``
    that is no date, nesting deeper than the recursion limit) reported as bad YAML, never as a traceback.

    ``trusted`` (only the catalog shipped in the package, checked by its own tests) lifts the size cap and parses
    with libyaml's C safe loader: 25x faster, which keeps a whole ``mlplan recommend`` call under 1.5 s.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the regular-file check below then refuses it
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise error(f"{what} path is a directory, not a file: {path}", fix="pass a YAML file")
            if not stat.S_ISREG(mode):
                raise error(f"{what} path is not a regular file: {path}", fix="pass a YAML file")
            raw = fh.read() if trusted else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}", fix="check the path") from None
    except IsADirectoryError:
        raise error(f"{what} path is a directory, not a file: {path}", fix="pass a YAML file") from None
    except OSError as e:
        raise error(f"cannot read {what} file {path}: {e.strerror}", fix="check the path and its permissions") from None
    except ValueError as e:  # e.g. an embedded NUL byte in the path
        raise error(f"{what} path {str(path)!r} is not a valid path: {e}", fix="check the path") from None
    if len(raw) > max_bytes and not trusted:
        raise error(f"{what} file {path} is over the {max_bytes:,} byte limit", fix=f"keep the {what} small")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} file {path} is not UTF-8 text", fix="save it as UTF-8 YAML") from None
    if "\x00" in text:
        raise error(f"{what} file {path} is binary, not YAML", fix="pass a YAML text file")
    try:
        loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if trusted else _UniqueKeyLoader
        return yaml.load(text, Loader=loader)
    except RecursionError:
        raise error(f"{what} file {path} is nested too deeply", fix="flatten the YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or ["unreadable"])[0]
        context = getattr(e, "context", None)
        if context:  # e.g. "second occurrence" (found duplicate anchor 'a'; first occurrence)
            problem = f"{problem} ({context})"
        raise error(f"{what} file {path} is not valid YAML{where}: {problem}", fix="correct the YAML") from None
    except (ValueError, TypeError, OverflowError) as e:  # raised by PyYAML's scalar constructors
        raise error(f"{what} file {path} is not valid YAML: a value cannot be read ({e})",
                    fix="correct the YAML") from None


def spec_from_data(data: Any, *, source: str = "spec") -> Spec:
    if data is None:
        raise SpecError(f"{source} is empty", fix="give at least a 'model:' section")
    if not isinstance(data, dict):
        raise SpecError(f"{source} must be a mapping with model/workload/constraints, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, source), fix="see examples/ for valid specs") from None
    except RecursionError:
        raise SpecError(f"{source} is nested too deeply") from None


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec YAML file."""
    p = Path(path)
    spec = spec_from_data(read_yaml(p, max_bytes=MAX_SPEC_BYTES), source=str(p))
    if spec.model.hf_config and not Path(spec.model.hf_config).is_absolute():
        spec = spec.model_copy(update={"model": spec.model.model_copy(
            update={"hf_config": str(p.parent / spec.model.hf_config)})})
    if spec.catalog_overlay and not Path(spec.catalog_overlay).is_absolute():
        spec = spec.model_copy(update={"catalog_overlay": str(p.parent / spec.catalog_overlay)})
    return spec


def finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
