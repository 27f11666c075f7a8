"""Run the real ``tritonserver`` bundled in the nvidia-pytriton wheel (Python backend only).

The wheel ships the server binary, its shared libraries and one Python-backend stub per Python
version. :func:`backend_directory` links the backend and this interpreter's stub into a cache
directory; :class:`TritonServer` starts the binary with this environment's ``python3`` first on
``PATH`` (the stub ignores ``PYTHONPATH`` and imports ``cptr`` from that interpreter), and stops
it with Triton's graceful shutdown (in-flight requests finish). Start-up refuses ports something
already listens on, and the server counts as ready only when the child it started logged that its
own endpoints are up and ``/v2/health/ready`` answers (never another server's health)::

    with TritonServer("triton_repo") as server:        # free ports on 127.0.0.1
        client = CartoonClient(server.grpc_url)
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from cptr.contracts import DEFAULT_HOST, WILDCARD_HOSTS, connect_host, public_models
from cptr.triton import control

STARTUP_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 30


# Command-line flag of each port (``cptr serve``); errors name the flag to change.
PORT_FLAGS = {"http": "--http-port", "grpc": "--grpc-port", "metrics": "--metrics-port"}

# What Triton logs once an endpoint listens, per endpoint: seen in *our* child's log, it proves
# the port is ours (a second server on the same port exits instead of logging this).
_SERVICE_STARTED = {"http": "Started HTTPService at", "grpc": "Started GRPCInferenceService at", "metrics": "Started Metrics Service at"}

# E/W-level lines every Triton build with GPU support prints on a machine without a GPU; harmless
# (CPU models run) and kept out of cptr serve's output and start-up error summaries.
CPU_ONLY_NOISE = (
    "CudaDriverHelper has not been initialized",
    "unable to create stream for",
    "Unable to allocate pinned system memory",
)

# Triton's glog prefix: severity letter, MMDD, time, thread id, file:line]
_LOG_LINE = re.compile(r"^([EWIF])\d{4} [\d:.]+\s+\d+ ([\w.]+):\d+\]\s*(.*)$")


class ServerStartError(RuntimeError):
    """tritonserver did not become ready; the first line says why, the rest ends with its log tail."""


class PortInUseError(ServerStartError):
    """A port the server needs is already taken (checked before tritonserver starts)."""


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU device node (what Triton's own containers check)."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def cpu_only_args() -> list[str]:
    """tritonserver options for a machine without a GPU: no pinned-memory pool (it needs CUDA)."""
    return [] if has_gpu() else ["--pinned-memory-pool-byte-size=0"]


def is_error_line(line: str) -> bool:
    """An E- or F-level Triton log line that is not known CPU-only noise."""
    m = _LOG_LINE.match(line)
    return bool(m and m.group(1) in "EF" and not any(n in m.group(3) for n in CPU_ONLY_NOISE))


def _message(line: str) -> str:
    """The message of one log line: unquoted, first line only (Triton escapes newlines as \\n)."""
    m = _LOG_LINE.match(line)
    text = (m.group(3) if m else line).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    text = text.split("\\n")[0].split("\n")[0].strip()
    return text if len(text) <= 400 else text[:397] + "..."


def startup_cause(lines: Iterable[str]) -> str | None:
    """The one log line that best explains a failed start: a model that failed to load, else
    Triton's own fatal message (``main.cc``), else the first other error; ``None`` if none."""
    errors = [line for line in lines if is_error_line(line)]
    for line in errors:
        if "failed to load" in line:
            return _message(line)
    fatal = [line for line in errors if (m := _LOG_LINE.match(line)) and m.group(2) == "main.cc"]
    if fatal:
        return _message(fatal[-1])
    return _message(errors[0]) if errors else None


def _listen_host(host: str) -> str:
    return "0.0.0.0" if host in ("", "0.0.0.0") else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) listens on this machine only."""
    if host in WILDCARD_HOSTS:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, what: str = "Triton", thing: str = "the server") -> str | None:
    """The one-line warning for a server that listens beyond loopback (None on loopback)."""
    if is_loopback(host):
        return None
    where = "every interface" if host in WILDCARD_HOSTS else host
    return (
        f"warning: listening on {where}: {what} has no authentication, so anyone who can reach this machine can use "
        f"{thing}; use --host 127.0.0.1 unless a trusted network or an authenticating proxy stands in front"
    )


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raise :class:`PortInUseError` naming the first port (and its flag) that is taken on ``host``.

    ``ports`` maps an endpoint (``http``, ``grpc``, ``metrics``) to its port. The probe binds with
    ``SO_REUSEADDR`` as Triton does, so only a listening socket counts as taken, not TIME_WAIT.
    """
    seen: dict[int, str] = {}
    for what, port in ports.items():
        flag = PORT_FLAGS.get(what, what)
        if port in seen:
            raise PortInUseError(f"{seen[port]} and {flag} are both {port}; give each endpoint its own port")
        seen[port] = flag
        try:
            infos = socket.getaddrinfo(_listen_host(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise ServerStartError(f"cannot listen on {host!r}: {e}; give --host an address of this machine (0.0.0.0 = all)") from None
        family, kind, proto, _, addr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise PortInUseError(
                        f"port {port} ({flag}) is taken on {_listen_host(host)}: another server (perhaps another "
                        f"cptr serve) listens there. Stop it, or choose another port with {flag} (0 = a free one)"
                    ) from None
                raise ServerStartError(f"cannot listen on {_listen_host(host)}:{port} ({flag}): {e.strerror}") from None


def _pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError:
        raise RuntimeError("the bundled Triton server comes with nvidia-pytriton; install it with: pip install 'cptr[serve]'") from None
    return Path(pytriton.__file__).resolve().parent


def server_binary() -> Path:
    """Path of the bundled ``tritonserver`` executable."""
    path = _pytriton_dir() / "tritonserver" / "bin" / "tritonserver"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall nvidia-pytriton (pip install --force-reinstall 'nvidia-pytriton<0.8')")
    return path


def server_libs() -> Path:
    """Directory of the shared libraries the bundled server links against."""
    root = _pytriton_dir()
    for cand in (root.parent / "nvidia_pytriton.libs", root / "tritonserver" / "external_libs"):
        if cand.is_dir():
            return cand
    raise RuntimeError(f"nvidia_pytriton.libs not found beside {root}; reinstall nvidia-pytriton")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cptr"


def backend_directory(cache: Path | None = None) -> Path:
    """A ``--backend-directory`` with ``python/`` = the bundled backend plus this Python's stub (symlinks)."""
    src = _pytriton_dir() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = src / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (src / "python_backend_stubs").iterdir() if p.is_dir())
        raise RuntimeError(f"nvidia-pytriton has no Python-backend stub for Python {version} (it has {', '.join(have)})")
    files = {p.name: p for p in (src / "backends" / "python").iterdir() if p.is_file()}
    files["triton_python_backend_stub"] = stub
    key = hashlib.sha256(f"{src}|{version}".encode()).hexdigest()[:12]
    target = (cache or _cache_dir()) / "triton-backends" / key
    python_dir = target / "python"
    if python_dir.is_dir() and all((python_dir / n).resolve() == p.resolve() for n, p in files.items()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    (tmp / "python").mkdir()
    for name, path in files.items():
        (tmp / "python" / name).symlink_to(path.resolve())
    try:
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError:  # another process won the race: theirs is equivalent
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    """Environment for tritonserver: bundled libs on LD_LIBRARY_PATH, this Python first on PATH."""
    env = os.environ.copy()
    libs = str(server_libs())
    env["LD_LIBRARY_PATH"] = libs + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    env.pop("PYTHONHOME", None)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphaned server if we die


class TritonServer:
    """The bundled tritonserver as a child process (a context manager).

    Ports given as 0 are picked free on ``host``. ``log_verbose`` > 0 raises Triton's log level;
    ``echo`` copies the server log to stdout (``cptr serve --verbose``); ``echo_errors`` copies only
    its error lines to stderr (set by ``cptr serve`` once the server is ready). The log is always
    kept in :meth:`log_tail` and in ``log_path``. On a machine without a GPU the server runs
    with :func:`cpu_only_args`.
    """

    def __init__(
        self,
        model_repository: str | os.PathLike,
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        *,
        host: str = DEFAULT_HOST,
        log_verbose: int = 0,
        exit_timeout_s: int = EXIT_TIMEOUT_S,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        echo: bool = False,
        log_path: str | os.PathLike | None = None,
        extra_args: Sequence[str] = (),
        watch: bool = True,
    ):
        self.model_repository = Path(model_repository).resolve()
        if not self.model_repository.is_dir():
            raise FileNotFoundError(
                f"model repository {self.model_repository} does not exist; build one with: cptr-export --style demo --out {model_repository}"
            )
        self.host = host
        bind = connect_host(host)
        self.http_port = http_port or free_port(bind)
        self.grpc_port = grpc_port or free_port(bind)
        self.metrics_port = metrics_port or free_port(bind)
        self.log_verbose = int(log_verbose)
        self.exit_timeout_s = int(exit_timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.echo = echo
        self.echo_errors = False
        self.extra_args = list(extra_args)
        self.watch = watch  # follow the repository: cptr.triton.control.watch (serve() runs it)
        self._log_dir = None if log_path else tempfile.mkdtemp(prefix="cptr-triton-")
        self.log_path = Path(log_path) if log_path else Path(self._log_dir) / "tritonserver.log"
        self._tail: collections.deque[str] = collections.deque(maxlen=400)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._started: set[str] = set()  # endpoints our child logged as listening

    # --- addresses ------------------------------------------------------------------------
    @property
    def _client_host(self) -> str:
        return connect_host(self.host)

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP/REST endpoint (tritonclient style, no scheme)."""
        return f"{self._client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.metrics_port}/metrics"

    @property
    def ports(self) -> dict[str, int]:
        """Port of each endpoint: ``http``, ``grpc``, ``metrics``."""
        return {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The tritonserver command line."""
        return [
            str(server_binary()),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_directory()}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            # explicit control: every model at start, then loads and unloads on request only
            # (cptr.triton.control), so a repository that changes while served never half-loads
            "--model-control-mode=explicit",
            "--load-model=*",
            # Python-backend stubs talk to the server through named shared memory; two servers on one
            # machine with the default names collide (boost::interprocess::lock_exception at start).
            f"--backend-config=python,shm-region-prefix-name=cptr_{os.getpid()}_{self.http_port}_",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            *cpu_only_args(),
            *self.extra_args,
        ]

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, wait: bool = True) -> TritonServer:
        if self.is_alive():
            raise RuntimeError(f"tritonserver is already running (pid {self.pid})")
        check_ports_free(self.host, self.ports)
        self._tail.clear()
        self._started.clear()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self.command(),
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a terminal's Ctrl-C reaches us; we forward it once
        )
        self._reader = threading.Thread(target=self._pump, name="tritonserver-log", daemon=True)
        self._reader.start()
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop(timeout=10)
                raise
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in iter(self._proc.stdout.readline, b""):
                log.write(line)
                log.flush()
                text = line.decode("utf-8", "replace")
                self._tail.append(text)
                for what, marker in _SERVICE_STARTED.items():
                    if marker in text:
                        self._started.add(what)
                if self.echo:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                elif self.echo_errors and is_error_line(text):
                    sys.stderr.write(text)
                    sys.stderr.flush()

    def log_tail(self, n: int = 60) -> str:
        """The last ``n`` lines the server printed."""
        return "".join(list(self._tail)[-n:])

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def is_ready(self) -> bool:
        """``/v2/health/ready`` answers 200 on ``http_url`` (whichever server listens there)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def is_listening(self) -> bool:
        """Our child logged that its HTTP, gRPC and metrics endpoints listen (so they are its own)."""
        return self._started >= set(_SERVICE_STARTED)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until our child is listening and ready; raise :class:`ServerStartError` (cause + log tail) if not.

        Polls only while the child runs: a server that exits is never reported ready, and another
        server on the same ports never counts (see :meth:`is_listening`).
        """
        deadline = time.monotonic() + (self.startup_timeout_s if timeout is None else timeout)
        while time.monotonic() < deadline:
            if not self.is_alive():
                code = self._proc.returncode if self._proc else None
                self._drain_log()
                raise ServerStartError(self._failure(f"tritonserver exited with code {code} before it was ready"))
            if self.is_listening() and self.is_ready():
                return
            time.sleep(0.2)
        raise ServerStartError(self._failure(f"tritonserver was not ready after {timeout or self.startup_timeout_s:.0f} s"))

    def _drain_log(self) -> None:
        """Let the log reader catch the last lines of an exited child."""
        if self._reader is not None:
            self._reader.join(timeout=2)

    def _failure(self, what: str) -> str:
        """``what: cause`` on one line, then where to look and the log tail."""
        cause = startup_cause(self._tail)
        head = f"{what}: {cause}" if cause else f"{what} (no error line in its log; see the last lines below)"
        return f"{head}\nrepository: {self.model_repository}\nfull log: {self.log_path}\n--- last lines ---\n{self.log_tail(40)}"

    def ready_models(self) -> list[str]:
        """Names of the models the server has ready (its repository index over HTTP)."""
        req = urllib.request.Request(f"http://{self.http_url}/v2/repository/index", data=b'{"ready": true}', method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            rows = json.loads(r.read() or b"[]")
        return sorted({row["name"] for row in rows if row.get("state", "READY") == "READY"})

    def terminate(self) -> None:
        """Ask for a graceful shutdown (SIGTERM): no new requests, in-flight ones finish."""
        if self.is_alive():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        assert self._proc is not None, "server was never started"
        code = self._proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful shutdown, then SIGKILL if it takes longer than ``exit_timeout_s`` + 15 s."""
        if self._proc is None:
            return None
        if self.is_alive():
            self.terminate()
            try:
                return self.wait(timeout if timeout is not None else self.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self.wait(10)

    def __enter__(self) -> TritonServer:
        if not self.is_alive():
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if self._log_dir:
            shutil.rmtree(self._log_dir, ignore_errors=True)


def default_log_path(http_port: int) -> Path:
    """Where ``cptr serve`` writes the Triton log: one file per HTTP port, rewritten on each start."""
    return _cache_dir() / "logs" / f"tritonserver-{http_port}.log"


def _summary(server: TritonServer) -> str:
    """One line for ``cptr serve`` once ready: endpoints, what is served, where the log is."""

    try:
        models = server.ready_models()
    except (urllib.error.URLError, OSError, ValueError):
        models = []
    served = public_models(models)
    count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
    what = f"serving {', '.join(served)} ({count} in all)" if served else f"serving {count}"
    listen = _listen_host(server.host)
    where = (
        ""
        if listen == server._client_host
        else f" (listening on {listen}, every interface)"
        if listen == "0.0.0.0"
        else f" (listening on {listen})"
    )
    return (
        f"cptr serve: ready on http://{server.http_url} (HTTP), {server.grpc_url} (gRPC), {server.metrics_url}{where}; "
        f"{what}; Triton log: {server.log_path}; Ctrl-C stops"
    )


def serve(server: TritonServer) -> int:
    """Run ``server`` (built, not started) in the foreground until SIGTERM/SIGINT; forward the signal
    once, return its exit code.

    Quiet unless the server echoes its log: a line when starting and a one-line summary when ready;
    only the log's error lines are copied to stderr once the server is ready. A server built
    without a ``log_path`` logs to :func:`default_log_path` of its HTTP port.
    """
    if server._log_dir:  # no log_path given: the per-port file instead of a temporary folder
        shutil.rmtree(server._log_dir, ignore_errors=True)
        server._log_dir, server.log_path = None, default_log_path(server.http_port)
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        if not stopping.is_set():  # first signal: graceful (in-flight requests finish)
            stopping.set()
            print(f"cptr serve: {signal.Signals(signum).name}: finishing in-flight requests (again to force)", flush=True)
            server.terminate()
        elif server._proc is not None and server.is_alive():  # second signal: now
            server._proc.kill()

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        check_ports_free(server.host, server.ports)  # before anything is written or started
        server.log_path.parent.mkdir(parents=True, exist_ok=True)
        server.log_path.write_bytes(b"")  # this run's log only
        print(f"cptr serve: starting tritonserver on {server.model_repository} (Triton log: {server.log_path})", flush=True)
        server.start(wait=False)
        try:
            server.wait_ready()
        except ServerStartError:
            if stopping.is_set():
                return server.wait()
            raise
        print(_summary(server), flush=True)
        if warning := exposure_warning(server.host):
            print(warning, file=sys.stderr, flush=True)
        server.echo_errors = True
        if server.watch:
            threading.Thread(
                target=control.watch,
                name="cptr-watch",
                daemon=True,
                args=(server.http_url, server.model_repository, stopping, lambda m: print(f"cptr serve: {m}", flush=True)),
            ).start()
        while server.is_alive():
            time.sleep(0.2)
        stopping.set()
        code = server.wait()
        print(f"cptr serve: stopped (tritonserver exit code {code})", flush=True)
        return code
    finally:
        if server.is_alive():
            server.stop()
        for s, h in old.items():
            signal.signal(s, h)
