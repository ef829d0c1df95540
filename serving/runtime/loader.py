"""Resolve a model URI to a local file: a path, ``file://PATH``, ``s3://bucket/key`` or ``builtin://NAME``.

S3 downloads use boto3 (imported only when needed); ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) points
it at an S3-compatible store (MinIO, moto). Downloads are cached by bucket/key/ETag under the mlplan cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from planner.errors import CredentialsError, DeployError, InputError


def resolve_model(uri: str, *, cache_dir: Path | None = None) -> Path:
    """Local path of the model at ``uri`` (downloading or building it first where needed)."""
    if not uri:
        raise InputError("empty model URI", fix="give a path, s3://bucket/key or builtin://mlp-demo")
    if uri.startswith("builtin://"):
        from serving.model.demo import builtin_path

        return builtin_path(uri.removeprefix("builtin://"))
    if uri.startswith("s3://"):
        return _download_s3(uri, cache_dir)
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise InputError(f"model file not found: {uri}", fix="check the path in model.artifact")
    return path


def _download_s3(uri: str, cache_dir: Path | None) -> Path:
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise InputError(f"bad S3 URI {uri!r}", fix="use s3://bucket/key/to/model.onnx")
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError as exc:
        from planner.errors import MissingDependency

        raise MissingDependency("boto3 is needed to load a model from S3",
                                fix="pip install 'mlplan[aws]'") from exc
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    client = boto3.client("s3", endpoint_url=endpoint)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        etag = str(head.get("ETag", "")).strip('"')
        if cache_dir is None:
            from serving.model.demo import cache_dir as base

            cache_dir = base() / "s3"
        digest = hashlib.sha256(f"{bucket}/{key}@{etag}".encode()).hexdigest()[:24]
        dest = Path(cache_dir) / digest / Path(key).name
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
        os.close(fd)
        try:
            client.download_file(bucket, key, tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest
    except NoCredentialsError as exc:
        raise CredentialsError(f"no AWS credentials to read {uri}",
                               fix="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise CredentialsError(f"access to {uri} refused ({code})",
                                   fix="grant s3:GetObject on the bucket to these credentials") from exc
        raise DeployError(f"cannot read model {uri}: {code}",
                          fix="check the bucket and key exist (aws s3 ls)") from exc
    except BotoCoreError as exc:
        raise DeployError(f"cannot read model {uri}: {exc}", fix="check the S3 endpoint and network") from exc
