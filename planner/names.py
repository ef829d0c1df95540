"""Every resource name a plan gives, decided once here and carried on the plan (``Plan.names``, ``Part.names``).

Names carry the spec's name, so two teams serving the same model from two specs on one cluster or in one
account never share a namespace, Kubernetes object, bucket or role (deploying the second must not reconfigure
the first, and destroying it must not delete the first's objects).

Rules (Kubernetes object names: DNS-1123 labels; Service names: DNS-1035 labels, which start with a letter:
https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ ; S3 bucket names: 3-63 characters of
``[a-z0-9.-]``, globally unique: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html ;
IAM role names: up to 64 characters; Azure storage account names: 3-24 lowercase letters and digits, globally
unique: https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftstorage).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["bucket_name", "dns_label", "gcp_prefix", "part_key", "role_name", "service_name", "short_hash",
           "storage_account_name"]

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, max_len: int = 63) -> str:
    """A DNS-1123 label from any text: lowercase ``[a-z0-9-]``, starts and ends alphanumeric, at most
    ``max_len`` characters."""
    out = _NOT_DNS.sub("-", text.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)[:max_len].strip("-")
    return out or "mlplan"


GCP_PREFIX_LEN = 30
"""Longest prefix of a GKE part's resource names: a GKE cluster name is at most 40 characters, and the prefix is
followed by suffixes such as ``-system`` (https://cloud.google.com/kubernetes-engine/docs/reference/rest/v1/projects.locations.clusters)."""


def gcp_prefix(resource_prefix: str) -> str:
    """The prefix of a GKE part's resources: the part's ``resource_prefix`` when it fits GCP_PREFIX_LEN, else its
    head and a hash of the whole, so two long spec names that share a head never share a VPC or a cluster."""
    label = dns_label(resource_prefix, 63)
    if len(label) <= GCP_PREFIX_LEN:
        return label
    digest = short_hash(resource_prefix, 6)
    return f"{dns_label(label, GCP_PREFIX_LEN - len(digest) - 1)}-{digest}"


def service_name(text: str, max_len: int = 63) -> str:
    """A DNS-1035 label (a Service name): a DNS-1123 label that starts with a letter."""
    label = dns_label(text, max_len)
    return label if label[0].isalpha() else dns_label(f"m-{label}", max_len)


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def part_key(role: str, placement: str, multi: bool) -> str:
    """The part's key: its role, plus its placement when the plan has several parts."""
    return dns_label(f"{role}-{placement}" if multi else role, 30)


def bucket_name(spec_name: str, model: str, region: str) -> str:
    """A deterministic model bucket name for one spec, model and region (a hash keeps it globally unlikely to
    collide and short enough for long spec names)."""
    digest = short_hash(f"{spec_name}/{model}/{region}")
    return dns_label(f"mlplan-{spec_name[:30]}-{digest}", 63)


def role_name(spec_name: str, region: str) -> str:
    """The serving role (AWS IAM / GCP service account / Azure identity) of one spec in one region."""
    return dns_label(f"mlplan-{spec_name[:30]}-{region}-serving", 64)


def storage_account_name(spec_name: str, model: str, region: str) -> str:
    """A deterministic Azure storage account name for one spec, model and region: ``ml`` + up to 12 letters and
    digits of the spec's name + a 10-digit hash (3-24 lowercase alphanumerics; the hash keeps it globally unlikely
    to collide)."""
    head = re.sub(r"[^a-z0-9]+", "", spec_name.lower())[:12]
    return f"ml{head}{short_hash(f'{spec_name}/{model}/{region}', 10)}"
