"""The generated stacks, checked on the resources the Pulumi program records under Pulumi's own mocks, for
every example plan (real optimizer) and every factory plan: no IAM grant of every action on every resource, no
public bucket / internet ingress / public IP / internet-facing load balancer, and no resource outside the plan's
residency set. Then the guards themselves: a tampered plan (a region outside ``allowed_regions``) is refused by
the writer and the program, and a public bucket or a ``*`` grant makes these checks fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.errors import ArtifactError
from tests import factories
from tests.faults.conftest import leftovers
from tests.security import audit
from tests.security.conftest import Emitted

Res = dict[str, Any]


def test_iac_plans_are_covered(mock_resources: dict[str, list[Res]]) -> None:
    aws = {"example-chat-eu-pii", "example-hybrid-clinic", "example-llama-70b-tight-ttft",
           "factory-cloud_llm_tensor_parallel", "factory-ec2_single_gpu", "factory-onprem_llm"}
    assert aws <= set(mock_resources)
    assert all(mock_resources[n] for n in aws)
    # the GCP and Azure stacks too: the checks below see gcp: and azure-native: resources
    for name, prefix in (("example-gke-a3-eu", "gcp:"), ("example-aks-confidential-us", "azure-native:"),
                         ("factory-gcp_plan", "gcp:")):
        assert any(r["type"].startswith(prefix) for r in mock_resources[name]), name


def test_no_iam_wildcard_grant(mock_resources: dict[str, list[Res]]) -> None:
    found = {n: w for n, res in mock_resources.items() if (w := audit.iam_wildcards(res))}
    assert not found, found
    policies = sum(1 for res in mock_resources.values() for r in res if audit.policy_documents(r))
    assert policies >= 10  # the checks really saw policies (trust policies, role policies, bucket policies)


def test_nothing_public(mock_resources: dict[str, list[Res]], emitted: dict[str, Emitted]) -> None:
    found = {}
    for name, res in mock_resources.items():
        objs = [d for f in audit.manifest_files(emitted[name].folder) for d in audit.documents(f)]
        if problems := audit.public_exposure(res, objs, emitted[name].plan):
            found[name] = problems
    assert not found, found
    buckets = [r for res in mock_resources.values() for r in res if r["type"] in (
        "aws:s3/bucket:Bucket", "gcp:storage/bucket:Bucket", "azure-native:storage:StorageAccount")]
    assert {b["type"].split(":")[0] for b in buckets} == {"aws", "gcp", "azure-native"}


def test_every_resource_inside_the_residency_set(mock_resources: dict[str, list[Res]],
                                                 emitted: dict[str, Emitted]) -> None:
    found = {n: v for n, res in mock_resources.items() if (v := audit.residency_violations(res, emitted[n].plan))}
    assert not found, found
    eu = emitted["example-chat-eu-pii"].plan
    assert eu.security.allowed_regions and {r["region"] for r in mock_resources["example-chat-eu-pii"]
                                            if r["type"].startswith("aws:")} <= {eu.parts[0].region}


# ------------------------------------------------------------------------------------- tampered plans


def _moved(geography: str) -> Any:
    """The EU-restricted factory plan with its part moved to us-east-1 (its geography claim set to ``geography``)."""
    plan = factories.cloud_llm_pipeline_parallel()  # confidential, allowed_regions ("eu",), eu-west-1
    part = plan.parts[0].model_copy(update={"region": "us-east-1", "geography": geography})
    return plan.model_copy(update={"parts": (part,), "region": "us-east-1"})


@pytest.mark.parametrize("preview", [False, True])
@pytest.mark.parametrize(("geography", "why"), [("us", "residency eu only"),
                                                ("eu", "the plan places us-east-1 in geography eu, the catalog in us")])
def test_writer_refuses_a_plan_outside_its_residency_set(tmp_path: Path, preview: bool, geography: str,
                                                         why: str) -> None:
    from stacks.writer import write_plan_folder
    from tests.stacks.test_writer import fixed_catalog, recommendation

    plan = _moved(geography)
    out = tmp_path / "plan"
    with pytest.raises(ArtifactError, match=why):
        write_plan_folder(factories.spec_for(plan), recommendation(plan), out, catalog=fixed_catalog(),
                          preview=preview, isolate=False)
    assert not out.exists() and leftovers(tmp_path) == []


def _reseal(folder: Path) -> None:
    """What a careless editor's tool would do after editing: recompute the folder's marker."""
    from stacks.folder import MARKER, marker_text

    files = [p for p in folder.rglob("*") if p.is_file() and p.name != MARKER]
    plan_id = yaml.safe_load((folder / "plan.yaml").read_text())["plan"]["id"]
    (folder / MARKER).write_text(marker_text(plan_id, folder, files))


def test_program_refuses_a_tampered_folder(tmp_path: Path) -> None:
    """The Pulumi program (infra/__main__.py -> stacks.program.run) verifies the folder before it builds: an edited
    plan.yaml (hash mismatch), an edited plan re-sealed (the plan breaks the stored spec), an edited spec copy
    re-sealed (spec hash mismatch)."""
    from stacks.program import run
    from stacks.writer import write_plan_folder
    from tests.stacks.test_writer import fixed_catalog, recommendation

    plan = factories.cloud_llm_pipeline_parallel()
    out = tmp_path / "plan"
    write_plan_folder(factories.spec_for(plan), recommendation(plan), out, catalog=fixed_catalog(), preview=False)
    pristine = (out / "plan.yaml").read_text()
    data = yaml.safe_load(pristine)
    data["plan"]["parts"][0].update(region="us-east-1", geography="us")
    (out / "plan.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ArtifactError, match=r"plan\.yaml changed since `mlplan plan` wrote the folder"):
        run(out / "plan.yaml")
    _reseal(out)
    with pytest.raises(ArtifactError, match=r"breaks its spec: .*residency eu only"):
        run(out / "plan.yaml")
    data = yaml.safe_load(pristine)
    data["spec"]["constraints"]["allowed_regions"] = None
    (out / "plan.yaml").write_text(yaml.safe_dump(data))
    _reseal(out)
    with pytest.raises(ArtifactError, match="stored spec does not match its spec_sha256"):
        run(out / "plan.yaml")
    sec = yaml.safe_load(pristine)
    sec["plan"]["security"]["private_networking"] = False  # loosen the security block
    (out / "plan.yaml").write_text(yaml.safe_dump(sec))
    _reseal(out)
    with pytest.raises(ArtifactError, match=r"security\.private_networking is False"):
        run(out / "plan.yaml")


def test_a_public_bucket_fails_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_aws as aws  # the module stacks.aws creates its resources from

    real = aws.s3.BucketPublicAccessBlock

    def lax(name: str, **kw: Any) -> Any:  # a regression that lets bucket policies make the bucket public
        return real(name, **{**kw, "block_public_policy": False, "restrict_public_buckets": False})

    monkeypatch.setattr(aws.s3, "BucketPublicAccessBlock", lax)
    res = audit.mock_run(factories.cloud_llm_single_gpu())
    assert any("public access not fully blocked" in p for p in audit.public_exposure(res))


def test_the_checks_catch_wildcards_public_services_and_foreign_regions() -> None:
    plan = factories.cloud_llm_pipeline_parallel()
    res = audit.mock_run(plan)
    star = {"type": "aws:iam/rolePolicy:RolePolicy", "name": "oops", "region": "eu-west-1", "inputs": {
        "policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})}}
    assert audit.iam_wildcards([*res, star]) == ["aws:iam/rolePolicy:RolePolicy oops: Allow ['s3:*'] on *"]
    open_sg = {"type": "aws:ec2/securityGroup:SecurityGroup", "name": "sg", "region": "eu-west-1",
               "inputs": {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 22, "toPort": 22}]}}
    lb = {"kind": "Service", "metadata": {"name": "svc"}, "spec": {"type": "LoadBalancer"}}
    assert len(audit.public_exposure([*res, open_sg], [lb])) == 2
    foreign = {"type": "aws:s3/bucket:Bucket", "name": "b", "region": "us-east-1", "inputs": {}}
    assert audit.residency_violations([*res, foreign], plan) == ["aws:s3/bucket:Bucket b in us-east-1, outside ['eu']"]


def test_the_checks_catch_public_gcp_and_azure_storage_broad_roles_and_foreign_regions() -> None:
    plan = factories.cloud_llm_single_gpu()  # internal data, us-east-1 (allowed anywhere)
    eu = factories.cloud_llm_pipeline_parallel()  # confidential, EU only
    bucket = {"type": "gcp:storage/bucket:Bucket", "name": "b", "region": "europe-west4",
              "inputs": {"publicAccessPrevention": "inherited", "uniformBucketLevelAccess": True,
                         "location": "europe-west4"}}
    everyone = {"type": "gcp:storage/bucketIAMMember:BucketIAMMember", "name": "m", "region": "europe-west4",
                "inputs": {"member": "allUsers", "role": "roles/storage.objectViewer"}}
    account = {"type": "azure-native:storage:StorageAccount", "name": "s", "region": "eastus",
               "inputs": {"allowBlobPublicAccess": True, "location": "eastus"}}
    container = {"type": "azure-native:storage:BlobContainer", "name": "c", "region": "eastus",
                 "inputs": {"publicAccess": "Blob"}}
    found = audit.public_exposure([bucket, everyone, account, container])
    assert len(found) == 4, found
    owner = {"type": "gcp:projects/iAMMember:IAMMember", "name": "o", "region": "europe-west4",
             "inputs": {"role": "roles/owner", "member": "serviceAccount:x"}}
    writer = {"type": "gcp:storage/bucketIAMMember:BucketIAMMember", "name": "w", "region": "europe-west4",
              "inputs": {"role": "roles/storage.objectAdmin", "member": "serviceAccount:x"}}
    contributor = {"type": "azure-native:authorization:RoleAssignment", "name": "a", "region": "eastus",
                   "inputs": {"roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/"
                                                  "roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
                              "scope": "/subscriptions/s/resourceGroups/models-rg"}}  # not the hosts' group
    assert len(audit.iam_wildcards([owner, writer, contributor])) == 3
    # an internet-facing load balancer: allowed for internal data, not for confidential data
    lb = {"kind": "Service", "metadata": {"name": "svc", "labels": {"mlplan.dev/part": "primary"}},
          "spec": {"type": "LoadBalancer"}}
    assert audit.public_exposure([], [lb], plan) == []
    assert audit.public_exposure([], [lb], eu) == ["Service svc: LoadBalancer reachable from outside the cluster"]
    gke = {"type": "gcp:container/nodePool:NodePool", "name": "p", "region": "europe-west4",
           "inputs": {"nodeLocations": ["us-central1-a"], "location": "europe-west4"}}
    assert audit.residency_violations([gke], eu) == [
        "gcp:container/nodePool:NodePool p in us-central1, outside ['eu']"]
