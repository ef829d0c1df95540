"""How long one engine step or one batch takes: the simulator's only link to a performance model.

The simulator never imports the estimator. It takes an object that satisfies one of two protocols:

- :class:`StepCost` (LLM engines): seconds for one continuous-batching step that runs ``prefill_tokens`` prompt
  tokens (chunks of one or more prompts) together with ``decode_seqs`` decoding sequences whose contexts sum to
  ``decode_context_tokens``. ``prefill_attention_pairs`` is the number of (query, key) pairs the prompt chunks'
  causal attention computes: sum over chunks of n x (tokens already cached + n / 2); a whole prompt of T tokens in
  one chunk is T^2 / 2.
- :class:`BatchCost` (non-LLM models behind a dynamic batcher): seconds for one batch of ``batch`` requests.

Contract the simulator relies on (documented so a cost model can honour it): between two events a run of pure
decode steps is integrated in closed form, assuming ``step_s(0, b, C)`` is affine in ``C`` (the roofline's decode
attention reads each sequence's KV once, so its time is proportional to the context; the GEMMs do not depend on
it). A cost model that is not affine is sampled at the start of a run and one step later, and extrapolated. A cost
model may also offer ``decode_coeffs(b) -> (seconds at context 0, seconds per context token)``, the same affine
decode step in one call (the simulator uses it when present; it must agree with ``step_s``).

:class:`AffineStepCost` and :class:`AffineBatchCost` are small exact models for tests and benchmarks;
``planner.simulator.estimator_costs`` builds the real ones from the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class StepCost(Protocol):
    def step_s(self, prefill_tokens: int, decode_seqs: int, decode_context_tokens: int,
               prefill_attention_pairs: float = 0.0) -> float:
        """Seconds for one engine step."""
        ...


@runtime_checkable
class BatchCost(Protocol):
    def batch_s(self, batch: int) -> float:
        """Seconds to run one batch of ``batch`` requests."""
        ...


@dataclass(frozen=True, slots=True)
class AffineStepCost:
    """step = fixed (decode-only) or prefill_fixed (any prompt tokens) + per-token, per-sequence and per-context
    terms. Exact and cheap: the tests use it as an oracle they can compute by hand."""

    decode_fixed_s: float = 0.010
    per_decode_seq_s: float = 0.0
    per_context_token_s: float = 0.0
    prefill_fixed_s: float = 0.010
    per_prefill_token_s: float = 0.0
    per_attention_pair_s: float = 0.0

    def decode_coeffs(self, decode_seqs: int) -> tuple[float, float]:
        return self.decode_fixed_s + self.per_decode_seq_s * decode_seqs, self.per_context_token_s

    def step_s(self, prefill_tokens: int, decode_seqs: int, decode_context_tokens: int,
               prefill_attention_pairs: float = 0.0) -> float:
        fixed = self.prefill_fixed_s if prefill_tokens > 0 else self.decode_fixed_s
        return (fixed + self.per_prefill_token_s * prefill_tokens + self.per_decode_seq_s * decode_seqs
                + self.per_context_token_s * decode_context_tokens
                + self.per_attention_pair_s * prefill_attention_pairs)


@dataclass(frozen=True, slots=True)
class AffineBatchCost:
    """batch = fixed + per_item x batch (the usual shape of a small model's batch latency on a GPU)."""

    fixed_s: float = 0.002
    per_item_s: float = 0.0005

    def batch_s(self, batch: int) -> float:
        return self.fixed_s + self.per_item_s * batch
