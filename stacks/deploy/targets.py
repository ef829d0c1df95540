"""The verbs behind ``mlplan deploy / status / destroy``: pick the target, hold the folder's lock, dispatch.

The default target comes from the plan (``PlanFolder.default_target``): local for a plan on this machine,
kubernetes for on-prem / edge, pulumi for cloud. ``status`` and ``destroy`` act on every target the state
file records as possibly running, newest last (destroy runs newest first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import DeployError, InputError
from stacks.deploy.state import DeployState
from stacks.folder import TARGETS, PlanFolder, load_folder


@dataclass
class Options:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    timeout_s: float = 600.0
    wait: bool = True
    force_conflicts: bool = True
    backend: str | None = None
    stack: str | None = None
    port: int = 0
    smoke_requests: int = 200
    concurrency: int = 4
    console: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _make(name: str, folder: PlanFolder, state: DeployState, opts: Options, say: Callable[[str], None]) -> Any:
    if name == "local":
        from stacks.deploy.local import LocalTarget

        return LocalTarget(folder, state, port=opts.port, smoke_requests=opts.smoke_requests,
                           concurrency=opts.concurrency, say=say)
    if name == "kubernetes":
        from stacks.deploy.kube import KubernetesTarget

        return KubernetesTarget(folder, state, kubeconfig=opts.kubeconfig, context=opts.context,
                                namespace=opts.namespace, say=say, console=opts.console)
    if name == "pulumi":
        from stacks.deploy.pulumi_target import PulumiTarget

        return PulumiTarget(folder, state, backend=opts.backend, stack=opts.stack, say=say)
    raise InputError(f"unknown deploy target {name!r}", fix=f"use one of {', '.join(TARGETS)}")


def _close(target: Any) -> None:
    close = getattr(target, "close", None)
    if close is not None:
        close()


def deploy(path: str | Path, target: str | None = None, *, dry_run: bool = False, opts: Options | None = None,
           say: Callable[[str], None] = print) -> dict[str, Any]:
    opts = opts or Options()
    folder = load_folder(path)
    name = target or folder.default_target()
    if name not in TARGETS:
        raise InputError(f"unknown deploy target {name!r}", fix=f"use one of {', '.join(TARGETS)}")
    state = DeployState(folder.state_dir, folder.plan.id)
    say(f"plan {folder.plan.id}: target {name}" + (" (dry run: nothing changes)" if dry_run else ""))
    if dry_run and name == "local":
        return local_dry_run(folder, say)
    with state.locked():
        t = _make(name, folder, state, opts, say)
        try:
            if name == "kubernetes":
                result: dict[str, Any] = t.deploy(dry_run=dry_run, wait=opts.wait, timeout_s=opts.timeout_s,
                                                  force_conflicts=opts.force_conflicts)
            elif name == "pulumi":
                result = t.deploy(preview_only=dry_run)
            else:
                result = t.deploy()
        finally:
            _close(t)
    result["target"] = name
    return result


def local_dry_run(folder: PlanFolder, say: Callable[[str], None]) -> dict[str, Any]:
    """Validate what ``--target local`` would start, start nothing."""
    runtime = folder.plan.serving.runtime
    if runtime == "ray":
        import yaml

        from serving.ray_config import validate_serve_config

        path = folder.require(folder.serve_config, "the Ray Serve config")
        validate_serve_config(yaml.safe_load(path.read_text(encoding="utf-8")))
        say(f"would start a private Ray head on 127.0.0.1 and `serve run` {path.relative_to(folder.root)} "
            "(config valid)")
    elif runtime == "triton":
        repo = folder.require(folder.triton_repository, "the Triton model repository")
        from serving.triton import parse_model_config

        models = []
        for cfg in sorted(repo.glob("*/config.pbtxt")):
            parse_model_config(cfg.read_text(encoding="utf-8"))
            models.append(cfg.parent.name)
        if not models:
            raise DeployError(f"{repo} holds no model", fix="run `mlplan plan SPEC --out DIR` again")
        say(f"would start tritonserver on 127.0.0.1 with {', '.join(models)} (config valid)")
    else:
        raise InputError(f"runtime {runtime!r} is not served locally", fix="use --target kubernetes or pulumi")
    return {"dry_run": True, "runtime": runtime}


def status(path: str | Path, *, opts: Options | None = None,
           say: Callable[[str], None] = print) -> tuple[bool, list[str]]:
    """(healthy, report lines) over every target the state records; no state -> not deployed."""
    opts = opts or Options()
    folder = load_folder(path)
    state = DeployState(folder.state_dir, folder.plan.id)
    active = state.active_targets()
    if not active:
        return False, [f"nothing from {folder.root} is deployed"]
    healthy = True
    lines: list[str] = []
    for name in active:
        rec = state.targets[name]
        t = _make(name, folder, state, opts, say)
        try:
            ok, detail = t.status()
        finally:
            _close(t)
        healthy = healthy and ok
        failed = [s for s in rec.get("steps", []) if s.get("status") == "failed"]
        head = f"{name}: {'healthy' if ok else 'NOT healthy'} (state {rec.get('status')}"
        head += f", failed step {failed[-1]['name']!r}: {failed[-1].get('error')})" if failed else ")"
        lines.append(head)
        lines.extend(f"  {d}" for d in detail)
    return healthy, lines


def destroy(path: str | Path, target: str | None = None, *, opts: Options | None = None,
            say: Callable[[str], None] = print) -> int:
    """Remove what the state records (newest target first); 0 things when nothing is deployed."""
    opts = opts or Options()
    folder = load_folder(path)
    state = DeployState(folder.state_dir, folder.plan.id)
    with state.locked():
        names = [n for n in reversed(state.active_targets()) if target is None or n == target]
        if not names:
            say(f"nothing to destroy in {folder.root}")
            return 0
        removed = 0
        for name in names:
            t = _make(name, folder, state, opts, say)
            try:
                removed += t.destroy()
            finally:
                _close(t)
            say(f"{name}: destroyed")
        return removed
