"""AWS answering with its own failures (HTTP 500 InternalError, HTTP 503, throttling) to ``mlplan preflight`` and
``mlplan catalog refresh``, run as a user runs them: one line naming the call, the answer and the retries,
exit 4 (retry later), never "internal error" or a traceback.

The endpoint is a small HTTP server answering every request with the error body AWS's query protocols send
(``<ErrorResponse><Error>`` for STS, ``<Response><Errors><Error>`` for EC2), so botocore parses the code itself.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.deploy.conftest import write_plan_folder
from tests.faults.conftest import MLPLAN, ROOT, mlplan_env, one_line_error, secrets_in


class FailingAws:
    """Answers every AWS call with ``status`` and error ``code``, counting the requests."""

    def __init__(self, status: int, code: str) -> None:
        self.status, self.code, self.requests = status, code, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(errors="replace")
                outer.requests += 1
                ec2 = "Version=2016-11-15" in body
                msg = "We encountered an internal error. Please try again." if outer.status >= 500 else "Rate exceeded"
                xml = (f"<Response><Errors><Error><Code>{outer.code}</Code><Message>{msg}</Message></Error></Errors>"
                       "<RequestID>5c7e2e0a-0000-4000-8000-000000000000</RequestID></Response>") if ec2 else (
                    f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type>'
                    f"<Code>{outer.code}</Code><Message>{msg}</Message></Error>"
                    "<RequestId>5c7e2e0a-0000-4000-8000-000000000000</RequestId></ErrorResponse>")
                data = xml.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FailingAws:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def aws_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in mlplan_env().items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIAMLPLANFAKE7TEST1",
                "AWS_SECRET_ACCESS_KEY": "mLpLaNfAkEsEcReT/K7MDENG/bPxRfiCYzzSECRETzz",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    return env


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield write_plan_folder(tmp_path / "c", factories.cloud_llm_single_gpu())


@pytest.mark.parametrize(("status", "code", "text"), [
    (500, "InternalError", "sts:GetCallerIdentity: AWS answered HTTP 500 (InternalError) after 4 attempts"),
    (503, "ServiceUnavailable", "sts:GetCallerIdentity: AWS answered HTTP 503 (ServiceUnavailable) after 4 attempts"),
    (400, "Throttling", "sts:GetCallerIdentity: AWS throttled the request (Throttling) after 4 attempts"),
])
def test_preflight_when_aws_fails(tmp_path: Path, folder: Path, status: int, code: str, text: str) -> None:
    with FailingAws(status, code) as aws:
        done = subprocess.run([MLPLAN, "preflight", str(folder)], capture_output=True, text=True,
                              env=aws_env(tmp_path, aws.url), timeout=120, check=False, cwd=ROOT)
    assert aws.requests == 4, done.stderr  # preflight's botocore config: 3 retries (the line says so), then stop
    assert done.returncode == 4, done.stdout + done.stderr
    line = one_line_error(done)
    assert text in line and "To fix:" in line, line
    assert f"[FAIL] credentials: {text}" in done.stdout
    assert not secrets_in(folder, done.stdout, done.stderr)


@pytest.mark.parametrize(("status", "code", "text"), [
    (500, "InternalError", "ec2 in us-east-1: AWS answered HTTP 500 (InternalError) after {n} attempts"),
    (400, "RequestLimitExceeded", "ec2 in us-east-1: AWS throttled the request (RequestLimitExceeded) after {n} "
                                  "attempts"),
])
def test_catalog_refresh_when_aws_fails(tmp_path: Path, status: int, code: str, text: str) -> None:
    out = tmp_path / "overlay.yaml"
    with FailingAws(status, code) as aws:
        done = subprocess.run([MLPLAN, "catalog", "refresh", "--provider", "aws", "--region", "us-east-1",
                               "--out", str(out)], capture_output=True, text=True, env=aws_env(tmp_path, aws.url),
                              timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 4, done.stdout + done.stderr
    line = one_line_error(done)
    assert aws.requests > 1 and text.format(n=aws.requests) in line and "To fix:" in line, line
    assert not out.exists()
    assert not secrets_in(None, done.stdout, done.stderr)
