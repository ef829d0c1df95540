"""Serving-engine and cluster settings the simulator reproduces, each named after the runtime knob it models.

- :class:`ContinuousBatching`: a vLLM V1 engine (``vllm serve``): ``max_num_seqs``, ``max_num_batched_tokens``
  (the per-step token budget that chunked prefill fills), the paged KV cache (``block_size`` 16 tokens; its
  capacity in tokens is what ``gpu_memory_utilization`` leaves after weights and activations).
- :class:`DynamicBatching`: Triton's ``dynamic_batching`` (``max_batch_size``, ``preferred_batch_size``,
  ``max_queue_delay_microseconds``, ``instance_group.count``) or Ray Serve's ``@serve.batch`` (``max_batch_size``,
  ``batch_wait_timeout_s``, ``max_concurrent_batches``).
- :class:`Cluster`: data-parallel replicas behind a router. Which router each runtime uses:

  ========================  ==================================================================================
  ``power_of_two``          Ray Serve (``RequestRouterConfig`` default ``PowerOfTwoChoicesRequestRouter``: two
                            random replicas, the one with fewer ongoing requests; none over
                            ``max_ongoing_requests``, else the request waits at the router)
  ``round_robin``           vLLM production-stack router (``--routing-logic roundrobin``, its default); a
                            Kubernetes Service in IPVS mode (``rr`` scheduler)
  ``random``                a Kubernetes Service in kube-proxy's default iptables mode (uniformly random
                            endpoint per connection)
  ``least_outstanding``     join-the-shortest-queue: Envoy / NGINX ``least_request``; also a single Triton
                            server's shared queue over its model instances (``instance_group`` count)
  ========================  ==================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from planner.errors import InputError

Router = Literal["round_robin", "least_outstanding", "power_of_two", "random"]
ROUTERS: tuple[Router, ...] = ("round_robin", "least_outstanding", "power_of_two", "random")
RUNTIME_ROUTER: dict[str, Router] = {"ray": "power_of_two", "vllm": "random", "triton": "random",
                                     "tensorrt-llm": "random"}
"""The router each runtime's replicas sit behind when mlplan deploys them: Ray Serve's own router for Ray plans;
a Kubernetes ClusterIP / LoadBalancer Service (stacks/manifests.py) for vLLM, Triton and TensorRT-LLM pods, which
kube-proxy's default iptables mode balances at random per connection."""

GIB = 2**30


def vllm_defaults(memory_bytes: int, accelerator: str = "") -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) of ``vllm serve`` on a GPU with ``memory_bytes``:
    8192 / 1024 on GPUs with >= 70 GiB that are not A100s, else 2048 / 256 (vLLM
    ``EngineArgs.get_batch_defaults``, OPENAI_API_SERVER usage context; PR #17885 keeps A100 on the small
    budget)."""
    if memory_bytes >= 70 * GIB and "a100" not in accelerator.lower():
        return 8192, 1024
    return 2048, 256


@dataclass(frozen=True, slots=True)
class ContinuousBatching:
    """A vLLM V1 replica (continuous batching with chunked prefill, paged KV cache, recompute preemption)."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    kv_capacity_tokens: int | None = None
    """KV-cache slots of the replica (None: unbounded)"""
    block_size: int = 16

    def __post_init__(self) -> None:
        if not (1 <= self.max_num_seqs <= 1_000_000):
            raise InputError(f"max_num_seqs {self.max_num_seqs!r} must be between 1 and 1,000,000", fix="e.g. 256")
        if self.max_num_batched_tokens < self.max_num_seqs:
            # vLLM's SchedulerConfig refuses this too: every running sequence must fit one step's budget
            raise InputError(f"max_num_batched_tokens {self.max_num_batched_tokens} is below max_num_seqs "
                             f"{self.max_num_seqs}", fix="raise max_num_batched_tokens to at least max_num_seqs")
        if not (1 <= self.block_size <= 1024):
            raise InputError(f"block_size {self.block_size!r} must be between 1 and 1024", fix="vLLM uses 16")
        if self.kv_capacity_tokens is not None and self.kv_capacity_tokens < self.block_size:
            raise InputError(f"KV capacity {self.kv_capacity_tokens!r} tokens is less than one block",
                             fix="give the replica's KV-cache slots in tokens (e.g. from the estimator)")

    @property
    def kv_blocks(self) -> int | None:
        return None if self.kv_capacity_tokens is None else self.kv_capacity_tokens // self.block_size


@dataclass(frozen=True, slots=True)
class DynamicBatching:
    """A non-LLM replica behind Triton's dynamic batcher or Ray Serve's ``@serve.batch``.

    Triton: when a model instance is free, it sends the largest preferred batch it can form at once (or
    ``max_batch_size``); otherwise it waits until the oldest request has waited ``max_queue_delay_s`` and then
    sends what is queued (Triton user guide, "Dynamic Batcher" / "Delayed Batching"). ``instances`` model
    instances run batches in parallel.

    Ray Serve 2.x (``ray/serve/batching.py``, ``_BatchQueue.wait_for_batch``): a collector takes the first
    queued request, waits up to ``max_queue_delay_s`` (``batch_wait_timeout_s``) for the batch to fill to
    ``max_batch_size`` and hands it on whether or not the replica is busy; formed batches run in order,
    ``instances`` (``max_concurrent_batches``) at a time.
    """

    runtime: Literal["triton", "ray"] = "triton"
    max_batch_size: int = 1
    max_queue_delay_s: float = 0.0
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.max_batch_size <= 1_000_000):
            raise InputError(f"max_batch_size {self.max_batch_size!r} must be between 1 and 1,000,000", fix="e.g. 8")
        if not (math.isfinite(self.max_queue_delay_s) and 0.0 <= self.max_queue_delay_s <= 60.0):
            raise InputError(f"max queue delay {self.max_queue_delay_s!r} s must be in [0, 60]", fix="e.g. 0.002")
        if any(p < 1 or p > self.max_batch_size for p in self.preferred_batch_sizes):
            raise InputError(f"preferred batch sizes {list(self.preferred_batch_sizes)} must be in "
                             f"[1, max_batch_size={self.max_batch_size}]", fix="drop the sizes out of range")
        if not (1 <= self.instances <= 1024):
            raise InputError(f"instances {self.instances!r} must be between 1 and 1024", fix="e.g. 1")


@dataclass(frozen=True, slots=True)
class FrontStage:
    """One process every request passes through before the router hands it to a replica: Ray Serve's HTTP proxy,
    an actor on each node that parses the request and forwards it over Ray's RPC
    (https://docs.ray.io/en/latest/serve/architecture.html). ``service_s`` is its CPU time per request (the
    response's included), the same for every request.

    The proxy is one asyncio event loop: it interleaves the requests it holds, each getting an equal share of its
    thread, so the stage is a processor-sharing server. Its mean time in the stage is service / (1 - rho) for any
    service distribution (Kleinrock, *Queueing Systems* vol. 2, 1976, sec. 4.4), and an idle proxy takes just the
    service. With equal service times requests leave in the order they came. Open-loop runs simulate it exactly; a
    closed loop (whose next arrivals depend on completions) serves it first come first served, which leaves in the
    same order, each request no later than processor sharing would let it.

    ``servers``: proxies side by side (one per node), pooled: each request gets a whole one while there are no
    more requests than proxies, an equal share of them all beyond that."""

    service_s: float
    servers: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.service_s) and 0.0 < self.service_s <= 60.0):
            raise InputError(f"front stage time {self.service_s!r} s must be in (0, 60]", fix="e.g. 0.004")
        if not (1 <= self.servers <= 100_000):
            raise InputError(f"front stage servers {self.servers!r} must be between 1 and 100,000", fix="e.g. 1")


@dataclass(frozen=True, slots=True)
class Cluster:
    """Data-parallel replicas behind one router; ``network_s`` is a fixed per-request time added to TTFT and
    end-to-end latency (network round trip plus the runtime's HTTP overhead)."""

    replicas: int = 1
    router: Router = "round_robin"
    max_ongoing_requests: int | None = None
    """per replica; requests over it wait at the router (Ray Serve ``max_ongoing_requests``), in order, and go to
    the first replica with room. Ray Serve's router instead polls with backoff (up to 500 ms between tries), which
    this does not model: the planner sets the limit above what a replica can finish within the SLO
    (:func:`planner.optimizer.slo.max_ongoing_requests`), so within it the limit is not reached."""
    network_s: float = 0.0
    front: FrontStage | None = None
    """a stage every request passes before the router (None: none): Ray Serve runs a proxy on every node, and a
    CPU host's plan puts one replica on each, so as many proxies as replicas"""

    def __post_init__(self) -> None:
        if not (1 <= self.replicas <= 100_000):
            raise InputError(f"replicas {self.replicas!r} must be between 1 and 100,000", fix="e.g. 2")
        if self.router not in ROUTERS:
            raise InputError(f"router {self.router!r} is not one of {', '.join(ROUTERS)}",
                             fix="use round_robin, least_outstanding, power_of_two or random")
        if self.max_ongoing_requests is not None and self.max_ongoing_requests < 1:
            raise InputError(f"max_ongoing_requests {self.max_ongoing_requests!r} must be >= 1", fix="e.g. 16")
        if not (math.isfinite(self.network_s) and 0.0 <= self.network_s <= 60.0):
            raise InputError(f"network time {self.network_s!r} s must be in [0, 60]", fix="e.g. 0.004")
