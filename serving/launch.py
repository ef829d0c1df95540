"""Start, check and stop real local servers: Ray Serve (a private Ray head + ``serve run``) and tritonserver.

Used by the tests, the benchmark and ``mlplan deploy --target local``. Each ``start_*`` launches DETACHED
processes (their own session, so they outlive the caller), waits until the server answers its HTTP health
route, and returns a JSON-serialisable record. :func:`stop` (from any process, later) ends every process of
that session and nothing else: Ray clusters this module did not start are never touched (no ``ray stop``).

Record keys: kind, pid (session leader), sid, start_ticks (guards against PID reuse), host, http_port,
(grpc_port), endpoint, health_url, ports (all ports the servers listen on), logs, workdir, and for Ray
ray_address / temp_dir / auth_dir / auth_token_path / route_prefix.

``on_start`` (both starters) is called with the record the moment the server's processes exist, before the
wait for readiness: a caller that records it at once (the deploy state) can always stop what was started, even
when it is itself killed during the start-up. A failing ``on_start`` stops the server and propagates.
``progress`` (both starters) gets one line per start-up phase as it completes, with the seconds it took.

Private to this machine, by construction and by check:

- every listener binds 127.0.0.1: tritonserver's ``--http-address`` / ``--grpc-address``; Ray as a single-node
  cluster on the loopback address (``--node-ip-address 127.0.0.1`` with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
  which makes Ray's node address the loopback one instead of the machine's routable address:
  ``ray._private.services.get_node_ip_address``), the Serve HTTP proxy on 127.0.0.1, and the Serve replicas'
  inter-deployment gRPC server (Ray 2.60 binds it to ``[::]:0``) moved to 127.0.0.1 by
  :func:`serving.runtime.loopback.bind_loopback_only`. After start-up :func:`listeners` reads the session's
  sockets from ``/proc/net/tcp{,6}``: a listener on any other address stops the server and fails the start;
- Ray token authentication is on (``RAY_AUTH_MODE=token``, Ray >= 2.52: every GCS / raylet / dashboard / client
  server call needs the token; https://docs.ray.io/en/latest/ray-security/token-auth.html), with a fresh random
  token in a 0600 file of a 0700 directory of its own (``RAY_AUTH_TOKEN_PATH``), removed by :func:`stop`;
- the servers get a minimal environment (:func:`child_env`: an allow-list), never cloud credentials, kubeconfigs
  or anything named like a token, secret, key or password.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
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

from planner.errors import DeployError, EnvironmentProblem, MissingDependency

HOST = "127.0.0.1"
#: set in a Ray session's environment: :mod:`serving.runtime.loopback` binds in-process gRPC servers to it
LOOPBACK_ENV = "MLPLAN_BIND_HOST"
REPO_ROOT = Path(__file__).resolve().parent.parent
TRITON_VERSION = "2.51"


# ------------------------------------------------------------------------------------------------ helpers
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000
"""ports the servers listen on are picked from LOWEST_PORT up to the kernel's ephemeral range"""


def _listen_range() -> tuple[int, int]:
    """[low, high) of the ports to listen on: below the ephemeral range the kernel gives outgoing connections
    (Linux: ``ip_local_port_range``, 32768-60999 by default). A port the OS picks with bind(0) comes from that
    range, so a client's connection can take it between the pick and the server's bind: Ray's ``serve run`` once
    failed so ("Failed to bind to address '127.0.0.1:58187'", 2026-12-02, right after a load test's 64
    connections)."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # the Linux default; elsewhere bind(0) picks from the ephemeral range too
    return (LOWEST_PORT, low) if low - LOWEST_PORT >= 1000 else (1024, max(low, 2024))


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now, outside the ephemeral range (:func:`_listen_range`)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct free ports outside the ephemeral range (:func:`_listen_range`), picked at random and all
    held open together while picking, so none repeats; EnvironmentProblem when that many cannot be found."""
    import random

    low, high = _listen_range()
    pick = random.SystemRandom()
    socks: list[socket.socket] = []
    try:
        for _ in range(200 * n):
            if len(socks) == n:
                break
            s = socket.socket()
            try:
                s.bind((host, pick.randrange(low, high)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        if len(socks) < n:
            raise EnvironmentProblem(f"found only {len(socks)} of {n} free TCP ports on {host} in {low}-{high - 1}",
                                     fix="stop servers you no longer need, then retry")
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


_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit)|error|E\d{4} |Traceback)\b", re.IGNORECASE)


def last_error(path: Path) -> str:
    """The last line of a server log that names an error (``ValueError: ...``, ``error: ...``), shortened: the one
    line an error message quotes, never the traceback."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    found = [ln for ln in lines if _ERROR_LINE.match(ln) and not ln.startswith("Traceback")]
    line = found[-1] if found else (lines[-1] if lines else "the log is empty")
    return line[:240] + ("..." if len(line) > 240 else "")


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


#: log lines that mark a start-up phase (Ray's and Serve's own INFO lines), and what the user is told
MILESTONES: tuple[tuple[str, str], ...] = (
    ("Connected to Ray cluster", "`serve run` connected to the Ray head"),
    ("Proxy starting on node", "Serve HTTP proxy starting"),
    ("Started Serve in namespace", "Serve controller started"),
    ("Deploying new app", "deploying the application"),
    ("Submitted deploy config successfully", "application submitted"),
)
HEARTBEAT_S = 10.0


class Watch:
    """Progress while waiting: a line for each milestone that appears in a log, and a 'still waiting' line when
    ``HEARTBEAT_S`` pass without one, so a start-up is never silent for long."""

    def __init__(self, progress: Callable[[str], None] | None, t0: float) -> None:
        self.progress, self.t0 = progress, t0
        self.last = time.monotonic()
        self.offsets: dict[Path, int] = {}
        self.seen: set[str] = set()

    def say(self, text: str) -> None:
        self.last = time.monotonic()
        _phase(self.progress, self.t0, text)

    def poll(self, log: Path, waiting_for: str) -> None:
        if self.progress is None:
            return
        try:
            with log.open("rb") as fh:
                fh.seek(self.offsets.get(log, 0))
                new = fh.read()
                self.offsets[log] = fh.tell()
        except OSError:
            new = b""
        for line in new.decode(errors="replace").splitlines():
            for marker, text in MILESTONES:
                if marker in line and marker not in self.seen:
                    self.seen.add(marker)
                    self.say(text)
        if time.monotonic() - self.last >= HEARTBEAT_S:
            self.say(f"still waiting for {waiting_for}")


def _wait_ready(url: str, pid: int, deadline: float, log: Path, what: str, watch: Watch | None = None) -> None:
    while time.monotonic() < deadline:
        if _http_ok(url):
            return
        if watch is not None:
            watch.poll(log, f"{what} to answer {url}")
        code = _reap(pid)
        if code is not None or _stat(pid) is None:
            raise DeployError(f"{what} exited during start-up (exit {code}): {last_error(log)}",
                              fix=f"read {log}")
        time.sleep(0.25)
    raise DeployError(f"{what} not ready at {url} after the start timeout: {last_error(log)}",
                      fix=f"read {log}, or raise the timeout")


#: variables a server may inherit (an allow-list): locale, paths, the accelerator selection, thread counts
CHILD_ENV_ALLOWED = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "LD_LIBRARY_PATH", "VIRTUAL_ENV",
    "XDG_CACHE_HOME", "MLPLAN_CACHE_DIR", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "OMP_NUM_THREADS",
)
#: never passed, whatever the allow-list says: cloud and cluster credentials, anything that looks like a secret
_SECRET_NAME = re.compile(
    r"^(AWS_|AMAZON_|GOOGLE_|GCLOUD_|CLOUDSDK_|GCP_|AZURE_|ARM_|KUBECONFIG|KUBERNETES_|PULUMI_|HF_TOKEN|RAY_)"
    r"|(TOKEN|SECRET|KEY|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(_|$)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Cloud / cluster credentials and names that look like secrets (``*_TOKEN``, ``*_SECRET``, ``*_KEY`` ...)."""
    return bool(_SECRET_NAME.search(name))


def child_env(extra: dict[str, str] | None = None, *, parent: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server this module starts: the allow-listed variables of ``parent`` (default: this
    process's) that do not look like secrets, this repository on ``PYTHONPATH``, this Python's bin first on
    ``PATH``, then ``extra`` (the launcher's own settings, e.g. Ray's token file path)."""
    source = dict(os.environ) if parent is None else parent
    env = {k: v for k, v in source.items()
           if (k in CHILD_ENV_ALLOWED or k.startswith("LC_")) and not is_secret_name(k)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH", "/usr/bin:/bin")) if p)
    env.update(extra or {})
    return env


def _phase(progress: Callable[[str], None] | None, t0: float, text: str) -> None:
    if progress is not None:
        progress(f"  {text} ({time.monotonic() - t0:.1f} s)")


def _run_helper(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, deadline: float, watch: Watch,
                what: str) -> int:
    """Run a short-lived helper (``serve run``) to its end, its output appended to ``log``, reporting its
    milestones as they appear; it dies with this process (PR_SET_PDEATHSIG) and at the deadline."""
    import subprocess

    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent())
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise DeployError(f"{what} did not finish within the start timeout",
                                      fix=f"read {log}, or raise the timeout")
                watch.poll(log, what)
                time.sleep(0.25)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    watch.poll(log, what)
    return int(proc.returncode)


# ----------------------------------------------------------------------------------------------- sockets
def _proc_listeners() -> dict[int, tuple[str, int]]:
    """Listening TCP sockets of this machine: inode -> (address, port), from /proc/net/tcp and tcp6."""
    out: dict[int, tuple[str, int]] = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            rows = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[3] != "0A":  # 0A: TCP_LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            out[int(cols[9])] = (_address(addr_hex, width), int(port_hex, 16))
    return out


def _address(hex_addr: str, width: int) -> str:
    """The text form of a /proc/net address (little-endian 32-bit words)."""
    raw = b"".join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, width, 8))
    return str(ipaddress.ip_address(raw))


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listeners(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket the processes hold."""
    table = _proc_listeners()
    found = {(pid, *table[i]) for pid in pids for i in _socket_inodes(pid) if i in table}
    return sorted(found)


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_loopback_only(record: dict[str, Any]) -> list[tuple[int, str, int]]:
    """The session's listeners; DeployError when one listens on another address than the loopback one."""
    found = listeners(session_members(int(record["sid"])))
    public = [(pid, addr, port) for pid, addr, port in found if not is_loopback(addr)]
    if public:
        pid, addr, port = public[0]
        raise DeployError(f"{record.get('kind')}: process {pid} ({_comm(pid)}) listens on {addr}:{port}, not only on "
                          f"127.0.0.1; mlplan stopped it", fix="report this with the Ray / Triton version; a local "
                          "deploy serves on the loopback address only")
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def who_listens(port: int, host: str = HOST) -> str | None:
    """``pid 1234 (tritonserver)`` of the process listening on ``host:port`` (if /proc lets us see it)."""
    table = {i: a for i, a in _proc_listeners().items() if a[1] == port}
    if not table:
        return None
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _socket_inodes(int(entry)) & set(table):
            return f"pid {entry} ({_comm(int(entry))})"
    return "a process of another user"


def require_free_port(port: int, what: str) -> None:
    """EnvironmentProblem (one line) when ``port`` on 127.0.0.1 is taken."""
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
            return
        except OSError:
            pass
    owner = who_listens(port)
    raise EnvironmentProblem(f"port {port} on {HOST} is already in use" + (f" by {owner}" if owner else "")
                             + f": {what} cannot listen there",
                             fix="choose another with --port (0 picks a free one), or stop what listens there")


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
def _token_file() -> Path:
    """A fresh random Ray auth token in a 0600 file of a 0700 directory of its own (Ray opens its own temp dir to
    every user)."""
    path = Path(tempfile.mkdtemp(prefix="mlrt-", dir="/tmp")) / "auth_token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def ray_env(token_path: Path) -> dict[str, str]:
    """What a private Ray session's processes (and `serve run`) run with: :func:`child_env` plus token auth on,
    the token file, the loopback-only single-node mode, no usage stats."""
    return child_env({
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        LOOPBACK_ENV: HOST,
    })


def start_ray_serve(config_path: Path | str, *, http_port: int = 0, workdir: Path | str,
                    num_cpus: int | None = None, timeout_s: float = 180.0,
                    on_start: Callable[[dict[str, Any]], None] | None = None,
                    progress: Callable[[str], None] | None = None,
                    model_uris: dict[str, str] | None = None) -> dict[str, Any]:
    """Start a private Ray head on 127.0.0.1 (token authentication on) and deploy the Serve config at
    ``config_path`` onto it.

    The config's ``http_options`` are replaced by 127.0.0.1:``http_port`` (a free port when 0; EnvironmentProblem
    when the given one is taken); ``model_uris`` replaces applications' ``args.model_uri`` (a model the caller
    fetched with its own credentials, which the servers never get). The config is validated first
    (``serving.ray_config.validate_serve_config``). Returns the record for :func:`stop`.
    """
    import yaml

    from serving.ray_config import RAY_APP_IMPORT_PATH, validate_serve_config

    t0 = time.monotonic()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        cfg = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"cannot read Serve config {config_path}: {str(exc).splitlines()[0]}",
                          fix="re-run mlplan plan") from None
    if http_port:
        require_free_port(http_port, "Ray Serve")
    port = http_port or free_port()
    cfg["http_options"] = {**(cfg.get("http_options") or {}), "host": HOST, "port": port}
    validate_serve_config(cfg)
    for app_cfg in cfg.get("applications") or []:
        args = app_cfg.get("args") if isinstance(app_cfg, dict) else None
        if isinstance(args, dict) and str(args.get("model_uri")) in (model_uris or {}):
            args["model_uri"] = (model_uris or {})[str(args["model_uri"])]
    local_cfg = workdir / "serve_config.local.yaml"
    local_cfg.write_text(yaml.safe_dump(cfg, sort_keys=True))
    app = cfg["applications"][0]
    prefix = (app.get("route_prefix") or "/").rstrip("/")
    health = f"http://{HOST}:{port}{prefix}/health" if app.get("import_path") == RAY_APP_IMPORT_PATH \
        else f"http://{HOST}:{port}/-/healthz"

    # Ray's socket paths must stay under 107 bytes: a short temp dir of our own (0700), removed by stop().
    temp_dir = tempfile.mkdtemp(prefix="mlr-", dir="/tmp")
    token = _token_file()
    (gcs, client, agent, agent_grpc, renv, metrics, node_mgr, obj_mgr, *workers) = free_ports(8 + 48)
    env = ray_env(token)
    ray_log, serve_log = workdir / "ray-head.log", workdir / "serve-run.log"
    argv = ["ray", "start", "--head", "--block", "--node-ip-address", HOST, "--port", str(gcs),
            "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(renv),
            "--metrics-export-port", str(metrics), "--node-manager-port", str(node_mgr),
            "--object-manager-port", str(obj_mgr), "--worker-port-list", ",".join(map(str, workers)),
            "--temp-dir", temp_dir, "--include-dashboard=false", "--dashboard-host", HOST,
            "--disable-usage-stats", "--num-cpus", str(num_cpus or max(2, os.cpu_count() or 2)), "--num-gpus", "0"]
    pid = _spawn(argv, env=env, log=ray_log, cwd=workdir)
    record = _record("ray-serve", pid, host=HOST, http_port=port, endpoint=f"http://{HOST}:{port}{prefix}/",
                     health_url=health, route_prefix=prefix or "/", ray_address=f"{HOST}:{gcs}",
                     temp_dir=temp_dir, auth_dir=str(token.parent), auth_token_path=str(token),
                     ports=[port, gcs, client],
                     workdir=str(workdir), logs=[str(ray_log), str(serve_log)], config=str(local_cfg))
    deadline = time.monotonic() + timeout_s
    try:
        if on_start is not None:
            on_start(dict(record))
        watch = Watch(progress, t0)
        while not port_open(gcs):
            if _reap(pid) is not None or _stat(pid) is None:
                raise DeployError(f"ray start exited: {last_error(ray_log)}", fix=f"read {ray_log}")
            if time.monotonic() > deadline:
                raise DeployError("Ray head did not open its GCS port in time", fix=f"read {ray_log}")
            watch.poll(ray_log, "the Ray head's GCS port")
            time.sleep(0.2)
        watch.say(f"Ray head up: GCS on {HOST}:{gcs}, token authentication on")
        code = _run_helper(["serve", "run", "--address", f"{HOST}:{gcs}", "--non-blocking", str(local_cfg)],
                           env=env, cwd=workdir, log=serve_log, deadline=deadline, watch=watch, what="`serve run`")
        if code != 0:
            raise DeployError(f"serve run failed (exit {code}): {last_error(serve_log)}", fix=f"read {serve_log}")
        _wait_ready(health, pid, deadline, serve_log, "Ray Serve", watch)
        found = check_loopback_only(record)
        _phase(progress, t0, f"Ray Serve answers on {HOST}:{port}; {len(found)} listeners, all on the loopback "
                             "address")
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


def stage_repository(repo: Path, workdir: Path, model_files: dict[str, Path]) -> Path:
    """A copy of ``repo`` under ``workdir`` with each ``model_files`` entry (path inside the repository -> a file
    the caller fetched) linked in place, so that tritonserver reads the model without fetching it itself."""
    staged = workdir / "model_repository"
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(repo, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, src in model_files.items():
        dest = (staged / rel).resolve()
        if staged.resolve() not in dest.parents:
            raise DeployError(f"model file path {rel!r} leaves the model repository", fix="re-run mlplan plan")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        os.symlink(Path(src).resolve(), dest)
    return staged


def start_triton(model_repository: Path | str, *, http_port: int = 0, grpc_port: int = 0,
                 workdir: Path | str, timeout_s: float = 90.0, cache: Path | str | None = None,
                 extra_args: tuple[str, ...] = (),
                 on_start: Callable[[dict[str, Any]], None] | None = None,
                 progress: Callable[[str], None] | None = None,
                 model_files: dict[str, Path] | None = None) -> dict[str, Any]:
    """Start tritonserver on 127.0.0.1 with ``model_repository``; wait for ``/v2/health/ready``.

    ``model_files`` (path inside the repository -> local file): models the caller fetched with its own
    credentials; the server then serves a staged copy of the repository holding them (it never gets the
    credentials). A given port that is taken is an EnvironmentProblem, before anything starts."""
    t0 = time.monotonic()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    repo = Path(model_repository).resolve()
    if not repo.is_dir():
        raise DeployError(f"Triton model repository not found: {repo}", fix="re-run mlplan plan")
    for given, what in ((http_port, "tritonserver's HTTP endpoint"), (grpc_port, "tritonserver's gRPC endpoint")):
        if given:
            require_free_port(given, what)
    if model_files:
        repo = stage_repository(repo, workdir, model_files)
    _, libs = triton_install()
    cache_dir = Path(cache) if cache else workdir
    cache_dir.mkdir(parents=True, exist_ok=True)
    home = prepare_triton(cache_dir)
    picked = iter([p for p in free_ports(3) if p not in (http_port, grpc_port)])  # distinct from a given one
    http_port = http_port or next(picked)
    grpc_port = grpc_port or next(picked)
    env = child_env()
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
        _wait_ready(health, pid, time.monotonic() + timeout_s, log, "tritonserver", Watch(progress, t0))
        found = check_loopback_only(record)
        _phase(progress, t0, f"tritonserver ready on {HOST}:{http_port}; {len(found)} listeners, all on the "
                             "loopback address")
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
    if not left:
        for key in ("temp_dir", "auth_dir"):
            if record.get(key):
                shutil.rmtree(str(record[key]), ignore_errors=True)
    open_ports = [p for p in ports if port_open(p)]
    if left or open_ports:
        raise DeployError(f"could not stop {record.get('kind')}: processes {left} / ports {open_ports} remain",
                          fix=f"kill -9 {' '.join(map(str, left))}" if left else "retry mlplan destroy")
    return {"stopped": killed, "ports_closed": ports}
