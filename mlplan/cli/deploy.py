"""``mlplan deploy DIR``, ``status DIR``, ``destroy DIR`` and ``preflight DIR``: apply an emitted plan folder.

Thin wrappers over ``stacks.deploy`` (imported inside each command, so ``mlplan --help`` imports none of
kubernetes, pulumi, boto3, ray or tritonclient). Deploy reads the plan folder, never the spec.

Progress goes to stderr as it happens (each step when it starts and when it ends, with its duration); what a
command reports (the endpoint, the status lines, preflight's checks) goes to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from planner.errors import CredentialsError, DeployError

TargetOpt = Annotated[str | None, typer.Option(
    "--target", "-t", help="local | kubernetes | pulumi (default: from the plan: local for localhost, "
                           "kubernetes for on-prem/edge, pulumi for cloud)")]
DirArg = Annotated[Path, typer.Argument(help="plan folder written by `mlplan plan SPEC --out DIR`")]


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_cmd)
    app.command("status")(status_cmd)
    app.command("destroy")(destroy_cmd)
    app.command("preflight")(preflight_cmd)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def progress(line: str) -> None:
    """One progress line on stderr, flushed at once (the user sees each step as it happens)."""
    typer.echo(line, err=True)


def deploy_cmd(
    folder: DirArg,
    target: TargetOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "--preview",
        help="change nothing: kubernetes asks the API server for a server-side dry run (dryRun=All), pulumi "
             "runs `preview`, local validates the serving artifacts")] = False,
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig file (default: $KUBECONFIG, "
                                                        "~/.kube/config, or in-cluster)")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    namespace: Annotated[str, typer.Option(help="namespace for manifests that name none")] = "default",
    timeout: Annotated[float, typer.Option(min=1, help="seconds to wait for the rollout")] = 600.0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the rollout to be ready")] = True,
    force_conflicts: Annotated[bool, typer.Option(
        "--force-conflicts/--no-force-conflicts",
        help="on this deployment's own objects, take back fields another field manager changed (server-side apply "
             "force); objects mlplan did not create are never changed")] = True,
    backend: Annotated[str | None, typer.Option(
        help="Pulumi backend URL (default: $PULUMI_BACKEND_URL, else file://DIR/.mlplan/pulumi; never a "
             "Pulumi Cloud login unless you pass it here)")] = None,
    stack: Annotated[str | None, typer.Option(help="Pulumi stack (default: the one infra/Pulumi.<stack>.yaml)")]
    = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="local HTTP port (0: a free one)")] = 0,
    smoke_requests: Annotated[int, typer.Option(min=0, help="local smoke-load requests (0: none)")] = 200,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="local smoke-load concurrency")] = 4,
) -> None:
    """Deploy a plan folder: serve it locally, apply it to Kubernetes, or run its Pulumi stack.

    Idempotent: a second deploy of the same plan changes nothing. Every step is recorded in DIR/.mlplan/
    state.json, so a failed step leaves a clear record of what exists (see `mlplan status DIR`).
    """
    from stacks.deploy import targets as t

    opts = t.Options(kubeconfig=kubeconfig, context=context, namespace=namespace, timeout_s=timeout, wait=wait,
                     force_conflicts=force_conflicts, backend=backend, stack=stack, port=port,
                     smoke_requests=smoke_requests, concurrency=concurrency, console=_console())
    result = t.deploy(folder, target, dry_run=dry_run, opts=opts, say=progress)
    if result.dry_run:
        typer.echo(f"{result.target}: {result.changed} change(s) would be made (dry run)")
    else:
        typer.echo(f"{result.target}: deployed, {result.changed} change(s)" + (", ready" if result.ready else ""))
    if result.endpoint:
        typer.echo(f"endpoint: {result.endpoint}")


def status_cmd(
    folder: DirArg,
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig file")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    backend: Annotated[str | None, typer.Option(help="Pulumi backend URL")] = None,
) -> None:
    """Report what DIR's deployment runs and whether it is healthy: exit 0 when healthy, 5 otherwise."""
    from stacks.deploy import targets as t

    opts = t.Options(kubeconfig=kubeconfig, context=context, backend=backend)
    healthy, lines = t.status(folder, opts=opts, say=progress)
    for line in lines:
        typer.echo(line)
    if not healthy:
        first = lines[0].split(". To fix:")[0]  # the step's own fix is in the lines above; one fix in the error
        raise DeployError(f"{folder}: not healthy: {first}", fix="see the lines above; `mlplan deploy DIR` "
                          "again (idempotent) or `mlplan destroy DIR`")


def destroy_cmd(
    folder: DirArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="only this target (default: all)")] = None,
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig file")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    backend: Annotated[str | None, typer.Option(help="Pulumi backend URL")] = None,
) -> None:
    """Remove what DIR's deployment started (servers, the Kubernetes objects it created and still owns, the
    Pulumi stack's resources), nothing else. Refuses (exit 5) an object another field manager also manages.
    A second destroy is a no-op that exits 0."""
    from stacks.deploy import targets as t

    opts = t.Options(kubeconfig=kubeconfig, context=context, backend=backend)
    removed = t.destroy(folder, target, opts=opts, say=progress)
    typer.echo(f"destroyed: {removed} removed")


def preflight_cmd(
    folder: DirArg,
    bucket: Annotated[list[str] | None, typer.Option(
        "--bucket", help="AWS: bucket name the stack will create (repeatable; infra config buckets are read too)")]
    = None,
    catalog: Annotated[Path | None, typer.Option(help="AWS: catalog overlay to compare GPU specs with")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile (default: the usual credential chain)")] = None,
    zone: Annotated[str | None, typer.Option(help="GCP: the zone to check (default: the region's first zone)")]
    = None,
    project: Annotated[str | None, typer.Option(help="GCP project (default: the credentials' project)")] = None,
    subscription: Annotated[str | None, typer.Option(
        help="Azure subscription id (default: $AZURE_SUBSCRIPTION_ID)")] = None,
    azure_zone: Annotated[list[str] | None, typer.Option(
        "--azure-zone", help="Azure availability zone to check, 1-3 (repeatable; default: regional)")] = None,
) -> None:
    """Check the cloud accounts of the plan's cloud parts before a deploy: AWS (credentials, instance offered in
    the region and its zones, GPU specs vs. the catalog, vCPU quota, bucket names), GCP (credentials, machine
    type and accelerator offered in the zone, quotas) and Azure (credentials, VM size offered and not restricted,
    vCPU quota). Exit 4 (credentials / quota) or 5 on failure."""
    from planner.catalog import Catalog
    from stacks import folder as folder_mod
    from stacks.deploy import preflight as pre
    from stacks.deploy import preflight_clouds

    session = None
    if profile:
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.Session(profile_name=profile)
        except ProfileNotFound:
            raise CredentialsError(f"AWS profile {profile!r} not found",
                                   fix="aws configure list-profiles; or set AWS_PROFILE") from None
    cat = Catalog.load(catalog) if catalog else None
    opts = preflight_clouds.PreflightOptions(aws_session=session, buckets=tuple(bucket or ()), catalog=cat,
                                             gcp_zone=zone, gcp_project=project, azure_subscription=subscription,
                                             azure_zones=tuple(azure_zone or ()))
    checks = preflight_clouds.run(folder_mod.load_folder(folder), opts, say=typer.echo)
    pre.raise_for(checks)
    typer.echo(f"preflight: all {len(checks)} checks passed")
