"""The event-driven serving simulator: requests, replicas, a router, and one clock.

Events are arrivals, step (or batch) completions and batch-forming deadlines. Between two events nothing about a
replica's batch changes, so a run of pure decode steps is advanced in one move (its duration in closed form, see
:mod:`planner.simulator.costs`), not token by token; an arrival that can join the batch cuts the run at the next
step boundary. Cost: a few events per request, whatever the output length.

vLLM V1 scheduling, as ``vllm/v1/core/sched/scheduler.py`` ``Scheduler.schedule`` does it:

1. RUNNING requests in admission order, each given ``min(tokens it still needs, token budget)`` tokens (1 for a
   decoding sequence, the rest of its prompt for one still prefilling). KV blocks are allocated as needed; when
   none is left, the most recently admitted running request is preempted (``self.running.pop()``): its blocks are
   freed, ``num_computed_tokens`` reset to 0, and it goes back to the front of WAITING, to recompute its prompt
   and the tokens it already produced.
2. WAITING requests, FCFS, only if nothing was preempted in this step, while the budget lasts and fewer than
   ``max_num_seqs`` run; a request whose first chunk finds no KV blocks stops admission.
3. A step produces one token for every sequence whose prompt is complete (the first token at the end of the
   step that completes the prompt).

Invariants the bookkeeping uses (they follow from 1-2): decoding sequences precede prefilling ones in admission
order, and all decoding sequences are scheduled in every step (``max_num_batched_tokens >= max_num_seqs``). So
decoding sequences advance together with a per-replica step clock ``D``: a sequence that joined at clock ``d``
with ``o`` outputs has ``o + D - d`` at clock ``D``; KV blocks are bucketed by the clock phase at which each
sequence fills its last block.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from planner.errors import InputError
from planner.simulator.costs import BatchCost, StepCost
from planner.simulator.engines import Cluster, ContinuousBatching, DynamicBatching, FrontStage
from planner.simulator.metrics import Dist, LogHistogram, SimResult
from planner.simulator.workload import Workload

INF = math.inf
UNBOUNDED_BLOCKS = 1 << 60
_log = math.log
_BINS = LogHistogram.BINS_PER_E


class _State:
    """Per-request arrays and the global counters every replica updates."""

    def __init__(self, n: int, prompt: list[int], olen: list[int]) -> None:
        self.n = n
        self.prompt = prompt
        self.olen = olen
        self.arr = [0.0] * n
        self.t_first = [-1.0] * n
        self.t_done = [-1.0] * n
        self.q_since = [0.0] * n
        self.q_total = [0.0] * n
        self.t_last = [0.0] * n
        self.outs = [0] * n
        self.comp = [0] * n
        self.held = [0] * n
        self.dj = [0] * n
        self.phase = [0] * n
        self.fin = [0] * n
        self.rep = [0] * n
        # time integrals (Little's law, queue length)
        self.t_acc = 0.0
        self.n_sys = 0
        self.n_q = 0
        self.area_sys = 0.0
        self.area_q = 0.0
        self.max_q = 0
        self.itl = LogHistogram()
        self.preemptions = 0
        self.prefill_tokens = 0
        self.batch_log: list[tuple[float, int, float, float]] | None = None
        self.close_log: list[tuple[float, int, float]] = []
        self.busy = 0.0
        self.batch_area = 0.0
        self.batches = 0
        self.batch_items = 0
        self.done = 0
        self.on_done: Any = None

    def account(self, t: float) -> None:
        dt = t - self.t_acc
        if dt > 0:
            self.area_sys += self.n_sys * dt
            self.area_q += self.n_q * dt
            self.t_acc = t

    def enqueue(self, rid: int, t: float) -> None:
        dt = t - self.t_acc
        if dt > 0:
            self.area_sys += self.n_sys * dt
            self.area_q += self.n_q * dt
            self.t_acc = t
        self.n_q += 1
        if self.n_q > self.max_q:
            self.max_q = self.n_q
        self.q_since[rid] = t

    def dequeue(self, rid: int, t: float) -> None:
        dt = t - self.t_acc
        if dt > 0:
            self.area_sys += self.n_sys * dt
            self.area_q += self.n_q * dt
            self.t_acc = t
        self.n_q -= 1
        self.q_total[rid] += t - self.q_since[rid]


# ------------------------------------------------------------------------------------------ LLM replica


class _LlmReplica:
    """One vLLM V1 engine."""

    def __init__(self, idx: int, cfg: ContinuousBatching, cost: StepCost, st: _State) -> None:
        self.idx = idx
        self.cost = cost
        self.decode_coeffs: Callable[[int], tuple[float, float]] | None = getattr(cost, "decode_coeffs", None)
        self.st = st
        self.M = cfg.max_num_batched_tokens
        self.max_seqs = cfg.max_num_seqs
        self.bs = cfg.block_size
        blocks = cfg.kv_blocks
        self.kv_limited = blocks is not None
        self.free = UNBOUNDED_BLOCKS if blocks is None else blocks
        self.waiting: deque[int] = deque()
        self.decode: dict[int, None] = {}
        self.prefill: dict[int, None] = {}
        self.bucket = [0] * self.bs
        self.D = 0
        self.dec_ctx = 0
        self.fin_heap: list[tuple[int, int]] = []
        self.version = 0
        # the activity in progress
        self.busy = False
        self.t0 = 0.0
        self.t_end = 0.0
        self.is_run = False
        self.k = 0
        self.s0 = 0.0
        self.delta = 0.0
        self.n_dec = 0
        self.interruptible = False
        self.first_need = 0
        """KV blocks allocated for the first step of a run chained after a prompt step (returned if cut to 0)"""
        self.chunks: list[tuple[int, int]] = []
        self.dur = 0.0

    # ------------------------------------------------------------------------------------------ events
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.decode) + len(self.prefill)

    def arrive(self, rid: int, t: float) -> float | None:
        """A request reaches this replica at ``t``; returns the replica's new event time if it changed."""
        self.waiting.append(rid)
        self.st.enqueue(rid, t)
        if not self.busy:
            return self._schedule(t)
        if self.is_run and self.interruptible:
            if t < self.t0:  # during the prompt step that precedes the run: join at its end
                j = 0
                self.free += self.first_need  # the run's first step will not happen: its blocks come back
                self.first_need = 0
            elif self.k > 1:
                j = self._steps_until(t - self.t0)
            else:
                return None
            if j < self.k:
                self.k = j
                self.version += 1
                self.t_end = self.t0 + j * self.s0 + self.delta * j * (j - 1) / 2.0
                return self.t_end
        return None

    def event(self, t: float) -> float | None:
        """The activity in progress ends at ``t``: commit it, schedule the next; returns its end (None: idle)."""
        if self.is_run:
            self._commit_run(t)
        else:
            self._commit_step(t)
        return self._schedule(t)

    # ------------------------------------------------------------------------------------------ helpers
    def _steps_until(self, dt: float) -> int:
        """Smallest j >= 1 whose cumulative run time T(j) = j s0 + delta j (j - 1) / 2 reaches ``dt``."""
        s0, d = self.s0, self.delta
        if dt <= 0:
            return 1
        if abs(d) < 1e-18:
            j = max(1, math.ceil(dt / s0))
        else:
            b = s0 - d / 2.0
            disc = b * b + 2.0 * d * dt
            j = max(1, math.ceil((-b + math.sqrt(max(0.0, disc))) / d)) if disc >= 0 else self.k
        while j > 1 and (j - 1) * s0 + d * (j - 1) * (j - 2) / 2.0 >= dt:
            j -= 1
        while j * s0 + d * j * (j - 1) / 2.0 < dt and j < self.k:
            j += 1
        return j

    def _blocks_for(self, d0: int, k: int) -> int:
        """KV blocks the decoding sequences need over ``k`` steps starting at clock ``d0``."""
        if k <= 0 or not self.decode:
            return 0
        bs = self.bs
        full, rem = divmod(k, bs)
        need = full * len(self.decode)
        b = self.bucket
        for j in range(rem):
            need += b[(d0 + j) % bs]
        return need

    def _steps_affordable(self, d0: int, free: int) -> int:
        """Most decode steps from clock ``d0`` whose new blocks fit in ``free``."""
        n = len(self.decode)
        if n == 0 or free >= UNBOUNDED_BLOCKS // 2:
            return 1 << 40
        bs = self.bs
        cycles = free // n
        r = free - cycles * n
        b = self.bucket
        j = 0
        while j < bs:
            r -= b[(d0 + j) % bs]
            if r < 0:
                break
            j += 1
        return cycles * bs + j

    def _finish(self, rid: int, t: float) -> None:
        st = self.st
        st.t_done[rid] = t
        dt = t - st.t_acc
        if dt > 0:
            st.area_sys += st.n_sys * dt
            st.area_q += st.n_q * dt
            st.t_acc = t
        st.n_sys -= 1
        st.done += 1
        if st.on_done is not None:
            st.on_done(rid, t, self.idx)

    def _finish_due(self, t: float) -> None:
        heap = self.fin_heap
        D = self.D
        st = self.st
        dec = self.decode
        while heap and heap[0][0] <= D:
            dfin, rid = heapq.heappop(heap)
            if rid not in dec or st.fin[rid] != dfin:
                continue
            c = st.comp[rid] + D - st.dj[rid]
            self.free += -(-c // self.bs)
            self.bucket[st.phase[rid]] -= 1
            self.dec_ctx -= c + 1
            del dec[rid]
            st.outs[rid] = st.olen[rid]
            self._finish(rid, t)

    def _preempt(self, rid: int, t: float) -> None:
        st = self.st
        if rid in self.prefill:
            del self.prefill[rid]
            self.free += st.held[rid]
        else:
            k = self.D - st.dj[rid]
            c = st.comp[rid] + k
            self.free += -(-c // self.bs)
            self.bucket[st.phase[rid]] -= 1
            self.dec_ctx -= c + 1
            del self.decode[rid]
            st.outs[rid] += k
            st.t_last[rid] = t
        st.held[rid] = 0
        st.comp[rid] = 0
        self.waiting.appendleft(rid)
        st.enqueue(rid, t)
        st.preemptions += 1

    def _pop_victim(self) -> int:
        """vLLM V1 ``self.running.pop()``: the most recently admitted running request."""
        if self.prefill:
            return next(reversed(self.prefill))
        return next(reversed(self.decode))

    def _alloc_decodes_slow(self, t: float) -> bool:
        """Decode allocation when blocks run short: V1's running loop, preempting from the back."""
        st = self.st
        bs = self.bs
        D = self.D
        preempted = False
        for rid in list(self.decode):
            if rid not in self.decode:
                continue
            c = st.comp[rid] + D - st.dj[rid]
            if c % bs:
                continue
            while self.free < 1:
                victim = self._pop_victim()
                self._preempt(victim, t)
                preempted = True
                if victim == rid:
                    break
            if rid not in self.decode:
                break
            self.free -= 1
        return preempted

    # ------------------------------------------------------------------------------------------ schedule
    def _schedule(self, t: float) -> float | None:
        decode, prefill, waiting = self.decode, self.prefill, self.waiting
        if not prefill and not waiting:
            if not decode:
                self.busy = False
                return None
            need = self.bucket[self.D % self.bs]
            if need <= self.free:  # the common case: nothing to admit, blocks to spare
                self.free -= need
                return self._plan_run(t, True)
        return self._schedule_general(t)

    def _plan_run(self, t: float, interruptible: bool, max_k: int = 0) -> float:
        """A run of pure decode steps from ``t`` (this step's blocks already allocated): until the next
        completion, the KV limit, ``max_k`` steps (if > 0), or (if ``interruptible``) an arrival that can join."""
        n_dec = len(self.decode)
        D = self.D
        heap = self.fin_heap
        k_fin = heap[0][0] - D if heap else 1
        # KV: at most one new block per sequence every bs steps; count exactly only when that could run out
        if self.kv_limited and n_dec * (k_fin // self.bs + 1) > self.free:
            k_fin = min(k_fin, 1 + self._steps_affordable(D + 1, self.free))
        k = k_fin if k_fin > 1 else 1
        if max_k and k > max_k:
            k = max_k
        self.busy = True
        self.t0 = t
        self.n_dec = n_dec
        self.version += 1
        self.is_run = True
        self.k = k
        self.interruptible = interruptible and n_dec < self.max_seqs
        ctx = self.dec_ctx
        coeffs = self.decode_coeffs
        if coeffs is not None:  # affine in the context: step = base + per_token x context, one call
            base, per = coeffs(n_dec)
            s0 = base + per * ctx
            d = per * n_dec
        else:
            step = self.cost.step_s
            s0 = step(0, n_dec, ctx)
            d = (step(0, n_dec, ctx + n_dec) - s0) if k > 1 else 0.0
        self.s0 = s0
        self.delta = d
        end: float = t + k * s0 + d * k * (k - 1) / 2.0
        self.t_end = end
        return end

    def _schedule_general(self, t: float) -> float | None:
        st = self.st
        decode, prefill, waiting = self.decode, self.prefill, self.waiting
        bs = self.bs
        need = self.bucket[self.D % bs] if decode else 0
        preempted = False
        if need > self.free:
            preempted = self._alloc_decodes_slow(t)
        else:
            self.free -= need
        n_dec = len(decode)
        budget = self.M - n_dec
        chunks: list[tuple[int, int]] = []
        P = 0
        pairs = 0.0
        prompt, outs, comp, held = st.prompt, st.outs, st.comp, st.held
        if prefill:
            for rid in list(prefill):
                if budget <= 0:
                    break
                if rid not in prefill:
                    continue
                c = comp[rid]
                n = min(prompt[rid] + outs[rid] - c, budget)
                blocks = -(-(c + n) // bs) - held[rid]
                while blocks > self.free:
                    victim = self._pop_victim()
                    self._preempt(victim, t)
                    preempted = True
                    if victim == rid:
                        break
                if rid not in prefill:
                    break
                self.free -= blocks
                held[rid] += blocks
                chunks.append((rid, n))
                P += n
                pairs += n * (c + n / 2.0)
                budget -= n
        if not preempted:
            room = self.max_seqs - len(decode) - len(prefill)
            while waiting and budget > 0 and room > 0:
                room -= 1
                rid = waiting[0]
                n = min(prompt[rid] + outs[rid], budget)
                blocks = -(-n // bs)
                if blocks > self.free:
                    break
                waiting.popleft()
                st.dequeue(rid, t)
                self.free -= blocks
                held[rid] = blocks
                prefill[rid] = None
                chunks.append((rid, n))
                P += n
                pairs += n * n / 2.0
                budget -= n
        n_dec = len(decode)
        if chunks:
            self.busy = True
            self.t0 = t
            self.n_dec = n_dec
            self.version += 1
            self.is_run = False
            self.chunks = chunks
            self.dur = self.cost.step_s(P, n_dec, self.dec_ctx, pairs)
            self.t_end = t + self.dur
            if not preempted and not waiting and self._quiet_step(chunks):
                # nothing ends and nothing waits at this step's end: commit it now and chain the decode run
                # that follows (an arrival during the step cuts the run to 0 steps: it joins at the step's end)
                t_mid = self.t_end
                self._commit_step(t_mid)
                need = self.bucket[self.D % bs] if decode else 0
                if decode and need <= self.free:
                    self.free -= need
                    end = self._plan_run(t_mid, True)
                    self.first_need = need
                    return end
                self.is_run, self.k, self.t0, self.interruptible = True, 0, t_mid, True
                self.first_need = 0
                return t_mid
            return self.t_end
        if n_dec == 0:  # nothing can run: only possible if a request exceeds the whole KV cache (validated)
            raise RuntimeError("simulator: a waiting request cannot be scheduled on an idle replica")
        # a step that preempted admits nothing (V1), so the next one may admit: run one step only. Otherwise a
        # waiting head that could not be admitted stays blocked until a completion (blocks only shrink)
        return self._plan_run(t, not waiting, 1 if preempted else 0)

    def _quiet_step(self, chunks: list[tuple[int, int]]) -> bool:
        """True when no request finishes at the end of a step with these prompt chunks: every chunk completes
        its prompt into a decoding sequence with tokens left, and no decoding sequence reaches its last token."""
        st = self.st
        prompt, outs, comp, olen = st.prompt, st.outs, st.comp, st.olen
        for rid, n in chunks:
            if comp[rid] + n != prompt[rid] + outs[rid] or outs[rid] + 1 >= olen[rid]:
                return False
        heap = self.fin_heap
        return not heap or heap[0][0] > self.D + 1

    # ------------------------------------------------------------------------------------------ commit
    def _commit_run(self, t: float) -> None:
        st = self.st
        k = self.k
        if k <= 0:
            return
        n = self.n_dec
        if self.kv_limited and k > 1:
            self.free -= self._blocks_for(self.D + 1, k - 1)
        D = self.D + k
        self.D = D
        self.dec_ctx += n * k
        dt = t - self.t0
        v = dt / k
        if v > 0.0:  # LogHistogram.add, inlined (the hot path)
            h = st.itl
            b = int(_log(v) * _BINS)
            h.bins[b] = h.bins.get(b, 0.0) + n * k
            h.total += n * k
            h.weighted_sum += dt * n
            if v > h.max:
                h.max = v
        st.busy += dt
        st.batch_area += n * dt
        if self.fin_heap and self.fin_heap[0][0] <= D:
            self._finish_due(t)

    def _commit_step(self, t: float) -> None:
        st = self.st
        n_dec = self.n_dec
        dt = t - self.t0
        self.D += 1
        self.dec_ctx += n_dec
        st.busy += dt
        st.batch_area += n_dec * dt
        if n_dec:
            st.itl.add(dt, n_dec)
        prompt, outs, comp, olen = st.prompt, st.outs, st.comp, st.olen
        bs = self.bs
        D = self.D
        for rid, n in self.chunks:
            st.prefill_tokens += n
            c = comp[rid] + n
            comp[rid] = c
            if c < prompt[rid] + outs[rid]:
                continue
            o = outs[rid] + 1
            outs[rid] = o
            if st.t_first[rid] < 0:
                st.t_first[rid] = t
            else:
                st.itl.add(t - st.t_last[rid], 1)
            del self.prefill[rid]
            if o >= olen[rid]:
                self.free += st.held[rid]
                st.held[rid] = 0
                self._finish(rid, t)
                continue
            st.held[rid] = 0  # from now on the blocks follow from comp (ceil(comp / bs))
            st.dj[rid] = D
            ph = (D - c) % bs
            st.phase[rid] = ph
            self.bucket[ph] += 1
            f = D + olen[rid] - o
            st.fin[rid] = f
            heapq.heappush(self.fin_heap, (f, rid))
            self.decode[rid] = None
            self.dec_ctx += c + 1
        if self.fin_heap and self.fin_heap[0][0] <= D:
            self._finish_due(t)


# ----------------------------------------------------------------------------------- dynamic batcher


class _BatchReplica:
    """One Triton dynamic batcher or Ray Serve ``@serve.batch`` replica."""

    def __init__(self, idx: int, cfg: DynamicBatching, cost: BatchCost, st: _State) -> None:
        self.idx = idx
        self.cfg = cfg
        self.cost = cost
        self.st = st
        self.ray = cfg.runtime == "ray"
        self.max_b = cfg.max_batch_size
        self.delay = cfg.max_queue_delay_s
        self.preferred = tuple(sorted(set(cfg.preferred_batch_sizes), reverse=True))
        self.free_inst = cfg.instances
        self.queue: deque[int] = deque()
        self.running: list[tuple[float, int, list[int]]] = []
        self.seq = 0
        self.deadline = INF
        # Ray: the collector and the batches it formed that wait for the executor
        self.collecting = False
        self.coll_start = 0.0
        self.pending: deque[list[int]] = deque()
        self.ready_since = 0.0
        self.n_out = 0
        self.version = 0
        self.cache: dict[int, float] = {}

    def outstanding(self) -> int:
        return self.n_out

    def _batch_s(self, n: int) -> float:
        v = self.cache.get(n)
        if v is None:
            v = self.cache[n] = self.cost.batch_s(n)
        return v

    def _next(self) -> float | None:
        t = self.running[0][0] if self.running else INF
        if self.ray:
            if self.collecting:
                t = min(t, self.coll_start + self.delay)
        elif self.deadline < t:
            t = self.deadline
        self.version += 1
        return None if t == INF else t

    def _launch(self, batch: list[int], t: float) -> None:
        st = self.st
        for rid in batch:
            st.dequeue(rid, t)
        n = len(batch)
        dur = self._batch_s(n)
        if st.batch_log is not None:  # (start, size, oldest arrival, when an instance / the collector freed)
            st.batch_log.append((t, n, st.arr[batch[0]], self.ready_since))
        self.seq += 1
        heapq.heappush(self.running, (t + dur, self.seq, batch))
        self.free_inst -= 1
        st.busy += dur
        st.batches += 1
        st.batch_items += n

    # Triton: decide at ``t`` with a free instance
    def _dispatch_triton(self, t: float) -> None:
        q = self.queue
        self.deadline = INF
        while self.free_inst > 0 and q:
            n = len(q)
            take = 0
            if n >= self.max_b:
                take = self.max_b
            else:
                for p in self.preferred:
                    if p <= n:
                        take = p
                        break
                if not take:
                    oldest = self.st.arr[q[0]]
                    if self.delay <= 0.0 or t >= oldest + self.delay - 1e-12:
                        take = n
                    else:
                        self.deadline = oldest + self.delay
                        break
            self._launch([q.popleft() for _ in range(take)], t)

    # Ray Serve: the collector closes batches independently of the executor
    def _collect_ray(self, t: float) -> None:
        q = self.queue
        while True:
            if not self.collecting:
                if not q:
                    break
                self.collecting = True
                self.coll_start = t
            if len(q) >= self.max_b or t >= self.coll_start + self.delay - 1e-12:
                take = min(len(q), self.max_b)
                if self.st.batch_log is not None:
                    self.st.close_log.append((t, take, self.coll_start))
                self.pending.append([q.popleft() for _ in range(take)])
                self.collecting = False
                continue
            break
        while self.free_inst > 0 and self.pending:
            self._launch(self.pending.popleft(), t)

    def arrive(self, rid: int, t: float) -> float | None:
        self.queue.append(rid)
        self.n_out += 1
        self.st.enqueue(rid, t)
        if self.ray:
            self._collect_ray(t)
        elif self.free_inst > 0:
            self._dispatch_triton(t)
        return self._next()

    def event(self, t: float) -> float | None:
        st = self.st
        while self.running and self.running[0][0] <= t:
            _, _, batch = heapq.heappop(self.running)
            self.free_inst += 1
            self.ready_since = t
            for rid in batch:
                st.t_first[rid] = t
                st.t_done[rid] = t
                st.account(t)
                st.n_sys -= 1
                st.done += 1
                self.n_out -= 1
                if st.on_done is not None:
                    st.on_done(rid, t, self.idx)
        if self.ray:
            self._collect_ray(t)
        else:
            self._dispatch_triton(t)
        return self._next()


# ------------------------------------------------------------------------------------------------ run


def simulate(workload: Workload, engine: ContinuousBatching | DynamicBatching, cost: StepCost | BatchCost,
             cluster: Cluster | None = None, *, warmup: int = 0, trace: bool = False) -> SimResult:
    """Simulate ``workload`` on ``cluster.replicas`` replicas of ``engine`` timed by ``cost``.

    ``warmup`` first requests (by arrival) are served but left out of the latency distributions. ``trace`` adds
    per-request times and the batch log to ``result.extra``. Pure and deterministic: the same arguments give the
    same result.
    """
    cl = cluster or Cluster()
    llm = isinstance(engine, ContinuousBatching)
    n = workload.requests
    if isinstance(engine, ContinuousBatching):
        prompt, olen = workload.lengths()
        blocks = engine.kv_blocks
        if blocks is not None:
            worst = max(-(-(p + o - 1) // engine.block_size) for p, o in zip(prompt, olen, strict=True))
            if worst > blocks:
                raise InputError(f"a request of {max(prompt)} + {max(olen)} tokens needs {worst} KV blocks, more "
                                 f"than the replica's {blocks}", fix="shorten the requests or give the replica "
                                 "more KV-cache memory (more GPUs per replica, a smaller dtype)")
            if worst * min(engine.max_num_seqs, n) <= blocks:
                # even max_num_seqs of the longest requests fit: the KV cache can never bind, so its block
                # accounting (exact, but costly) changes nothing and is skipped
                engine = ContinuousBatching(max_num_seqs=engine.max_num_seqs,
                                            max_num_batched_tokens=engine.max_num_batched_tokens,
                                            kv_capacity_tokens=None, block_size=engine.block_size)
    else:
        prompt, olen = [1] * n, [1] * n
    st = _State(n, prompt, olen)
    if trace:
        st.batch_log = []
    replicas: list[Any] = []
    for i in range(cl.replicas):
        if llm:
            assert isinstance(engine, ContinuousBatching)
            replicas.append(_LlmReplica(i, engine, cost, st))  # type: ignore[arg-type]
        else:
            assert isinstance(engine, DynamicBatching)
            replicas.append(_BatchReplica(i, engine, cost, st))  # type: ignore[arg-type]
    R = cl.replicas
    cap = cl.max_ongoing_requests
    outstanding = [0] * R
    held: deque[int] = deque()
    rng = random.Random(workload.seed * 7919 + 3)
    rnd = rng.random
    rr = [0]
    heap: list[tuple[float, int, int, int]] = []
    seq = [0]

    def push(r: int, te: float | None) -> None:
        if te is not None:
            seq[0] += 1
            heapq.heappush(heap, (te, seq[0], r, replicas[r].version))

    def accepts(r: int) -> bool:
        return cap is None or outstanding[r] < cap

    def least(cands: range | list[int]) -> int:
        best, best_n = -1, 1 << 62
        for r in cands:
            o = outstanding[r]
            if o < best_n and accepts(r):
                best, best_n = r, o
        return best

    policy = cl.router

    def route() -> int:
        if R == 1:
            return 0 if accepts(0) else -1
        if policy == "round_robin":
            for _ in range(R):
                r = rr[0]
                rr[0] = (r + 1) % R
                if accepts(r):
                    return r
            return -1
        if policy == "random":
            r = int(rnd() * R)
            return r if accepts(r) else least(range(R))
        if policy == "power_of_two":
            a = int(rnd() * R)
            b = int(rnd() * (R - 1))
            b += b >= a  # two distinct replicas, uniformly
            r = least([a, b])
            return r if r >= 0 else least(range(R))
        return least(range(R))

    def dispatch(rid: int, r: int, t: float) -> None:
        outstanding[r] += 1
        st.rep[rid] = r
        push(r, replicas[r].arrive(rid, t))

    # arrivals (at the replicas: after the front stage, if there is one)
    closed = not workload.open_loop
    front = _Front(cl.front, n) if cl.front is not None else None
    times: list[float] = [] if closed else workload.arrival_times()
    if front is not None and not closed:
        times = front.pass_all(times)
    arr_heap: list[tuple[float, int]] = []
    issued = [0]
    if closed:
        for _ in range(min(workload.concurrency or 1, n)):
            t0 = 0.0 if front is None else front.pass_one(issued[0], 0.0)
            heapq.heappush(arr_heap, (t0, issued[0]))
            issued[0] += 1
    think = workload.think_time_s

    def on_done(rid: int, t: float, r: int) -> None:
        outstanding[r] -= 1
        if held:
            h = held.popleft()
            dispatch_held.append((h, r))
        if closed and issued[0] < n:
            # issue times never decrease (events run in time order, think time is fixed), so the front stage
            # can serve each request as it is issued
            ti = t + think if front is None else front.pass_one(issued[0], t + think)
            heapq.heappush(arr_heap, (ti, issued[0]))
            issued[0] += 1

    dispatch_held: list[tuple[int, int]] = []
    st.on_done = on_done
    single = R == 1 and cap is None
    if single and not closed:
        _run_single(replicas[0], st, times, n, outstanding)
        if front is not None:
            front.restore(st)
        return _finish_result(workload, st, cl, llm, warmup, trace, prompt, olen)
    i_arr = 0
    heappush, heappop = heapq.heappush, heapq.heappop
    n_seq = seq[0]
    while True:
        ta = (arr_heap[0][0] if arr_heap else INF) if closed else (times[i_arr] if i_arr < n else INF)
        if heap and heap[0][0] <= ta:
            te, _, r, ver = heappop(heap)
            rep = replicas[r]
            if ver != rep.version:
                continue
            nt = rep.event(te)
            if nt is not None:
                n_seq += 1
                heappush(heap, (nt, n_seq, r, rep.version))
            if dispatch_held:
                seq[0] = n_seq
                for h, r2 in dispatch_held:
                    st.dequeue(h, te)
                    dispatch(h, r2, te)
                dispatch_held.clear()
                n_seq = seq[0]
            continue
        if ta == INF:
            break
        if closed:
            _, rid = heappop(arr_heap)
        else:
            rid = i_arr
            i_arr += 1
        st.arr[rid] = ta
        st.account(ta)
        st.n_sys += 1
        r = 0 if single else route()
        if r < 0:
            held.append(rid)
            st.enqueue(rid, ta)
            continue
        outstanding[r] += 1
        st.rep[rid] = r
        rep = replicas[r]
        nt = rep.arrive(rid, ta)
        if nt is not None:
            n_seq += 1
            heappush(heap, (nt, n_seq, r, rep.version))
    if front is not None:
        front.restore(st)
    return _finish_result(workload, st, cl, llm, warmup, trace, prompt, olen)


class _Front:
    """The cluster's :class:`~planner.simulator.engines.FrontStage`. Requests reach the replicas when they leave it,
    in the order they arrived: processor sharing for open-loop arrivals (:meth:`pass_all`), first come first served
    for a closed loop's (:meth:`pass_one`). :meth:`restore` then gives each request its arrival at the front, so
    that its latency, queue wait and the time integrals (Little's law) count the stage."""

    def __init__(self, stage: FrontStage, n: int) -> None:
        self.s = stage.service_s
        self.arrive = [0.0] * n
        self.leave = [0.0] * n
        self.servers = stage.servers
        self.free = [0.0] * stage.servers

    def pass_one(self, rid: int, t: float) -> float:
        """Request ``rid`` arrives at the front at ``t`` (never before the previous one): when it leaves, served in
        arrival order (leave = max(t, previous leave) + service)."""
        self.arrive[rid] = t
        free = self.free
        k = min(range(self.servers), key=free.__getitem__) if self.servers > 1 else 0
        free[k] = out = (t if t > free[k] else free[k]) + self.s
        self.leave[rid] = out
        return out

    def pass_all(self, times: list[float]) -> list[float]:
        """Open-loop arrivals in order: when each leaves the front, which shares itself equally between the
        requests it holds (processor sharing). In virtual time V, which advances at min(1, servers / requests
        held), a request that arrives at V leaves at V + its service; the earliest such V leaves first."""
        n = len(times)
        s, leave, m = self.s, self.leave, float(self.servers)
        self.arrive[:n] = times
        heap: list[tuple[float, int]] = []
        heappush, heappop = heapq.heappush, heapq.heappop
        t = v = 0.0
        for i in range(n + 1):
            a = times[i] if i < n else INF
            while heap:
                k = len(heap) / m
                if k < 1.0:
                    k = 1.0
                vf, j = heap[0]
                dt = (vf - v) * k
                if t + dt > a:
                    v += (a - t) / k
                    break
                t += dt
                v = vf
                heappop(heap)
                leave[j] = t
            if i < n:
                t = a
                heappush(heap, (v + s, i))
        return [leave[i] for i in range(n)]

    def restore(self, st: _State) -> None:
        """Arrival times back to the front's; the time each request spent there added to its queue wait (less its
        service) and to the in-system and queue integrals."""
        arr, q_total, s = st.arr, st.q_total, self.s
        for rid in range(st.n):
            spent = self.leave[rid] - self.arrive[rid]
            wait = max(0.0, spent - s)
            arr[rid] = self.arrive[rid]
            q_total[rid] += wait
            st.area_sys += spent
            st.area_q += wait


def simulate_states(workload: Workload, engine: ContinuousBatching | DynamicBatching,
                    states: Sequence[tuple[StepCost | BatchCost, FrontStage | None]], cluster: Cluster | None = None,
                    *, warmup: int = 0) -> SimResult:
    """:func:`simulate` on a host whose speed moves between ``states`` (each the replica's cost and the front
    stage there, equally likely), lasting long enough each for its queue to settle: one run per state, each
    measuring an equal share of ``workload``'s requests after a warm-up of its own (``warmup``) under a seed of
    its own, pooled (:meth:`SimResult.pooled`). One state is a plain :func:`simulate`."""
    cl = cluster or Cluster()
    if len(states) == 1:
        cost, front = states[0]
        return simulate(workload, engine, cost, replace(cl, front=front), warmup=warmup)
    each = max(1, (workload.requests - warmup) // len(states))
    return SimResult.pooled([simulate(replace(workload, requests=each + warmup, seed=workload.seed + i), engine, cost,
                                      replace(cl, front=front), warmup=warmup)
                             for i, (cost, front) in enumerate(states)])


def _run_single(rep: Any, st: _State, times: list[float], n: int, outstanding: list[int]) -> None:
    """The event loop of one replica fed by open-loop arrivals (how the planner simulates every replica): the
    replica has at most one pending event, the time its last ``arrive`` or ``event`` returned with the replica's
    version then (a later version makes it stale, as in the general loop's queue), so no event queue is needed.
    An event at the same time as an arrival goes first, as in the general loop."""
    t_ev, ver = INF, -1
    i = 0
    event, arrive = rep.event, rep.arrive
    arr, reps = st.arr, st.rep
    while True:
        ta = times[i] if i < n else INF
        if t_ev <= ta:
            if t_ev == INF:
                break
            if ver != rep.version:  # cut short or replaced since: nothing happens then
                t_ev = INF
                continue
            nt = event(t_ev)
            t_ev, ver = (INF, -1) if nt is None else (nt, rep.version)
            continue
        arr[i] = ta
        st.account(ta)
        st.n_sys += 1
        outstanding[0] += 1
        reps[i] = 0
        nt = arrive(i, ta)
        i += 1
        if nt is not None:
            t_ev, ver = nt, rep.version


def _finish_result(w: Workload, st: _State, cl: Cluster, llm: bool, warmup: int, trace: bool, prompt: list[int],
                   olen: list[int]) -> SimResult:
    res = _result(w, st, cl, llm, warmup)
    if trace:
        res.extra["trace"] = {"arrival": list(st.arr), "first": list(st.t_first), "done": list(st.t_done),
                              "replica": list(st.rep), "queue_wait": list(st.q_total), "prompt": list(prompt),
                              "output": list(olen)}
        res.extra["batches"] = list(st.batch_log or [])
        res.extra["collector"] = list(st.close_log)
    return res


def _result(w: Workload, st: _State, cl: Cluster, llm: bool, warmup: int) -> SimResult:
    n = st.n
    first = min(st.arr) if n else 0.0
    end = max(st.t_done) if n else 0.0
    st.account(end)
    horizon = end - first if end > first else 0.0
    net = cl.network_s
    lo = min(max(0, warmup), n - 1) if n else 0
    idx = range(lo, n)  # request ids are issued in arrival order (open and closed loop)
    arr, done, first_t = st.arr[lo:], st.t_done[lo:], st.t_first[lo:]
    e2e = [d - a + net for d, a in zip(done, arr, strict=True)]
    ttft = [f - a + net for f, a in zip(first_t, arr, strict=True)]
    qw = st.q_total[lo:]
    tpot = [(d - f) / (o - 1) for d, f, o in zip(done, first_t, st.olen[lo:], strict=True) if o > 1] if llm else []
    total_w = math.fsum(st.t_done[i] - st.arr[i] for i in range(n))
    out_tokens = sum(st.olen) if llm else 0
    mean_batch = (st.batch_area / st.busy if st.busy > 0 else 0.0) if llm else \
        (st.batch_items / st.batches if st.batches else 0.0)
    return SimResult(
        requests=n, completed=st.done, measured=len(idx), duration_s=horizon,
        arrival_rate_rps=(n - 1) / (max(st.arr) - first) if n > 1 and max(st.arr) > first else 0.0,
        throughput_rps=n / horizon if horizon > 0 else 0.0,
        output_tokens_per_s=out_tokens / horizon if horizon > 0 else 0.0,
        ttft=Dist.of(ttft) if llm else Dist.of(e2e), tpot=Dist.of(tpot),
        itl=st.itl.dist() if llm else Dist.of([]), e2e=Dist.of(e2e), queue_wait=Dist.of(qw),
        mean_queue_length=st.area_q / horizon if horizon > 0 else 0.0, max_queue_length=st.max_q,
        mean_in_system=st.area_sys / horizon if horizon > 0 else 0.0,
        mean_latency_s=total_w / n if n else 0.0, preemptions=st.preemptions, mean_batch=mean_batch,
        batches=st.batches, utilization=st.busy / (horizon * cl.replicas) if horizon > 0 else 0.0,
        replicas=cl.replicas, llm=llm,
        extra={"area_in_system": st.area_sys, "area_queue": st.area_q,
               "total_queue_wait_s": math.fsum(st.q_total), "prefill_tokens": st.prefill_tokens,
               "decode_area": st.batch_area if llm else 0.0},
    )
