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
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.plan import Plan
    from planner.specs import Spec

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

    def warm(self, kinds: Iterable[str]) -> None:
        """Have the worker load, while it waits, the SDK modules of the stacks of ``kinds`` ("aws", "gcp",
        "azure", "k8s"), in that order, instead of any it was told before; a worker that is gone is left for
        the preview call to report."""
        names = list(dict.fromkeys(kinds))
        if self.used or self.proc.stdin is None or not names:
            return
        try:
            self.proc.stdin.write("warm " + " ".join(names) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

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


_COMMON = ("stacks.folder", "planner.guard", "stacks.clouds", "stacks.k8s", "pulumi_kubernetes.meta.v1.Status")
#: the modules a preview of each kind of part imports: the stack modules it builds with (stacks/program.py
#: dispatches on the part's target; their SDK chains are walked too, :func:`warm_steps`), the folder's verifier and
#: the SDK modules the SDKs import on their own; "triton" is the Triton model config's protobuf (with numpy)
STACK_MODULES = {
    "aws": (*_COMMON, "stacks.aws", "stacks.userdata"),
    "gcp": (*_COMMON, "stacks.gcp"),
    "azure": (*_COMMON, "stacks.azure"),
    "k8s": _COMMON,
    "triton": ("tritonclient.grpc.model_config_pb2", "google.protobuf.descriptor_pb2"),
}


#: the stack kind of each deployment target of :func:`stacks.layout.parts`
TARGET_STACKS = {"aws-eks": "aws", "aws-ec2": "aws", "gcp-gke": "gcp", "azure-aks": "azure", "kubeconfig": "k8s",
                 "edge-fleet": "k8s"}


def plan_stacks(plan: Plan) -> list[str]:
    """The stack kinds the plan's program builds, in the order of its parts."""
    from stacks import layout

    infos = layout.parts(plan)
    kinds = [TARGET_STACKS[i.target] for i in infos if i.target in TARGET_STACKS]
    kinds += ["triton"] if any(i.part.runtime == "triton" for i in infos) else []
    return list(dict.fromkeys(kinds))


def spec_stacks(spec: Spec) -> list[str]:
    """The stack kinds a plan for ``spec`` may need, the likeliest first: the clouds it allows (every one when it
    names none) if it allows cloud or hybrid placements, then a cluster of the user's."""
    c = spec.constraints
    kinds: list[str] = []
    if {"cloud", "hybrid"} & set(c.placements):
        kinds += list(c.providers or ("aws", "gcp", "azure"))
    if {"on-prem", "edge", "hybrid"} & set(c.placements):
        kinds.append("k8s")
    return kinds


def warm_steps(module: str) -> list[tuple[str, ...]]:
    """The Pulumi SDK names ``module`` reaches, each as a chain from the SDK package (``("pulumi_gcp",
    "compute", "Network")``), read from its source: every attribute chain on a name bound by an import of a
    ``pulumi_*`` package. The SDKs load their submodules lazily on first attribute access (most of a preview's
    import time: pulumi_gcp.compute alone about 1.4 s), so walking the chains loads what the program will use."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return []
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    alias: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pulumi_"):
                    alias[a.asname or a.name] = tuple(a.name.split("."))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pulumi_"):
            for a in node.names:
                alias[a.asname or a.name] = (*str(node.module).split("."), a.name)
    chains: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        cur: ast.expr = node  # type: ignore[assignment]
        while isinstance(cur, ast.Attribute):
            names.append(cur.attr)
            cur = cur.value
        if names and isinstance(cur, ast.Name) and cur.id in alias:
            chains.add((*alias[cur.id], *reversed(names)))
    return sorted(chains)


def warm(step: tuple[str, ...]) -> None:
    """Import ``step[0]`` and load the chain of names after it, each an attribute (a lazily loaded SDK submodule
    or a class) or else a submodule to import (:func:`warm_steps`). Loading ahead is only a head start: a module
    that does not import, or a name that is neither, is left for the previewed program to report."""
    import importlib

    try:
        obj: Any = importlib.import_module(step[0])
    except ImportError:
        return
    for i, name in enumerate(step[1:], start=2):
        nxt = getattr(obj, name, None)
        if nxt is None:
            try:
                nxt = importlib.import_module(".".join(step[:i]))
            except ImportError:
                return
        obj = nxt


class _Lines:
    """Lines from a file descriptor, readable without blocking (``select``) while the worker warms up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def next(self, block: bool) -> str | None:
        """The next line without its newline; "" at end of input; None when ``block`` is false and no whole
        line has arrived."""
        import select

        while b"\n" not in self.buf and not self.eof:
            if not block and not select.select([self.fd], [], [], 0)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buf += chunk
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            return line.decode().strip()
        rest, self.buf = self.buf, b""
        return rest.decode().strip()


def wait_for_folder(fd: int) -> str:
    """The worker's loop: warm the SDK modules it is told of (``warm KIND ...`` lines: each replaces the queue, so
    the parent can first name every cloud the spec allows and later the plan's own) one chain at a time, and
    return the first other line, the ``infra/`` folder to preview ("" at end of input: no preview wanted)."""
    lines = _Lines(fd)
    queue: list[tuple[str, ...]] = []
    done: set[tuple[str, ...]] = set()
    while True:
        line = lines.next(block=not queue)
        if line is None:
            step = queue.pop(0)
            if step not in done:
                done.add(step)
                warm(step)
            continue
        words = line.split()
        if not words or words[0] != "warm":
            return line
        queue = [st for kind in words[1:] for mod in STACK_MODULES.get(kind, ())
                 for st in ([(mod,), *warm_steps(mod)] if mod.startswith("stacks.") else [tuple(mod.split("."))])
                 if st not in done]


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

        line = wait_for_folder(sys.stdin.fileno())
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
