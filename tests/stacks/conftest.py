"""Shared fixtures for the stack emitter tests: factory plans for every target, and cached mock runs."""

from __future__ import annotations

from typing import Any

import pytest

from planner.plan import Plan
from tests import factories as f


def ec2_single_gpu(**kw: Any) -> Plan:
    """One node, one GPU, one replica on AWS: the single-instance (EC2) option."""
    base = f.cloud_llm_single_gpu()
    part = base.parts[0].model_copy(update={"nodes": 1, "replicas": 1})
    return f.cloud_llm_single_gpu(parts=(part,), nodes=1, replicas=1, **kw)


def triton_tensor_parallel() -> Plan:
    """TensorRT-LLM on Triton, TP 4 on p5.48xlarge: served by a plain Deployment (not KubeRay)."""
    base = f.cloud_llm_tensor_parallel()
    part = base.parts[0].model_copy(update={"runtime": "tensorrt-llm"})
    return f.cloud_llm_tensor_parallel(parts=(part,), serving=base.serving.model_copy(
        update={"runtime": "tensorrt-llm"}))


def gcp_plan() -> Plan:
    base = f.cloud_llm_single_gpu()
    part = base.parts[0].model_copy(update={"provider": "gcp", "region": "europe-west4", "geography": "eu",
                                            "instance": "g2-standard-8", "accelerator": "l4"})
    return f.cloud_llm_single_gpu(parts=(part,), provider="gcp", region="europe-west4", instance="g2-standard-8",
                                  accelerator="l4")


def azure_spot_plan() -> Plan:
    """One H100 NVL on AKS (Standard_NC40ads_H100_v5, eastus), Spot: the GPU pool carries AKS's Spot taint too."""
    base = f.cloud_llm_single_gpu()
    part = base.parts[0].model_copy(update={"provider": "azure", "region": "eastus", "geography": "us",
                                            "instance": "Standard_NC40ads_H100_v5", "accelerator": "h100-nvl",
                                            "nodes": 1, "replicas": 1, "purchase": "spot", "dtype": "bf16"})
    return f.cloud_llm_single_gpu(parts=(part,), provider="azure", region="eastus",
                                  instance="Standard_NC40ads_H100_v5", accelerator="h100-nvl", nodes=1, replicas=1,
                                  purchase="spot", dtype="bf16")


def restricted_dedicated() -> Plan:
    """Restricted data in the cloud: dedicated tenancy, EU only."""
    return f.cloud_llm_pipeline_parallel(security=f._security("restricted", ("eu",)))


PLANS: dict[str, Any] = {**f.ALL_PLANS, "ec2_single_gpu": ec2_single_gpu,
                         "triton_tensor_parallel": triton_tensor_parallel, "gcp_plan": gcp_plan,
                         "azure_spot_plan": azure_spot_plan,
                         "restricted_dedicated": restricted_dedicated}


@pytest.fixture(scope="session")
def mock_runs() -> dict[str, list[dict[str, Any]]]:
    """Every plan's Pulumi program run once under Pulumi's mocks (in this process; each run gets fresh mocks)."""
    from stacks.preview import run_under_mocks
    from stacks.program import build

    out: dict[str, list[dict[str, Any]]] = {}
    for name, make in PLANS.items():
        plan = make()
        out[name] = run_under_mocks(lambda plan=plan: build(plan))
    return out


# pulumi-aws 7.x warns at import time for its own deprecated aliases (BucketV2, ...), which mlplan never uses
# (it uses aws.s3.Bucket etc.); the filter matches only warnings issued from inside the pulumi_aws package.
PULUMI_AWS_IMPORT_WARNINGS = "ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_aws"
# pulumi-gcp likewise (gcp.compute.MangedSslCertificate ...), imported once the program builds a GKE part
PULUMI_GCP_IMPORT_WARNINGS = "ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_gcp"


# Ray Serve's config schema (used to validate a RayService's serveConfigV2) declares pydantic fields the v1 way.
RAY_SCHEMA_WARNINGS = "ignore:Using extra keyword arguments on `Field` is deprecated:" \
                      "pydantic.warnings.PydanticDeprecatedSince20"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stacks/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings(PULUMI_AWS_IMPORT_WARNINGS))
            item.add_marker(pytest.mark.filterwarnings(PULUMI_GCP_IMPORT_WARNINGS))
            item.add_marker(pytest.mark.filterwarnings(RAY_SCHEMA_WARNINGS))
