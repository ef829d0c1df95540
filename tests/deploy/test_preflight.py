"""``mlplan preflight`` against a real moto server (STS, EC2 offerings / instance types / instances, S3).

moto implements neither EC2's Service Quotas nor the Pricing API, so the Service Quotas client here is a real
boto3 client wrapped in botocore's ``Stubber``, answering in the real ``GetServiceQuota`` response shape (the
Stubber also checks the request parameters against the service model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from planner.errors import CredentialsError, DeployError, EnvironmentProblem, InputError
from stacks.deploy.aws import quota_class
from stacks.deploy.preflight import Preflight, raise_for, stack_buckets
from stacks.folder import load_folder
from tests import factories
from tests.deploy.conftest import reset_moto, small_catalog, write_plan_folder

pytestmark = pytest.mark.slow
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _quota(code: str, value: float, name: str = "Running On-Demand G and VT instances") -> dict[str, Any]:
    return {"Quota": {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                      "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:ec2/{code}", "QuotaCode": code,
                      "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False,
                      "UsageMetric": {"MetricNamespace": "AWS/Usage", "MetricName": "ResourceCount",
                                      "MetricDimensions": {"Class": "Standard/OnDemand", "Resource": "vCPU",
                                                           "Service": "EC2", "Type": "Resource"},
                                      "MetricStatisticRecommendation": "Maximum"}}}


class Aws:
    """The client seam: moto for what moto implements, a Stubber-wrapped Service Quotas client."""

    def __init__(self, moto_url: str) -> None:
        self.url = moto_url
        self.session = boto3.Session(**CREDS)
        self.quotas = self.session.client("service-quotas", region_name="us-east-1")
        self.stub = Stubber(self.quotas)

    def __call__(self, service: str, region: str) -> Any:
        if service == "service-quotas":
            return self.quotas
        return self.session.client(service, region_name=region, endpoint_url=self.url)


@pytest.fixture
def aws(moto_url: str) -> Aws:
    reset_moto(moto_url)
    return Aws(moto_url)


def _folder(tmp_path: Path, plan: Any = None, bucket: str | None = "mlplan-llama-artifacts") -> Any:
    files = {"infra/Pulumi.yaml": "name: test\nruntime: python\n"}
    if bucket:
        files["infra/Pulumi.prod.yaml"] = yaml.safe_dump({"config": {"mlplan:artifactBucket": bucket,
                                                                     "aws:region": "us-east-1"}})
    return load_folder(write_plan_folder(tmp_path / "plan", plan or factories.cloud_llm_single_gpu(), files))


def test_all_checks_pass(tmp_path: Path, aws: Aws) -> None:
    aws("s3", "us-east-1").create_bucket(Bucket="models")  # the model artifact s3://models/llama-3-8b
    aws.stub.add_response("get_service_quota", _quota("L-DB2E81BA", 64.0),
                          {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"})
    lines: list[str] = []
    with aws.stub:
        checks = Preflight(_folder(tmp_path), client_factory=aws, catalog=small_catalog(), say=lines.append).run()
    aws.stub.assert_no_pending_responses()
    assert [c.ok for c in checks] == [True] * 7, lines
    text = "\n".join(lines)
    assert "credentials: account 123456789012" in text
    assert "g6e.xlarge in us-east-1: offered in 4 zone(s): us-east-1a, us-east-1b, us-east-1c, us-east-1d" in text
    assert "1 x NVIDIA L40S 44.7 GiB (matches the catalog)" in text
    assert "L-DB2E81BA) = 64 vCPUs, 0 in use, 64 free; the plan needs 2 x 4 = 8" in text
    assert "bucket mlplan-llama-artifacts: name is free" in text
    stack_bucket = factories.cloud_llm_single_gpu().parts[0].names.bucket  # the stack's model bucket
    assert f"bucket {stack_bucket}: name is free" in text
    assert "model bucket models: exists and is readable" in text
    raise_for(checks)  # nothing failed: no error


def test_quota_counts_running_instances(tmp_path: Path, aws: Aws) -> None:
    ec2 = aws("ec2", "us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=ami, InstanceType="g5.2xlarge", MinCount=1, MaxCount=1)  # 8 vCPUs of class G
    ec2.run_instances(ImageId=ami, InstanceType="m5.large", MinCount=1, MaxCount=1)  # standard: not counted
    aws.stub.add_response("get_service_quota", _quota("L-DB2E81BA", 12.0),
                          {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"})
    lines: list[str] = []
    with aws.stub:
        checks = Preflight(_folder(tmp_path, bucket=None), client_factory=aws, catalog=small_catalog(),
                           say=lines.append).run()
    quota = next(c for c in checks if c.name == "quota L-DB2E81BA")
    assert quota.ok is False
    assert "= 12 vCPUs, 8 in use, 4 free; the plan needs 2 x 4 = 8" in quota.message
    assert quota.fix is not None and "--quota-code L-DB2E81BA --desired-value 16" in quota.fix
    with pytest.raises(EnvironmentProblem) as err:
        raise_for(checks)
    assert err.value.exit_code == 4
    assert "preflight: 2 of 6 checks failed" in err.value.one_line()  # quota + the missing model bucket


def test_default_quota_when_account_has_no_override(tmp_path: Path, aws: Aws) -> None:
    aws.stub.add_client_error("get_service_quota", service_error_code="NoSuchResourceException",
                              service_message="The request failed because the specified service quota does not "
                                              "exist.", http_status_code=400,
                              expected_params={"ServiceCode": "ec2", "QuotaCode": "L-417A185B"})
    aws.stub.add_response("get_aws_default_service_quota", _quota("L-417A185B", 0.0, "Running On-Demand P instances"),
                          {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"})
    lines: list[str] = []
    with aws.stub:
        checks = Preflight(_folder(tmp_path, factories.cloud_llm_tensor_parallel(), bucket=None),
                           client_factory=aws, catalog=small_catalog(), say=lines.append).run()
    quota = next(c for c in checks if c.name == "quota L-417A185B")
    assert quota.ok is False and "= 0 vCPUs" in quota.message and "1 x 192 = 192" in quota.message


def test_gpu_mismatch_and_not_offered(tmp_path: Path, aws: Aws) -> None:
    # the plan claims 2 GPUs per g6e.xlarge and an L4: EC2 says 1 x L40S
    plan = factories.cloud_llm_single_gpu()
    part = plan.parts[0].model_copy(update={"gpus_per_node": 2, "accelerator": "l4"})
    wrong = plan.model_copy(update={"parts": (part,)})
    checks = Preflight(_folder(tmp_path, wrong, bucket=None), client_factory=aws, catalog=small_catalog(),
                       say=lambda _: None)
    with aws.stub:
        aws.stub.add_response("get_service_quota", _quota("L-DB2E81BA", 64.0))
        result = checks.run()
    gpu = next(c for c in result if c.name == "g6e.xlarge GPUs")
    assert gpu.ok is False
    assert "1 GPUs per instance, the plan assumes 2" in gpu.message
    assert "GPU NVIDIA L40S is not l4" in gpu.message
    # an instance type EC2 does not offer in the region
    part = plan.parts[0].model_copy(update={"instance": "p5.48xlarge", "region": "eu-west-3"})
    other = plan.model_copy(update={"parts": (part,)})
    result = Preflight(_folder(tmp_path / "b", other, bucket=None), client_factory=aws, catalog=small_catalog(),
                       say=lambda _: None).run()
    offered = next(c for c in result if c.name == "p5.48xlarge in eu-west-3")
    assert offered.ok is False and "is not offered in eu-west-3" in offered.message
    with pytest.raises(DeployError) as err:
        raise_for(result)
    assert err.value.exit_code == 5


def test_bucket_taken_by_another_account(tmp_path: Path, aws: Aws) -> None:
    # moto has one account, so the 403 of a bucket owned elsewhere comes from a Stubber on a real S3 client
    s3 = boto3.client("s3", region_name="us-east-1", **CREDS)
    stub = Stubber(s3)
    stack_bucket = factories.cloud_llm_single_gpu().parts[0].names.bucket
    # the checks run in name order: the configured bucket, then the stack's (the spec's name "test" sorts after)
    stub.add_client_error("head_bucket", service_error_code="403", service_message="Forbidden",
                          http_status_code=403, expected_params={"Bucket": "mlplan-llama-artifacts"})
    stub.add_client_error("head_bucket", service_error_code="404", service_message="Not Found",
                          http_status_code=404, expected_params={"Bucket": stack_bucket})
    stub.add_client_error("head_bucket", service_error_code="404", service_message="Not Found",
                          http_status_code=404, expected_params={"Bucket": "models"})
    pre = Preflight(_folder(tmp_path), client_factory=lambda s, r: s3 if s == "s3" else aws(s, r),
                    catalog=small_catalog(), say=lambda _: None)
    with stub:
        pre.check_buckets("us-east-1")
    assert [(c.name, c.ok) for c in pre.checks] == [("bucket mlplan-llama-artifacts", False),
                                                    (f"bucket {stack_bucket}", True),
                                                    ("model bucket models", False)]
    assert "taken by another AWS account" in pre.checks[0].message


def test_configured_model_bucket_replaces_the_derived_name(tmp_path: Path) -> None:
    folder = write_plan_folder(tmp_path / "p", factories.cloud_llm_single_gpu(), {
        "infra/Pulumi.yaml": "name: t\nruntime: python\n",
        "infra/Pulumi.prod.yaml": yaml.safe_dump({"config": {"mlplan:modelBucket": "acme-llm-weights"}})})
    assert stack_buckets(load_folder(folder)) == ["acme-llm-weights"]
    bare = write_plan_folder(tmp_path / "b", factories.cloud_llm_single_gpu())  # no infra/: nothing to create
    assert stack_buckets(load_folder(bare)) == []


def test_no_credentials_is_exit_4_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session()

    def factory(service: str, region: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=moto_url)

    checks = Preflight(_folder(tmp_path), client_factory=factory, catalog=small_catalog(), say=lambda _: None).run()
    assert len(checks) == 1 and checks[0].name == "credentials" and checks[0].ok is False
    with pytest.raises(CredentialsError) as err:
        raise_for(checks)
    assert err.value.exit_code == 4
    assert "no AWS credentials found" in err.value.one_line() and "To fix:" in err.value.one_line()


def test_non_aws_plan_is_an_input_error(tmp_path: Path, aws: Aws) -> None:
    with pytest.raises(InputError, match="has no AWS cloud part"):
        Preflight(_folder(tmp_path, factories.onprem_llm()), client_factory=aws, say=lambda _: None).run()


@pytest.mark.parametrize(("instance", "cls"), [("g6e.xlarge", "g"), ("vt1.3xlarge", "g"), ("p5.48xlarge", "p"),
                                               ("inf2.xlarge", "inf"), ("trn1n.32xlarge", "trn"),
                                               ("m7i.large", "standard"), ("x2iedn.xlarge", "x"),
                                               ("dl1.24xlarge", "dl"), ("c7gn.large", "standard")])
def test_quota_class(instance: str, cls: str) -> None:
    assert quota_class(instance) == cls
