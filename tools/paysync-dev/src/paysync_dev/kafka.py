"""A local single-node Apache Kafka broker (KRaft, combined mode) run from Maven Central jars."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paysync_dev import paths
from paysync_dev._aio import run_sync

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "PAYSYNC_KAFKA_BOOTSTRAP"
DEV_PORT = 9092
DEV_CONTROLLER_PORT = 9093
TEST_PORT = 19092
TEST_CONTROLLER_PORT = 19093

# Modest heap; G1 as Kafka's own scripts use; C1-only JIT and no perf data start the JVM faster.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)
START_TIMEOUT_S = 90.0
STOP_GRACE_S = 30.0
_JAR_RE = re.compile(r"^kafka_2\.13-(\d[\w.\-]*)\.jar$")
_RUNNING_VERSION_RE = re.compile(r"Kafka version: (\S+)")
_STAMP_NAME = ".pom.sha256"


class KafkaError(RuntimeError):
    """The local Kafka broker could not be prepared, started or stopped."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on path for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no file {path})"
    return "\n".join(text.splitlines()[-lines:])


def _pom_path() -> Path:
    """Return infra/kafka/pom.xml."""
    return paths.kafka_infra_dir() / "pom.xml"


def log4j_config_path() -> Path:
    """Return infra/kafka/log4j2.properties."""
    return paths.kafka_infra_dir() / "log4j2.properties"


def _pom_digest() -> str:
    """Return the sha256 of the pom, which decides whether the jars are current."""
    return hashlib.sha256(_pom_path().read_bytes()).hexdigest()


def _jars_current(libs: Path, digest: str) -> bool:
    """Tell whether libs holds the jars of the pom with this digest."""
    stamp = libs / _STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == digest


def _copy_dependencies(target: Path) -> None:
    """Gather the broker's runtime classpath into target with Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaError("Maven (mvn) is not on PATH; install it (apt-get install -y maven)")
    command = [
        mvn, "-B", "-q", "-f", str(_pom_path()), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={target}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise KafkaError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{output}")


def ensure_jars() -> Path:
    """Download the Kafka jars unless libs/ already matches the pom; return the libs dir."""
    libs = paths.kafka_libs_dir()
    digest = _pom_digest()
    if _jars_current(libs, digest):
        return libs
    with file_lock(paths.kafka_dir() / ".jars.lock"):
        if _jars_current(libs, digest):
            return libs
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("gathering Kafka jars with Maven into %s", libs)
        _copy_dependencies(staging)
        (staging / _STAMP_NAME).write_text(digest + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def _pom_kafka_version() -> str:
    """Return the kafka.version property of the pom."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(_pom_path()).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise KafkaError(f"{_pom_path()} has no <kafka.version> property")
    return node.text.strip()


def version() -> str:
    """Return the Kafka version from the gathered jar's name, else from the pom."""
    libs = paths.kafka_libs_dir()
    if libs.is_dir():
        for jar in libs.iterdir():
            match = _JAR_RE.match(jar.name)
            if match:
                return match.group(1)
    return _pom_kafka_version()


def java_executable() -> str:
    """Return the java binary ($JAVA_HOME/bin/java, else the one on PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaError(
            "java is not on PATH; Kafka 4 needs Java 17+ (apt-get install -y openjdk-17-jre-headless)"
        )
    return found


def new_cluster_id() -> str:
    """Return a random Kafka cluster id (base64url of a UUID, unpadded)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def speaks_kafka(host: str, port: int, timeout: float = 1.0) -> bool:
    """Tell whether host:port answers a Kafka ApiVersions request (cheap; no client library)."""
    client_id = b"paysync-dev"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 10)
    except OSError:
        return False
    if header is None:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return correlation_id == 7 and error_code in (0, 35)  # 35: UNSUPPORTED_VERSION, still Kafka


def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
    """Read exactly count bytes, or None if the peer closes first."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


async def _describe_cluster(bootstrap: str, timeout: float) -> dict[str, Any]:
    """Ask the broker to describe its cluster with the aiokafka admin client."""
    from aiokafka.admin import AIOKafkaAdminClient

    timeout_ms = max(int(timeout * 1000), 500)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        return dict(await admin.describe_cluster())
    finally:
        await admin.close()


def probe(bootstrap: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Return the cluster description if a broker with a live node answers, else None."""
    try:
        described = run_sync(_describe_cluster(bootstrap, timeout))
    except Exception as exc:
        log.debug("probe of %s failed: %r", bootstrap, exc)
        return None
    return described if described.get("brokers") else None


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's connection errors while a starting broker is probed."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _process_state(pid: int) -> str | None:
    """Return the /proc state letter of pid, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _pid_alive(pid: int) -> bool:
    """Tell whether pid is a live (not zombie) process."""
    state = _process_state(pid)
    return state is not None and state not in ("Z", "X")


def _wait_exit(pid: int, timeout: float, child: subprocess.Popen[bytes] | None) -> bool:
    """Wait up to timeout for pid to exit; return whether it did."""
    if child is not None and child.pid == pid:
        try:
            child.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([fd], [], [], min(remaining, 0.5))
        return True
    finally:
        os.close(fd)


def _java_major(java: str) -> int:
    """Return the major version of a java binary."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if not match:
        raise KafkaError(f"cannot tell the version of {java}: {result.stderr.strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


@dataclass
class KafkaProcess:
    """A Kafka broker process with its own directory and ports."""

    base_dir: Path
    port: int = DEV_PORT
    controller_port: int = DEV_CONTROLLER_PORT
    host: str = "127.0.0.1"
    jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS
    started_here: bool = field(default=False, init=False)
    _child: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @classmethod
    def on_free_ports(cls, base_dir: Path) -> KafkaProcess:
        """Return a broker in base_dir on two currently free ports."""
        return cls(base_dir=base_dir, port=free_port(), controller_port=free_port())

    @property
    def bootstrap(self) -> str:
        """Return host:port of the PLAINTEXT listener."""
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """Return the log.dirs directory."""
        return self.base_dir / "data"

    @property
    def logs_dir(self) -> Path:
        """Return the directory of server.log and the console output."""
        return self.base_dir / "logs"

    @property
    def properties_path(self) -> Path:
        """Return the generated server.properties."""
        return self.base_dir / "server.properties"

    @property
    def pid_path(self) -> Path:
        """Return the pid file."""
        return self.base_dir / "kafka.pid"

    @property
    def console_log(self) -> Path:
        """Return the file that receives the JVM's stdout and stderr."""
        return self.logs_dir / "kafka.out"

    def server_properties(self) -> dict[str, str]:
        """Return the broker configuration for a single combined-mode KRaft node."""
        host, port, cport = self.host, self.port, self.controller_port
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "5",
        }

    def write_config(self) -> Path:
        """Write server.properties and return its path."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self.server_properties().items()]
        header = "# Written by paysync-dev; regenerated on every start.\n"
        self.properties_path.write_text(header + "\n".join(lines) + "\n")
        return self.properties_path

    def is_formatted(self) -> bool:
        """Tell whether the data directory has been formatted."""
        return (self.data_dir / "meta.properties").is_file()

    def _java_command(self, libs: Path, main: str, *args: str) -> list[str]:
        """Return a java command line for a Kafka main class with our logging setup."""
        return [
            java_executable(), *self.jvm_options,
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={log4j_config_path()}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def format_storage(self, libs: Path) -> None:
        """Format the KRaft metadata and data directory with a new cluster id."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._java_command(
            libs, "kafka.tools.StorageTool", "format",
            # "=" form: a base64url id may begin with "-" and would read as an option.
            f"--cluster-id={new_cluster_id()}", "-c", str(self.properties_path),
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise KafkaError(f"formatting {self.data_dir} failed (exit {result.returncode}):\n{output}")

    def pid(self) -> int | None:
        """Return the pid of this directory's live broker, or None."""
        if self._child is not None and self._child.poll() is None:
            return self._child.pid  # our own child; its cmdline may predate exec
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if b"kafka.Kafka" not in cmdline or str(self.properties_path).encode() not in cmdline:
            return None
        return pid

    def answers(self, timeout: float = 1.0) -> bool:
        """Tell whether a Kafka broker answers on this port."""
        return speaks_kafka(self.host, self.port, timeout)

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the broker unless it already answers; return the bootstrap string."""
        with file_lock(self.base_dir / ".lock"):
            if self.answers():
                return self.bootstrap
            if self.pid() is None:
                self._check_ports_free()
                self._launch()
            self._wait_ready(timeout)
        log.info("Apache Kafka %s ready at %s", self.running_version() or version(), self.bootstrap)
        return self.bootstrap

    def _check_ports_free(self) -> None:
        """Fail if something that is not our broker holds one of the ports."""
        for port in (self.port, self.controller_port):
            if port_open(self.host, port):
                raise KafkaError(
                    f"{self.host}:{port} is taken by a process that does not speak Kafka "
                    f"(expected the broker of {self.base_dir}); free the port or pick another"
                )

    def _launch(self) -> None:
        """Prepare jars, config and storage, then spawn the broker detached."""
        libs = ensure_jars()
        java = java_executable()
        if _java_major(java) < 17:
            raise KafkaError(f"{java} is older than Java 17, which Kafka {version()} needs")
        self.write_config()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if not self.is_formatted():
            self.format_storage(libs)
        command = self._java_command(libs, "kafka.Kafka", str(self.properties_path))
        with self.console_log.open("wb") as out:
            self._child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._child.pid}\n")
        self.started_here = True
        log.info("started Kafka broker pid %d in %s", self._child.pid, self.base_dir)

    def _wait_ready(self, timeout: float) -> None:
        """Probe the broker until it answers, it dies, or timeout passes."""
        deadline = time.monotonic() + timeout
        with _quiet_aiokafka():
            while True:
                pid = self.pid()
                if pid is None:
                    code = self._child.poll() if self._child is not None else None
                    how = f" with code {code}" if code is not None else ""
                    raise KafkaError(
                        self._failure(f"the Kafka broker in {self.base_dir} exited{how} at startup")
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KafkaError(
                        self._failure(f"the Kafka broker (pid {pid}) did not answer within {timeout:.0f} s")
                    )
                if port_open(self.host, self.port) and probe(self.bootstrap, min(5.0, remaining)):
                    return
                time.sleep(0.1)  # poll interval between readiness probes

    def _failure(self, headline: str) -> str:
        """Return an error message with the tail of the broker's console log."""
        return f"{headline}; last lines of {self.console_log}:\n{_tail(self.console_log)}"

    def stop(self, grace: float = STOP_GRACE_S) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after grace seconds; return whether one ran."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, grace, self._child):
            log.warning("Kafka broker pid %d ignored SIGTERM for %.0f s; sending SIGKILL", pid, grace)
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0, self._child)
        self.pid_path.unlink(missing_ok=True)
        self._child = None
        return True

    def running_version(self) -> str | None:
        """Return the version the running broker logged at startup, if known."""
        try:
            with self.console_log.open(encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines):
                    match = _RUNNING_VERSION_RE.search(line)
                    if match or number > 5000:
                        return match.group(1) if match else None
        except OSError:
            return None
        return None


def dev_broker(port: int = DEV_PORT, controller_port: int = DEV_CONTROLLER_PORT) -> KafkaProcess:
    """Return the shared development broker in <local>/kafka."""
    return KafkaProcess(paths.kafka_dir(), port=port, controller_port=controller_port)


def start(port: int = DEV_PORT, controller_port: int = DEV_CONTROLLER_PORT) -> str:
    """Start the development broker if needed and return its bootstrap string."""
    return dev_broker(port, controller_port).start()


def stop(grace: float = STOP_GRACE_S) -> bool:
    """Stop the development broker; return whether one was running."""
    return dev_broker().stop(grace)


def test_broker() -> KafkaProcess:
    """This checkout's test broker: its ports are chosen once and kept in its own .local/.

    Two checkouts on one machine (a developer's and CI's fresh clone, say) thus never share
    a broker, and one cannot stop the other's in the middle of a run.
    """
    base = paths.kafka_test_dir()
    ports_file = base / "ports"
    broker: KafkaProcess | None = None
    if ports_file.exists():
        port, controller = (int(p) for p in ports_file.read_text().split())
        broker = KafkaProcess(base, port, controller)
        in_use = port_open("127.0.0.1", port) or port_open("127.0.0.1", controller)
        if broker.pid() is None and in_use:
            broker = None  # our ports were taken by someone else meanwhile: choose again
    if broker is None:
        base.mkdir(parents=True, exist_ok=True)
        broker = KafkaProcess(base, free_port(), free_port())
        ports_file.write_text(f"{broker.port} {broker.controller_port}\n")
    return broker
