"""The verbs behind ``mlplan deploy / status / destroy``: pick the target, hold the folder's lock, dispatch.

The default target comes from the plan (``PlanFolder.default_target``): local for a plan on this machine,
kubernetes for on-prem / edge, pulumi for cloud. ``status`` and ``destroy`` act on every target the state
file records as possibly running, newest last (destroy runs newest first).

Each target is a :class:`~stacks.deploy.target.DeployTarget` made by a :data:`TargetFactory`; the verbs take the
factory as a parameter (default :func:`make_target`), the seam tests replace. Every step a target records is
also announced with ``say`` as it starts and ends, with its duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import InputError
from stacks.deploy.state import DeployState
from stacks.deploy.target import Applied, DeployTarget, Say
from stacks.folder import TARGETS, PlanFolder, Target, load_folder


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


TargetFactory = Callable[[Target, PlanFolder, DeployState, Options, Say], DeployTarget]


def make_target(name: Target, folder: PlanFolder, state: DeployState, opts: Options, say: Say) -> DeployTarget:
    """The real target of ``name`` (its heavy libraries imported only here)."""
    if name == "local":
        from stacks.deploy.local import LocalTarget

        return LocalTarget(folder, state, port=opts.port, smoke_requests=opts.smoke_requests,
                           concurrency=opts.concurrency, say=say)
    if name == "kubernetes":
        from stacks.deploy.kube import KubernetesTarget

        return KubernetesTarget(folder, state, kubeconfig=opts.kubeconfig, context=opts.context,
                                namespace=opts.namespace, say=say, console=opts.console, wait=opts.wait,
                                timeout_s=opts.timeout_s, force_conflicts=opts.force_conflicts)
    if name == "pulumi":
        from stacks.deploy.pulumi_target import PulumiTarget

        return PulumiTarget(folder, state, backend=opts.backend, stack=opts.stack, say=say)
    raise InputError(f"unknown deploy target {name!r}", fix=f"use one of {', '.join(TARGETS)}")


def _target_name(name: str) -> Target:
    for t in TARGETS:
        if t == name:
            return t
    raise InputError(f"unknown deploy target {name!r}", fix=f"use one of {', '.join(TARGETS)}")


def deploy(path: str | Path, target: str | None = None, *, dry_run: bool = False, opts: Options | None = None,
           say: Say = print, factory: TargetFactory = make_target) -> Applied:
    """Deploy (or, ``dry_run``, plan) a folder on one target, holding the folder's lock."""
    opts = opts or Options()
    folder = load_folder(path)
    name = _target_name(target) if target else folder.default_target()
    state = DeployState(folder.state_dir, folder.plan.id, announce=say)
    say(f"plan {folder.plan.id}: target {name}" + (" (dry run: nothing changes)" if dry_run else ""))
    if dry_run:
        t = factory(name, folder, state, opts, say)
        try:
            return t.plan()
        finally:
            t.close()
    with state.locked():
        t = factory(name, folder, state, opts, say)
        try:
            return t.apply()
        finally:
            t.close()


def status(path: str | Path, *, opts: Options | None = None, say: Say = print,
           factory: TargetFactory = make_target) -> tuple[bool, list[str]]:
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
        t = factory(_target_name(name), folder, state, opts, say)
        try:
            health = t.status()
        finally:
            t.close()
        healthy = healthy and health.healthy
        failed = [s for s in rec.get("steps", []) if s.get("status") == "failed"]
        head = f"{name}: {'healthy' if health.healthy else 'NOT healthy'} (state {rec.get('status')}"
        head += f", failed step {failed[-1]['name']!r}: {failed[-1].get('error')})" if failed else ")"
        lines.append(head)
        lines.extend(f"  {d}" for d in health.lines)
    return healthy, lines


def destroy(path: str | Path, target: str | None = None, *, opts: Options | None = None, say: Say = print,
            factory: TargetFactory = make_target) -> int:
    """Remove what the state records (newest target first); 0 things when nothing is deployed."""
    opts = opts or Options()
    folder = load_folder(path)
    state = DeployState(folder.state_dir, folder.plan.id, announce=say)
    if target is not None:
        _target_name(target)
    with state.locked():
        names = [n for n in reversed(state.active_targets()) if target is None or n == target]
        if not names:
            say(f"nothing to destroy in {folder.root}")
            return 0
        removed = 0
        for name in names:
            t = factory(_target_name(name), folder, state, opts, say)
            try:
                removed += t.destroy()
            finally:
                t.close()
            say(f"{name}: destroyed")
        return removed

