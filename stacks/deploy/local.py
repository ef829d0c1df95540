"""Local target: serve the plan's model on this machine (Ray Serve or Triton, as ``plan.serving.runtime``
says), wait until it answers, and run a short smoke load whose measured latency is shown next to the plan's
predicted latency.

Servers are started by ``serving.launch`` (``start_ray_serve`` / ``start_triton``: detached processes in their
own session, so they outlive ``mlplan deploy``); their records go into ``DIR/.mlplan/state.json`` so ``status``
(``launch.is_healthy``) and ``destroy`` (``launch.stop``: every process of the session, ports closed) work
from any later process. A second deploy of a healthy deployment changes nothing.

Requests the smoke load sends (one example per request, the plan's first input, values in [0, 1)):

- Ray Serve (``serving.runtime.ray_app``): ``POST {endpoint}`` ``{"inputs": [[...]]}`` -> ``{"outputs": ...}``;
- Triton (KServe v2 HTTP protocol): ``POST {endpoint}/v2/models/<model>/infer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import ceil, prod
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError, DeployError, InputError
from planner.plan import Plan
from stacks.deploy.state import DeployState
from stacks.deploy.target import Applied, Health
from stacks.folder import PlanFolder, Target

TARGET = "local"
KSERVE_DTYPES = {"fp32": "FP32", "fp16": "FP16", "int64": "INT64", "int32": "INT32", "int8": "INT8",
                 "uint8": "UINT8", "bool": "BOOL"}


# ------------------------------------------------------------------------------------------ smoke load


@dataclass(frozen=True)
class SmokeResult:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    first_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "p50_ms": round(self.p50_ms, 3),
                "p99_ms": round(self.p99_ms, 3), "mean_ms": round(self.mean_ms, 3),
                "throughput_rps": round(self.throughput_rps, 1), "first_error": self.first_error}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(k, len(sorted_values)) - 1]


def _example(plan: Plan) -> tuple[str, str, list[int], list[Any]]:
    """(input name, dtype, shape without batch, flat values) of one example of the plan's first input."""
    inputs = plan.model.inputs
    if not inputs:
        raise InputError(f"plan {plan.id}: the model declares no inputs, so the smoke load cannot build a request",
                         fix="give model.inputs in the spec, or deploy with --no-smoke")
    spec = inputs[0]
    shape = [d if d > 0 else 1 for d in spec.shape]
    rng = random.Random(0)
    n = prod(shape)
    if spec.dtype in ("fp32", "fp16"):
        values: list[Any] = [rng.random() for _ in range(n)]
    elif spec.dtype == "bool":
        values = [rng.random() < 0.5 for _ in range(n)]
    elif spec.dtype == "string":
        raise InputError(f"plan {plan.id}: string inputs are not smoke-loaded", fix="deploy with --no-smoke")
    else:
        values = [rng.randrange(0, 100) for _ in range(n)]
    return spec.name, spec.dtype, shape, values


def _nest(values: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return values
    step = prod(shape[1:])
    return [_nest(values[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def build_request(plan: Plan, record: dict[str, Any]) -> tuple[str, bytes, Callable[[Any], None]]:
    """(url, JSON body, response check) of one smoke request for the server in ``record``."""
    name, dtype, shape, values = _example(plan)
    outputs = plan.model.outputs or ()
    if record["kind"] == "triton":
        model = str(record.get("model") or "")
        url = f"{str(record['endpoint']).rstrip('/')}/v2/models/{model}/infer"
        body = {"inputs": [{"name": name, "shape": [1, *shape], "datatype": KSERVE_DTYPES[dtype], "data": values}]}

        def check(resp: Any) -> None:
            outs = resp.get("outputs") if isinstance(resp, dict) else None
            if not outs:
                raise ValueError(f"no outputs in {str(resp)[:200]}")
            if outputs and outs[0].get("name") != outputs[0].name:
                raise ValueError(f"output {outs[0].get('name')!r}, the plan says {outputs[0].name!r}")
            if outputs and prod(outs[0].get("shape", [])[1:]) != prod(abs(d) for d in outputs[0].shape):
                raise ValueError(f"output shape {outs[0].get('shape')}, the plan says {list(outputs[0].shape)}")

        return url, json.dumps(body).encode(), check
    url = str(record["endpoint"])
    body = {"inputs": [_nest(values, shape)]}

    def check_ray(resp: Any) -> None:
        outs = resp.get("outputs") if isinstance(resp, dict) else None
        if not isinstance(outs, list) or len(outs) != 1:
            raise ValueError(f"expected one output row, got {str(resp)[:200]}")
        if outputs:
            flat = _flatten(outs[0])
            if len(flat) != prod(abs(d) for d in outputs[0].shape):
                raise ValueError(f"output has {len(flat)} values, the plan says shape {list(outputs[0].shape)}")

    return url, json.dumps(body).encode(), check_ray


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, list):
        return [v for item in x for v in _flatten(item)]
    return [x]


def smoke_load(url: str, body: bytes, check: Callable[[Any], None], *, requests: int = 200,
               concurrency: int = 4, warmup: int = 10, timeout_s: float = 10.0,
               rate_rps: float | None = None) -> SmokeResult:
    """``requests`` POSTs as an open-loop Poisson load at ``rate_rps`` (default: all of them within about 2 s),
    at most ``concurrency`` in flight, after ``warmup`` unmeasured ones (``stacks.deploy.loadtest``); latency
    from each request's scheduled send to its checked response. Stops early once 5% of the requests (at least
    10) failed."""
    from stacks.deploy.loadtest import Target, open_loop

    rate = rate_rps or max(1.0, requests / 2.0)
    r = open_loop(Target(kind="smoke", url=url, body=body, check=check), rate_rps=rate,
                  duration_s=10.0 * requests / rate + 1.0, max_requests=requests, concurrency=concurrency,
                  timeout_s=timeout_s, warmup=warmup)
    lat = r.latency
    return SmokeResult(requests=r.sent, errors=r.errors, p50_ms=lat.p50 * 1e3, p99_ms=lat.p99 * 1e3,
                       mean_ms=lat.mean * 1e3, throughput_rps=r.throughput_rps, first_error=r.first_error)


# ---------------------------------------------------------------------------------------------- target


class _Termination:
    """SIGTERM / SIGINT during a local deploy, handled so that nothing detached is left unrecorded.

    While a server is starting (inside ``serving.launch``, between spawning it and returning its record) the
    signal is only noted: the start finishes (bounded by its timeout), the server is recorded, then the deploy
    stops. Elsewhere (e.g. during the smoke load) it acts at once. SIGTERM ends with a one-line DeployError
    (exit 5), SIGINT as Ctrl-C always does (KeyboardInterrupt, exit 130). Either way the failed step is on
    record and ``mlplan destroy`` removes the server."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None
        self.deferring = False

    def error(self) -> BaseException:
        if self.requested == signal.SIGINT:
            return KeyboardInterrupt()
        return DeployError("mlplan deploy was terminated (SIGTERM)",
                           fix="run `mlplan status DIR` to see what exists, `mlplan destroy DIR` to remove it")

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = signum
        if not self.deferring:
            raise self.error()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {sig: signal.signal(sig, self.handler) for sig in self.SIGNALS}
        try:
            yield
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def check(self) -> None:
        if self.requested is not None:
            raise self.error()


def _triton_model_files(repo: Path, fetched: dict[str, Path]) -> dict[str, Path]:
    """(path in the repository -> fetched file) for each model whose ``model_uri`` parameter was fetched."""
    if not fetched:
        return {}
    from serving.triton import MODEL_FILE, parse_model_config

    out: dict[str, Path] = {}
    for cfg_path in sorted(repo.glob("*/config.pbtxt")):
        cfg = parse_model_config(cfg_path.read_text(encoding="utf-8"))
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        uri = params.get("model_uri", "")
        if uri in fetched:
            out[f"{cfg_path.parent.name}/1/{params.get('model_file') or MODEL_FILE}"] = fetched[uri]
    return out


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlplan"


class LocalTarget:
    name: Target = "local"

    def __init__(self, folder: PlanFolder, state: DeployState, *, port: int = 0, smoke_requests: int = 200,
                 concurrency: int = 4, start_timeout_s: float = 180.0,
                 say: Callable[[str], None] = print) -> None:
        self.folder = folder
        self.state = state
        self.port = port
        self.smoke_requests = smoke_requests
        self.concurrency = concurrency
        self.start_timeout_s = start_timeout_s
        self.say = say

    def _runtime(self) -> str:
        runtime = self.folder.plan.serving.runtime
        if runtime not in ("ray", "triton"):
            raise InputError(f"plan {self.folder.plan.id} uses runtime {runtime!r}; the local target serves "
                             "'ray' and 'triton' plans", fix="deploy it with --target kubernetes or pulumi")
        return runtime

    def digest(self, runtime: str) -> str:
        """Fingerprint of what a local deploy serves: the plan and its serving artifacts."""
        h = hashlib.sha256(json.dumps(self.folder.data.get("plan"), sort_keys=True).encode())
        if runtime == "ray":
            files = [self.folder.serve_config] if self.folder.serve_config.is_file() else []
        else:
            repo = self.folder.triton_repository
            # what the plan wrote, not what a running server adds (the python backend's __pycache__)
            files = sorted(p for p in repo.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                           and p.suffix != ".pyc") if repo.is_dir() else []
        for f in files:
            h.update(str(f.relative_to(self.folder.root)).encode() + b"\0" + f.read_bytes())
        return h.hexdigest()

    def _record_server(self, record: dict[str, Any]) -> None:
        """Record a server the moment its processes exist (before it is ready): a deploy killed during the
        start-up, even by SIGKILL, still leaves a record that ``status`` reports and ``destroy`` stops."""
        self.state.add_resource(TARGET, {"id": record["kind"], **record})

    def _forget_stopped(self) -> None:
        """After a failed start: drop the records of servers launch already stopped (nothing left to destroy)."""
        from serving import launch

        for r in self.servers():
            if not launch.is_running(r):
                self.state.remove_resource(TARGET, r["id"])

    def servers(self) -> list[dict[str, Any]]:
        return [r for r in (self.state.target(TARGET) or {}).get("resources", []) if r.get("kind")]

    def close(self) -> None:
        pass

    def _fetch_model(self) -> dict[str, Path]:
        """Fetch an ``s3://`` model artifact here, with this process's credentials: the servers never get any
        (``serving.launch.child_env``), so they are handed the local file instead. {uri: local file}."""
        uri = self.folder.plan.model.artifact or ""
        if not uri.startswith("s3://"):
            return {}
        from serving.runtime.loader import resolve_model

        with self.state.step(TARGET, "fetch model", uri=uri) as step:
            path = resolve_model(uri)
            step["path"] = str(path)
        return {uri: path}

    def plan(self) -> Applied:
        """Validate what ``apply`` would start (the Serve config or the Triton model configs); start nothing."""
        runtime = self._runtime()
        folder = self.folder
        if runtime == "ray":
            import yaml

            from serving.ray_config import validate_serve_config

            path = folder.require(folder.serve_config, "the Ray Serve config")
            try:
                config = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as e:
                raise ArtifactError(f"{path} is not readable YAML: {str(e).splitlines()[0]}",
                                    fix="run `mlplan plan SPEC --out DIR` again") from None
            validate_serve_config(config)
            self.say(f"would start a private Ray head on 127.0.0.1 (token authentication on) and `serve run` "
                     f"{path.relative_to(folder.root)} (config valid)")
        else:
            repo = folder.require(folder.triton_repository, "the Triton model repository")
            from serving.triton import parse_model_config

            models = []
            for cfg in sorted(repo.glob("*/config.pbtxt")):
                parse_model_config(cfg.read_text(encoding="utf-8"))
                models.append(cfg.parent.name)
            if not models:
                raise DeployError(f"{repo} holds no model", fix="run `mlplan plan SPEC --out DIR` again")
            self.say(f"would start tritonserver on 127.0.0.1 with {', '.join(models)} (config valid)")
        rec = self.state.target(TARGET) or {}
        same = rec.get("status") == "deployed" and rec.get("digest") == self.digest(runtime)
        return Applied(target="local", changed=0 if same else 1, dry_run=True, details={"runtime": runtime})

    def apply(self) -> Applied:
        self.term = _Termination()
        with self.term.installed():
            return self._deploy()

    def _deploy(self) -> Applied:
        from serving import launch

        runtime = self._runtime()
        plan = self.folder.plan
        rec = self.state.target(TARGET) or {}
        running = self.servers()
        digest = self.digest(runtime)
        if rec.get("status") == "deployed" and running and all(launch.is_healthy(r) for r in running):
            endpoint = rec.get("endpoint")
            if rec.get("digest") == digest:
                self.say(f"already deployed and healthy: {endpoint} (nothing changed)")
                return Applied(target="local", changed=0, endpoint=endpoint, ready=True,
                               details={"smoke": rec.get("smoke")})
            self.say("the plan or its serving artifacts changed since the last deploy: restarting")
        self.state.begin(TARGET, runtime=runtime, digest=digest)
        if running:  # left by a failed or half-stopped deploy: stop it before starting afresh
            with self.state.step(TARGET, "stop leftovers", count=len(running)):
                for r in running:
                    launch.stop(r)
                    self.state.remove_resource(TARGET, r["id"])
        workdir = self.folder.state_dir / "local"
        fetched = self._fetch_model()
        if runtime == "ray":
            config = self.folder.require(self.folder.serve_config, "the Ray Serve config")
            with self.state.step(TARGET, "start ray serve", config=str(config.relative_to(self.folder.root))), \
                    self.term.deferred():
                try:
                    record = launch.start_ray_serve(config, http_port=self.port, workdir=workdir,
                                                    timeout_s=self.start_timeout_s, on_start=self._record_server,
                                                    progress=self.say,
                                                    model_uris={u: str(p) for u, p in fetched.items()})
                except BaseException:
                    self._forget_stopped()
                    raise
                self.state.add_resource(TARGET, {"id": record["kind"], **record})
        else:
            repo = self.folder.require(self.folder.triton_repository, "the Triton model repository")
            models = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
            if not models:
                raise ArtifactError(f"{repo} holds no model (no <model>/config.pbtxt)",
                                    fix="run `mlplan plan SPEC --out DIR` again")
            with self.state.step(TARGET, "start tritonserver", models=models), self.term.deferred():
                try:
                    record = launch.start_triton(repo, http_port=self.port, workdir=workdir,
                                                 timeout_s=self.start_timeout_s, cache=_cache_dir(),
                                                 on_start=self._record_server, progress=self.say,
                                                 model_files=_triton_model_files(repo, fetched))
                except BaseException:
                    self._forget_stopped()
                    raise
                record["model"] = models[0]
                self.state.add_resource(TARGET, {"id": record["kind"], **record})
        if self.term.requested is not None:  # a signal noted during the start: the server is on record; stop
            with self.state.step(TARGET, f"stop on {signal.Signals(self.term.requested).name}"):
                self.term.check()
        endpoint = str(record["endpoint"])
        if record["kind"] == "triton":
            endpoint = f"{endpoint.rstrip('/')}/v2/models/{record['model']}/infer"
        self.state.update(TARGET, endpoint=endpoint)
        self.say(f"serving {plan.model.name} with {runtime} at {endpoint}")
        smoke: dict[str, Any] | None = None
        if self.smoke_requests > 0:
            with self.state.step(TARGET, "smoke load", requests=self.smoke_requests) as step:
                url, body, check = build_request(plan, record)
                planned = ((self.folder.data.get("spec") or {}).get("workload") or {}).get("requests_per_s")
                rate = max(float(planned or 0.0), self.smoke_requests / 5.0)  # the planned rate, done in <= 5 s
                result = smoke_load(url, body, check, requests=self.smoke_requests, concurrency=self.concurrency,
                                    rate_rps=rate)
                smoke = result.as_dict()
                step.update(smoke)
                if result.errors:
                    raise DeployError(f"smoke load: {result.errors} of {result.requests} requests failed "
                                      f"(first: {result.first_error})",
                                      fix=f"read the server logs: {', '.join(record.get('logs', []))}")
            pr = plan.predicted  # the plan's percentiles at its planned peak rate (simulated); latency_s is the p50
            p99 = (f"; the plan predicts p99 {pr.latency_p99_s * 1e3:.1f} ms at {pr.planned_rps:g} req/s"
                   if pr.latency_p99_s is not None and pr.planned_rps is not None else "")
            pred = f"{pr.latency_s * 1000:.1f} ms" if pr.latency_s is not None else "n/a"
            self.say(f"smoke load: {result.requests} requests, open loop at {rate:g} req/s: "
                     f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, {result.throughput_rps:.0f} req/s"
                     f"{p99} (predicted latency {pred})")
        self.state.update(TARGET, status="deployed", smoke=smoke)
        return Applied(target="local", changed=1, endpoint=endpoint, ready=True, details={"smoke": smoke})

    def status(self) -> Health:
        from serving import launch

        rec = self.state.target(TARGET) or {}
        servers = self.servers()
        if not servers:
            return Health(False, ("no server is running",))
        lines: list[str] = []
        healthy = rec.get("status") == "deployed"
        for r in servers:
            ok = launch.is_healthy(r)
            alive = launch.is_running(r)
            healthy = healthy and ok
            what = "healthy" if ok else ("running but its health check fails" if alive else "not running")
            lines.append(f"{r['kind']} (pid {r['pid']}) at {rec.get('endpoint') or r.get('endpoint')}: {what}")
        return Health(healthy, tuple(lines))

    def destroy(self) -> int:
        from serving import launch

        stopped = 0
        for r in self.servers():
            with self.state.step(TARGET, f"stop {r['kind']}", pid=r["pid"]) as step:
                done = launch.stop(r)
                step["stopped_pids"] = done.get("stopped", [])
                step["ports_closed"] = done.get("ports_closed", [])
            self.state.remove_resource(TARGET, r["id"])
            stopped += 1
            self.say(f"stopped {r['kind']} (pid {r['pid']}); ports {', '.join(map(str, r.get('ports', [])))} closed")
        self.state.update(TARGET, status="destroyed", endpoint=None)
        return stopped
