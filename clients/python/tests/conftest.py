"""Fixtures that run the real thing: a redis-server of their own on a free
port, and modelsync daemons (the release binary, built when missing), each
with its own socket and identity file, all stopped when the session ends."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from modelsync import Client, ModelSyncError

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parents[2]  # clients/python/tests -> the repository
# CI clones the repository with a copy of shared/ beside it.
LEGACY_SCRIPT = REPO_ROOT.parent / "shared" / "baseline" / "legacy_push_pull.py"

#: Namespaces configured in the legacy daemon's --config file.
LEGACY_NS = "oldfleet"
UNTRUSTED_NS = "oldfleet-untrusted"
LEGACY_CONFIG = f"""\
namespaces:
  {LEGACY_NS}:
    layout: legacy
    trust_pickle: true
  {UNTRUSTED_NS}:
    layout: legacy
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    def __init__(self, workdir: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.workdir = workdir
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            self.log = workdir / f"redis-{self.port}.log"
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir), "--logfile", str(self.log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: self.process.poll() is not None or self.ping(), 10, "redis start")
            except TimeoutError:
                stop(self.process)
                continue
            if self.process.poll() is None:
                return
        pytest.fail(f"redis-server would not start; see {self.log}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop(self.process)


class Daemon:
    """One modelsync daemon with its own socket, identity and log."""

    def __init__(self, binary: Path, workdir: Path, address: str, redis_url: str,
                 config: str | None = None):
        self.address = address
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = str(workdir / "modelsync.sock")
        identity = workdir / "identity.yaml"
        identity.write_text(f"address: {address}\n")
        command = [str(binary), "--socket", self.socket, "serve", "--identity", str(identity),
                   "--redis", redis_url]
        if config is not None:
            path = workdir / "config.yaml"
            path.write_text(config)
            command += ["--config", str(path)]
        self.log = workdir / "daemon.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.process.poll() is not None or self._answers(), 30,
                       f"daemon {address} answering on {self.socket}")
        except TimeoutError:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"daemon {address} exited with {self.process.returncode}:\n"
                               f"{self.log.read_text()}")

    def _answers(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        with Client(self.socket, timeout=2) as client:
            try:
                return client.status().redis_connected
            except ModelSyncError:
                return False

    def client(self, **kwargs) -> Client:
        return Client(self.socket, **kwargs)

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="session")
def daemon_binary() -> Path:
    """The release binary: $MODELSYNC_BIN, or target/release/modelsync,
    built with `cargo build --release` when it is missing."""
    if os.environ.get("MODELSYNC_BIN"):
        return Path(os.environ["MODELSYNC_BIN"])
    binary = REPO_ROOT / "target" / "release" / "modelsync"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO_ROOT, check=True)
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_daemon(daemon_binary, redis_server, tmp_path_factory):
    """A factory: start_daemon(address, config=None) -> Daemon, on the
    session's Redis; every daemon it started is stopped at the end."""
    started = []

    def start(address: str, config: str | None = None) -> Daemon:
        daemon = Daemon(daemon_binary, tmp_path_factory.mktemp("daemon"), address,
                        redis_server.url, config)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def daemon(start_daemon) -> Daemon:
    return start_daemon("node-a")


@pytest.fixture
def client(daemon):
    with daemon.client() as client:
        yield client


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def key() -> str:
    """A key of the test's own (for the shared legacy namespaces)."""
    return f"k{uuid.uuid4().hex[:12]}"


def daemon_has_config_option(binary: Path) -> bool:
    """Whether this daemon takes --config, i.e. knows namespace layouts."""
    help_text = subprocess.run([str(binary), "serve", "--help"], capture_output=True,
                               text=True).stdout
    return "--config" in help_text


@pytest.fixture(scope="session")
def legacy_daemon(daemon_binary, start_daemon) -> Daemon:
    """A daemon whose configuration puts LEGACY_NS (trust_pickle) and
    UNTRUSTED_NS in the legacy layout."""
    if not daemon_has_config_option(daemon_binary):
        pytest.skip(f"{daemon_binary} predates the legacy layout (no `serve --config`)")
    daemon = start_daemon("node-legacy", config=LEGACY_CONFIG)
    daemon.trusted_ns, daemon.untrusted_ns = LEGACY_NS, UNTRUSTED_NS
    return daemon


@pytest.fixture(scope="session")
def run_legacy(redis_server):
    """run_legacy("push"|"pull", *args): the legacy client's script against
    the session's Redis, as a CompletedProcess."""
    if not LEGACY_SCRIPT.exists():
        pytest.skip(f"the legacy client is not at {LEGACY_SCRIPT} (shared/ beside the repository)")

    def run(command: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(LEGACY_SCRIPT), command, "--redis", redis_server.url, *args],
            capture_output=True, text=True, timeout=120)

    return run
