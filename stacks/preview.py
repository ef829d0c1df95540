"""Offline preview: run the Pulumi program under Pulumi's own mocks and record every resource it would create.

No CLI, no cloud credentials, no network: ``pulumi.runtime.set_mocks`` replaces the engine, and a
:class:`RecordingMocks` answers each ``new_resource`` with plausible outputs (ARNs, the EKS OIDC issuer, ...)
while recording type, name, provider region and inputs. This is what ``PLAN.md`` lists as "resources the
stack will create", and what the tests assert on.

Pulumi's mock state is process-global, so :func:`preview_folder` runs the generated ``infra/__main__.py`` in a
subprocess of the current Python (``python -m stacks.preview INFRA_DIR``), which prints the records as JSON.

Importing the Pulumi SDK and the program takes most of a preview's time, so ``mlplan plan`` starts that subprocess
first (:class:`PreviewWorker`, ``python -m stacks.preview --wait``): it imports while the parent recommends and
writes the folder (the two run on two cores at once), then previews the folder it is handed on stdin.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # The preview process is short-lived and import-bound (the Pulumi SDKs define thousands of classes): the cyclic
    # garbage collector, run again and again while they import, costs about 15% of its CPU and frees nothing it
    # needs. Off from here on; mlplan's own modules, the first to import planner, come below (imported lazily).
    gc.disable()

#: Stand-in values for secret config during an offline preview (never written anywhere).
MOCK_SECRETS = {"mlplan:kubeconfig": "mock-kubeconfig", "mlplan:edgeKubeconfig": "mock-kubeconfig"}
#: Stand-ins for required config the user sets before ``pulumi up`` (never written anywhere).
MOCK_CONFIG = {"gcp:project": "mock-project"}
ACCOUNT = "123456789012"


def fake_outputs(typ: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """Outputs a real create would return, enough for dependent resources to resolve."""
    from stacks.clouds import fake_outputs as cloud_outputs

    cloud = cloud_outputs(typ, name, inputs)  # GCP / Azure types
    if cloud is not None:
        return cloud
    out = dict(inputs)
    service = typ.split(":")[1].split("/")[0] if typ.count(":") >= 2 else "mock"
    out.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT}:{name}")
    out.setdefault("name", inputs.get("name", name))
    if typ == "aws:s3/bucket:Bucket":
        out["bucket"] = inputs.get("bucket", name)
        out["arn"] = f"arn:aws:s3:::{out['bucket']}"
    elif typ == "aws:iam/role:Role":
        out["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name', name)}"
    elif typ == "aws:eks/cluster:Cluster":
        out["endpoint"] = f"https://{name}.mock.{region}.eks.amazonaws.com"
        out["certificateAuthority"] = {"data": "TU9DSy1DQQ=="}
        out["identities"] = [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/MOCK{name}"}]}]
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        out["latestVersion"] = 1
    elif typ == "aws:kms/key:Key":
        out["keyId"] = f"mock-key-{name}"
    elif typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        out["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{str(inputs.get('url', '')).removeprefix('https://')}"
    elif typ == "aws:ec2/instance:Instance":
        out["privateIp"] = "10.40.0.10"
    elif typ == "kubernetes:helm.sh/v3:Release":
        out["status"] = {"status": "deployed"}
    elif typ == "kubernetes:core/v1:Service":  # read back after apply: the load balancer's address
        out["status"] = {"loadBalancer": {"ingress": [{"hostname": f"{name}.lb.mock"}]}}
    return out


def _recording_mocks() -> Any:
    import pulumi

    class RecordingMocks(pulumi.runtime.Mocks):
        def __init__(self) -> None:
            self.resources: list[dict[str, Any]] = []
            self.provider_region: dict[str, str] = {}

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            rid = f"{args.name}-id"
            region = ""
            if args.typ in ("pulumi:providers:aws", "pulumi:providers:gcp", "pulumi:providers:azure-native"):
                region = str(args.inputs.get("region") or args.inputs.get("location") or "")
                self.provider_region[rid] = region
            elif args.provider:
                region = self.provider_region.get(args.provider.rsplit("::", 1)[-1], "")
            self.resources.append({"type": args.typ, "name": args.name, "region": region,
                                   "custom": bool(args.custom), "inputs": args.inputs,
                                   "read": bool(getattr(args, "resource_id", None))})
            return rid, fake_outputs(args.typ, args.name, dict(args.inputs), region)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            from stacks.clouds import mock_invoke

            cloud = mock_invoke(args.token, dict(args.args))  # GCP / Azure data sources
            if cloud is not None:
                return cloud, []
            if args.token == "aws:ssm/getParameter:getParameter":
                return {"name": args.args.get("name"), "value": "ami-0123456789abcdef0", "type": "String",
                        "arn": "arn:aws:ssm:::parameter/mock", "id": "mock", "version": 1,
                        "insecureValue": "ami-0123456789abcdef0", "withDecryption": True}, []
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/mock", "userId": "mock",
                        "id": ACCOUNT}, []
            return {}, []

    return RecordingMocks()


def run_under_mocks(program: Any, *, config: dict[str, str] | None = None, project: str = "mlplan",
                    stack: str = "preview") -> list[dict[str, Any]]:
    """Run ``program()`` (which declares resources) under fresh mocks; return the recorded resources."""
    from planner.errors import MissingDependency

    try:
        import pulumi
    except ImportError:  # pragma: no cover - pulumi is a core extra of the stack emitter
        raise MissingDependency("the offline preview needs the pulumi SDK",
                                fix="pip install 'mlplan[aws,k8s]'") from None
    given = {k: v for k, v in (config or {}).items() if v not in ("", None)}
    cfg = {**MOCK_SECRETS, **MOCK_CONFIG, **given}
    pulumi.runtime.set_all_config(cfg, secret_keys=sorted(MOCK_SECRETS))
    mocks = _recording_mocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)

    def _run() -> None:
        program()

    runtime: Any = pulumi.runtime  # pulumi.runtime.test is untyped: it awaits every Output the program made
    runtime.test(_run)()
    return list(mocks.resources)


def _stack_config(infra: Path) -> tuple[str, str, dict[str, str]]:
    import yaml

    project = yaml.safe_load((infra / "Pulumi.yaml").read_text())["name"]
    files = sorted(infra.glob("Pulumi.*.yaml"))
    if not files:
        return project, "preview", {}
    stack = files[0].name.removeprefix("Pulumi.").removesuffix(".yaml")
    data = yaml.safe_load(files[0].read_text()) or {}
    config = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (data.get("config") or {}).items()
              if not (isinstance(v, dict) and "secure" in v)}
    return project, stack, config


def preview_in_process(infra: Path) -> list[dict[str, Any]]:
    """Run the stack of the folder being written (``infra/..``) under mocks in this process: what
    ``infra/__main__.py`` does (:func:`stacks.program.run`), on the plan verified against its spec but before
    the folder is sealed with its marker (use from a fresh process)."""
    from stacks.folder import load_folder
    from stacks.program import build

    project, stack, config = _stack_config(infra)
    plan = load_folder(infra.parent, sealed=False).plan
    cwd = Path.cwd()
    os.chdir(infra)  # pulumi runs a program from its project directory
    try:
        return run_under_mocks(lambda: build(plan), config=config, project=project, stack=stack)
    finally:
        os.chdir(cwd)


class PreviewWorker:
    """The preview subprocess, started ahead of the folder it previews.

    ``PreviewWorker()`` starts ``python -m stacks.preview --wait``, which imports the Pulumi SDK and the program
    (:mod:`stacks.program`) and then waits for a line on stdin. Calling the worker with an ``infra/`` folder sends
    it and returns the recorded resources; one call per worker. :meth:`close` (or leaving a ``with`` block) ends a
    worker that was not needed: its stdin closes and it exits, or it is killed.
    """

    def __init__(self, *, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(_repo_root()),
                                                                      os.environ.get("PYTHONPATH", "")] if p)}
        env.pop("PULUMI_CONFIG", None)
        self.used = False
        self.proc = subprocess.Popen([sys.executable, "-m", "stacks.preview", "--wait"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def __call__(self, infra: Path) -> list[dict[str, Any]]:
        """Preview ``infra`` (an ``infra/`` folder of a plan folder being written); the recorded resources."""
        from planner.errors import ArtifactError

        if self.used:
            raise ArtifactError("the offline preview process was already used or closed",
                                fix="start one PreviewWorker per preview (this is a bug in the caller)")
        self.used = True
        try:  # a process that died while importing reads nothing: its exit status and stderr say why

            out, err = self.proc.communicate(f"{infra}\n", timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.close()
            raise ArtifactError(f"offline preview of {infra} did not finish in {self.timeout_s:.0f} s",
                                fix="rerun with MLPLAN_DEBUG=1 to see where it hangs") from None
        if self.proc.returncode != 0:
            tail = (err.strip().splitlines() or ["no output"])[-1]
            raise ArtifactError(f"offline preview of the generated Pulumi program failed: {tail}",
                                fix="this is a bug in mlplan's stacks/; rerun with MLPLAN_DEBUG=1 and report it")
        data: list[dict[str, Any]] = json.loads(out)
        return data

    def close(self) -> None:
        """End the subprocess if it still runs (unused, or interrupted) and reap it; closing twice is harmless."""
        self.used = True
        if self.proc.returncode is not None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def __enter__(self) -> PreviewWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def preview_folder(infra: Path, *, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Run the generated program under mocks in a subprocess; return the recorded resources."""
    with PreviewWorker(timeout_s=timeout_s) as worker:
        return worker(infra)


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """``python -m stacks.preview INFRA_DIR``, or ``--wait``: import first, then read INFRA_DIR from stdin (an
    empty stdin: no preview wanted, exit 0)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stacks.preview INFRA_DIR | --wait", file=sys.stderr)
        return 2
    if args[0] == "--wait":
        import stacks.program  # noqa: F401 - the SDK and the program, imported while the parent works
        from stacks.folder import load_folder  # noqa: F401

        line = sys.stdin.readline().strip()
        if not line:
            return 0
        args = [line]
    resources = preview_in_process(Path(args[0]).resolve())
    json.dump(resources, sys.stdout, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # the records are out: skip the interpreter's teardown of the Pulumi SDKs' many modules (about 1 s of CPU)
    os._exit(status)
