"""Kafka's jars (gathered from Maven Central by `infra/kafka/pom.xml`) and the Java that runs them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from paysync_dev import paths

log = logging.getLogger(__name__)

_JAR_RE = re.compile(r"^kafka_2\.13-(\d[\w.\-]*)\.jar$")
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
    node = ET.parse(_pom_path()).getroot().find("m:properties/m:kafka.version", ns)  # noqa: S314 - our own pom.xml from the repository, not untrusted input
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


def java_major(java: str) -> int:
    """Return the major version of a java binary."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if not match:
        raise KafkaError(f"cannot tell the version of {java}: {result.stderr.strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
