"""Pulumi target: run ``DIR/infra`` through Pulumi's Automation API (``pulumi.automation``).

- ``LocalWorkspace`` on ``DIR/infra`` with ``create_or_select_stack`` (the stack named by the one
  ``Pulumi.<stack>.yaml`` there, or ``--stack``);
- backend: a local file backend ``file://DIR/.mlplan/pulumi`` by default, passed as ``PULUMI_BACKEND_URL`` to
  the workspace, so nothing logs in to a Pulumi service unless ``--backend`` asks for one
  (https://www.pulumi.com/docs/iac/concepts/state-and-backends/);
- secrets: a self-managed backend (file://, s3://, gs://, azblob://) encrypts stack secrets with a passphrase
  read from ``PULUMI_CONFIG_PASSPHRASE`` or ``PULUMI_CONFIG_PASSPHRASE_FILE``; mlplan never invents one, because
  every later ``up`` / ``destroy`` needs the same value: without it the deploy stops with one line saying so;
- ``preview`` then ``up``, streaming the engine's output (``on_output``) and counting resource steps from its
  events (``on_event``); ``destroy`` tears the stack down.

The Automation API drives the ``pulumi`` CLI; where it is not installed the SDK raises a bare
``FileNotFoundError: 'pulumi'``, which becomes :class:`~planner.errors.MissingDependency` with how to install it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planner.errors import DeployError, EnvironmentProblem, MissingDependency
from stacks.deploy.state import DeployState
from stacks.deploy.target import Applied, Health
from stacks.folder import PlanFolder, Target

TARGET = "pulumi"
INSTALL_FIX = ("install the Pulumi CLI: curl -fsSL https://get.pulumi.com | sh "
               "(or see https://www.pulumi.com/docs/iac/download-install/), then rerun")
SELF_MANAGED = ("file://", "s3://", "gs://", "azblob://")
ENDPOINT_OUTPUTS = ("endpoint", "url", "endpoint_url", "service_url")


def missing_cli() -> MissingDependency:
    return MissingDependency("the pulumi CLI is not installed (the Automation API runs `pulumi`)", fix=INSTALL_FIX)


def backend_url(folder: PlanFolder, backend: str | None) -> str:
    """``--backend``, else ``$PULUMI_BACKEND_URL``, else the plan folder's own file backend."""
    if backend:
        return backend
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    return (folder.state_dir / "pulumi").resolve().as_uri()


def workspace_env(folder: PlanFolder, backend: str | None) -> dict[str, str]:
    """Environment of the Pulumi workspace; raises EnvironmentProblem when a passphrase is needed and unset."""
    url = backend_url(folder, backend)
    # the generated program runs with mlplan's own Python (infra/ names no virtualenv and installs nothing)
    env = {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_PYTHON_CMD": sys.executable}
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    if url.startswith(SELF_MANAGED) and not (
            "PULUMI_CONFIG_PASSPHRASE" in os.environ or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise EnvironmentProblem(
            f"PULUMI_CONFIG_PASSPHRASE is not set: the self-managed Pulumi backend {url} encrypts this stack's "
            "secrets with a passphrase, and every later up/destroy needs the same one",
            fix="export PULUMI_CONFIG_PASSPHRASE=<secret> (keep it in your CI secret store) or "
                "PULUMI_CONFIG_PASSPHRASE_FILE=<path>; an empty value is accepted but leaves secrets unprotected")
    return env


def stack_name(folder: PlanFolder, stack: str | None) -> str:
    if stack:
        return stack
    infra = folder.require(folder.infra_dir / "Pulumi.yaml", "the Pulumi project (infra/Pulumi.yaml)").parent
    names = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in infra.glob("Pulumi.*.yaml"))
    if len(names) == 1:
        return names[0]
    if not names:
        return "dev"
    raise DeployError(f"{infra} has several stack files ({', '.join(names)})", fix="choose one with --stack")


class PulumiTarget:
    name: Target = "pulumi"

    def __init__(self, folder: PlanFolder, state: DeployState, *, backend: str | None = None,
                 stack: str | None = None, say: Callable[[str], None] = print) -> None:
        self.folder = folder
        self.state = state
        recorded = state.target(TARGET) or {}
        # status / destroy act on the stack that deploy used, unless told otherwise
        self.backend = backend or recorded.get("backend")
        self.stack_arg = stack or recorded.get("stack")
        self.say = say
        self.ops: Counter[str] = Counter()

    def _stack(self) -> Any:
        if shutil.which("pulumi") is None:
            raise missing_cli()
        name = stack_name(self.folder, self.stack_arg)
        env = workspace_env(self.folder, self.backend)
        from pulumi import automation as auto

        opts = auto.LocalWorkspaceOptions(work_dir=str(self.folder.infra_dir), env_vars=env)
        return self._run("select the stack", lambda: auto.create_or_select_stack(
            stack_name=name, work_dir=str(self.folder.infra_dir), opts=opts))

    def _run(self, what: str, fn: Callable[[], Any]) -> Any:
        from pulumi.automation import CommandError

        try:
            return fn()
        except FileNotFoundError as e:
            if "pulumi" in str(e):
                raise missing_cli() from None
            raise
        except CommandError as e:
            detail = _first_error_line(str(getattr(e, "stderr", "") or e))
            raise DeployError(f"pulumi {what} failed: {detail}",
                              fix=f"read the streamed output above; fix the stack in {self.folder.infra_dir} "
                                  "or its config, then rerun mlplan deploy (idempotent)") from None

    def _on_output(self, line: str) -> None:
        self.say(f"  | {line}")

    def _on_event(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and getattr(pre.metadata, "op", None) is not None:
            self.ops[str(getattr(pre.metadata.op, "value", pre.metadata.op))] += 1

    # ------------------------------------------------------------------------------------------ verbs
    def close(self) -> None:
        pass

    def plan(self) -> Applied:
        """``pulumi preview``: what ``up`` would change."""
        return self._deploy(preview_only=True)

    def apply(self) -> Applied:
        """``pulumi preview`` then ``up``."""
        return self._deploy(preview_only=False)

    def _deploy(self, *, preview_only: bool) -> Applied:
        stack = self._stack()
        state = self.state
        if not preview_only:
            state.begin(TARGET, backend=backend_url(self.folder, self.backend), stack=stack.name)
        self.say(f"pulumi stack {stack.name} (backend {backend_url(self.folder, self.backend)})")
        preview: contextlib.AbstractContextManager[dict[str, Any]] = \
            state.step(TARGET, "preview") if not preview_only else contextlib.nullcontext({})
        with preview as step:
            result = self._run("preview", lambda: stack.preview(on_output=self._on_output, on_event=self._on_event))
            changes = {str(getattr(k, "value", k)): int(v) for k, v in (result.change_summary or {}).items()}
            step["changes"] = changes
        self.say("preview: " + (", ".join(f"{v} to {k}" for k, v in sorted(changes.items())) or "no changes"))
        pending = sum(v for k, v in changes.items() if k != "same")
        if preview_only:
            return Applied(target="pulumi", changed=pending, dry_run=True, details={"preview": changes})
        with state.step(TARGET, "up") as step:
            self.ops.clear()
            up = self._run("up", lambda: stack.up(on_output=self._on_output, on_event=self._on_event))
            outputs = {k: (v.value if not v.secret else "[secret]") for k, v in up.outputs.items()}
            step["resource_changes"] = dict(up.summary.resource_changes or {})
            step["outputs"] = sorted(outputs)
        endpoint = next((str(outputs[k]) for k in ENDPOINT_OUTPUTS if k in outputs), None)
        state.update(TARGET, status="deployed", outputs=outputs, endpoint=endpoint,
                     resource_changes=dict(up.summary.resource_changes or {}))
        self.say(f"up: {up.summary.result}; " + ", ".join(
            f"{v} {k}" for k, v in sorted((up.summary.resource_changes or {}).items())))
        done = sum(int(v) for k, v in (up.summary.resource_changes or {}).items() if k != "same")
        return Applied(target="pulumi", changed=done, endpoint=endpoint, ready=True,
                       details={"preview": changes, "outputs": outputs})

    def status(self) -> Health:
        stack = self._stack()
        info = self._run("stack info", lambda: stack.info())
        if info is None:
            return Health(False, (f"stack {stack.name} has never been updated",))
        ok = info.result == "succeeded" and (self.state.target(TARGET) or {}).get("status") == "deployed"
        return Health(ok, (f"stack {stack.name}: last {info.kind} {info.result} at {info.end_time}",))

    def destroy(self) -> int:
        stack = self._stack()
        with self.state.step(TARGET, "destroy") as step:
            result = self._run("destroy", lambda: stack.destroy(on_output=self._on_output))
            step["resource_changes"] = dict(result.summary.resource_changes or {})
        self.state.update(TARGET, status="destroyed", resources=[], endpoint=None)
        return int((result.summary.resource_changes or {}).get("delete", 0))


def _first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith("error:"):
            return ln[len("error:"):].strip()
    return lines[-1] if lines else "unknown error"

