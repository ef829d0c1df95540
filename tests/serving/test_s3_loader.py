"""Loading a model from S3 against a real (local) moto server, including the error paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planner.errors import DeployError, InputError
from serving.launch import free_port
from serving.runtime.loader import resolve_model


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    import boto3

    for k, v in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3", endpoint_url=s3_endpoint)


def test_download_and_cache(s3: object, demo_onnx: Path, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="models")  # type: ignore[attr-defined]
    s3.upload_file(str(demo_onnx), "models", "mlp/model.onnx")  # type: ignore[attr-defined]
    first = resolve_model("s3://models/mlp/model.onnx", cache_dir=tmp_path)
    assert first.read_bytes() == demo_onnx.read_bytes() and first.is_relative_to(tmp_path)
    assert resolve_model("s3://models/mlp/model.onnx", cache_dir=tmp_path) == first
    # a new object version (new ETag) is fetched again, not served from the stale cache
    s3.put_object(Bucket="models", Key="mlp/model.onnx", Body=b"other")  # type: ignore[attr-defined]
    again = resolve_model("s3://models/mlp/model.onnx", cache_dir=tmp_path)
    assert again != first and again.read_bytes() == b"other"


def test_missing_object_and_bad_uri(s3: object, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="empty")  # type: ignore[attr-defined]
    with pytest.raises(DeployError, match=r"cannot read model s3://empty/none\.onnx") as exc:
        resolve_model("s3://empty/none.onnx", cache_dir=tmp_path)
    assert "To fix" in str(exc.value)
    with pytest.raises(InputError, match="bad S3 URI"):
        resolve_model("s3://bucket-only", cache_dir=tmp_path)
