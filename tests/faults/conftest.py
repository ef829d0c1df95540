"""Helpers of the fault-injection tests: run ``mlplan`` as a user does (a subprocess, fake secrets planted in
its environment), read-only mounts, a killable moto server, and the plan folders the faults are injected into."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.launch import free_port
from tests.security.scan import FAKE_SECRETS, Hit, scan_text, scan_tree

ROOT = Path(__file__).resolve().parents[2]
MLPLAN = str(Path(sys.executable).parent / "mlplan")


def mlplan_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every mlplan run here: this one, fake secrets planted (the servers a local deploy starts
    must never see them: they run with token auth on and a minimal environment whatever this one says)."""
    env = {**os.environ, **FAKE_SECRETS, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("MLPLAN_DEBUG", None)
    env.update(extra or {})
    return env


def mlplan(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
           prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, MLPLAN, *args], capture_output=True, text=True, env=mlplan_env(env),
                          timeout=timeout, check=False, cwd=ROOT)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command: exactly one ``mlplan: error: ...`` line, the last on stderr (a deploy's
    progress lines come before it), no traceback."""
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("mlplan: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"expected one error line, last, got:\n{done.stderr}"
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert len(errors[0]) < 1500, f"the error line is {len(errors[0])} characters long"
    return errors[0]


def secrets_in(folder: Path | None, *outputs: str) -> list[Hit]:
    """Planted secrets or credential shapes in a folder (plan files, deploy state, server logs) or outputs."""
    hits: list[Hit] = []
    if folder is not None and folder.exists():
        hits += scan_tree(folder)[1]
    for i, text in enumerate(outputs):
        hits += scan_text(text, f"output {i}")
    return hits


def leftovers(parent: Path) -> list[str]:
    """Temporary folders the plan writer leaves next to its output (it must leave none)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((".mlplan-tmp-", ".mlplan-old-")))


def files_of(folder: Path, skip: tuple[str, ...] = (".mlplan/",)) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(skip)}


# ----------------------------------------------------------------------------------------- read-only


@functools.cache
def ro_mount_works() -> bool:
    """True when a read-only bind mount can be made in a private mount namespace (root with CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$1" "$1" && ! touch "$1/.probe"',
                           "sh", str(ROOT)], capture_output=True, check=False)
    return done.returncode == 0


def read_only(path: Path) -> tuple[str, ...]:
    """A command prefix that runs the command with ``path`` mounted read-only (EROFS even for root).

    ``unshare -m`` gives the command its own mount namespace, so the mount exists only for that process and
    vanishes with it: nothing to clean up, nothing leaks into the rest of the test run."""
    return ("unshare", "-m", "sh", "-c", 'mount --bind -o ro "$1" "$1" && shift && exec "$@"', "sh", str(path))


# ---------------------------------------------------------------------------------------------- moto


class MotoServer:
    """A real ``moto_server`` subprocess on 127.0.0.1 that a test may stop at any moment."""

    def __init__(self, log: Path) -> None:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if exe is None:
            pytest.skip("moto_server is not installed (pip install 'moto[server]')")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=fh,
                                         stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log")
    try:
        yield server
    finally:
        server.stop()
