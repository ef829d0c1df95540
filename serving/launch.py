"""Start, check and stop real local servers: Ray Serve (a private Ray head + ``serve run``) and tritonserver.

Used by the tests, the benchmark and ``mlplan deploy --target local``. Each ``start_*`` launches DETACHED
processes (their own session, so they outlive the caller), waits until the server answers its HTTP health
route, and returns a JSON-serialisable record. :func:`stop` (from any process, later) ends every process of
that session and nothing else: Ray clusters this module did not start are never touched (no ``ray stop``).

Record keys: kind, pid (session leader), sid, start_ticks (guards against PID reuse), host, http_port,
(grpc_port), endpoint, health_url, ports (all ports the servers listen on), logs, workdir, and for Ray
ray_address / temp_dir / route_prefix.

``on_start`` (both starters) is called with the record the moment the server's processes exist, before the
wait for readiness: a caller that records it at once (the deploy state) can always stop what was started, even
when it is itself killed during the start-up. A failing ``on_start`` stops the server and propagates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planner.errors import DeployError, MissingDependency

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
TRITON_VERSION = "2.51"


# ------------------------------------------------------------------------------------------------ helpers
def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct free ports (all held open together while picking, so none repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, pgid, sid, start_ticks) of a process from /proc, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3]), int(fields[19])


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st and st[2] == sid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return sorted(out)


def _reap(pid: int) -> int | None:
    """Exit status of ``pid`` if it is our child and has exited, else None (never blocks)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done == pid else None


def _spawn(argv: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> int:
    """Start ``argv`` in a new session with stdout+stderr to ``log``; returns the pid (no Popen object, so
    nothing warns or waits when the caller lets it run on)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        exe = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        # sh only changes directory and execs: the session leader's PID is the server's own
        wrapped = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), exe, *argv[1:]]
        pid = os.posix_spawn("/bin/sh", wrapped, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)])
    finally:
        os.close(fd)
        os.close(null)
    return pid


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_ready(url: str, pid: int, deadline: float, log: Path, what: str) -> None:
    while time.monotonic() < deadline:
        if _http_ok(url):
            return
        code = _reap(pid)
        if code is not None or _stat(pid) is None:
            raise DeployError(f"{what} exited during start-up (exit {code}); last log lines:\n{_tail(log)}",
                              fix=f"read {log}")
        time.sleep(0.25)
    raise DeployError(f"{what} not ready at {url} after the start timeout; last log lines:\n{_tail(log)}",
                      fix=f"read {log}, or raise the timeout")


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join((bindir, env.get("PATH", "")))
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when the process that started it dies (Linux
    ``prctl(PR_SET_PDEATHSIG)``), so a helper command such as ``serve run`` never outlives a killed
    ``mlplan deploy``. libc is resolved here, in the parent: the child only makes the one call."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux / no prctl: nothing to arrange
        return None

    def child() -> None:  # pragma: no cover - runs between fork and exec
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    return child


def _record(kind: str, pid: int, **kw: Any) -> dict[str, Any]:
    st = _stat(pid)
    return {"kind": kind, "pid": pid, "sid": pid, "start_ticks": st[3] if st else None, **kw}


# ------------------------------------------------------------------------------------------------ Ray Serve
def start_ray_serve(config_path: Path | str, *, http_port: int = 0, workdir: Path | str,
                    num_cpus: int | None = None, timeout_s: float = 180.0,
                    on_start: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Start a private Ray head on 127.0.0.1 and deploy the Serve config at ``config_path`` onto it.

    The config's ``http_options`` are replaced by 127.0.0.1:``http_port`` (a free port when 0); the config is
    validated first (``serving.ray_config.validate_serve_config``). Returns the record for :func:`stop`.
    """
    import yaml

    from serving.ray_config import RAY_APP_IMPORT_PATH, validate_serve_config

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        cfg = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"cannot read Serve config {config_path}: {exc}", fix="re-run mlplan plan") from None
    port = http_port or free_port()
    cfg["http_options"] = {**(cfg.get("http_options") or {}), "host": HOST, "port": port}
    validate_serve_config(cfg)
    local_cfg = workdir / "serve_config.local.yaml"
    local_cfg.write_text(yaml.safe_dump(cfg, sort_keys=True))
    app = cfg["applications"][0]
    prefix = (app.get("route_prefix") or "/").rstrip("/")
    health = f"http://{HOST}:{port}{prefix}/health" if app.get("import_path") == RAY_APP_IMPORT_PATH \
        else f"http://{HOST}:{port}/-/healthz"

    # Ray's socket paths must stay under 107 bytes: a short temp dir of our own, removed by stop().
    temp_dir = tempfile.mkdtemp(prefix="mlr-", dir="/tmp")
    (gcs, client, agent, agent_grpc, renv, metrics, node_mgr, obj_mgr, *workers) = free_ports(8 + 48)
    env = _base_env()
    env.pop("RAY_ADDRESS", None)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    ray_log, serve_log = workdir / "ray-head.log", workdir / "serve-run.log"
    argv = ["ray", "start", "--head", "--block", "--node-ip-address", HOST, "--port", str(gcs),
            "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(renv),
            "--metrics-export-port", str(metrics), "--node-manager-port", str(node_mgr),
            "--object-manager-port", str(obj_mgr), "--worker-port-list", ",".join(map(str, workers)),
            "--temp-dir", temp_dir, "--include-dashboard=false", "--disable-usage-stats",
            "--num-cpus", str(num_cpus or max(2, os.cpu_count() or 2)), "--num-gpus", "0"]
    pid = _spawn(argv, env=env, log=ray_log, cwd=workdir)
    record = _record("ray-serve", pid, host=HOST, http_port=port, endpoint=f"http://{HOST}:{port}{prefix}/",
                     health_url=health, route_prefix=prefix or "/", ray_address=f"{HOST}:{gcs}",
                     temp_dir=temp_dir, ports=[port, gcs, client], workdir=str(workdir),
                     logs=[str(ray_log), str(serve_log)], config=str(local_cfg))
    deadline = time.monotonic() + timeout_s
    try:
        if on_start is not None:
            on_start(dict(record))
        while not port_open(gcs):
            if _reap(pid) is not None or _stat(pid) is None:
                raise DeployError(f"ray start exited; last log lines:\n{_tail(ray_log)}", fix=f"read {ray_log}")
            if time.monotonic() > deadline:
                raise DeployError("Ray head did not open its GCS port in time", fix=f"read {ray_log}")
            time.sleep(0.2)
        import subprocess

        with open(serve_log, "ab") as fh:
            done = subprocess.run(["serve", "run", "--address", f"{HOST}:{gcs}", "--non-blocking",
                                   str(local_cfg)], env=env, cwd=workdir, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=max(5.0, deadline - time.monotonic()),
                                  check=False, preexec_fn=_die_with_parent())
        if done.returncode != 0:
            raise DeployError(f"serve run failed (exit {done.returncode}); last log lines:\n{_tail(serve_log)}",
                              fix=f"read {serve_log}")
        _wait_ready(health, pid, deadline, serve_log, "Ray Serve")
    except BaseException:
        stop(record)
        raise
    return record


# ------------------------------------------------------------------------------------------------ Triton
def triton_install() -> tuple[Path, Path]:
    """(tritonserver folder, shared-libs folder) of the nvidia-pytriton wheel, or MissingDependency."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("tritonserver is not installed (it comes from the nvidia-pytriton wheel)",
                                fix="pip install 'nvidia-pytriton==0.7.0' 'numpy<2' (Linux x86_64)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    server, libs = pkg / "tritonserver", pkg.parent / "nvidia_pytriton.libs"
    if not (server / "bin" / "tritonserver").is_file():
        raise MissingDependency(f"the nvidia-pytriton wheel at {pkg} has no tritonserver binary",
                                fix="reinstall nvidia-pytriton==0.7.0 on Linux x86_64")
    return server, libs


def prepare_triton(cache: Path | str) -> Path:
    """A runnable tritonserver folder under ``cache`` (copied once from the wheel, the python backend stub for
    this Python placed in ``backends/python``). Returns the folder (bin/tritonserver, backends/)."""
    server, _ = triton_install()
    dest = Path(cache) / f"tritonserver-{TRITON_VERSION}"
    stub = dest / "backends" / "python" / "triton_python_backend_stub"
    if stub.is_file() and (dest / "bin" / "tritonserver").is_file():
        return dest
    tmp = Path(tempfile.mkdtemp(dir=Path(cache), prefix=".triton-"))
    try:
        shutil.copytree(server, tmp / "t", symlinks=True)
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        src_stub = tmp / "t" / "python_backend_stubs" / py / "triton_python_backend_stub"
        if not src_stub.is_file():
            raise MissingDependency(f"no Triton python backend stub for Python {py} in nvidia-pytriton",
                                    fix="use Python 3.8-3.13")
        shutil.copy2(src_stub, tmp / "t" / "backends" / "python" / "triton_python_backend_stub")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(dest)
        os.replace(tmp / "t", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def start_triton(model_repository: Path | str, *, http_port: int = 0, grpc_port: int = 0,
                 workdir: Path | str, timeout_s: float = 90.0, cache: Path | str | None = None,
                 extra_args: tuple[str, ...] = (),
                 on_start: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Start tritonserver on 127.0.0.1 with ``model_repository``; wait for ``/v2/health/ready``."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    repo = Path(model_repository).resolve()
    if not repo.is_dir():
        raise DeployError(f"Triton model repository not found: {repo}", fix="re-run mlplan plan")
    _, libs = triton_install()
    cache_dir = Path(cache) if cache else workdir
    cache_dir.mkdir(parents=True, exist_ok=True)
    home = prepare_triton(cache_dir)
    http_port, grpc_port = http_port or free_port(), grpc_port or free_port()
    env = _base_env()
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    log = workdir / "tritonserver.log"
    argv = [str(home / "bin" / "tritonserver"), f"--model-repository={repo}",
            f"--backend-directory={home / 'backends'}", f"--http-address={HOST}", f"--grpc-address={HOST}",
            f"--http-port={http_port}", f"--grpc-port={grpc_port}", "--allow-metrics=false",
            "--exit-timeout-secs=5", *extra_args]
    pid = _spawn(argv, env=env, log=log, cwd=workdir)
    health = f"http://{HOST}:{http_port}/v2/health/ready"
    record = _record("triton", pid, host=HOST, http_port=http_port, grpc_port=grpc_port,
                     endpoint=f"http://{HOST}:{http_port}", grpc_endpoint=f"{HOST}:{grpc_port}",
                     health_url=health, ports=[http_port, grpc_port], workdir=str(workdir), logs=[str(log)],
                     model_repository=str(repo))
    try:
        if on_start is not None:
            on_start(dict(record))
        _wait_ready(health, pid, time.monotonic() + timeout_s, log, "tritonserver")
    except BaseException:
        stop(record)
        raise
    return record


# ------------------------------------------------------------------------------------------------ lifecycle
def _ours(record: dict[str, Any]) -> bool:
    """False when the leader PID now belongs to another process (PID reuse): then touch nothing."""
    st = _stat(int(record["pid"]))
    if st is None:
        return True  # leader gone; Linux never reuses a PID still used as a session id by live members
    return record.get("start_ticks") is None or st[3] == record["start_ticks"]


def is_running(record: dict[str, Any]) -> bool:
    return _ours(record) and bool(session_members(int(record["sid"])))


def is_healthy(record: dict[str, Any]) -> bool:
    """The server's processes are alive and its health route answers 2xx."""
    return is_running(record) and _http_ok(str(record["health_url"]))


def stop(record: dict[str, Any], *, grace_s: float = 3.0) -> dict[str, Any]:
    """Stop every process of the record's session (TERM, then KILL after ``grace_s``); wait for its ports to
    close; remove Ray's temp dir. Idempotent and safe when already stopped. Returns what was done."""
    sid = int(record["sid"])
    killed: list[int] = []
    if _ours(record):
        members = session_members(sid)
        killed = list(members)
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pgid in sorted({st[1] for p in members if (st := _stat(p))}):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                _reap(int(record["pid"]))
                members = session_members(sid)
                if not members:
                    break
                time.sleep(0.1)
            if not members:
                break
    _reap(int(record["pid"]))
    end = time.monotonic() + 10.0
    ports = [int(p) for p in record.get("ports", [])]
    while any(port_open(p) for p in ports) and time.monotonic() < end:
        time.sleep(0.1)
    left = session_members(sid) if _ours(record) else []
    if record.get("temp_dir") and not left:
        shutil.rmtree(str(record["temp_dir"]), ignore_errors=True)
    open_ports = [p for p in ports if port_open(p)]
    if left or open_ports:
        raise DeployError(f"could not stop {record.get('kind')}: processes {left} / ports {open_ports} remain",
                          fix=f"kill -9 {' '.join(map(str, left))}" if left else "retry mlplan destroy")
    return {"stopped": killed, "ports_closed": ports}
