"""boto3 plumbing shared by ``preflight`` and the AWS catalog refresh: the client seam and EC2 facts.

Every AWS call goes through a :data:`ClientFactory` ``(service, region) -> client``, so tests point EC2, STS
and S3 at a moto server (``endpoint_url``) and stub the two APIs moto lacks (Pricing, Service Quotas) with
botocore's ``Stubber``. By default clients come from a ``boto3.Session`` (the usual credential chain;
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by botocore itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from planner.errors import CredentialsError, DeployError, EnvironmentProblem, MissingDependency, MlplanError

ClientFactory = Callable[[str, str], Any]

# EC2 vCPU quotas per instance-family class (Service Quotas, service code "ec2"). Source: the Service Quotas
# console / `aws service-quotas list-service-quotas --service-code ec2` ("Running On-Demand G and VT instances"
# L-DB2E81BA, "Running On-Demand P instances" L-417A185B, "All G and VT Spot Instance Requests" L-3819A6DF ...).
ON_DEMAND_QUOTAS: dict[str, tuple[str, str]] = {
    "standard": ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "p": ("L-417A185B", "Running On-Demand P instances"),
    "inf": ("L-1945791B", "Running On-Demand Inf instances"),
    "trn": ("L-2C3B7624", "Running On-Demand Trn instances"),
    "dl": ("L-6E869C2A", "Running On-Demand DL instances"),
    "f": ("L-74FC7D96", "Running On-Demand F instances"),
    "x": ("L-7295265B", "Running On-Demand X instances"),
}
SPOT_QUOTAS: dict[str, tuple[str, str]] = {
    "standard": ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
    "g": ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    "p": ("L-7212CCBC", "All P Spot Instance Requests"),
    "inf": ("L-B5D1601B", "All Inf Spot Instance Requests"),
    "trn": ("L-6B0D517C", "All Trn Spot Instance Requests"),
    "f": ("L-88CF9481", "All F Spot Instance Requests"),
    "x": ("L-E3A00192", "All X Spot Instance Requests"),
}


def quota_class(instance_type: str) -> str:
    """The vCPU-quota class of an instance type: ``g5.xlarge`` -> g, ``vt1.3xlarge`` -> g, ``m7i.large`` ->
    standard, ``trn1n.32xlarge`` -> trn (the family letters before the generation digit)."""
    m = re.match(r"^([a-z]+?)(\d|-)", instance_type)
    prefix = m.group(1) if m else instance_type.split(".")[0]
    if prefix in ("g", "vt"):
        return "g"
    if prefix in ("p", "inf", "trn", "dl", "f"):
        return prefix
    if prefix in ("x", "u"):
        return "x"
    return "standard"


def normalise_gpu(name: str) -> str:
    """``NVIDIA L40S`` / ``l40s`` / ``L40S`` -> ``l40s``; vendor words and punctuation dropped."""
    text = name.lower()
    for word in ("nvidia", "amd", "tesla", "geforce", "radeon pro", "habana", "intel"):
        text = text.replace(word, " ")
    return re.sub(r"[^a-z0-9]", "", text)


def default_factory(session: Any = None) -> ClientFactory:
    """Clients from ``session`` (anything with ``.client(service, region_name=...)``) or a new boto3 Session."""
    if session is None:
        try:
            import boto3
        except ImportError:
            raise MissingDependency("boto3 is not installed", fix="pip install 'mlplan[aws]'") from None
        session = boto3.Session()
    from botocore.config import Config

    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)

    def make(service: str, region: str) -> Any:
        return session.client(service, region_name=region, config=cfg)

    return make


def error_code(e: BaseException) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(e: BaseException) -> int | None:
    response = getattr(e, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else None


#: error codes AWS answers when it throttles a caller (botocore's retry handler treats the same codes as throttling:
#: botocore/data/_retry.json "throttling" and botocore.retries.standard)
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})
#: error codes of a failure on AWS's side (HTTP 5xx)
SERVER_CODES = frozenset({"InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
                          "Unavailable", "ServiceUnavailableException", "InternalServiceError"})
CREDENTIAL_CODES = frozenset({"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
                              "UnrecognizedClientException", "AuthFailure", "InvalidAccessKeyId"})


class AwsUnavailable(EnvironmentProblem):
    """AWS throttled mlplan or failed on its side (HTTP 429 / 5xx), after botocore's own retries: retry later."""


def aws_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a boto3 call raises (catch exactly these at the call, then :func:`classify`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def _retried(e: BaseException) -> str:
    attempts = (getattr(e, "response", None) or {}).get("ResponseMetadata", {}).get("RetryAttempts")
    return f" after {int(attempts) + 1} attempts" if isinstance(attempts, int) and attempts else ""


def classify(e: BaseException, what: str) -> MlplanError:
    """A botocore failure as a one-line mlplan error: credentials (exit 4), reachability, throttling and AWS's own
    5xx (exit 4, retry later), anything else AWS refused (exit 5)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(f"{what}: no AWS credentials found",
                                fix="set AWS_PROFILE (aws sso login / aws configure) or "
                                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(e, NoRegionError):
        return EnvironmentProblem(f"{what}: no AWS region configured", fix="set AWS_REGION or pass --region")
    if isinstance(e, EndpointConnectionError):
        return EnvironmentProblem(f"{what}: cannot reach the AWS endpoint {e.kwargs.get('endpoint_url', '')}",
                                  fix="check the network, proxy and AWS_ENDPOINT_URL")
    if isinstance(e, (ConnectionError, HTTPClientError)):
        return EnvironmentProblem(f"{what}: the connection to AWS failed ({type(e).__name__})",
                                  fix="check the network and proxy, then retry")
    if isinstance(e, ClientError):
        code, status = error_code(e), http_status(e)
        if code in CREDENTIAL_CODES:
            return CredentialsError(f"{what}: AWS refused the credentials ({code})",
                                    fix="refresh them (aws sso login) or check AWS_PROFILE / the access keys")
        if code in THROTTLING_CODES or status == 429:
            return AwsUnavailable(f"{what}: AWS throttled the request ({code or 'HTTP 429'}){_retried(e)}",
                                  fix="wait a minute and retry; run fewer mlplan commands against the account at "
                                      "once")
        if code in SERVER_CODES or (status is not None and status >= 500):
            return AwsUnavailable(f"{what}: AWS answered HTTP {status or '5xx'} ({code or 'no error code'})"
                                  f"{_retried(e)}", fix="retry later; if it persists, check "
                                                        "https://health.aws.amazon.com")
        if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
            return CredentialsError(f"{what}: access denied ({code})", fix=f"allow {what} for the deploy identity")
        message = str((getattr(e, "response", None) or {}).get("Error", {}).get("Message", "")) or str(e)
        return DeployError(f"{what}: AWS refused the request ({code or status}): {message.splitlines()[0][:200]}",
                           fix="check the request's region and names; retry")
    return DeployError(f"{what} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                       fix="retry; check the AWS status page if it persists")
