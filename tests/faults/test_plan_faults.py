"""``mlplan plan`` under faults: an output folder that cannot be written, and two runs into the same folder.

Read-only: the tests run as root here, and root ignores permission bits, so ``chmod`` proves nothing. What
really fails for root is a read-only mount: the command runs in its own mount namespace (``unshare -m``) with
the folder bind-mounted read-only, so every write gets EROFS, exactly as on a read-only volume in CI. As a
non-root user (CI runners) the same tests use ``chmod a-w`` instead, which then really fails. An ``--out``
below a regular file fails for everyone. Each case: exit 2 or 5 with one line, no half-written folder, no
temporary folder left behind, an existing plan folder and its deploy state untouched.

Concurrency: two ``mlplan plan`` processes into one folder, several rounds; both exit 0 (or one says the
folder is busy) and the folder equals one run's output byte for byte, with the deploy state kept. A second test
widens the race window the way a slow or network filesystem does (each rename takes 50 ms) in forked writers.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    MLPLAN,
    ROOT,
    files_of,
    leftovers,
    mlplan,
    mlplan_env,
    one_line_error,
    read_only,
    ro_mount_works,
    secrets_in,
)

SPEC = "examples/local-demo.yaml"
WRITER_OSERROR = ("stacks/writer.py lets OSError from tempfile.mkdtemp / os.rename escape (exit 1, 'internal "
                  "error'); the fix (map it to InputError with a To fix) is in the helper's report to the lead")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One undisturbed run's files: what every faulted or concurrent run must leave (or leave untouched)."""
    out = tmp_path_factory.mktemp("ref") / "plan"
    done = mlplan("plan", SPEC, "--out", str(out), "--no-preview")
    assert done.returncode == 0, done.stderr
    assert not secrets_in(out, done.stdout, done.stderr)
    return files_of(out)


Method = str


@pytest.fixture(params=["ro-mount", "chmod"])
def method(request: pytest.FixtureRequest) -> Method:
    if request.param == "ro-mount" and not ro_mount_works():
        pytest.skip("a read-only bind mount needs root with CAP_SYS_ADMIN and unshare(1); not available here")
    if request.param == "chmod" and os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root, so chmod a-w cannot make a folder "
                    "unwritable (the ro-mount case covers it)")
    return str(request.param)


def run_unwritable(method: Method, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if method == "ro-mount":
        return mlplan(*args, prefix=read_only(path))
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        return mlplan(*args)
    finally:
        path.chmod(mode)


def test_new_folder_in_a_read_only_parent(tmp_path: Path, method: Method) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    out = parent / "plan"
    done = run_unwritable(method, parent, "plan", SPEC, "--out", str(out), "--no-preview")
    assert done.returncode in (2, 5), done.stderr
    line = one_line_error(done)
    assert str(out.parent) in line and "To fix:" in line
    assert not out.exists() and leftovers(parent) == []


def test_replacing_a_read_only_plan_folder_keeps_it(tmp_path: Path, method: Method,
                                                     reference: dict[str, bytes]) -> None:
    out = tmp_path / "plan"
    assert mlplan("plan", SPEC, "--out", str(out), "--no-preview").returncode == 0
    state = out / ".mlplan" / "state.json"
    state.parent.mkdir()
    state.write_text('{"version": 1, "plan_id": "x", "targets": {}}\n')
    for target in (out, tmp_path):  # the folder itself read-only, then its parent
        done = run_unwritable(method, target, "plan", SPEC, "--out", str(out), "--no-preview")
        assert done.returncode in (2, 5), done.stderr
        assert "To fix:" in one_line_error(done)
        assert files_of(out) == reference and state.read_text().startswith('{"version": 1')
        assert leftovers(tmp_path) == []


def test_out_below_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    done = mlplan("plan", SPEC, "--out", str(blocker / "plan"), "--no-preview")
    assert done.returncode == 2
    assert f"cannot create {blocker}" in one_line_error(done)
    assert blocker.read_text() == "x" and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- races


def test_two_plans_into_one_folder(tmp_path: Path, reference: dict[str, bytes]) -> None:
    out = tmp_path / "plan"
    argv = [MLPLAN, "plan", SPEC, "--out", str(out), "--no-preview"]
    rounds = 3
    for n in range(rounds):
        if n == 2:  # from round 3 on the folder also holds deploy state, which must survive every swap
            (out / ".mlplan").mkdir(exist_ok=True)
            (out / ".mlplan" / "state.json").write_text("{}\n")
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=mlplan_env(), cwd=ROOT) for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        for code, _out, err in results:
            if code != 0:
                assert code in (2, 5) and ("busy" in err or "locked" in err), err
        assert any(code == 0 for code, _, _ in results), results
        assert files_of(out) == reference, f"round {n}: the folder differs from a single run"
        assert leftovers(tmp_path) == [], f"round {n}"
        if n >= 2:
            assert (out / ".mlplan" / "state.json").read_text() == "{}\n", f"round {n}: deploy state lost"


def _writer(out: str, rounds: int, start: Any, errors: Any) -> None:  # pragma: no cover - runs in a fork
    from stacks import writer
    from tests import factories
    from tests.stacks.test_writer import fixed_catalog, recommendation, spec_for

    real = os.rename

    def slow_rename(src: Any, dst: Any) -> None:  # a slow (network) filesystem: each rename takes 50 ms
        real(src, dst)
        time.sleep(0.05)

    os.rename = slow_rename  # type: ignore[assignment]
    rec = recommendation(factories.local_demo())
    start.wait()
    for _ in range(rounds):
        try:
            writer.write_plan_folder(spec_for("local_demo"), rec, out, catalog=fixed_catalog(), preview=False)
        except Exception as e:
            if "busy" not in str(e) and "locked" not in str(e):
                errors.put(f"{type(e).__name__}: {e}")


@pytest.fixture
def forked() -> Iterator[Any]:
    ctx = multiprocessing.get_context("fork")
    yield ctx


def test_concurrent_writers_on_a_slow_filesystem(tmp_path: Path, forked: Any) -> None:
    from stacks import writer
    from tests import factories
    from tests.stacks.test_writer import fixed_catalog, recommendation, spec_for

    out = tmp_path / "plan"
    writer.write_plan_folder(spec_for("local_demo"), recommendation(factories.local_demo()), out,
                             catalog=fixed_catalog(), preview=False)
    want = files_of(out)
    (out / ".mlplan").mkdir()
    (out / ".mlplan" / "state.json").write_text("{}\n")
    start, errors = forked.Barrier(3), forked.Queue()
    procs = [forked.Process(target=_writer, args=(str(out), 6, start, errors)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    got = []
    while not errors.empty():
        got.append(errors.get())
    assert got == [], got[:3]
    assert files_of(out) == want and (out / ".mlplan" / "state.json").read_text() == "{}\n"
    assert leftovers(tmp_path) == []
