"""A local single-node Apache Kafka broker (KRaft, combined mode) run from Maven Central jars.

The jars and Java are found by `kafka_install.py`, a running broker is recognized by `kafka_probe.py`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import select
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from paysync_dev import paths
from paysync_dev.kafka_install import (
    KafkaError,
    ensure_jars,
    file_lock,
    java_executable,
    java_major,
    log4j_config_path,
    version,
)
from paysync_dev.kafka_probe import free_port, port_open, probe, quiet_aiokafka, speaks_kafka

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
_RUNNING_VERSION_RE = re.compile(r"Kafka version: (\S+)")


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no file {path})"
    return "\n".join(text.splitlines()[-lines:])


def new_cluster_id() -> str:
    """Return a random Kafka cluster id (base64url of a UUID, unpadded)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


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
        if java_major(java) < 17:
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
        with quiet_aiokafka():
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
